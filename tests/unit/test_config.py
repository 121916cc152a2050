"""Config loading: every error names file, document, field and what is wrong."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from authz_server import config
from authz_server.errors import ConfigError

RA = """\
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: ra, namespace: foo}
spec:
  jwtRules:
  - issuer: https://idp.example.com
    jwksUri: https://idp.example.com/jwks.json
"""


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        config.load([write(tmp_path, text)])
    return [f"{p.document} {p.field}: {p.problem}" for p in caught.value.problems]


def test_load_reads_request_authentication(tmp_path: Path) -> None:
    loaded = config.load([write(tmp_path, RA)])

    (resource,) = loaded.request_authentications
    assert resource.origin.policy_id == "foo/ra"
    assert resource.jwt_rules[0].issuer == "https://idp.example.com"
    assert resource.jwt_rules[0].timeout_seconds == 5.0


def test_v1beta1_is_accepted(tmp_path: Path) -> None:
    text = RA.replace("security.istio.io/v1", "security.istio.io/v1beta1")

    assert len(config.load([write(tmp_path, text)]).request_authentications) == 1


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (("issuer:", "issuerr:"), "0 spec.jwtRules[0].issuerr: unknown field"),
        (("kind: RequestAuthentication", "kind: Gateway"), "0 kind: 'Gateway' is not"),
        (("security.istio.io/v1", "security.istio.io/v1alpha1"), "0 apiVersion:"),
        (("jwksUri: https://", "jwksUri: ftp://"), "must be an http://, https:// or"),
        (
            ("    jwksUri:", "    jwks: '{}'\n    jwksUri:"),
            "set at most one of jwksUri",
        ),
        (("metadata: {name: ra, namespace: foo}", "metadata: {}"), "metadata.name: is"),
        (
            ("issuer: https://idp.example.com\n    jwksUri:", "jwks:"),
            "is required unless",
        ),
    ],
    ids=[
        "unknown-field",
        "unknown-kind",
        "unknown-version",
        "jwks-uri-scheme",
        "jwks-and-uri",
        "missing-name",
        "missing-issuer",
    ],
)
def test_invalid_request_authentication_is_rejected(
    tmp_path: Path, edit: tuple[str, str], expected: str
) -> None:
    text = RA.replace(*edit)
    assert text != RA

    found = problems(tmp_path, text)

    assert any(expected in line for line in found), found


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("outputClaimToHeaders: [{header: 'x y', claim: sub}]", "letters, digits"),
        (
            "outputClaimToHeaders: [{header: x-a, claim: a}, {header: x-a, claim: b}]",
            "listed twice",
        ),
        ("timeout: 5", "is not a duration"),
        ("timeout: 10x", "is not a duration"),
        ("forwardOriginalToken: 'yes'", "must be true or false"),
        ("fromHeaders: [{prefix: 'Bearer '}]", "fromHeaders[0].name: is required"),
        ("audiences: foo", "audiences: must be a list"),
        ("jwks: 'not json'", "is not valid JSON"),
    ],
)
def test_invalid_jwt_rule_fields_are_rejected(
    tmp_path: Path, rule: str, expected: str
) -> None:
    text = RA + f"    {rule}\n"

    found = problems(tmp_path, text)

    assert any(expected in line for line in found), found


def test_duration_units_are_read(tmp_path: Path) -> None:
    loaded = config.load([write(tmp_path, RA + "    timeout: 1m30s\n")])

    assert loaded.request_authentications[0].jwt_rules[0].timeout_seconds == 90


def test_every_problem_is_reported_with_its_document(tmp_path: Path) -> None:
    text = (
        RA.replace("issuer:", "issuerr:") + "---\n" + RA.replace("kind: Req", "kind: X")
    )

    found = problems(tmp_path, text)

    assert any(line.startswith("0 spec.jwtRules[0].issuerr") for line in found)
    assert any(line.startswith("1 kind") for line in found)


def test_error_message_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, RA.replace("issuer:", "issuerr:"))

    with pytest.raises(ConfigError) as caught:
        config.load([path])

    assert str(caught.value).startswith(f"{path} document 0 field spec.jwtRules[0]")


@pytest.mark.parametrize(
    "text",
    ["a: [1, 2", "a: 1\na: 2\n", "\tkey: value\n"],
    ids=["unclosed", "duplicate-key", "tab"],
)
def test_broken_yaml_is_rejected_with_position(tmp_path: Path, text: str) -> None:
    found = problems(tmp_path, text)

    assert any("invalid YAML" in line for line in found), found


def test_missing_path_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file or directory"):
        config.load([str(tmp_path / "absent.yaml")])


def test_empty_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no YAML files found"):
        config.load([str(tmp_path)])


def test_configmap_directory_layout_is_read(tmp_path: Path) -> None:
    data = tmp_path / "..2026_12_03_10_00_00.000000001"
    data.mkdir()
    (data / "policy.yaml").write_text(RA)
    (data / "notes.txt").write_text("ignored")
    os.symlink(data.name, tmp_path / "..data")
    os.symlink("..data/policy.yaml", tmp_path / "policy.yaml")

    loaded = config.load([str(tmp_path)])

    assert len(loaded.request_authentications) == 1
    assert loaded.files == (str(tmp_path / "policy.yaml"),)


POLICY = """\
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ap, namespace: foo}
spec:
"""


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            "  action: CUSTOM\n  provider: {name: x}\n  rules: [{}]",
            "authz-server is that",
        ),
        ("  action: MAYBE", "'MAYBE' is not one of"),
        ("  action: DENY", "a DENY policy needs at least one rule"),
        ("  rules: [{from: []}]", "from: must not be an empty list"),
        ("  rules: [{to: [{operation: {}}]}]", "must set at least one field"),
        ("  rules: [{to: [{operation: {paths: []}}]}]", "paths: must not be empty"),
        ("  rules: [{when: [{key: source.ip}]}]", "needs values or notValues"),
        ("  provider: {name: x}\n  rules: [{}]", "only allowed with action CUSTOM"),
        ("  targetRefs: [{kind: Gateway, name: gw}]", "targetRef(s) attach"),
        ("  rules: [{to: [{operation: {verbs: [GET]}}]}]", "verbs: unknown field"),
    ],
)
def test_invalid_policies_are_rejected(
    tmp_path: Path, spec: str, expected: str
) -> None:
    found = problems(tmp_path, POLICY + spec + "\n")

    assert any(expected in line for line in found), found


def test_dry_run_annotation_is_read(tmp_path: Path) -> None:
    text = POLICY.replace(
        "namespace: foo}", "namespace: foo, annotations: {istio.io/dry-run: 'true'}}"
    )

    loaded = config.load([write(tmp_path, text + "  rules: [{}]\n")])

    assert loaded.authorization_policies[0].dry_run is True


def test_invalid_dry_run_value_is_rejected(tmp_path: Path) -> None:
    text = POLICY.replace(
        "namespace: foo}", "namespace: foo, annotations: {istio.io/dry-run: 'maybe'}}"
    )

    found = problems(tmp_path, text + "  rules: [{}]\n")

    assert any("is not a boolean" in line for line in found), found
