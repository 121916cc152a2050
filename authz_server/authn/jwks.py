"""Where key sets come from: inline config, or a JWKS URL fetched and refreshed.

A :class:`RemoteKeys` is shared by every rule that names the same URL and outlives
config reloads, so unchanged URLs are not refetched. Its life:

* fetched at start-up (and when a reload first names it);
* refreshed in the background every ``refresh_seconds`` (20 minutes by default), or
  sooner or later as the response's ``Cache-Control: max-age`` says, within
  [1 minute, 24 hours]; a failed fetch is retried with exponential backoff and
  jitter while the last good keys keep serving;
* keys older than ``max_stale_seconds`` are not used: tokens for that issuer are
  denied with ``jwks_unavailable`` until a fetch succeeds;
* a token whose ``kid`` no key matches triggers one refetch, single-flight (all
  requests waiting share it) and at most once per ``miss_interval`` per URL, so a
  flood of invented kids costs one fetch per interval. The fetch runs in its own
  thread; the requests that share it wait for it until at most ``miss_wait``
  (250 ms by default) after it started, and are denied if it has not finished.
  This is the only time the request path waits on the network.

``file://`` URLs are read from disk and reread when the file changes; that is an
authz-server extension (Istio accepts only http and https) for JWKS documents
mounted from a ConfigMap.
"""

from __future__ import annotations

import json
import logging
import random
import re
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from authz_server.authn.keys import KeySet, KeySetError, parse_key_set
from authz_server.errors import KeysUnavailable

logger = logging.getLogger(__name__)

DEFAULT_MAX_JWKS_BYTES = 512 * 1024
DEFAULT_MAX_JWKS_KEYS = 100
DEFAULT_REFRESH_SECONDS = 20 * 60
DEFAULT_MISS_INTERVAL_SECONDS = 30.0
DEFAULT_MAX_STALE_SECONDS = 24 * 3600
DEFAULT_MISS_WAIT_SECONDS = 0.25
MIN_MAX_AGE_SECONDS = 60.0
MAX_MAX_AGE_SECONDS = 24 * 3600.0
RETRY_MIN_SECONDS = 1.0
RETRY_MAX_SECONDS = 60.0
MAX_AGE = re.compile(r"(?:^|[,\s])max-age\s*=\s*(\d+)", re.IGNORECASE)


@dataclass(frozen=True)
class Fetched:
    """A fetched document and how long its server says it stays fresh."""

    body: bytes
    max_age: float | None = None


Fetch = Callable[[str, float], Fetched]


class KeySource(Protocol):
    """Gives the current key set of one rule."""

    @property
    def description(self) -> str:
        """Where the keys come from, for logs and /debug pages."""
        ...

    def keys(self) -> KeySet:
        """The current keys; raise KeysUnavailable if there are none."""
        ...

    def refetch_on_miss(self) -> KeySet | None:
        """Try to get newer keys after a kid miss; None if that is not possible now."""
        ...


@dataclass(frozen=True)
class InlineKeys:
    """Keys written in the config (``jwks``)."""

    key_set: KeySet
    description: str = "inline jwks"

    def keys(self) -> KeySet:
        return self.key_set

    def refetch_on_miss(self) -> KeySet | None:
        return None


