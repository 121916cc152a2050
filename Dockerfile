# authz-server container image.
#   docker build -t authz-server:0.1.0 .
#   docker run -p 9001:9001 -v "$PWD/examples/demo:/etc/authz-server/policies:ro" authz-server:0.1.0
# Everything is configured through AUTHZ_* environment variables (see README.md).

# An exact tag; pin the digest too when you publish (python:3.11.11-slim-bookworm@sha256:...).
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

# --- build: install the package and its wheels into a self-contained venv ---
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY authz_server ./authz_server
RUN python -m venv /opt/authz-server \
    && /opt/authz-server/bin/pip install . \
    && /opt/authz-server/bin/pip uninstall --yes pip setuptools wheel

# --- runtime: the venv only, no compiler, no pip in the venv, no root ---
FROM ${PYTHON_IMAGE}
RUN groupadd --system --gid 65532 authz \
    && useradd --system --uid 65532 --gid 65532 --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin authz
COPY --from=build /opt/authz-server /opt/authz-server
ENV PATH=/opt/authz-server/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    AUTHZ_CONFIG=/etc/authz-server/policies \
    AUTHZ_GRPC_LISTEN=0.0.0.0:9001 \
    AUTHZ_ADMIN_LISTEN=0.0.0.0:9002 \
    AUTHZ_LOG_FORMAT=json
USER 65532:65532
# gRPC ext_authz, admin (/healthz, /readyz, /metrics), HTTP ext_authz
EXPOSE 9001 9002 9003
# Asks the standard gRPC health service, like a gRPC probe would.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, grpc; from grpc_health.v1 import health_pb2 as h, health_pb2_grpc as g; a = os.environ['AUTHZ_GRPC_LISTEN'].replace('0.0.0.0', '127.0.0.1'); r = g.HealthStub(grpc.insecure_channel(a)).Check(h.HealthCheckRequest(), timeout=2); raise SystemExit(r.status != h.HealthCheckResponse.SERVING)"]
ENTRYPOINT ["authz-server", "serve"]
