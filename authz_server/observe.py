"""The decision log and logging set-up.

One INFO record per decision, with structured fields and nothing secret: no token,
no ``authorization`` or ``cookie`` header, no claim values. The JSON formatter
writes one line per record; control characters in values (a CR/LF in a path, say)
are escaped by JSON encoding, so a client cannot forge or split log lines.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from authz_server.decision import Decision
from authz_server.request import Request

logger = logging.getLogger(__name__)

MAX_FIELD_CHARS = 512
STANDARD_ATTRIBUTES = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__
) | {"message", "asctime"}


def decision_fields(
    request: Request, decision: Decision, seconds: float
) -> dict[str, Any]:
    """The fields of a decision's log line."""
    fields: dict[str, Any] = {
        "decision_id": request.request_id,
        "decision": "allow" if decision.allowed else "deny",
        "status": decision.status,
        "reason": decision.reason,
        "method": request.method,
        "host": request.host,
        "path": request.path,
        "duration_ms": round(seconds * 1000, 3),
    }
    if decision.identity is not None:
        fields["principal"] = decision.identity.principal
    if decision.policy is not None:
        fields["policy"] = decision.policy.policy
        fields["rule"] = decision.policy.rule
    if decision.dry_run:
        fields["dry_run"] = [
            f"{m.action} {m.policy} rule {m.rule}" for m in decision.dry_run
        ]
    if decision.audit:
        fields["audit"] = [f"{m.policy} rule {m.rule}" for m in decision.audit]
    return fields


def log_decision(request: Request, decision: Decision, seconds: float) -> None:
    """Write the decision's INFO line (costs nothing when INFO is disabled).

    The record is made directly rather than through ``logger.info``, which would
    walk the stack to find the caller's file and line for every decision.
    """
    if logger.isEnabledFor(logging.INFO):
        fields = decision_fields(request, decision, seconds)
        record = logger.makeRecord(
            logger.name, logging.INFO, __file__, 0, "decision", (), None, extra=fields
        )
        logger.handle(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in STANDARD_ATTRIBUTES:
                entry[key] = _bounded(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return _ENCODER.encode(entry)


_ENCODER = json.JSONEncoder(ensure_ascii=True, default=str)


def _timestamp(created: float) -> str:
    """ISO 8601 UTC with milliseconds; the second's text is reused within it."""
    global _last
    second = int(created)
    cached_second, text = _last  # one read: threads may replace it meanwhile
    if second != cached_second:
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _last = (second, text)
    return f"{text}.{int((created - second) * 1000):03d}Z"


_last: tuple[int, str] = (-1, "")


class TextFormatter(logging.Formatter):
    """``time level logger message key=value ...`` with values escaped."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = [
            f"{key}={json.dumps(_bounded(value), ensure_ascii=True, default=str)}"
            for key, value in record.__dict__.items()
            if key not in STANDARD_ATTRIBUTES
        ]
        return " ".join([line, *extras])


def _bounded(value: Any) -> Any:
    if type(value) is str and len(value) > MAX_FIELD_CHARS:
        return value[:MAX_FIELD_CHARS] + "..."
    return value


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    """Send every record to stdout in ``fmt`` ("json" or "text")."""
    handler = logging.StreamHandler(sys.stdout)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            TextFormatter("%(asctime)s %(levelname)s %(name)s %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
