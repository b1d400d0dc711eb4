"""Delivery: the outbox's pending messages sent through Apprise, each send bounded in time.

A failed send (HTTP 500, timeout, SMTP down) leaves the message pending with one more attempt and
Apprise's reason; the next pass retries it, so it is delivered once the channel is back. A message
still undelivered `give_up_after` its creation is marked failed (kept, with the last error, for
`velib alerts list`), never dropped. A channel that fails is not tried again in the same pass, so
one dead channel costs one timeout per pass, not one per message. Sends are at-least-once: a send
that times out on our side may still have reached the channel.
"""

import os
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import apprise

from velib_assets.alerts import channels as channel_urls
from velib_assets.alerts import store as outbox
from velib_assets.alerts.store import AlertStore

ENV_GIVE_UP_MINUTES = "VELIB_ALERT_GIVE_UP_MINUTES"
DEFAULT_GIVE_UP = timedelta(hours=24)
"""A day: an outbox survives a day-long channel outage; later, the news is history."""
MIN_SEND_SECONDS = 0.5
"""Below this much time left before the deadline, no send starts."""
ERROR_CHARS = 500


def give_up_after_from_env() -> timedelta:
    text = os.environ.get(ENV_GIVE_UP_MINUTES, "").strip()
    if not text:
        return DEFAULT_GIVE_UP
    try:
        minutes = float(text)
    except ValueError:
        minutes = -1.0
    if not minutes > 0:
        raise ValueError(f"{ENV_GIVE_UP_MINUTES}={text!r} is invalid: expected a number of minutes > 0")
    return timedelta(minutes=minutes)


@dataclass(frozen=True)
class Delivered:
    sent: int
    """Sent by this pass."""
    pending: int
    failed: int
    """Left pending, and failed for good, in the whole outbox after this pass."""


def deliver(
    store: AlertStore,
    channels: list[str],
    now: datetime,
    give_up_after: timedelta = DEFAULT_GIVE_UP,
    deadline: float | None = None,
    send_timeout: float = channel_urls.SEND_TIMEOUT_SECONDS,
) -> Delivered:
    """Send the pending messages of `channels` (Apprise URLs), oldest first, until done or until
    `deadline` (a `time.monotonic()` value); a message of a channel no longer configured waits
    until it is given up."""
    by_label = {channel_urls.label(url): url for url in channels}
    services: dict[str, apprise.Apprise] = {}
    down: set[str] = set()
    sent = 0
    for message in outbox.pending(store):
        if now - message.created_at >= give_up_after:
            outbox.give_up(store, message.id, f"not delivered within {give_up_after}")
            continue
        url = by_label.get(message.channel)
        if url is None or message.channel in down:
            continue
        budget = send_timeout if deadline is None else min(send_timeout, deadline - time.monotonic())
        if budget < MIN_SEND_SECONDS:
            break
        if not outbox.claim(store, message.id, lease_seconds=budget + 5):
            continue
        if url not in services:
            services[url] = apprise.Apprise()
            services[url].add(channel_urls.with_timeouts(url, send_timeout))
        error = _send(services[url], message.title, message.text, budget)
        outbox.settle(store, message.id, now, error)
        if error is None:
            sent += 1
        else:
            down.add(message.channel)
    counts = dict(
        store.connection.execute(
            "SELECT status, count(*) FROM messages WHERE status != 'sent' GROUP BY status"
        ).fetchall()
    )
    return Delivered(sent, counts.get("pending", 0), counts.get("failed", 0))


def _send(service: apprise.Apprise, title: str, body: str, timeout: float) -> str | None:
    """None when sent, else why not (Apprise's warnings, e.g. the HTTP status or the SMTP error)."""
    try:
        result = service.notify(body=body, title=title, timeout=timeout)
    except Exception as error:  # a plugin bug must not lose the message: it stays pending
        return f"{type(error).__name__}: {error}"[:ERROR_CHARS]
    if result:
        return None
    reasons = [entry.message for entry in result.logs() if entry.level in ("WARNING", "ERROR")]
    return ("; ".join(reasons) or f"Apprise status {result.status.name}")[:ERROR_CHARS]
