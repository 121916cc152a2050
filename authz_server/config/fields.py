"""Typed reading of one YAML document, recording every problem with its field path.

Readers never raise on bad input: they record a :class:`ConfigProblem` and return a
harmless value, so ``authz-server check`` can report every error of a file at once.
The caller turns a non-empty problem list into a :class:`ConfigError`.
"""

from __future__ import annotations

from typing import Any

from authz_server.errors import ConfigProblem


class Reader:
    """Reads values out of one document of one file."""

    def __init__(self, file: str, document: int, problems: list[ConfigProblem]):
        self.file = file
        self.document = document
        self.problems = problems

    def problem(self, field: str, text: str) -> None:
        """Record that ``field`` is wrong."""
        self.problems.append(ConfigProblem(self.file, self.document, field, text))

    def mapping(
        self, value: Any, field: str, allowed: frozenset[str]
    ) -> dict[str, Any]:
        """Return ``value`` as a mapping, recording unknown keys."""
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.problem(field, f"must be a mapping, not {_kind(value)}")
            return {}
        for key in value:
            if key not in allowed:
                self.problem(_join(field, str(key)), "unknown field")
        return {str(k): v for k, v in value.items() if k in allowed}

    def items(self, value: Any, field: str) -> list[Any]:
        """Return ``value`` as a list (absent is empty)."""
        if value is None:
            return []
        if not isinstance(value, list):
            self.problem(field, f"must be a list, not {_kind(value)}")
            return []
        return value

    def string(self, value: Any, field: str, *, required: bool = False) -> str:
        """Return ``value`` as a non-empty string, or ``""`` when absent."""
        if value is None:
            if required:
                self.problem(field, "is required")
            return ""
        if not isinstance(value, str):
            self.problem(field, f"must be a string, not {_kind(value)}")
            return ""
        if not value:
            self.problem(field, "must not be empty")
        return value

    def strings(self, value: Any, field: str) -> tuple[str, ...]:
        """Return a list of non-empty strings as a tuple."""
        result = []
        for index, item in enumerate(self.items(value, field)):
            text = self.string(item, f"{field}[{index}]", required=True)
            if text:
                result.append(text)
        return tuple(result)

    def boolean(self, value: Any, field: str) -> bool:
        """Return ``value`` as a bool (absent is false)."""
        if value is None:
            return False
        if not isinstance(value, bool):
            self.problem(field, f"must be true or false, not {_kind(value)}")
            return False
        return value

    def labels(self, value: Any, field: str) -> dict[str, str]:
        """Return a mapping of string to string (Kubernetes labels)."""
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.problem(field, f"must be a mapping, not {_kind(value)}")
            return {}
        labels = {}
        for key, item in value.items():
            if not isinstance(key, str) or not isinstance(item, str):
                self.problem(_join(field, str(key)), "labels map strings to strings")
                continue
            labels[key] = item
        return labels


def _join(field: str, key: str) -> str:
    return f"{field}.{key}" if field else key


def _kind(value: Any) -> str:
    names = {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean"}
    return names.get(type(value), type(value).__name__)
