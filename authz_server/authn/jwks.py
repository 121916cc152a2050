"""Where key sets come from: inline config, or a JWKS URL fetched and refreshed.

A :class:`RemoteKeys` is shared by every rule that names the same URL and outlives
config reloads, so unchanged URLs are not refetched. The request path never waits on
the network, with one exception: a token whose ``kid`` no key matches triggers one
refetch, single-flight and at most once per ``miss_interval`` per URL.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from authz_server.authn.keys import KeySet, KeySetError, parse_key_set
from authz_server.errors import KeysUnavailable

logger = logging.getLogger(__name__)

Fetch = Callable[[str, float], bytes]

MAX_JWKS_BYTES = 512 * 1024
DEFAULT_REFRESH_SECONDS = 20 * 60
DEFAULT_MISS_INTERVAL_SECONDS = 30.0
RETRY_MIN_SECONDS = 1.0
RETRY_MAX_SECONDS = 60.0


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


_opener = urllib.request.build_opener(_NoCrossHostRedirects())


def fetch_url(url: str, timeout: float) -> bytes:
    """GET ``url``; raise OSError unless it answers 200 within the size cap."""
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    with _opener.open(request, timeout=timeout) as response:
        if response.status != 200:
            raise OSError(f"HTTP {response.status}")
        body: bytes = response.read(MAX_JWKS_BYTES + 1)
    if len(body) > MAX_JWKS_BYTES:
        raise OSError(f"response larger than {MAX_JWKS_BYTES} bytes")
    return body


class RemoteKeys:
    """A JWKS URL (or an issuer's OpenID discovery document) and its last good keys."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float,
        discovery: bool = False,
        fetch: Fetch = fetch_url,
        clock: Callable[[], float] = time.monotonic,
        refresh_seconds: float = DEFAULT_REFRESH_SECONDS,
        miss_interval: float = DEFAULT_MISS_INTERVAL_SECONDS,
    ) -> None:
        self.url = url
        self.discovery = discovery
        self.description = ("openid discovery " if discovery else "jwksUri ") + url
        self.timeout = timeout
        self._fetch = fetch
        self._clock = clock
        self._refresh_seconds = refresh_seconds
        self._miss_interval = miss_interval
        self._lock = threading.Lock()
        self._current: KeySet | None = None
        self._attempts = 0
        self._failures = 0
        self._last_miss_fetch = -miss_interval
        self.fetched_at: float | None = None
        self.next_refresh = clock()
        self.last_error = ""

    def keys(self) -> KeySet:
        current = self._current
        if current is None:
            raise KeysUnavailable()
        return current

    def refetch_on_miss(self) -> KeySet | None:
        attempts = self._attempts
        with self._lock:
            if self._attempts != attempts:
                return self._current  # another request fetched while we waited
            if self._clock() - self._last_miss_fetch < self._miss_interval:
                return None
            self._last_miss_fetch = self._clock()
            self._fetch_locked("unknown kid")
            return self._current

    def refresh(self) -> None:
        """Fetch now (start-up and background refresh)."""
        with self._lock:
            self._fetch_locked("refresh")

    def due(self) -> bool:
        return self._clock() >= self.next_refresh

    def _fetch_locked(self, why: str) -> None:
        self._attempts += 1
        try:
            key_set = parse_key_set(self._download(), allow_symmetric=False)
        except (OSError, KeySetError, ValueError) as err:
            self._failed(why, err)
            return
        self._current = key_set
        self._failures = 0
        self.fetched_at = self._clock()
        self.next_refresh = self.fetched_at + self._refresh_seconds
        self.last_error = ""
        logger.info(
            "fetched keys",
            extra={"jwks": self.description, "keys": len(key_set.keys), "why": why},
        )

    def _download(self) -> bytes:
        url = self.url
        if self.discovery:
            document = json.loads(self._fetch(_discovery_url(url), self.timeout))
            found = document.get("jwks_uri") if isinstance(document, dict) else None
            if not isinstance(found, str) or not found.startswith(
                ("http://", "https://")
            ):
                raise ValueError("discovery document has no http(s) jwks_uri")
            url = found
        return self._fetch(url, self.timeout)

    def _failed(self, why: str, err: Exception) -> None:
        self._failures += 1
        backoff = min(RETRY_MAX_SECONDS, RETRY_MIN_SECONDS * 2 ** (self._failures - 1))
        self.next_refresh = self._clock() + backoff * random.uniform(0.5, 1.0)
        self.last_error = str(err) or type(err).__name__
        logger.warning(
            "key fetch failed",
            extra={"jwks": self.description, "why": why, "error": self.last_error},
        )


def _discovery_url(issuer: str) -> str:
    return issuer.rstrip("/") + "/.well-known/openid-configuration"


class KeyRegistry:
    """All remote key sets of a server, shared across config generations."""

    def __init__(self, fetch: Fetch = fetch_url, **options: float) -> None:
        self._fetch = fetch
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

    def start(self, tick_seconds: float = 1.0) -> None:
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
                    source.refresh()
