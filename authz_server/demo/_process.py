"""Child processes for the demo and the tests: find, spawn with a log file, stop."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from types import TracebackType
from typing import Self

logger = logging.getLogger(__name__)

LOG_TAIL_CHARS = 4000


class Started:
    """A ``with`` block over something with ``start()`` and ``stop()``."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def find_command(name: str, hint: str) -> str:
    """Return the path of ``name``, preferring the running interpreter's venv.

    Raises FileNotFoundError, with ``hint`` telling how to install it.
    """
    beside_python = Path(sys.executable).parent / name
    if beside_python.is_file() and os.access(beside_python, os.X_OK):
        return str(beside_python)
    on_path = shutil.which(name)
    if on_path is None:
        raise FileNotFoundError(
            f"no {name!r} command next to {sys.executable} or on PATH; {hint}"
        )
    return on_path


def spawn_logged(command: list[str], log_path: Path) -> subprocess.Popen[bytes]:
    """Start ``command`` with stdout and stderr written to a fresh ``log_path``.

    The child gets a session of its own, so Ctrl-C in a terminal reaches only
    the parent, which then stops its children in order.
    """
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def terminate(process: subprocess.Popen[bytes], timeout_seconds: float) -> int:
    """Send SIGTERM, wait up to ``timeout_seconds``, then SIGKILL; return the code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=timeout_seconds)
        except subprocess.TimeoutExpired:
            logger.warning("pid %d ignored SIGTERM; killing it", process.pid)
            process.kill()
    return process.wait()


def log_tail(log_path: Path) -> str:
    """The last few thousand characters of a log file, for failure messages."""
    try:
        text = log_path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    return text[-LOG_TAIL_CHARS:]
