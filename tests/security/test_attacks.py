"""Attack catalog sections A-C (tokens, claims, token locations) as real Check calls.

One parametrized test per catalog entry, named after the attack. Outcomes use the
catalog's words: DENY-401 (:func:`assert_unauthenticated`), DENY-403, ALLOW. Where
the catalog and the behavioural spec disagree, the test pins the spec and says so.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import logging
import time
from typing import Any

import pytest
from catalog import ISS_A, ISS_B, OCT_SECRET, Keys, jwks_a, t0, t0_claims
from checks import (
    Authz,
    Json,
    Result,
    assert_anonymous,
    assert_forbidden,
    assert_unauthenticated,
    b64,
    bearer,
    forge,
    hmac_token,
    policy,
    request_authentication,
    segment,
)
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from jwt.utils import der_to_raw_signature

from authz_server import tokens
from authz_server.demo.keyserver import KeyServer
from authz_server.observe import JsonFormatter

ADMIN = t0_claims(sub="admin")


@pytest.fixture(autouse=True)
def baseline(authz: Authz, issuers: Json) -> None:
    """Every test starts from issuers A and B and no policy."""
    authz.load(issuers)


def signed(keys: Keys, header: Json, payload: Json, kid: str = "kA1") -> str:
    return forge(header, payload, keys.a[kid])


def certificate(key: Any, name: str) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )


# A. Signature and algorithm attacks ------------------------------------------------


@pytest.mark.parametrize("signature", ["empty", "garbage"])
@pytest.mark.parametrize(
    "alg", ["none", "None", "NONE", "nOnE", "", None, 0, True, "<omitted>"]
)
def test_alg_none(authz: Authz, alg: Any, signature: str) -> None:
    header: Json = {"typ": "JWT", "kid": "kA1"}
    if alg != "<omitted>":
        header["alg"] = alg
    token = forge(
        header, ADMIN, signature=b"garbage" if signature == "garbage" else b""
    )
    assert_unauthenticated(authz.check("/api", headers=bearer(token)), token)


@pytest.mark.parametrize("claim", ["iss", "sub", "aud", "exp", "role", "iss-b-kid"])
def test_claims_used_before_verification(
    authz: Authz, keys: Keys, claim: str, caplog: pytest.LogCaptureFixture
) -> None:
    original = t0(keys, role="user")
    header, _, sig = original.split(".")
    marker = f"MARKER-{claim}-7f3a"
    claims = t0_claims(role="user")
    if claim == "iss-b-kid":
        claims["iss"] = ISS_B
        header = segment({"alg": "RS256", "typ": "JWT", "kid": "kB1"})
    else:
        claims[claim] = marker
    token = f"{header}.{segment(claims)}.{sig}"
    caplog.set_level(logging.INFO)
    result = authz.check("/api", headers=bearer(token))
    if claim == "aud":
        # Spec RA-15: the audience is checked before the signature (Envoy's order),
        # so a tampered aud is a 403, not the catalog's 401.
        assert_forbidden(result)
    else:
        assert_unauthenticated(result, token)
    assert marker not in result.text()
    logged = "\n".join(JsonFormatter().format(record) for record in caplog.records)
    assert marker not in logged and sig not in logged


@pytest.mark.parametrize(
    "variant",
    [
        "removed",
        "cut-1",
        "cut-2",
        "cut-3",
        "cut-4",
        "AAAA",
        "other-token",
        "other-payload",
    ],
)
def test_stripped_truncated_or_null_signature(
    authz: Authz, keys: Keys, variant: str
) -> None:
    head, payload, sig = t0(keys, sub="admin").split(".")
    other = t0(keys, sub="bob").split(".")[2]
    replaced = {
        "removed": "",
        "AAAA": "AAAA",
        "other-token": other,
        "other-payload": t0(keys, kid="kA1", jti="x").split(".")[2],
    }
    if variant.startswith("cut-"):
        new_sig = sig[: -int(variant[4:])]
    else:
        new_sig = replaced[variant]
    token = f"{head}.{payload}.{new_sig}"
    assert_unauthenticated(authz.check("/api", headers=bearer(token)), token)


def _rsa_or_ec_secrets(key: Any, kid: str) -> dict[str, bytes]:
    public = key.public_key()
    enc, fmt = serialization.Encoding, serialization.PublicFormat
    pem = public.public_bytes(enc.PEM, fmt.SubjectPublicKeyInfo)
    lines = pem.decode().strip().split("\n")
    jwk = tokens.public_jwk(key, kid) if isinstance(key, rsa.RSAPrivateKey) else None
    if jwk is None:
        from jwt.algorithms import ECAlgorithm

        jwk = {**ECAlgorithm.to_jwk(public, as_dict=True), "kid": kid, "alg": "ES256"}
    cert = certificate(key, kid)
    forms = {
        "spki-pem": pem,
        "pem-no-newline": pem.rstrip(b"\n"),
        "pem-crlf": pem.replace(b"\n", b"\r\n"),
        "pem-spaces-tabs": "\n".join(
            [f"  {lines[0]}\t", *lines[1:-1], f"\t{lines[-1]} ", ""]
        ).encode(),
        "pem-single-line": "".join(lines).encode(),
        "der": public.public_bytes(enc.DER, fmt.SubjectPublicKeyInfo),
        "jwk-compact": json.dumps(jwk, separators=(",", ":")).encode(),
        "jwk-pretty": json.dumps(jwk, indent=2).encode(),
        "jwks-document": json.dumps({"keys": [jwk]}).encode(),
        "openssh": public.public_bytes(enc.OpenSSH, fmt.OpenSSH),
        "cert-pem": cert.public_bytes(enc.PEM),
        "cert-der": cert.public_bytes(enc.DER),
    }
    if isinstance(key, rsa.RSAPrivateKey):
        forms["pkcs1-pem"] = public.public_bytes(enc.PEM, fmt.PKCS1)
        n = public.public_numbers().n
        forms["raw-modulus"] = n.to_bytes((n.bit_length() + 7) // 8, "big")
    else:
        forms["raw-point"] = public.public_bytes(enc.X962, fmt.UncompressedPoint)
    return forms


SECRET_FORMS = [
    "spki-pem",
    "pem-no-newline",
    "pem-crlf",
    "pem-spaces-tabs",
    "pem-single-line",
    "der",
    "jwk-compact",
    "jwk-pretty",
    "jwks-document",
    "openssh",
    "cert-pem",
    "cert-der",
]
CONFUSION = [("kA1", form) for form in [*SECRET_FORMS, "pkcs1-pem", "raw-modulus"]]
CONFUSION += [("kA2", form) for form in [*SECRET_FORMS, "raw-point"]]


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
@pytest.mark.parametrize(("kid", "form"), CONFUSION)
def test_asymmetric_to_hmac_key_confusion(
    authz: Authz, keys: Keys, kid: str, form: str, alg: str
) -> None:
    secret = _rsa_or_ec_secrets(keys.a[kid], kid)[form]
    if form == "jwks-document":
        secret = json.dumps(jwks_a(keys)).encode()
    token = hmac_token({"alg": alg, "typ": "JWT", "kid": kid}, ADMIN, secret)
    assert_unauthenticated(authz.check("/api", headers=bearer(token)), token)


WEAK_SECRETS = [
    "",
    "secret",
    "null",
    "undefined",
    "password",
    "123456",
    "changeme",
    "your-256-bit-secret",
    "jwt",
    "key",
    "admin",
    "test",
]


@pytest.mark.parametrize("issuer", ["jwks-issuer", "inline-hs-issuer"])
@pytest.mark.parametrize("secret", WEAK_SECRETS)
def test_blank_empty_or_weak_hmac_secret(
    authz: Authz, issuers: Json, secret: str, issuer: str
) -> None:
    inline = {"keys": [{"kty": "oct", "kid": "hs1", "k": b64(OCT_SECRET)}]}
    hs_issuer = "https://hs.test"
    authz.load(
        issuers,
        request_authentication(
            {"issuer": hs_issuer, "jwks": json.dumps(inline)}, name="hs"
        ),
    )
    claims = ADMIN if issuer == "jwks-issuer" else {**ADMIN, "iss": hs_issuer}
    for kid in ("oct1", "hs1", None):
        header = {"alg": "HS256", "typ": "JWT", **({"kid": kid} if kid else {})}
        token = hmac_token(header, claims, secret.encode())
        assert_unauthenticated(authz.check("/api", headers=bearer(token)), token)
    # Control: the configured strong secret does verify on the HS issuer.
    good = hmac_token(
        {"alg": "HS256", "kid": "hs1"}, {**ADMIN, "iss": hs_issuer}, OCT_SECRET
    )
    assert authz.check("/api", headers=bearer(good)).principal == f"{hs_issuer}/admin"


@pytest.mark.parametrize("kid", ["kA1", "unknown", None])
@pytest.mark.parametrize("attacker", ["rsa", "ec"])
def test_jwk_header_injection(
    authz: Authz, keys: Keys, attacker: str, kid: str | None
) -> None:
    key: Any = keys.attacker_rsa if attacker == "rsa" else keys.attacker_ec
    alg = "RS256" if attacker == "rsa" else "ES256"
    if attacker == "rsa":
        jwk = tokens.public_jwk(keys.attacker_rsa, kid or "x")
    else:
        from jwt.algorithms import ECAlgorithm

        jwk = ECAlgorithm.to_jwk(keys.attacker_ec.public_key(), as_dict=True)
    header: Json = {
        "alg": alg,
        "typ": "JWT",
        "jwk": jwk,
        **({"kid": kid} if kid else {}),
    }
    token = forge(header, ADMIN, key)
    assert_unauthenticated(authz.check("/api", headers=bearer(token)), token)


@pytest.fixture(scope="module")
def attacker_listener(keys: Keys) -> Any:
    """An attacker JWKS (it would verify the forged tokens) and a redirector to it."""
    jwks = {"keys": [tokens.public_jwk(keys.attacker_rsa, "evil")]}
    with KeyServer(jwks=jwks) as evil, KeyServer() as redirector:
        redirector.set_status(302)
        redirector.set_headers({"Location": evil.url})
        yield evil, redirector


@pytest.mark.parametrize("kid", ["evil", None])
@pytest.mark.parametrize("target", ["listener", "redirect", "file", "data"])
@pytest.mark.parametrize("member", ["jku", "x5u"])
def test_jku_x5u_header_urls(
    authz: Authz,
    keys: Keys,
    attacker_listener: tuple[KeyServer, KeyServer],
    member: str,
    target: str,
    kid: str | None,
) -> None:
    evil, redirector = attacker_listener
    url = {
        "listener": evil.url,
        "redirect": redirector.url,
        "file": "file:///etc/passwd",
        "data": "data:application/json;base64,e30=",
    }[target]
    header: Json = {"alg": "RS256", member: url, **({"kid": kid} if kid else {})}
    token = forge(header, ADMIN, keys.attacker_rsa)
    assert_unauthenticated(authz.check("/api", headers=bearer(token)), token)
    assert (evil.hits, redirector.hits) == (0, 0)  # I4: no outbound traffic


@pytest.mark.parametrize("kid", ["kA1", None])
@pytest.mark.parametrize("member", ["x5c", "x5t", "x5t#S256"])
def test_embedded_certificate_chain_and_thumbprints(
    authz: Authz, keys: Keys, member: str, kid: str | None
) -> None:
    real = certificate(keys.a["kA1"], "idp-a").public_bytes(serialization.Encoding.DER)
    fake = certificate(keys.attacker_rsa, "idp-a").public_bytes(
        serialization.Encoding.DER
    )
    value: Any = {
        "x5c": [base64.b64encode(fake).decode()],
        "x5t": b64(hashlib.sha1(real).digest()),  # noqa: S324 - a thumbprint
        "x5t#S256": b64(hashlib.sha256(real).digest()),
    }[member]
    header: Json = {"alg": "RS256", member: value, **({"kid": kid} if kid else {})}
    token = forge(header, ADMIN, keys.attacker_rsa)
    assert_unauthenticated(authz.check("/api", headers=bearer(token)), token)


KID_INJECTIONS: list[tuple[str, Any]] = [
    ("blank", ""),
    ("dev-null-traversal", "../../../../../../dev/null"),
    ("dev-null", "/dev/null"),
    ("invalid-path", "/invalid_path"),
    ("sleep", "|sleep 10"),
    ("curl", "$(curl http://127.0.0.1:1/)"),
    ("sql", "x' UNION SELECT '1';--"),
    ("10kB", "k" * 10_240),
    ("nul", "kA1\x00"),
    ("crlf", "kA1\r\nX-Injected: 1"),
    ("percent-00", "kA1%00"),
    ("homoglyph", "k\u0410" + "1"),
    ("case", "KA1"),
    ("leading-space", " kA1"),
    ("trailing-space", "kA1 "),
    ("issuer-b-kid", "kB1"),
    ("int", 123),
    ("null", None),
    ("list", []),
    ("object", {}),
    ("bool", True),
]


@pytest.mark.parametrize(
    ("name", "kid"), KID_INJECTIONS, ids=[n for n, _ in KID_INJECTIONS]
)
def test_kid_injection(authz: Authz, keys: Keys, name: str, kid: Any) -> None:
    header = {"alg": "RS256", "typ": "JWT", "kid": kid}
    if name in ("dev-null-traversal", "dev-null"):
        token = hmac_token({**header, "alg": "HS256"}, ADMIN, b"")
    elif name == "sql":
        token = hmac_token({**header, "alg": "HS256"}, ADMIN, b"1")
    elif name == "issuer-b-kid":
        token = forge(header, ADMIN, keys.b["kB1"])
    else:
        token = forge(header, ADMIN, keys.attacker_rsa)
    started = time.monotonic()
    result = authz.check("/api", headers=bearer(token))
    assert time.monotonic() - started < 1.0
    assert_unauthenticated(result, token)
    if not isinstance(kid, str) and kid is not None:
        assert result.reason == "jwt_malformed"


def _es256_with_p384(keys: Keys) -> str:
    key = keys.a["kA3"]
    signing_input = f"{segment({'alg': 'ES256', 'kid': 'kA3'})}.{segment(ADMIN)}"
    der = key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
    return f"{signing_input}.{b64(der_to_raw_signature(der, key.curve))}"


@pytest.mark.parametrize(
    "case",
    [
        "es256-with-rsa-kid",
        "ps256-vs-jwk-rs256",
        "es256-with-p384-key",
        "eddsa-with-rsa-kid",
        "use-enc-key",
        "oct-key-in-remote-jwks",
    ],
)
def test_key_type_algorithm_mismatch(authz: Authz, keys: Keys, case: str) -> None:
    if case == "es256-with-rsa-kid":
        token = forge({"alg": "ES256", "kid": "kA1"}, ADMIN, keys.a["kA2"])
    elif case == "ps256-vs-jwk-rs256":
        token = forge({"alg": "PS256", "kid": "kA1"}, ADMIN, keys.a["kA1"])
    elif case == "es256-with-p384-key":
        token = _es256_with_p384(keys)
    elif case == "eddsa-with-rsa-kid":
        ed = tokens.generate_key("EdDSA")
        token = forge({"alg": "EdDSA", "kid": "kA1"}, ADMIN, ed)
    elif case == "use-enc-key":
        token = forge({"alg": "RS256", "kid": "enc1"}, ADMIN, keys.a["enc1"])
    else:
        token = hmac_token({"alg": "HS256", "kid": "oct1"}, ADMIN, OCT_SECRET)
    assert_unauthenticated(authz.check("/api", headers=bearer(token)), token)


P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


@pytest.mark.parametrize(
    "variant",
    ["valid", "zeros", "r-s-order", "r0-s1", "63-bytes", "65-bytes", "der-encoded"],
)
def test_ecdsa_psychic_and_malformed_signatures(
    authz: Authz, keys: Keys, variant: str
) -> None:
    key = keys.a["kA2"]
    signing_input = f"{segment({'alg': 'ES256', 'kid': 'kA2'})}.{segment(ADMIN)}"
    der = key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
    raw = der_to_raw_signature(der, key.curve)
    order = P256_ORDER.to_bytes(32, "big")
    signature = {
        "valid": raw,
        "zeros": bytes(64),
        "r-s-order": order + order,
        "r0-s1": bytes(32) + (1).to_bytes(32, "big"),
        "63-bytes": raw[:63],
        "65-bytes": raw + b"\x00",
        "der-encoded": der,
    }[variant]
    token = f"{signing_input}.{b64(signature)}"
    result = authz.check("/api", headers=bearer(token))
    if variant == "valid":
        assert result.principal == f"{ISS_A}/admin"
    else:
        assert_unauthenticated(result, token)


@pytest.mark.parametrize(
    "variant",
    [
        "rsa-1024-key",
        "one-byte-short",
        "one-byte-long",
        "leading-zero",
        "ps256-header-pkcs1-signature",
        "rs256-header-pss-signature",
        "control-rs256",
        "control-ps256",
    ],
)
def test_rsa_key_and_signature_edge_cases(
    authz: Authz, keys: Keys, variant: str
) -> None:
    if variant == "rsa-1024-key":
        token = forge({"alg": "RS256", "kid": "weak1024"}, ADMIN, keys.a["weak1024"])
        assert_unauthenticated(authz.check("/api", headers=bearer(token)), token)
        return
    alg = (
        "PS256"
        if variant in ("ps256-header-pkcs1-signature", "control-ps256")
        else "RS256"
    )
    signing_input = f"{segment({'alg': alg, 'kid': 'kA4'})}.{segment(ADMIN)}".encode()
    pss = padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.DIGEST_LENGTH)
    scheme: Any = (
        pss
        if variant in ("rs256-header-pss-signature", "control-ps256")
        else padding.PKCS1v15()
    )
    signature = keys.a["kA4"].sign(signing_input, scheme, hashes.SHA256())
    signature = {
        "one-byte-short": signature[:-1],
        "one-byte-long": signature + b"\x00",
        "leading-zero": b"\x00" + signature,
    }.get(variant, signature)
    token = f"{signing_input.decode()}.{b64(signature)}"
    result = authz.check("/api", headers=bearer(token))
    if variant.startswith("control-"):
        assert result.principal == f"{ISS_A}/admin"
    else:
        assert_unauthenticated(result, token)


@pytest.mark.parametrize(
    "crit", [["x-foo"], "x-foo", [], ["b64"]], ids=["list", "string", "empty", "b64"]
)
def test_unknown_critical_header_extensions(
    authz: Authz, keys: Keys, crit: Any
) -> None:
    header = {"alg": "RS256", "kid": "kA1", "crit": crit, "x-foo": "bar"}
    token = signed(keys, header, t0_claims())
    result = authz.check("/api", headers=bearer(token))
    assert_unauthenticated(result, token)
    assert result.reason == "jwt_header_not_supported"


@pytest.mark.parametrize("payload", ["empty-segment", "clear-json"])
def test_unencoded_detached_payload_b64_false(
    authz: Authz, keys: Keys, payload: str
) -> None:
    header = segment({"alg": "RS256", "kid": "kA1", "b64": False, "crit": ["b64"]})
    middle = "" if payload == "empty-segment" else json.dumps(t0_claims())
    signing_input = f"{header}.{middle}".encode()
    signature = keys.a["kA1"].sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    token = f"{header}.{middle}.{b64(signature)}"
    assert_unauthenticated(authz.check("/api", headers=bearer(token)), token)


@pytest.mark.parametrize(
    "shape",
    ["flattened-json", "general-json", "compact-plus-json", "jwe", "nested-jwt"],
)
def test_non_compact_jwe_and_nested_tokens(
    authz: Authz, keys: Keys, shape: str
) -> None:
    good = t0(keys)
    head, payload, sig = good.split(".")
    if shape == "flattened-json":
        token = json.dumps({"payload": payload, "protected": head, "signature": sig})
    elif shape == "general-json":
        token = json.dumps(
            {"payload": payload, "signatures": [{"protected": head, "signature": sig}]}
        )
    elif shape == "compact-plus-json":
        token = good + json.dumps({"payload": segment(ADMIN)})
    elif shape == "jwe":
        jwe_header = segment({"alg": "RSA-OAEP", "enc": "A256GCM", "zip": "DEF"})
        token = ".".join(
            [jwe_header, b64(b"k" * 256), b64(b"iv"), b64(b"x" * 4096), b64(b"t")]
        )
    else:
        header = {"alg": "RS256", "kid": "kA1", "cty": "JWT"}
        token = forge(header, t0(keys, sub="admin").encode(), keys.a["kA1"])
    result = authz.check("/api", headers={"authorization": f"Bearer {token}"})
    assert_unauthenticated(result)
    assert result.principal is None


# B. Claim validation ---------------------------------------------------------------


def _raw_claims(exp_json: str) -> bytes:
    return f'{{"iss":"{ISS_A}","sub":"alice","aud":"api","exp":{exp_json}}}'.encode()


@pytest.mark.parametrize(
    ("case", "allowed"),
    [
        ("exp-past-beyond-leeway", False),
        ("nbf-future-beyond-leeway", False),
        # Spec RA-15 / bug report 7: iat is never compared with the clock and a
        # missing exp never expires; the catalog asks for 401 (see the report).
        ("iat-future-beyond-leeway", True),
        ("no-exp", True),
        ("exp-ten-years", True),
        ("exp-numeric-string", False),
        ("exp-true", False),
        ("exp-1e999", False),
        ("exp-infinity", False),
        ("exp-nan", False),
        ("exp-5000-digits", False),
        ("exp-float", True),
    ],
)
def test_time_claims(authz: Authz, keys: Keys, case: str, allowed: bool) -> None:
    now = int(time.time())
    structured: dict[str, Json] = {
        "exp-past-beyond-leeway": {"exp": now - 61},
        "nbf-future-beyond-leeway": {"nbf": now + 62},
        "iat-future-beyond-leeway": {"iat": now + 62},
        "no-exp": {"exp": None},
        "exp-ten-years": {"exp": now + 10 * 365 * 86400},
        "exp-numeric-string": {"exp": "9999999999"},
        "exp-true": {"exp": True},
        "exp-float": {"exp": now + 300.5},
    }
    raw = {
        "exp-1e999": "1e999",
        "exp-infinity": "Infinity",
        "exp-nan": "NaN",
        "exp-5000-digits": "9" * 5000,
    }
    header = {"alg": "RS256", "typ": "JWT", "kid": "kA1"}
    if case in raw:
        token = forge(header, _raw_claims(raw[case]), keys.a["kA1"])
    else:
        token = signed(keys, header, t0_claims(**structured[case]))
    result = authz.check("/api", headers=bearer(token))
    if allowed:
        assert result.principal == f"{ISS_A}/alice"
    else:
        assert_unauthenticated(result, token)


@pytest.mark.parametrize(
    ("case", "allowed"),
    [
        ("b-key-claims-a", False),
        ("a-key-claims-b", False),
        ("iss-prefix", False),
        ("iss-trailing-slash", False),
        ("iss-suffix", False),
        ("iss-list", False),
        ("shared-kid-b-key-claims-a", False),
        ("control-shared-kid-a", True),
        ("control-shared-kid-b", True),
    ],
)
def test_issuer_checks_and_key_pooling(
    authz: Authz, keys: Keys, case: str, allowed: bool
) -> None:
    def token(key: Any, kid: str, iss: Any) -> str:
        return forge({"alg": "RS256", "kid": kid}, t0_claims(iss=iss), key)

    made = {
        "b-key-claims-a": lambda: token(keys.b["kB1"], "kB1", ISS_A),
        "a-key-claims-b": lambda: token(keys.a["kA1"], "kA1", ISS_B),
        "iss-prefix": lambda: token(keys.a["kA1"], "kA1", "https://idp-a.tes"),
        "iss-trailing-slash": lambda: token(keys.a["kA1"], "kA1", ISS_A + "/"),
        "iss-suffix": lambda: token(keys.a["kA1"], "kA1", ISS_A + ".evil"),
        "iss-list": lambda: token(keys.a["kA1"], "kA1", [ISS_A]),
        "shared-kid-b-key-claims-a": lambda: token(keys.b["shared"], "shared", ISS_A),
        "control-shared-kid-a": lambda: token(keys.a["shared"], "shared", ISS_A),
        "control-shared-kid-b": lambda: token(keys.b["shared"], "shared", ISS_B),
    }[case]()
    result = authz.check("/api", headers=bearer(made))
    if allowed:
        assert result.allowed and result.principal is not None
    else:
        assert_unauthenticated(result, made)


@pytest.mark.parametrize(
    ("aud", "status"),
    [
        # Spec RA-6 / ER-1: an audience mismatch is 403 (the catalog says 401).
        (None, 403),
        ("other", 403),
        ([], 403),
        (["other", "api"], 200),
        (5, 401),
        ("client-id-of-a-spa", 403),
    ],
    ids=["absent", "other-api", "empty-list", "list-with-api", "number", "id-token"],
)
def test_audience(authz: Authz, keys: Keys, aud: Any, status: int) -> None:
    token = t0(keys, aud=aud)
    result = authz.check("/api", headers=bearer(token))
    assert result.status == status, result
    if status == 403:
        assert result.reason == "jwt_audience_not_allowed"


def test_audience_not_configured_means_not_checked(authz: Authz, keys: Keys) -> None:
    """Spec RA-6 (the catalog wants the opposite): no audiences, no audience check."""
    authz.load(request_authentication({"issuer": ISS_A, "jwksUri": _url_of(authz)}))
    token = t0(keys, aud="some-other-api")
    assert authz.check("/api", headers=bearer(token)).principal == f"{ISS_A}/alice"


def _url_of(authz: Authz) -> str:
    snapshot = authz.server.snapshot
    assert snapshot is not None
    return next(
        p.rule.jwks_uri for _, p in snapshot.providers if p.rule.issuer == ISS_A
    )


@pytest.mark.parametrize("typ", ["JWT", "at+jwt", "id_token+jwt", None])
def test_cross_jwt_confusion_typ(authz: Authz, keys: Keys, typ: str | None) -> None:
    """No typ or token-use check is configurable: typ is ignored (pinned)."""
    header: Json = {"alg": "RS256", "kid": "kA1", **({"typ": typ} if typ else {})}
    token = signed(keys, header, t0_claims())
    assert authz.check("/api", headers=bearer(token)).principal == f"{ISS_A}/alice"


CLAIM_TABLE: list[tuple[str, Json, str, str, bool]] = [
    ("groups-string", {"groups": "admin"}, "ALLOW", "groups=admin", True),
    ("groups-list", {"groups": ["user", "admin"]}, "ALLOW", "groups=admin", True),
    ("groups-other", {"groups": ["user"]}, "ALLOW", "groups=admin", False),
    ("groups-comma", {"groups": "user,admin"}, "ALLOW", "groups=admin", False),
    ("groups-object", {"groups": {"admin": True}}, "ALLOW", "groups=admin", False),
    ("groups-true", {"groups": True}, "ALLOW", "groups=admin", False),
    ("groups-1", {"groups": 1}, "ALLOW", "groups=admin", False),
    ("scope-split", {"scope": "read admin"}, "ALLOW", "scope=admin", True),
    ("scope-double-space", {"scope": "read  admin"}, "ALLOW", "scope=admin", True),
    ("scope-tab", {"scope": "read\tadmin"}, "ALLOW", "scope=admin", False),
    ("deny-scope-element", {"scope": "read write"}, "DENY", "scope=write", False),
    ("bool-vs-string-true", {"admin": True}, "ALLOW", "admin=true", False),
    ("bool-vs-string-True", {"admin": True}, "ALLOW", "admin=True", False),
    ("nested", {"realm": {"roles": ["admin"]}}, "ALLOW", "realm.roles=admin", True),
]


@pytest.mark.parametrize(
    ("claims", "action", "condition", "allowed"),
    [row[1:] for row in CLAIM_TABLE],
    ids=[row[0] for row in CLAIM_TABLE],
)
def test_claim_typing_and_shape(
    authz: Authz,
    issuers: Json,
    keys: Keys,
    claims: Json,
    action: str,
    condition: str,
    allowed: bool,
) -> None:
    path, value = condition.split("=")
    key = "request.auth.claims" + "".join(f"[{part}]" for part in path.split("."))
    authz.load(issuers, policy(action, {"when": [{"key": key, "values": [value]}]}))
    token = t0(keys, **claims)
    result = authz.check("/api", headers=bearer(token))
    assert result.allowed is allowed, result
    if not allowed:
        assert_forbidden(result)


@pytest.mark.parametrize(
    ("case", "status"),
    [
        ("sub-with-slash", 403),
        ("empty-sub", 403),
        ("numeric-sub", 401),
        ("allow-not-principals-no-token", 200),
        ("allow-claim-not-values-no-token", 200),
        ("deny-claim-not-values-absent-claim", 403),
    ],
)
def test_request_principals_and_negative_matches(
    authz: Authz, issuers: Json, keys: Keys, case: str, status: int
) -> None:
    rule: Json
    headers: dict[str, str] = {}
    if case in ("sub-with-slash", "empty-sub", "numeric-sub"):
        # Istio splits the value at its last "/": iss "https://idp-a.test/team",
        # sub "x" - which the token (iss A, sub "team/x") does not have.
        value = {"sub-with-slash": f"{ISS_A}/team/x", "empty-sub": "*"}.get(case, "*")
        rule = {"from": [{"source": {"requestPrincipals": [value]}}]}
        action = "ALLOW"
        sub: Any = {"sub-with-slash": "team/x", "empty-sub": "", "numeric-sub": 42}[
            case
        ]
        headers = bearer(t0(keys, sub=sub))
    elif case == "allow-not-principals-no-token":
        rule, action = {"from": [{"source": {"notRequestPrincipals": ["*"]}}]}, "ALLOW"
    elif case == "allow-claim-not-values-no-token":
        condition = {"key": "request.auth.claims[role]", "notValues": ["banned"]}
        rule, action = {"when": [condition]}, "ALLOW"
    else:
        condition = {"key": "request.auth.claims[role]", "notValues": ["admin"]}
        rule, action = {"when": [condition]}, "DENY"
        headers = bearer(t0(keys))
    authz.load(issuers, policy(action, rule))
    result = authz.check("/api", headers=headers)
    assert result.status == status, result


# C. Where the token comes from ---------------------------------------------------


@pytest.mark.parametrize(
    ("case", "outcome"),
    [
        ("two-headers-forged-last", "ambiguous"),
        ("two-headers-forged-first", "ambiguous"),
        ("two-header-lines", "ambiguous"),
        ("one-header-two-bearers", "ambiguous"),
        ("header-query-cookie", "ambiguous"),
        ("lowercase-bearer", "ambiguous"),
        ("two-spaces", "identity"),
        ("tab", "ambiguous"),
        ("bearer-alone", "missing"),
        ("basic", "missing"),
        ("only-in-payload-header", "missing"),
        ("same-token-header-and-query", "identity"),
    ],
)
def test_multiple_or_ambiguous_tokens(
    authz: Authz, issuers: Json, idp_a: KeyServer, keys: Keys, case: str, outcome: str
) -> None:
    good, forged = (
        t0(keys),
        forge({"alg": "RS256", "kid": "kA1"}, ADMIN, keys.attacker_rsa),
    )
    path = "/api"
    request: Json = {}
    headers = {
        "two-headers-forged-last": {"authorization": f"Bearer {good},Bearer {forged}"},
        "two-headers-forged-first": {"authorization": f"Bearer {forged},Bearer {good}"},
        "one-header-two-bearers": {"authorization": f"Bearer {good}, Bearer {forged}"},
        "lowercase-bearer": {"authorization": f"bearer {forged}"},
        "two-spaces": {"authorization": f"Bearer  {good}"},
        "tab": {"authorization": f"Bearer\t{forged}"},
        "bearer-alone": {"authorization": "Bearer"},
        "basic": {"authorization": "Basic YWRtaW46YWRtaW4="},
        "only-in-payload-header": {"x-jwt-payload": good.split(".")[1]},
        "same-token-header-and-query": bearer(good),
    }.get(case, {})
    if case == "two-header-lines":
        request["header_lines"] = [("authorization", f"Bearer {good}")]
        request["header_lines"].append(("authorization", f"Bearer {forged}"))
    if case == "header-query-cookie":
        rule = {
            "issuer": ISS_A,
            "jwksUri": idp_a.url,
            "fromHeaders": [{"name": "authorization", "prefix": "Bearer "}],
            "fromParams": ["access_token"],
            "fromCookies": ["session"],
        }
        authz.load(request_authentication(rule))
        headers = {**bearer(good), "cookie": f"session={forged}"}
        path = f"/api?access_token={good}"
    if case == "same-token-header-and-query":
        path = f"/api?access_token={good}"
    result = authz.check(path, headers=headers, **request)
    if outcome == "ambiguous":
        assert_unauthenticated(result, good, forged)
    elif outcome == "missing":
        assert_anonymous(result)
        assert "x-jwt-payload" in result.removed
    else:
        assert result.principal == f"{ISS_A}/alice"
        assert "authorization" in result.removed
        if case == "same-token-header-and-query":
            assert result.params_removed == ("access_token",)


@pytest.mark.parametrize(
    ("case", "status"),
    [
        ("no-token-public", 200),
        ("no-token-protected", 403),
        ("invalid-token-public", 401),
        ("valid-token-protected-without-claim", 403),
        ("valid-token-protected-with-claim", 200),
    ],
)
def test_missing_vs_invalid_token(
    authz: Authz, issuers: Json, keys: Keys, case: str, status: int
) -> None:
    public = {"to": [{"operation": {"paths": ["/public/*"]}}]}
    protected = {
        "from": [{"source": {"requestPrincipals": ["*"]}}],
        "to": [{"operation": {"paths": ["/protected/*"]}}],
        "when": [{"key": "request.auth.claims[role]", "values": ["admin"]}],
    }
    authz.load(issuers, policy("ALLOW", public, protected))
    path = "/public/x" if case.endswith("public") else "/protected/x"
    headers: dict[str, str] = {}
    if case.startswith("invalid"):
        headers = bearer(
            forge({"alg": "RS256", "kid": "kA1"}, ADMIN, keys.attacker_rsa)
        )
    elif case.startswith("valid"):
        role = "admin" if case.endswith("with-claim") else None
        headers = bearer(t0(keys, role=role))
    result: Result = authz.check(path, headers=headers)
    assert result.status == status, result
    if case == "no-token-public":
        assert_anonymous(result)
        assert {"x-jwt-payload", "x-claim-role", "x-claim-groups"} <= set(
            result.removed
        )
