"""The ``authz-server`` command: serve, check, explain, token.

Every option of ``serve`` also reads an environment variable (shown in ``--help``),
so a container can be configured without changing its command line.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from authz_server import snapshot, tokens
from authz_server.authn.jwks import KeyRegistry
from authz_server.envoy_http import ORIGINAL_MODES
from authz_server.errors import ConfigError
from authz_server.explain import explain, render
from authz_server.observe import configure_logging
from authz_server.request import Request
from authz_server.server import Server
from authz_server.settings import (
    DEFAULT_ADMIN_LISTEN,
    DEFAULT_GRPC_LISTEN,
    DEFAULT_ROOT_NAMESPACE,
    Limits,
    Settings,
)


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def _env_list(name: str) -> list[str]:
    value = os.environ.get(name, "")
    return [item for item in value.split(os.pathsep) if item]


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        action="append",
        metavar="PATH",
        help="YAML file or directory of *.yaml (repeatable; env AUTHZ_CONFIG, "
        "paths separated by ':')",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="authz-server",
        description="Envoy ext_authz service for Istio RequestAuthentication and "
        "AuthorizationPolicy.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve ext_authz Check over gRPC")
    _add_config(serve)
    serve.add_argument(
        "--grpc-listen",
        default=_env("AUTHZ_GRPC_LISTEN", DEFAULT_GRPC_LISTEN),
        help="HOST:PORT for gRPC (env AUTHZ_GRPC_LISTEN; default %(default)s)",
    )
    serve.add_argument(
        "--admin-listen",
        default=_env("AUTHZ_ADMIN_LISTEN", DEFAULT_ADMIN_LISTEN),
        help="HOST:PORT for /healthz, /readyz, /metrics, /debug/keys; empty to "
        "disable (env AUTHZ_ADMIN_LISTEN; default %(default)s)",
    )
    serve.add_argument(
        "--http-listen",
        default=_env("AUTHZ_HTTP_LISTEN", ""),
        help="HOST:PORT for HTTP ext_authz (Envoy http_service, nginx auth_request, "
        "Traefik ForwardAuth); empty disables (env AUTHZ_HTTP_LISTEN; default off)",
    )
    serve.add_argument(
        "--http-original",
        default=_env("AUTHZ_HTTP_ORIGINAL", "auto"),
        choices=ORIGINAL_MODES,
        help="which proxy describes the original request of an HTTP check "
        "(env AUTHZ_HTTP_ORIGINAL; default %(default)s)",
    )
    _add_settings(serve)
    _add_key_settings(serve)
    _add_limits(serve)

    check = commands.add_parser("check", help="validate config files and exit")
    _add_config(check)

    explain_cmd = commands.add_parser("explain", help="show how one request is decided")
    _add_config(explain_cmd)
    _add_settings(explain_cmd)
    explain_cmd.add_argument("--method", default="GET")
    explain_cmd.add_argument("--path", default="/")
    explain_cmd.add_argument("--host", default="localhost")
    explain_cmd.add_argument(
        "--header", action="append", default=[], metavar="NAME:VALUE"
    )
    explain_cmd.add_argument(
        "--context",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a context_extensions entry (labels, namespace)",
    )
    explain_cmd.add_argument("--source-principal", default="")
    explain_cmd.add_argument("--source-ip", default="127.0.0.1")
    token_group = explain_cmd.add_mutually_exclusive_group()
    token_group.add_argument("--token", help="sent as 'Authorization: Bearer TOKEN'")
    token_group.add_argument("--token-file", type=Path)
    explain_cmd.add_argument(
        "--json", action="store_true", help="machine-readable output"
    )

    _add_token_commands(commands)
    return parser


def _add_settings(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--root-namespace",
        default=_env("AUTHZ_ROOT_NAMESPACE", DEFAULT_ROOT_NAMESPACE),
        help="namespace whose resources apply everywhere (env AUTHZ_ROOT_NAMESPACE; "
        "default %(default)s)",
    )
    parser.add_argument(
        "--trusted-proxies",
        type=int,
        default=int(_env("AUTHZ_TRUSTED_PROXIES", "0")),
        help="x-forwarded-for hops trusted for remote.ip (env AUTHZ_TRUSTED_PROXIES; "
        "default %(default)s)",
    )
    parser.add_argument(
        "--log-level",
        default=_env("AUTHZ_LOG_LEVEL", "INFO"),
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="env AUTHZ_LOG_LEVEL (default %(default)s)",
    )
    parser.add_argument(
        "--log-format",
        default=_env("AUTHZ_LOG_FORMAT", "json"),
        choices=["json", "text"],
        help="env AUTHZ_LOG_FORMAT (default %(default)s)",
    )


def _add_key_settings(parser: argparse.ArgumentParser) -> None:
    options = [
        (
            "--jwks-refresh",
            "AUTHZ_JWKS_REFRESH_SECONDS",
            "1200",
            "JWKS refresh interval",
        ),
        (
            "--jwks-miss-interval",
            "AUTHZ_JWKS_MISS_INTERVAL_SECONDS",
            "30",
            "least time between refetches after an unknown kid, per URL",
        ),
        (
            "--jwks-max-stale",
            "AUTHZ_JWKS_MAX_STALE_SECONDS",
            "86400",
            "oldest key set still used when refreshes fail",
        ),
        (
            "--startup-deadline",
            "AUTHZ_STARTUP_DEADLINE_SECONDS",
            "30",
            "longest wait for every JWKS before reporting ready anyway",
        ),
    ]
    for flag, env, default, text in options:
        parser.add_argument(
            flag,
            type=float,
            default=float(_env(env, default)),
            metavar="SECONDS",
            help=f"{text} (env {env}; default %(default)s)",
        )
    parser.add_argument(
        "--jwks-ca-file",
        default=os.environ.get("AUTHZ_JWKS_CA_FILE"),
        help="CA bundle for https JWKS URLs (env AUTHZ_JWKS_CA_FILE; default: "
        "the system store)",
    )


def _add_limits(parser: argparse.ArgumentParser) -> None:
    for name in fields(Limits):
        flag = "--" + name.name.replace("_", "-")
        env = "AUTHZ_" + name.name.upper()
        parser.add_argument(
            flag,
            type=int,
            default=int(_env(env, str(name.default))),
            metavar="N",
            help=f"env {env}; default %(default)s (README: Limits)",
        )


def _add_token_commands(commands: Any) -> None:
    token = commands.add_parser("token", help="development keys and tokens")
    actions = token.add_subparsers(dest="action", required=True)

    keygen = actions.add_parser("keygen", help="write private.pem and jwks.json")
    keygen.add_argument("--out", type=Path, required=True, help="directory")
    keygen.add_argument("--alg", choices=tokens.KEY_ALGORITHMS, default="RS256")
    keygen.add_argument("--kid", default="dev-key-1")

    mint = actions.add_parser("mint", help="sign a token and print it")
    mint.add_argument("--key", type=Path, required=True, help="private key PEM")
    mint.add_argument("--kid", default="dev-key-1")
    mint.add_argument("--iss", required=True)
    mint.add_argument("--sub", required=True)
    mint.add_argument("--aud", action="append", default=[])
    mint.add_argument("--expires-in", type=float, default=3600, metavar="SECONDS")
    mint.add_argument("--no-exp", action="store_true", help="mint without exp")
    mint.add_argument(
        "--claim",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra claim; VALUE is parsed as JSON when it is valid JSON",
    )


def _settings(args: argparse.Namespace) -> Settings:
    settings = Settings(
        root_namespace=args.root_namespace, trusted_proxies=args.trusted_proxies
    )
    if args.command != "serve":
        return settings
    return replace(
        settings,
        grpc_listen=args.grpc_listen,
        admin_listen=args.admin_listen,
        http_listen=args.http_listen,
        http_original=args.http_original,
        jwks_refresh_seconds=args.jwks_refresh,
        jwks_miss_interval_seconds=args.jwks_miss_interval,
        jwks_max_stale_seconds=args.jwks_max_stale,
        jwks_ca_file=args.jwks_ca_file,
        startup_deadline_seconds=args.startup_deadline,
        limits=Limits(**{f.name: getattr(args, f.name) for f in fields(Limits)}),
    )


def _config_paths(args: argparse.Namespace) -> list[str]:
    paths = args.config or _env_list("AUTHZ_CONFIG")
    if not paths:
        raise SystemExit("authz-server: give --config PATH (or set AUTHZ_CONFIG)")
    return list(paths)


def _print_problems(err: ConfigError) -> None:
    for problem in err.problems:
        print(f"error: {problem}", file=sys.stderr)


def run_serve(args: argparse.Namespace) -> int:
    configure_logging(args.log_level, args.log_format)
    paths = _config_paths(args)
    server = Server(settings=_settings(args))
    try:
        server.load(paths)
        server.start(watch=True)
    except ConfigError as err:
        _print_problems(err)
        return 2
    except OSError as err:
        print(f"authz-server: {err}", file=sys.stderr)
        return 1

    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    signal.signal(signal.SIGHUP, lambda *_: server.reload())
    while not stopping.wait(1.0):
        pass
    server.stop()
    return 0


def run_check(args: argparse.Namespace) -> int:
    paths = _config_paths(args)
    try:
        loaded = snapshot.load(paths, KeyRegistry(), Settings()).config
    except ConfigError as err:
        _print_problems(err)
        return 1
    count = len(loaded.request_authentications) + len(loaded.authorization_policies)
    print(f"ok: {count} resources in {len(loaded.files)} files")
    return 0


def run_explain(args: argparse.Namespace) -> int:
    configure_logging("WARNING", "text")
    registry = KeyRegistry()
    try:
        built = snapshot.load(_config_paths(args), registry, _settings(args))
        token = _explain_token(args)
    except ConfigError as err:
        _print_problems(err)
        return 1
    except OSError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    registry.fetch_missing()

    headers = {}
    for item in args.header:
        name, _, value = item.partition(":")
        headers[name.strip().lower()] = value.strip()
    if token:
        headers["authorization"] = f"Bearer {token}"
    context = dict(item.partition("=")[::2] for item in args.context)
    request = Request(
        method=args.method,
        host=args.host,
        raw_path=args.path,
        headers=headers,
        source_ip=args.source_ip,
        source_principal=args.source_principal,
        context=context,
    )
    report = explain(built, request)
    print(json.dumps(report, indent=2) if args.json else render(report))
    return 0 if report["decision"] == "allow" else 3


def _explain_token(args: argparse.Namespace) -> str | None:
    if args.token_file is not None:
        return str(args.token_file.read_text(encoding="utf-8").strip())
    return str(args.token) if args.token else None


def run_token(args: argparse.Namespace) -> int:
    if args.action == "keygen":
        private_path, jwks_path = tokens.write_key_pair(args.out, args.alg, args.kid)
        print(f"private key: {private_path}\njwks: {jwks_path}")
        return 0

    claims: dict[str, Any] = {"iss": args.iss, "sub": args.sub}
    if args.aud:
        claims["aud"] = args.aud[0] if len(args.aud) == 1 else args.aud
    for item in args.claim:
        name, _, value = item.partition("=")
        claims[name] = _claim_value(value)
    key = tokens.load_private_key(args.key)
    expires_in = None if args.no_exp else args.expires_in
    print(tokens.mint(key, args.kid, claims, expires_in=expires_in, now=time.time()))
    return 0


def _claim_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    runners = {
        "serve": run_serve,
        "check": run_check,
        "explain": run_explain,
        "token": run_token,
    }
    return runners[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
