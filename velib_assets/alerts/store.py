"""The alert store: episodes and their outbox in one SQLite file, so no message is sent twice or lost.

An episode is one stretch of a condition (kind, subject): opened when the condition first holds,
resolved when it no longer does. A partial UNIQUE index allows one open episode per (kind, subject),
and every change runs in a `BEGIN IMMEDIATE` transaction (the write lock taken up front), so two
evaluations in two processes serialize instead of both opening the same episode, and a restart (a
new process on the same file) sees exactly what the last one committed. Each event of an episode
queues one message per channel in the same transaction (UNIQUE per episode, event and channel);
delivery claims a message with a short lease before sending, so two deliverers never send the same
one. Times are UTC ISO strings (sortable); WAL lets readers (`velib alerts list`) read while an
evaluation writes.
"""

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from velib_assets.alerts import channels as channel_urls
from velib_assets.alerts import messages, rules
from velib_assets.alerts.rules import Condition

BUSY_TIMEOUT_SECONDS = 30.0
RESTARTING = frozenset({rules.STATION_EMPTY, rules.STATION_FULL, rules.FEED_DOWN, rules.FEED_FROZEN})
"""Kinds whose `since` dates one run of a state: a later `since` under an open episode means the
state ended and began again between two evaluations, i.e. a new episode. A district's `since` is
derived (the k-th station's) and moves while the district stays over its share."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS episodes (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    since TEXT NOT NULL,
    opened_at TEXT NOT NULL,
    resolved_at TEXT,
    details TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS one_open_episode ON episodes (kind, subject) WHERE resolved_at IS NULL;
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    episode_id INTEGER NOT NULL REFERENCES episodes (id),
    event TEXT NOT NULL CHECK (event IN ('opened', 'resolved')),
    channel TEXT NOT NULL,
    title TEXT NOT NULL,
    text TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    created_at TEXT NOT NULL,
    delivered_at TEXT,
    claimed_until REAL,
    UNIQUE (episode_id, event, channel)
);
CREATE INDEX IF NOT EXISTS pending_messages ON messages (status) WHERE status = 'pending';
CREATE TABLE IF NOT EXISTS feed_content (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    fingerprint TEXT NOT NULL,
    first_through TEXT NOT NULL
);
"""


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds")


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text)


