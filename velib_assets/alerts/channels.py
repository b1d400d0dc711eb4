"""Channels: Apprise URLs from `VELIB_ALERT_URLS`, and the secret-free label the outbox keys them by.

A channel URL often holds a token or password (`slack://T.../B.../secret`, `mailto://user:pass@`),
so the store never keeps it: a message names its channel by Apprise's privacy rendering of the URL
(secrets masked by each plugin) and a hash of the full URL, which tells two channels apart and finds
a configured URL again without revealing it.
"""

import hashlib
import os
import re

import apprise

ENV_URLS = "VELIB_ALERT_URLS"
SEND_TIMEOUT_SECONDS = 10.0
"""The socket connect and read timeouts (Apprise `cto`/`rto`) of a URL that sets none."""


def from_env() -> list[str]:
    """The configured channel URLs (comma or whitespace separated); a URL Apprise cannot load is an
    error naming its position and scheme only (the rest may be secret)."""
    urls = [url for url in re.split(r"[\s,]+", os.environ.get(ENV_URLS, "")) if url]
    for position, url in enumerate(urls, start=1):
        if apprise.Apprise.instantiate(url) is None:
            scheme = url.partition("://")[0]
            raise ValueError(f"{ENV_URLS}: entry {position} ({scheme}://…) is not a valid Apprise URL")
    return urls


def label(url: str) -> str:
    """E.g. `json://127.0.0.1:8000/hook #3f1c0a9b2e`: what the outbox stores instead of `url`."""
    digest = hashlib.sha256(url.encode()).hexdigest()[:10]
    service = apprise.Apprise.instantiate(url)
    shown = service.url(privacy=True).partition("?")[0] if service is not None else "invalid://"
    return f"{shown} #{digest}"


def with_timeouts(url: str, seconds: float = SEND_TIMEOUT_SECONDS) -> str:
    """`url` with Apprise's socket timeouts bounded, unless it sets its own."""
    extra = [f"{key}={seconds:g}" for key in ("cto", "rto") if not re.search(rf"[?&]{key}=", url)]
    if not extra:
        return url
    return url + ("&" if "?" in url else "?") + "&".join(extra)
