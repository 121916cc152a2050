"""Request paths as policies see them.

Envoy normalises ``:path`` before ext_authz runs (Istio's default ``BASE``: resolve
dot segments, ``\\`` to ``/``, decode unreserved percent-escapes). We apply the same
normalisation again, which changes nothing when Envoy already did it and protects
deployments where it did not. Paths that cannot be interpreted safely (a NUL or
control character, malformed percent-escapes, non-ASCII bytes) are rejected.

Backends often map other shapes onto the same resource: ``%2F`` decoded to ``/``,
``;parameters`` dropped (``/a/..;/b``), repeated slashes merged, a trailing slash
ignored. So a path has stricter views too, and how they count depends on whether a
match could open access (see :func:`authz_server.authz.policy.decide`):

* ``all`` holds every view: the base one, the decoded one and the decoded, merged
  one. A DENY rule matches when any of them matches, so ``//admin`` or
  ``/admin%2Fx`` cannot slip past ``/admin*``; a ``notPaths`` must hold for each.
* ``allow`` holds the base and the decoded view (slashes not merged): an ALLOW
  ``paths`` value must match both, so ``/public/..%2Fadmin`` is not allowed by
  ``/public/*`` while Istio's ``/store/{**}/cart`` still matches ``/store//cart``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from authz_server.errors import PathRejected

UNRESERVED = re.compile(r"%(2[dDeE]|3[0-9]|[46][1-9a-fA-F]|[57][0-9aA]|5[fF]|7[eE])")
ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
FORBIDDEN = re.compile(r"[\x00-\x20\x7f-\U0010ffff]|%00")
ESCAPED_SLASH = re.compile(r"%(2[fF]|5[cC])")
# A path every view leaves as it is: segments of plain characters, none empty,
# none "." or "..", no trailing slash.
PLAIN = re.compile(r"/|(?:/(?!\.\.?(?:/|$))[A-Za-z0-9\-._~!$&'()*+,=:@]+)+")


def normalise(path: str) -> str:
    """Istio's ``BASE`` normalisation; raise PathRejected when that is not safe."""
    if not path.startswith("/") or FORBIDDEN.search(path) or ESCAPE.search(path):
        raise PathRejected()
    decoded = UNRESERVED.sub(lambda m: chr(int(m.group(1), 16)), path)
    return _remove_dot_segments(decoded.replace("\\", "/"))


@dataclass(frozen=True)
class PathViews:
    """The views of one path (see the module docstring)."""

    all: tuple[str, ...]
    allow: tuple[str, ...]


def views(path: str) -> PathViews:
    """The views of ``path`` that policies are evaluated against."""
    if PLAIN.fullmatch(path):
        single = (path,)
        return PathViews(single, single)
    base = normalise(path)
    decoded = [
        segment.partition(";")[0] for segment in _decode_slashes(base).split("/")
    ]
    unmerged = _remove_dot_segments("/".join(decoded))
    merged = _remove_dot_segments("/" + "/".join(s for s in decoded if s))
    return PathViews(_distinct(base, unmerged, merged), _distinct(base, unmerged))


def _decode_slashes(path: str) -> str:
    return ESCAPED_SLASH.sub("/", path).replace("\\", "/")


def _distinct(*views: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(views))


def _remove_dot_segments(path: str) -> str:
    output: list[str] = []
    segments = path.split("/")[1:]
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == ".":
            if last:
                output.append("")
        elif segment == "..":
            if output:
                output.pop()
            if last:
                output.append("")
        else:
            output.append(segment)
    return "/" + "/".join(output)
