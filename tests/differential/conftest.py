"""Two Envoys for the differential suite, started once per session.

* ``native``: one Envoy whose listeners (one per policy of
  :data:`diff_policies.POLICIES`) run Envoy's own ``jwt_authn`` + ``rbac`` filters
  configured as istiod would (:mod:`native_rbac`), answering 200 when allowed;
* ``authz_stack``: the ext_authz stack of ``tests/harness.py`` (Envoy with
  ``envoy/front-proxy.yaml`` -> in-process authz-server -> echo upstream); each
  test loads its policy's Istio YAML with ``use_config``.

Both sides trust the session's ``diff_keys`` (the JWKS is inlined on both).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from diff_requests import mint_all
from diff_setup import Keys, Native, write_native_config
from harness import Stack, running_stack

from authz_server import tokens
from authz_server.demo.envoy_proc import EnvoyProcess


@pytest.fixture(scope="session")
def diff_keys() -> Keys:
    return Keys(tokens.generate_key("RS256"), tokens.generate_key("RS256"))


@pytest.fixture(scope="session")
def minted(diff_keys: Keys) -> dict[str, str]:
    return mint_all(diff_keys.signing, diff_keys.other)


@pytest.fixture(scope="session")
def native(
    tmp_path_factory: pytest.TempPathFactory, diff_keys: Keys
) -> Iterator[Native]:
    directory = tmp_path_factory.mktemp("native")
    path, ports = write_native_config(directory, diff_keys.jwks)
    with EnvoyProcess(path, log_path=directory / "envoy.log") as envoy:
        yield Native(path, ports, envoy)


@pytest.fixture(scope="session")
def authz_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("authz")) as stack:
        yield stack
