"""A bounded, polite HTTP client shared by the GBFS and Opendatasoft clients.

Every request has connect/read timeouts, a size bound and a descriptive User-Agent; 429 and 5xx are
retried with exponential backoff through urllib3's `Retry`, honouring `Retry-After` up to a cap.
A client given a budget (one per sensor tick) has a deadline that no attempt, backoff, `Retry-After`
wait or body read passes, so a tick ends well inside Dagster's 60 s sensor timeout even against a
server trickling its answer. Socket timeouts bound each read, not their sum, so a watchdog timer also
shuts the client's sockets down at the deadline: headers, chunked framing or a TLS handshake trickled a
byte at a time end there too. A final 429/503 hands its `Retry-After` to the caller to honour later,
and so does one asking for longer than the client may wait (`max_retry_after_s`), without retrying.
"""

import email.utils
import math
import socket
import threading
import time
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import InvalidHeader, MaxRetryError, ReadTimeoutError
from urllib3.poolmanager import PoolManager, ProxyManager
from urllib3.util.retry import Retry

from velib_assets.settings import USER_AGENT

RETRY_STATUSES = (429, 500, 502, 503, 504)
RETRY_AFTER_STATUSES = (429, 503)
CHUNK_BYTES = 64 * 1024
MIN_TIMEOUT_S = 0.001
"""A socket timeout of 0 would make the socket non-blocking, not give up at once."""


class FeedError(Exception):
    """A feed could not be fetched: the message names the URL and the cause.

    `retry_after_s` is the server's `Retry-After` on a final 429/503: how long it asked to be left alone.
    """

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class HttpSettings:
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 10.0
    max_retries: int = 2
    backoff_s: float = 0.5
    max_retry_after_s: float = 10.0
    max_bytes: int = 20 * 1024 * 1024
    user_agent: str = USER_AGENT


@dataclass(frozen=True)
class FetchedBody:
    url: str
    body: bytes
    content_type: str
    fetched_at: datetime


class _OutOfTime(urllib3.exceptions.HTTPError):
    """A retry abandoned because its wait would pass the deadline."""


class _TooLongToWait(urllib3.exceptions.HTTPError):
    """A retry abandoned because the server asked for a longer wait than the client may spend."""


def _time_left(deadline: float | None) -> float:
    return math.inf if deadline is None else deadline - time.monotonic()


class _CappedRetry(Retry):
    """urllib3 `Retry` whose waits are capped and never pass the deadline: it gives up instead, and
    at once when a 429/503 asks for longer than the cap.

    Giving up on a retryable status returns that last response (`raise_on_status=False`), so the
    caller still sees its status and `Retry-After`.
    """

    max_retry_after_s: float = 10.0
    deadline: float | None = None

    def _asked(self, response) -> float | None:  # type: ignore[no-untyped-def]
        """The server's `Retry-After` in seconds, uncapped; None if absent or unreadable (plain backoff)."""
        try:
            return super().get_retry_after(response)
        except InvalidHeader:
            return None

    def get_retry_after(self, response):  # type: ignore[no-untyped-def]
        retry_after = self._asked(response)
        return None if retry_after is None else min(retry_after, self.max_retry_after_s)

    def increment(self, method=None, url=None, response=None, error=None, _pool=None, _stacktrace=None):  # type: ignore[no-untyped-def]
        if response is not None and response.status in RETRY_AFTER_STATUSES:
            asked = self._asked(response)
            if asked is not None and asked > self.max_retry_after_s:
                # Waiting only the cap would ask again too early, be refused again and spend the tick:
                # hand this answer back at once; the caller pauses polling for as long as asked.
                raise MaxRetryError(_pool, url, _TooLongToWait(f"Retry-After {asked:g} s"))
        retry = super().increment(method, url, response, error, _pool, _stacktrace)
        wait = (retry.get_retry_after(response) if response is not None else None) or retry.get_backoff_time()
        if wait >= _time_left(self.deadline):
            raise MaxRetryError(_pool, url, _OutOfTime(f"a retry in {wait:g} s would pass the deadline"))
        if response is not None and self.deadline is not None:
            response.close()  # else urllib3 drains the error body first, however slowly it trickles
        return retry

    def new(self, **kw):  # type: ignore[no-untyped-def]
        retry = super().new(**kw)
        retry.max_retry_after_s = self.max_retry_after_s
        retry.deadline = self.deadline
        return retry


