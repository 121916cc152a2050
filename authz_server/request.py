"""What a request is, as far as a decision goes: the input of every step.

Protocol adapters (gRPC CheckRequest, HTTP ext_authz, the ``explain`` command) build
a :class:`Request`; nothing after them looks at protocol messages.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Request:
    """One HTTP request seen by the proxy.

    ``headers`` has lower-case names; Envoy joins repeated headers with ``,``.
    ``header_lines`` keeps each line apart when the proxy sends raw headers.
    ``context`` holds the route's ``context_extensions`` (labels, namespace).
    """

    method: str
    host: str
    raw_path: str
    headers: Mapping[str, str] = field(default_factory=dict)
    header_lines: Mapping[str, tuple[str, ...]] | None = None
    scheme: str = "http"
    source_ip: str = ""
    source_principal: str = ""
    destination_ip: str = ""
    destination_port: int | None = None
    destination_principal: str = ""
    context: Mapping[str, str] = field(default_factory=dict)
    sni: str = ""
    request_id: str = ""

    @property
    def path(self) -> str:
        """The path without query string and fragment (not normalised)."""
        end = len(self.raw_path)
        for mark in ("?", "#"):
            index = self.raw_path.find(mark)
            if 0 <= index < end:
                end = index
        return self.raw_path[:end]

    @property
    def query(self) -> str:
        """The query string, without ``?`` and fragment."""
        _, _, rest = self.raw_path.partition("?")
        return rest.partition("#")[0]

    def header(self, name: str) -> str | None:
        """One header by lower-case name."""
        return self.headers.get(name)

    def header_values(self, name: str) -> tuple[str, ...]:
        """Each line of a header when known, else the joined value."""
        if self.header_lines is not None:
            return self.header_lines.get(name, ())
        value = self.headers.get(name)
        return () if value is None else (value,)
