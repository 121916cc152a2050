"""The error tree shared by every step of a check.

Each class carries a stable snake_case ``reason`` (used as the deny reason, the log
field and the metric label), the HTTP ``status`` Envoy returns to the client, and a
default ``message`` in the words Envoy's own jwt_authn and RBAC filters use, so users
can search for them::

    AuthzError
    +-- ConfigError                   a config file is invalid (never per request)
    +-- Denied                        the request is not acceptable
    |   +-- Unauthenticated (401)     a token is present but not acceptable
    |   |   +-- TokenMalformed, UnsupportedAlgorithm, UnsupportedHeader,
    |   |   +-- IssuerNotConfigured, TokenExpired, TokenNotYetValid,
    |   |   +-- KeyNotFound, SignatureInvalid, TokenTooLarge, AmbiguousTokens,
    |   |   +-- TokenOutOfPlace, TokenTooComplex, ClaimHeaderTooLarge
    |   +-- Forbidden (403)           the caller is known (or anonymous) and not allowed
    |   |   +-- AudienceNotAllowed, PolicyDenied
    |   +-- BadRequest (400)          the request cannot be interpreted safely
    |       +-- PathRejected, HeaderTooLarge (431)
    +-- CannotDecide                  the service cannot reach a decision: fail closed
        +-- KeysUnavailable (401), NotReady (403), InternalFault (403)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from authz_server.decision import PolicyMatch


class AuthzError(Exception):
    """Root of every error authz-server raises on purpose."""

    reason = "internal_error"
    status = 403
    message = "Internal error"

    def __init__(self, message: str | None = None) -> None:
        self.message = message or type(self).message
        super().__init__(self.message)


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with a config: where it is and what is wrong."""

    file: str
    document: int | None
    field: str
    problem: str

    def __str__(self) -> str:
        where = self.file
        if self.document is not None:
            where += f" document {self.document}"
        if self.field:
            where += f" field {self.field}"
        return f"{where}: {self.problem}"


class ConfigError(AuthzError):
    """A config was rejected; ``problems`` lists every error found."""

    reason = "config_invalid"

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class Denied(AuthzError):
    """The request is not acceptable."""


class Unauthenticated(Denied):
    """A token was presented and is not acceptable (401)."""

    status = 401
    reason = "jwt_invalid"


class TokenMalformed(Unauthenticated):
    """The token cannot be parsed as a signed JWT."""

    reason = "jwt_malformed"
    message = (
        "Jwt is not in the form of Header.Payload.Signature"
        " with two dots and 3 sections"
    )


class UnsupportedAlgorithm(Unauthenticated):
    """The token's ``alg`` is missing or not one we verify."""

    reason = "jwt_alg_not_supported"
    message = "Jwt header [alg] is not supported"


class UnsupportedHeader(Unauthenticated):
    """The token's header asks for processing we do not do (``crit``, ``b64``)."""

    reason = "jwt_header_not_supported"
    message = "Jwt header has a field that is not supported"


class IssuerNotConfigured(Unauthenticated):
    """No rule that reads the token's location accepts its ``iss``."""

    reason = "jwt_issuer_not_configured"
    message = "Jwt issuer is not configured"


class TokenExpired(Unauthenticated):
    """``exp`` is in the past, beyond the allowed clock skew."""

    reason = "jwt_expired"
    message = "Jwt is expired"


class TokenNotYetValid(Unauthenticated):
    """``nbf`` is in the future, beyond the allowed clock skew."""

    reason = "jwt_not_yet_valid"
    message = "Jwt not yet valid"


class KeyNotFound(Unauthenticated):
    """No key of the issuer's key set matches the token's ``kid`` and ``alg``."""

    reason = "jwks_kid_alg_mismatch"
    message = "Jwks doesn't have key to match kid or alg from Jwt"


class SignatureInvalid(Unauthenticated):
    """A matching key exists but the signature does not verify."""

    reason = "jwt_verification_fails"
    message = "Jwt verification fails"


class TokenTooLarge(Unauthenticated):
    """The token is larger than the configured limit."""

    reason = "jwt_too_large"
    message = "Jwt is larger than the configured limit"


class TokenOutOfPlace(Unauthenticated):
    """A JWT sits in a token header without the configured prefix (``bearer``)."""

    reason = "jwt_prefix_mismatch"
    message = "Jwt found without the configured prefix"


class TokenTooComplex(Unauthenticated):
    """The token's JSON nests deeper or holds more members than the limits allow."""

    reason = "jwt_too_complex"
    message = "Jwt is nested too deeply or has too many members"


class ClaimHeaderTooLarge(Unauthenticated):
    """A claim to copy into a header is larger than the configured limit."""

    reason = "claim_header_too_large"
    message = "Jwt claim is too large for its header"


class AmbiguousTokens(Unauthenticated):
    """More than one distinct token was presented in one request."""

    reason = "jwt_multiple_tokens"
    message = "Request carries more than one distinct Jwt"


class Forbidden(Denied):
    """The caller is not allowed (403)."""

    status = 403
    reason = "forbidden"


class AudienceNotAllowed(Forbidden):
    """The token verified but none of its audiences is accepted."""

    reason = "jwt_audience_not_allowed"
    message = "Audiences in Jwt are not allowed"


class PolicyDenied(Forbidden):
    """An AuthorizationPolicy denied the request."""

    reason = "rbac_access_denied"
    message = "RBAC: access denied"

    def __init__(self, policy: str | None = None, rule: int | None = None) -> None:
        self.policy = policy
        self.rule = rule
        self.dry_run: tuple[PolicyMatch, ...] = ()
        self.audit: tuple[PolicyMatch, ...] = ()
        super().__init__()


class BadRequest(Denied):
    """The request cannot be interpreted safely (400)."""

    status = 400
    reason = "bad_request"


class HeaderTooLarge(BadRequest):
    """A request header is larger than the configured limit."""

    status = 431
    reason = "header_too_large"
    message = "Request header is larger than the configured limit"


class PathRejected(BadRequest):
    """The request path cannot be normalised safely."""

    reason = "path_not_normalizable"
    message = "Request path cannot be normalised safely"


class CannotDecide(AuthzError):
    """The service cannot reach a decision; the request is denied."""


class KeysUnavailable(CannotDecide):
    """The issuer's key set has never been fetched, or is too stale to use."""

    status = 401
    reason = "jwks_unavailable"
    message = "Jwks remote fetch is failed"


class NotReady(CannotDecide):
    """No config has been loaded yet."""

    reason = "not_ready"
    message = "Authorization service is not ready"


class InternalFault(CannotDecide):
    """An unexpected error inside the service."""

    reason = "internal_error"
    message = "Internal error"


class FieldError(ValueError):
    """A config value is invalid; ``field`` is its path inside the document."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")