class _DeadlineTimeout(urllib3.Timeout):
    """Connect and read timeouts cut to the time left, recomputed for every attempt (retries too)."""

    def __init__(self, connect: float, read: float, deadline: float | None) -> None:
        super().__init__(connect=connect, read=read)
        self.deadline = deadline

    def clone(self) -> "_DeadlineTimeout":
        return _DeadlineTimeout(self._connect, self._read, self.deadline)  # type: ignore[arg-type]

    def _capped(self, seconds: float) -> float:
        return max(MIN_TIMEOUT_S, min(seconds, _time_left(self.deadline)))

    @property
    def connect_timeout(self) -> float:  # type: ignore[override]
        return self._capped(super().connect_timeout)  # type: ignore[arg-type]

    @property
    def read_timeout(self) -> float:  # type: ignore[override]
        return self._capped(super().read_timeout)  # type: ignore[arg-type]


class _Watchdog:
    """Cuts one client's connections at its deadline, whatever phase a request is in.

    Each connection registers a duplicate of its socket when it opens (`_new_conn`): shutting the
    duplicate down ends the TCP connection under any wrapper (the TLS socket that replaces the raw one
    after the handshake, a proxy tunnel), and the duplicate's descriptor is ours, so it is never
    another socket's by the time the timer fires. Connections hold their duplicate; this set does not.
    The TCP connect itself comes before registration: its timeout is already cut to the time left.
    """

    def __init__(self) -> None:
        self.fired = False
        self._lock = threading.Lock()
        self._sockets: weakref.WeakSet[socket.socket] = weakref.WeakSet()
        self._retired: list[tuple[socket.socket | None, socket.socket]] = []

    def track(self, sock: socket.socket) -> socket.socket:
        watch = sock.dup()
        with self._lock:
            self._sweep()
            self._sockets.add(watch)
            if self.fired:  # opened after the deadline: a retry must not outlive it either
                _cut(watch)
        return watch

    def forget(self, original: socket.socket | None, watch: socket.socket) -> None:
        """A connection closed. While a response still reads its socket (http.client closes the
        connection of a `Connection: close` answer before reading its body, and the response's file
        keeps the descriptor open), the duplicate stays watched; once that socket is really closed,
        the duplicate is closed too, so it never keeps a TCP connection alive."""
        with self._lock:  # never closed while the timer may be shutting it down
            self._retired.append((original, watch))
            self._sweep()

    def _sweep(self) -> None:
        for pair in list(self._retired):
            original, watch = pair
            if original is None or original.fileno() == -1:
                self._retired.remove(pair)
                self._sockets.discard(watch)
                watch.close()

    def release(self) -> None:
        """The request ended: nothing of it is read any more."""
        with self._lock:
            for _, watch in self._retired:
                self._sockets.discard(watch)
                watch.close()
            self._retired.clear()

    def fire(self) -> None:
        with self._lock:
            self.fired = True
            for watch in list(self._sockets):
                _cut(watch)

    def arm(self, seconds: float) -> threading.Timer:
        timer = threading.Timer(max(0.0, seconds), self.fire)
        timer.daemon = True  # never holds up the process
        timer.start()
        return timer


def _cut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)  # a blocked recv returns at once; later ones fail
    except OSError:  # already closed by its peer or by us
        pass