class _NoCrossHostRedirects(urllib.request.HTTPRedirectHandler):
    """Follow a redirect only to the same scheme, host and port."""

    def redirect_request(  # type: ignore[no-untyped-def]
        self, req, fp, code, msg, headers, newurl
    ):
        old, new = urllib.parse.urlsplit(req.full_url), urllib.parse.urlsplit(newurl)
        if (old.scheme, old.netloc) != (new.scheme, new.netloc):
            raise urllib.error.HTTPError(
                newurl, code, "redirect to another host", headers, fp
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class Fetcher:
    """HTTP(S) GET with a total deadline, a size cap and certificate checks."""

    def __init__(
        self, ca_file: str | None = None, max_bytes: int = DEFAULT_MAX_JWKS_BYTES
    ) -> None:
        self.max_bytes = max_bytes
        context = ssl.create_default_context(cafile=ca_file)
        self._opener = urllib.request.build_opener(
            _NoCrossHostRedirects(), urllib.request.HTTPSHandler(context=context)
        )

    def __call__(self, url: str, timeout: float) -> Fetched:
        if url.startswith("file://"):
            return _read_file(url, self.max_bytes)
        deadline = time.monotonic() + timeout
        request = urllib.request.Request(url, headers={"Accept": "application/json"})
        with self._opener.open(request, timeout=timeout) as response:
            if response.status != 200:
                raise OSError(f"HTTP {response.status}")
            body = _read_capped(response, deadline, self.max_bytes)
            max_age = _max_age(response.headers.get("Cache-Control", ""))
        return Fetched(body, max_age)


def _read_capped(response: object, deadline: float, max_bytes: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        if time.monotonic() > deadline:
            raise OSError("timed out reading the response")
        chunk: bytes = response.read(65536)  # type: ignore[attr-defined]
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > max_bytes:
            raise OSError(f"response larger than {max_bytes} bytes")
        chunks.append(chunk)


def _read_file(url: str, max_bytes: int) -> Fetched:
    path = Path(urllib.parse.unquote(urllib.parse.urlsplit(url).path))
    if path.stat().st_size > max_bytes:
        raise OSError(f"file larger than {max_bytes} bytes")
    return Fetched(path.read_bytes())


def _max_age(cache_control: str) -> float | None:
    found = MAX_AGE.search(cache_control)
    return float(found.group(1)) if found else None


def file_version(url: str) -> tuple[int, int] | None:
    """The (mtime, size) of a ``file://`` URL's file, or None for other URLs."""
    if not url.startswith("file://"):
        return None
    try:
        stat = Path(urllib.parse.unquote(urllib.parse.urlsplit(url).path)).stat()
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size)


class RemoteKeys:
    """A JWKS URL (or an issuer's OpenID discovery document) and its last good keys."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float,
        discovery: bool = False,
        fetch: Fetch | None = None,
        clock: Callable[[], float] = time.monotonic,
        refresh_seconds: float = DEFAULT_REFRESH_SECONDS,
        miss_interval: float = DEFAULT_MISS_INTERVAL_SECONDS,
        max_stale_seconds: float = DEFAULT_MAX_STALE_SECONDS,
        miss_wait_seconds: float = DEFAULT_MISS_WAIT_SECONDS,
        max_keys: int = DEFAULT_MAX_JWKS_KEYS,
    ) -> None:
        self.url = url
        self.discovery = discovery
        self.description = ("openid discovery " if discovery else "jwksUri ") + url
        self.timeout = timeout
        self._fetch = fetch or Fetcher()
        self._clock = clock
        self._refresh_seconds = refresh_seconds
        self._miss_interval = miss_interval
        self._max_stale = max_stale_seconds
        self._miss_wait = miss_wait_seconds
        self._max_keys = max_keys
        self._lock = threading.Lock()
        self._fetch_lock = threading.Lock()
        self._in_flight: threading.Event | None = None
        self._in_flight_until = 0.0
        self._current: KeySet | None = None
        self._failures = 0
        self._last_miss_fetch = -miss_interval
        self._file_version = file_version(url)
        self.fetched_at: float | None = None
        self.next_refresh = clock()
        self.last_error = ""
        self.fetch_results: dict[str, int] = {"ok": 0, "error": 0}
        self.miss_refetches = 0

    @property
    def current(self) -> KeySet | None:
        """The last good key set, however old (for /debug and metrics)."""
        return self._current

    def age(self) -> float | None:
        """Seconds since the last successful fetch."""
        return None if self.fetched_at is None else self._clock() - self.fetched_at

    def keys(self) -> KeySet:
        if self._current is None:
            raise KeysUnavailable()
        usable = self._usable()
        if usable is None:
            raise KeysUnavailable("Jwks is too old to use and cannot be refreshed")
        return usable

    def refetch_on_miss(self) -> KeySet | None:
        with self._lock:
            done = self._in_flight
            if done is None:
                if self._clock() - self._last_miss_fetch < self._miss_interval:
                    return None
                self._last_miss_fetch = self._clock()
                self.miss_refetches += 1
                done = self._in_flight = threading.Event()
                self._in_flight_until = time.monotonic() + self._miss_wait
                threading.Thread(
                    target=self._fetch_in_background, args=(done,), daemon=True
                ).start()
            until = self._in_flight_until
        # Every request sharing this fetch is released by its start + miss_wait.
        if not done.wait(max(0.0, until - time.monotonic())):
            return None
        return self._usable()

    def _fetch_in_background(self, done: threading.Event) -> None:
        try:
            with self._fetch_lock:
                self._fetch_locked("unknown kid")
        finally:
            with self._lock:
                self._in_flight = None
            done.set()

    def _usable(self) -> KeySet | None:
        age = self.age()
        if age is None or age > self._max_stale:
            return None
        return self._current

    def refresh(self, *, only_if_due: bool = False) -> None:
        """Fetch now (start-up), or only if still due once it is our turn
        (background refresh: another fetch may have just finished)."""
        with self._fetch_lock:
            if only_if_due and not self.due():
                return
            self._fetch_locked("refresh")

    def due(self) -> bool:
        """Whether the background refresher should fetch now."""
        if self._clock() >= self.next_refresh:
            return True
        version = file_version(self.url)
        return version is not None and version != self._file_version

    def _fetch_locked(self, why: str) -> None:
        version = file_version(self.url)
        try:
            fetched = self._download()
            key_set = parse_key_set(
                fetched.body, allow_symmetric=False, max_keys=self._max_keys
            )
        except (OSError, KeySetError, ValueError) as err:
            self._failed(why, err)
            return

        self._current = key_set
        self._failures = 0
        self._file_version = version
        self.fetched_at = self._clock()
        self.next_refresh = self.fetched_at + self._interval(fetched.max_age)
        self.last_error = ""
        self.fetch_results["ok"] += 1
        logger.info(
            "fetched keys",
            extra={
                "jwks": self.description,
                "keys": len(key_set.keys),
                "skipped": key_set.skipped,
                "why": why,
            },
        )

    def _interval(self, max_age: float | None) -> float:
        if max_age is None:
            return self._refresh_seconds
        return min(max(max_age, MIN_MAX_AGE_SECONDS), MAX_MAX_AGE_SECONDS)

    def _download(self) -> Fetched:
        url = self.url
        if self.discovery:
            document = json.loads(self._fetch(_discovery_url(url), self.timeout).body)
            found = document.get("jwks_uri") if isinstance(document, dict) else None
            if not isinstance(found, str) or not found.startswith(
                ("http://", "https://")
            ):
                raise ValueError("discovery document has no http(s) jwks_uri")
            url = found
        return self._fetch(url, self.timeout)

    def _failed(self, why: str, err: Exception) -> None:
        self._failures += 1
        self.fetch_results["error"] += 1
        backoff = min(RETRY_MAX_SECONDS, RETRY_MIN_SECONDS * 2 ** (self._failures - 1))
        self.next_refresh = self._clock() + backoff * random.uniform(0.5, 1.0)
        self.last_error = str(err) or type(err).__name__
        kept = "; keeping the last good keys" if self._current is not None else ""
        logger.warning(
            "key fetch failed" + kept,
            extra={"jwks": self.description, "why": why, "error": self.last_error},
        )


def _discovery_url(issuer: str) -> str:
    return issuer.rstrip("/") + "/.well-known/openid-configuration"


class KeyRegistry:
    """All remote key sets of a server, shared across config generations."""

    def __init__(self, fetch: Fetch | None = None, **options: float) -> None:
        self._fetch = fetch or Fetcher()
        self._options = options
        self._sources: dict[tuple[str, bool], RemoteKeys] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def remote(
        self, url: str, timeout: float, *, discovery: bool = False
    ) -> RemoteKeys:
        """The shared source for ``url``; created (not yet fetched) on first use."""
        with self._lock:
            source = self._sources.get((url, discovery))
            if source is None:
                source = RemoteKeys(
                    url,
                    timeout=timeout,
                    discovery=discovery,
                    fetch=self._fetch,
                    **self._options,  # type: ignore[arg-type]
                )
                self._sources[(url, discovery)] = source
            return source

    def sources(self) -> list[RemoteKeys]:
        with self._lock:
            return list(self._sources.values())

    def fetch_missing(self) -> None:
        """Fetch, in parallel, every source that has never loaded (start-up, reload)."""
        pending = [s for s in self.sources() if s.fetched_at is None]
        threads = [threading.Thread(target=s.refresh, daemon=True) for s in pending]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def retain(self, in_use: set[RemoteKeys]) -> None:
        """Forget sources no config generation uses any more."""
        with self._lock:
            self._sources = {k: s for k, s in self._sources.items() if s in in_use}

    def start(self, tick_seconds: float = 0.5) -> None:
        """Refresh due sources in a background thread until :meth:`stop`."""
        self._thread = threading.Thread(
            target=self._run, args=(tick_seconds,), name="jwks-refresh", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self, tick_seconds: float) -> None:
        while not self._stop.wait(tick_seconds):
            for source in self.sources():
                if source.due():
                    source.refresh(only_if_due=True)
