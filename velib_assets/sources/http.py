"""A bounded, polite HTTP client shared by the GBFS and Opendatasoft clients.

Every request has connect/read timeouts, a size bound and a descriptive User-Agent; 429 and 5xx are
retried with exponential backoff through urllib3's `Retry`, honouring `Retry-After` up to a cap so a
sensor tick can never sleep past Dagster's 60 s sensor timeout.
"""

from dataclasses import dataclass
from datetime import UTC, datetime

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from velib_assets.settings import USER_AGENT

RETRY_STATUSES = (429, 500, 502, 503, 504)


class FeedError(Exception):
    """A feed could not be fetched: the message names the URL and the cause."""


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


class _CappedRetry(Retry):
    """urllib3 `Retry` whose `Retry-After` waits are capped, so one slow answer cannot stall a tick."""

    max_retry_after_s: float = 10.0

    def get_retry_after(self, response):  # type: ignore[no-untyped-def]
        retry_after = super().get_retry_after(response)
        return None if retry_after is None else min(retry_after, self.max_retry_after_s)

    def new(self, **kw):  # type: ignore[no-untyped-def]
        retry = super().new(**kw)
        retry.max_retry_after_s = self.max_retry_after_s
        return retry


def build_session(settings: HttpSettings) -> requests.Session:
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
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.headers.update({"User-Agent": settings.user_agent, "Accept": "application/json"})
    return session


class HttpClient:
    """GET with timeouts, retries and a size bound; raises `FeedError` with a one-line reason."""

    def __init__(self, settings: HttpSettings | None = None) -> None:
        self.settings = settings or HttpSettings()
        self._session = build_session(self.settings)

    def get(self, url: str, params: dict[str, str | int] | None = None) -> FetchedBody:
        s = self.settings
        try:
            with self._session.get(
                url, params=params, timeout=(s.connect_timeout_s, s.read_timeout_s), stream=True
            ) as response:
                if response.status_code != 200:
                    raise FeedError(f"{url}: HTTP {response.status_code} after {s.max_retries} retries")
                body = self._read_bounded(url, response)
                content_type = response.headers.get("Content-Type", "")
        except requests.Timeout as exc:
            raise FeedError(f"{url}: timed out ({exc.__class__.__name__})") from exc
        except requests.ConnectionError as exc:
            if _timed_out(exc):
                raise FeedError(f"{url}: timed out (read timeout {s.read_timeout_s} s)") from exc
            raise FeedError(f"{url}: unreachable ({exc.__class__.__name__})") from exc
        except requests.RequestException as exc:
            raise FeedError(f"{url}: request failed ({exc})") from exc
        if not body.strip():
            raise FeedError(f"{url}: empty body")
        if "html" in content_type.lower() or body.lstrip()[:1] == b"<":
            raise FeedError(f"{url}: answered an HTML page, not JSON")
        return FetchedBody(url, body, content_type, datetime.now(UTC))

    def _read_bounded(self, url: str, response: requests.Response) -> bytes:
        limit = self.settings.max_bytes
        declared = response.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise FeedError(f"{url}: body of {int(declared)} bytes exceeds the {limit}-byte bound")
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_content(chunk_size=64 * 1024):
            size += len(chunk)
            if size > limit:
                raise FeedError(f"{url}: body exceeds the {limit}-byte bound")
            chunks.append(chunk)
        return b"".join(chunks)


def _timed_out(exc: requests.ConnectionError) -> bool:
    """requests reports a read timeout as ConnectionError once retries are spent or mid-body."""
    reason = exc.args[0] if exc.args else None
    reason = getattr(reason, "reason", reason)  # MaxRetryError wraps the last error
    return isinstance(reason, urllib3.exceptions.ReadTimeoutError)