class _Watched:
    """Mixin for urllib3's connection classes: registers each new socket with the watchdog."""

    watchdog: _Watchdog
    _watch: socket.socket | None = None

    def _new_conn(self) -> socket.socket:
        sock: socket.socket = super()._new_conn()  # type: ignore[misc]
        self._watch = self.watchdog.track(sock)
        return sock

    def close(self) -> None:
        sock = getattr(self, "sock", None)
        try:
            super().close()  # type: ignore[misc]
        finally:
            if self._watch is not None:
                self.watchdog.forget(sock, self._watch)
                self._watch = None


class _WatchedAdapter(HTTPAdapter):
    """An adapter whose pools (direct or through an HTTP proxy) open watched connections.

    The connection classes are made per client (one per tick) so that each finds its own watchdog;
    `pool_classes_by_scheme` and `ConnectionCls` are urllib3's documented extension points."""

    def __init__(self, watchdog: _Watchdog, **kwargs: object) -> None:
        attrs = {"watchdog": watchdog}
        http = type("WatchedHTTPConnection", (_Watched, HTTPConnection), attrs)
        https = type("WatchedHTTPSConnection", (_Watched, HTTPSConnection), attrs)
        self._pool_classes = {
            "http": type("WatchedHTTPConnectionPool", (HTTPConnectionPool,), {"ConnectionCls": http}),
            "https": type("WatchedHTTPSConnectionPool", (HTTPSConnectionPool,), {"ConnectionCls": https}),
        }
        super().__init__(**kwargs)  # type: ignore[arg-type]

    def init_poolmanager(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = self._pool_classes

    def proxy_manager_for(self, proxy: str, **proxy_kwargs) -> PoolManager:  # type: ignore[no-untyped-def]
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if isinstance(manager, ProxyManager):  # a SOCKS proxy has pool classes of its own: unwatched
            manager.pool_classes_by_scheme = self._pool_classes
        return manager


def build_session(
    settings: HttpSettings, deadline: float | None = None, watchdog: _Watchdog | None = None
) -> requests.Session:
    retry = _CappedRetry(
        total=settings.max_retries,
        connect=settings.max_retries,
        read=settings.max_retries,
        status=settings.max_retries,
        backoff_factor=settings.backoff_s,
        status_forcelist=RETRY_STATUSES,
        allowed_methods=("GET",),
        respect_retry_after_header=True,
        raise_on_status=False,
    )
    retry.max_retry_after_s = settings.max_retry_after_s
    retry.deadline = deadline
    session = requests.Session()
    if watchdog is None:
        adapter = HTTPAdapter(max_retries=retry)
    else:
        adapter = _WatchedAdapter(watchdog, max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers.update({"User-Agent": settings.user_agent, "Accept": "application/json"})
    return session


class HttpClient:
    """GET with timeouts, retries and a size bound; raises `FeedError` with a one-line reason.

    With `budget_s`, every request of this client (one per tick) ends within that many seconds of
    its creation: retries, backoff, connecting, headers and body reads included.
    """

    def __init__(self, settings: HttpSettings | None = None, budget_s: float | None = None) -> None:
        self.settings = settings or HttpSettings()
        self.budget_s = budget_s
        self.deadline = None if budget_s is None else time.monotonic() + budget_s
        self._watchdog = None if budget_s is None else _Watchdog()
        self._session = build_session(self.settings, self.deadline, self._watchdog)

    def time_left(self) -> float:
        """Seconds before the deadline (infinite without a budget)."""
        return _time_left(self.deadline)

    def get(self, url: str, params: dict[str, str | int] | None = None) -> FetchedBody:
        s = self.settings
        if self.time_left() <= 0:
            raise self._out_of_time(url)
        timeout = _DeadlineTimeout(s.connect_timeout_s, s.read_timeout_s, self.deadline)
        timer = None if self._watchdog is None else self._watchdog.arm(self.time_left())
        try:
            with self._session.get(url, params=params, timeout=timeout, stream=True) as response:
                if response.status_code != 200:
                    raise _status_error(url, response)
                body = self._read_bounded(url, response)
                content_type = response.headers.get("Content-Type", "")
        except Exception as exc:
            if self._cut_off():  # whatever broke once the watchdog cut the sockets: the budget did
                raise self._out_of_time(url) from exc
            if isinstance(exc, requests.RequestException):
                raise self._failure(url, exc) from exc
            raise
        finally:
            if timer is not None:
                timer.cancel()
                self._watchdog.release()
        if self._cut_off():  # a body that ends at EOF would otherwise be taken whole when cut short
            raise self._out_of_time(url)
        if not body.strip():
            raise FeedError(f"{url}: empty body")
        if "html" in content_type.lower() or body.lstrip()[:1] == b"<":
            raise FeedError(f"{url}: answered an HTML page, not JSON")
        return FetchedBody(url, body, content_type, datetime.now(UTC))

    def _cut_off(self) -> bool:
        return self._watchdog is not None and self._watchdog.fired

    def _read_bounded(self, url: str, response: requests.Response) -> bytes:
        limit = self.settings.max_bytes
        declared = response.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise FeedError(f"{url}: body of {int(declared)} bytes exceeds the {limit}-byte bound")
        body = bytearray()
        while chunk := self._read_chunk(url, response):
            body += chunk
            if len(body) > limit:
                raise FeedError(f"{url}: body exceeds the {limit}-byte bound")
        return bytes(body)

    def _read_chunk(self, url: str, response: requests.Response) -> bytes:
        """At most one socket read of the body, waiting no longer than the read timeout or the deadline:
        a server trickling a byte at a time is cut off at the deadline, not when it finishes."""
        left = self.time_left()
        if left <= 0:
            raise self._out_of_time(url)
        sock = getattr(response.raw.connection, "sock", None)
        if sock is not None:
            sock.settimeout(max(MIN_TIMEOUT_S, min(self.settings.read_timeout_s, left)))
        try:
            return response.raw.read1(CHUNK_BYTES, decode_content=True)
        except ReadTimeoutError as exc:
            raise self._timed_out(url) from exc
        except urllib3.exceptions.HTTPError as exc:  # broken off, corrupt encoding, TLS framing
            raise FeedError(f"{url}: body broken off ({exc.__class__.__name__})") from exc

    def _failure(self, url: str, exc: requests.RequestException) -> FeedError:
        reason = exc.args[0] if exc.args else None
        reason = getattr(reason, "reason", reason)  # MaxRetryError wraps the last error
        if isinstance(reason, _OutOfTime):
            return self._out_of_time(url)
        if isinstance(exc, requests.Timeout) or isinstance(reason, ReadTimeoutError):
            return self._timed_out(url)
        if isinstance(exc, requests.ConnectionError):
            return FeedError(f"{url}: unreachable ({exc.__class__.__name__})")
        return FeedError(f"{url}: request failed ({exc})")

    def _timed_out(self, url: str) -> FeedError:
        if self.time_left() <= 0:
            return self._out_of_time(url)
        s = self.settings
        return FeedError(f"{url}: timed out (connect {s.connect_timeout_s:g} s, read {s.read_timeout_s:g} s)")

    def _out_of_time(self, url: str) -> FeedError:
        return FeedError(f"{url}: gave up after the tick's {self.budget_s:g} s budget")


def _status_error(url: str, response: requests.Response) -> FeedError:
    retries = response.raw.retries
    tried = len(retries.history) if retries is not None else 0
    retry_after = None
    if response.status_code in RETRY_AFTER_STATUSES:
        retry_after = retry_after_seconds(response.headers.get("Retry-After"))
    asked = f", Retry-After {retry_after:g} s" if retry_after is not None else ""
    return FeedError(f"{url}: HTTP {response.status_code} after {tried} retries{asked}", retry_after)


def retry_after_seconds(value: str | None) -> float | None:
    """A `Retry-After` header (seconds, or an HTTP date) as seconds from now; None if absent or unreadable."""
    text = (value or "").strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
