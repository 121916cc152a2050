"""The decision log: one line per decision, every field, and no secret anywhere."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from checks import REQUIRE_PRINCIPAL, Authz, bearer, request_authentication
from operations_support import mint, rule

from authz_server import tokens
from authz_server.demo.keyserver import KeyServer
from authz_server.observe import JsonFormatter, TextFormatter


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """Every record of every authz_server logger at DEBUG, as JSON lines."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.setLevel(logging.DEBUG)
    logger = logging.getLogger("authz_server")
    logger.addHandler(handler)
    previous = logger.level
    logger.setLevel(logging.DEBUG)
    yield stream
    logger.removeHandler(handler)
    logger.setLevel(previous)


def decisions(stream: io.StringIO) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    return [line for line in lines if line["message"] == "decision"]


def test_each_decision_is_one_line_with_every_field(
    tmp_path: Path, idp: KeyServer, key_one: tokens.PrivateKey, log_lines: io.StringIO
) -> None:
    with Authz(tmp_path) as authz:
        authz.load(request_authentication(rule(idp.url)), REQUIRE_PRINCIPAL)
        allowed = authz.check("/items?page=2", headers=bearer(mint(key_one, "k1")))
        denied = authz.check("/admin", method="POST")

    allow, deny = decisions(log_lines)
    assert allow["level"] == "INFO" and allow["logger"] == "authz_server.observe"
    assert allow["decision"] == "allow" and allow["status"] == 200
    assert allow["reason"] == "allowed"
    assert allow["principal"] == "https://idp.example.com/user-1"
    assert (allow["policy"], allow["rule"]) == ("default/allow", 0)
    assert (allow["method"], allow["host"], allow["path"]) == (
        "GET",
        "api.example.com",
        "/items",
    )
    assert isinstance(allow["duration_ms"], float)
    assert allow["decision_id"] == allowed.metadata["decision_id"]

    assert (deny["decision"], deny["status"], deny["reason"]) == (
        "deny",
        403,
        "rbac_access_denied",
    )
    assert "principal" not in deny
    assert deny["decision_id"] == denied.deny_header("x-authz-decision-id")


def test_no_token_or_credential_reaches_any_log_line(
    tmp_path: Path, idp: KeyServer, key_one: tokens.PrivateKey, log_lines: io.StringIO
) -> None:
    good = mint(key_one, "k1", role="secret-role-value")
    expired = mint(key_one, "k1", exp=1)
    secrets = [good, expired, "Basic dXNlcjpwYXNz", "session=abc123secret"]
    with Authz(tmp_path) as authz:
        authz.load(request_authentication(rule(idp.url)), REQUIRE_PRINCIPAL)
        authz.check(headers=bearer(good))
        authz.check(headers=bearer(expired))
        authz.check(f"/x?access_token={good}")
        authz.check(headers={"authorization": secrets[2], "cookie": secrets[3]})
        authz.check(headers=bearer(good[:-4] + "AAAA"))

    text = log_lines.getvalue()
    assert len(decisions(log_lines)) == 5
    for secret in [
        *secrets,
        good.split(".")[1],
        good.split(".")[2],
        "secret-role-value",
    ]:
        assert secret not in text


def test_hostile_values_cannot_forge_log_lines(
    tmp_path: Path, log_lines: io.StringIO
) -> None:
    with Authz(tmp_path) as authz:
        authz.load(REQUIRE_PRINCIPAL)
        authz.check("/a", host='evil\n{"decision": "allow"}', method="GET\r\nX")

    lines = log_lines.getvalue().splitlines()
    assert len(decisions(log_lines)) == 1
    assert not any(line.startswith('{"decision"') for line in lines)


def test_text_format_escapes_values() -> None:
    record = logging.LogRecord(
        "authz_server.observe", logging.INFO, "", 0, "decision", (), None
    )
    record.host = "a\nb"

    line = TextFormatter("%(message)s").format(record)

    assert "\n" not in line and 'host="a\\nb"' in line
