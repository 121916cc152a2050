"""Notice when config files change: edits, new or removed files in a directory,
and the atomic ``..data`` symlink swap of a mounted ConfigMap.

Polling once a second is enough for config and needs no extra dependency; a
fingerprint of every file's resolved path, modification time and size changes in
each of those cases.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from authz_server.config.source import config_files
from authz_server.errors import ConfigProblem

logger = logging.getLogger(__name__)

Fingerprint = tuple[tuple[str, str, int, int], ...]


def fingerprint(paths: list[str]) -> Fingerprint:
    """What the config files are now, cheaply."""
    ignored: list[ConfigProblem] = []
    entries = []
    for file in config_files(paths, ignored):
        try:
            resolved = os.path.realpath(file)
            stat = Path(resolved).stat()
        except OSError:
            continue
        entries.append((str(file), resolved, stat.st_mtime_ns, stat.st_size))
    return tuple(entries)


class ConfigWatcher:
    """Calls ``on_change`` when the fingerprint of ``paths`` changes."""

    def __init__(
        self, paths: list[str], on_change: Callable[[], Any], interval: float = 1.0
    ) -> None:
        self._paths = paths
        self._on_change = on_change
        self._interval = interval
        self._stop = threading.Event()
        self._last = fingerprint(paths)
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name="config-watch", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            current = fingerprint(self._paths)
            if current != self._last:
                self._last = current
                logger.info("config files changed", extra={"files": len(current)})
                self._on_change()