class AlertStore:
    """An open connection to the store file (created with its tables on first use)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
        self.connection.row_factory = sqlite3.Row
        self.connection.execute("PRAGMA journal_mode=WAL")
        self.connection.execute("PRAGMA synchronous=NORMAL")
        with self.transaction() as db:
            for statement in _SCHEMA.split(";"):  # not executescript: it commits first
                if statement.strip():
                    db.execute(statement)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """The write lock for the whole block (BEGIN IMMEDIATE): no read-then-write race."""
        self.connection.execute("BEGIN IMMEDIATE")
        try:
            yield self.connection
        except BaseException:
            self.connection.execute("ROLLBACK")
            raise
        self.connection.execute("COMMIT")

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> "AlertStore":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


@dataclass(frozen=True)
class Reconciled:
    opened: list[int]
    resolved: list[int]
    """Episode ids."""


def reconcile(
    store: AlertStore,
    conditions: list[Condition],
    now: datetime,
    channels: list[str],
    ended: datetime | None = None,
) -> Reconciled:
    """Open an episode per new condition, resolve those whose condition is gone, queue one message per
    channel (URL) and event. Idempotent: the same conditions again change nothing.

    `ended` is when the captures showed the change (the newest capture's time): an episode resolves
    then, not at the evaluation's `now`, which may come later (a replay, a delayed tick)."""
    over = min(ended, now) if ended is not None else now
    labels = [channel_urls.label(url) for url in channels]
    present = {(c.kind, c.subject): c for c in conditions}
    opened, resolved = [], []
    with store.transaction() as db:
        open_rows = db.execute("SELECT * FROM episodes WHERE resolved_at IS NULL").fetchall()
        still_open = set()
        for row in open_rows:
            key = (row["kind"], row["subject"])
            condition, since = present.get(key), parse(row["since"])
            restarted = row["kind"] in RESTARTING and condition is not None and condition.since_known
            if condition is not None and not (restarted and condition.since > since):
                still_open.add(key)
                continue
            db.execute("UPDATE episodes SET resolved_at = ? WHERE id = ?", (iso(over), row["id"]))
            text = messages.resolved(row["kind"], row["subject"], since, over, json.loads(row["details"]))
            _queue(db, row["id"], "resolved", labels, messages.TITLE_RESOLVED, text, now)
            resolved.append(row["id"])
        for key, condition in present.items():
            if key in still_open or not condition.opens:
                continue
            cursor = db.execute(
                "INSERT INTO episodes (kind, subject, since, opened_at, details) VALUES (?, ?, ?, ?, ?)",
                (*key, iso(condition.since), iso(now), json.dumps(condition.details, default=str)),
            )
            episode = cursor.lastrowid
            assert episode is not None
            text = messages.opened(*key, condition.since, now, condition.details)
            _queue(db, episode, "opened", labels, messages.TITLE_OPENED, text, now)
            opened.append(episode)
    return Reconciled(opened, resolved)


def record_event(
    store: AlertStore, kind: str, subject: str, text: str, now: datetime, channels: list[str]
) -> bool:
    """A one-off event (a failed run): an episode opened and resolved at once, its message queued to
    every channel; False if that (kind, subject) was recorded before (a sensor evaluated twice)."""
    with store.transaction() as db:
        if db.execute("SELECT 1 FROM episodes WHERE kind = ? AND subject = ?", (kind, subject)).fetchone():
            return False
        cursor = db.execute(
            "INSERT INTO episodes (kind, subject, since, opened_at, resolved_at, details)"
            " VALUES (?, ?, ?, ?, ?, '{}')",
            (kind, subject, iso(now), iso(now), iso(now)),
        )
        assert cursor.lastrowid is not None
        labels = [channel_urls.label(url) for url in channels]
        _queue(db, cursor.lastrowid, "opened", labels, messages.TITLE_OPENED, text, now)
    return True


def _queue(
    db: sqlite3.Connection, episode: int, event: str, labels: list[str], title: str, text: str, now: datetime
) -> None:
    db.executemany(
        "INSERT INTO messages (episode_id, event, channel, title, text, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        [(episode, event, label, title, text, iso(now)) for label in labels],
    )


def observe_content(store: AlertStore, fingerprint: str, through: datetime) -> datetime:
    """The capture time since which the network's content has been `fingerprint` (`through` when it
    just changed): what the frozen-feed rule measures."""
    with store.transaction() as db:
        row = db.execute("SELECT fingerprint, first_through FROM feed_content WHERE id = 1").fetchone()
        if row is not None and row["fingerprint"] == fingerprint and parse(row["first_through"]) <= through:
            return parse(row["first_through"])
        db.execute(
            "INSERT OR REPLACE INTO feed_content (id, fingerprint, first_through) VALUES (1, ?, ?)",
            (fingerprint, iso(through)),
        )
        return through


@dataclass(frozen=True)
class Message:
    id: int
    channel: str
    title: str
    text: str
    attempts: int
    created_at: datetime


def pending(store: AlertStore) -> list[Message]:
    rows = store.connection.execute(
        "SELECT id, channel, title, text, attempts, created_at FROM messages"
        " WHERE status = 'pending' ORDER BY id"
    ).fetchall()
    return [Message(*row[:5], parse(row["created_at"])) for row in rows]  # type: ignore[misc]


def claim(store: AlertStore, message: int, lease_seconds: float) -> bool:
    """Take `message` for one send attempt; False if another deliverer holds it or it is settled.
    The lease is wall-clock: a deliverer that dies mid-send frees the message when it expires."""
    wall = time.time()
    with store.transaction() as db:
        cursor = db.execute(
            "UPDATE messages SET claimed_until = ? WHERE id = ? AND status = 'pending'"
            " AND (claimed_until IS NULL OR claimed_until < ?)",
            (wall + lease_seconds, message, wall),
        )
        return cursor.rowcount == 1


def settle(store: AlertStore, message: int, now: datetime, error: str | None, give_up: bool = False) -> None:
    """Record one attempt: sent (`error` None), still pending with the error, or failed (`give_up`)."""
    status = "sent" if error is None else "failed" if give_up else "pending"
    with store.transaction() as db:
        db.execute(
            "UPDATE messages SET status = ?, attempts = attempts + 1, last_error = coalesce(?, last_error),"
            " delivered_at = ?, claimed_until = NULL WHERE id = ?",
            (status, error, iso(now) if error is None else None, message),
        )


def give_up(store: AlertStore, message: int, reason: str) -> None:
    """Mark an undelivered message failed without another attempt (kept, with why, for the list)."""
    with store.transaction() as db:
        db.execute(
            "UPDATE messages SET status = 'failed', last_error = coalesce(last_error || '; ', '') || ?,"
            " claimed_until = NULL WHERE id = ? AND status = 'pending'",
            (reason, message),
        )


EPISODES_SCHEMA: dict[str, Any] = {
    "episode_id": pl.Int64(),
    "kind": pl.String(),
    "subject": pl.String(),
    "since": pl.Datetime("us", "UTC"),
    "opened_at": pl.Datetime("us", "UTC"),
    "resolved_at": pl.Datetime("us", "UTC"),
    "duration_minutes": pl.Float64(),
    "event": pl.String(),
    "channel": pl.String(),
    "status": pl.String(),
    "attempts": pl.Int64(),
    "last_error": pl.String(),
    "delivered_at": pl.Datetime("us", "UTC"),
}
"""One row per episode and message (event x channel); an episode with no channel has one row with
null message columns. `duration_minutes` runs from `since` to `resolved_at` (null while open)."""


def episodes(store: AlertStore) -> pl.DataFrame:
    rows = store.connection.execute(
        "SELECT e.id AS episode_id, e.kind, e.subject, e.since, e.opened_at, e.resolved_at,"
        " m.event, m.channel, m.status, m.attempts, m.last_error, m.delivered_at"
        " FROM episodes e LEFT JOIN messages m ON m.episode_id = e.id ORDER BY e.id, m.id"
    ).fetchall()
    times = ("since", "opened_at", "resolved_at", "delivered_at")
    records = [
        {key: parse(row[key]) if key in times and row[key] else row[key] for key in row.keys()}
        for row in rows
    ]
    frame = pl.DataFrame(
        records, schema={k: v for k, v in EPISODES_SCHEMA.items() if k != "duration_minutes"}
    )
    duration = (pl.col("resolved_at") - pl.col("since")).dt.total_seconds(fractional=True) / 60
    return frame.with_columns(duration.alias("duration_minutes")).select(list(EPISODES_SCHEMA))
