"""Find config files and read their YAML documents.

A ``--config`` path is a YAML file (several documents allowed) or a directory whose
``*.yaml`` / ``*.yml`` entries are read in name order. Entries whose name starts with
``.`` are skipped, which is what makes a mounted Kubernetes ConfigMap work: its files
are symlinks into a hidden ``..data`` directory that is swapped atomically on update.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from authz_server.errors import ConfigProblem

YAML_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class Document:
    """One YAML document: its file, its index in that file, and its content."""

    file: str
    index: int
    body: Any


class _StrictLoader(yaml.SafeLoader):
    """A safe loader that refuses duplicate keys instead of keeping the last one."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=True)


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping
)


def config_files(paths: list[str], problems: list[ConfigProblem]) -> list[Path]:
    """Expand ``--config`` paths into the files to read, recording missing ones."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(_directory_files(path))
        elif path.is_file():
            files.append(path)
        else:
            problems.append(ConfigProblem(raw, None, "", "no such file or directory"))
    return files


def _directory_files(directory: Path) -> list[Path]:
    entries = sorted(directory.iterdir(), key=lambda entry: entry.name)
    return [
        entry
        for entry in entries
        if not entry.name.startswith(".")
        and entry.name.endswith(YAML_SUFFIXES)
        and entry.is_file()
    ]


def read_documents(file: Path, problems: list[ConfigProblem]) -> Iterator[Document]:
    """Yield the non-empty documents of one file; a YAML error ends the file."""
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        problems.append(ConfigProblem(str(file), None, "", f"cannot read: {err}"))
        return

    index = 0
    try:
        for body in yaml.load_all(text, Loader=_StrictLoader):
            if body is not None:
                yield Document(str(file), index, body)
            index += 1
    except yaml.YAMLError as err:
        problems.append(ConfigProblem(str(file), index, "", _yaml_problem(err)))


def _yaml_problem(err: yaml.YAMLError) -> str:
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err)
    if mark is None:
        return f"invalid YAML: {problem}"
    return f"invalid YAML at line {mark.line + 1}, column {mark.column + 1}: {problem}"
