"""The poll log: one JSON line per tick of the capture sensor, what the collection's health is measured on.

The landing zone shows what was captured; only the sensor knows what it tried and why it failed.
Each tick appends one line to `<data dir>/ops/polls/date=YYYY-MM-DD.jsonl` (UTC day): its time, its
outcome (`landed`, `repeat`, `unchanged`, `unavailable`, `paused`, `broken`, `landing_failed`,
`other`), the reason of a failed one, and for a landed capture the lag from the feed's own time to
landing. A line is one `write` of an `O_APPEND` file, after a newline if the last write was cut
short, so a torn line costs only itself; a line that cannot be written (a full disk) is dropped with
a warning in the tick's log and never fails the tick.
"""

import json
import os
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from velib_assets.capture import PollOutcome
from velib_assets.schema import UTC_TS

POLLS = Path("ops") / "polls"
OUTCOMES = ("landed", "repeat", "unchanged", "unavailable", "paused", "broken", "landing_failed", "other")
FAILED = ("unavailable", "broken", "landing_failed", "other")
"""Outcomes that lost a poll: the feed did not answer, answered nonsense, or the capture could not land."""
_PREFIXES = {
    "feed unchanged": "unchanged",
    "the feed asked for a pause": "paused",
    "feed unavailable": "unavailable",
    "broken feed": "broken",
    "could not land the capture": "landing_failed",
}
POLL_SCHEMA: dict[str, pl.DataType] = {
    "at": UTC_TS,
    "outcome": pl.Enum(OUTCOMES),
    "reason": pl.String(),
    "capture_time": UTC_TS,
    "lag_s": pl.Float64(),
}


def outcome_of(outcome: PollOutcome) -> str:
    if outcome.capture is not None:
        return "landed" if outcome.created else "repeat"
    reason = outcome.skip_reason or ""
    return next((kind for prefix, kind in _PREFIXES.items() if reason.startswith(prefix)), "other")


def record(data_dir: Path, at: datetime, outcome: PollOutcome) -> None:
    """Append the tick's line; raises OSError when it cannot (the caller warns and goes on)."""
    kind = outcome_of(outcome)
    line: dict[str, object] = {"at": at.astimezone(UTC).isoformat(), "outcome": kind}
    if kind in FAILED or kind == "paused":
        line["reason"] = (outcome.skip_reason or "")[:500]
    if outcome.capture is not None:
        line["capture_time"] = outcome.capture.capture_time.isoformat()
        line["lag_s"] = round((at - outcome.capture.capture_time).total_seconds(), 3)
    folder = data_dir / POLLS
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"date={at.astimezone(UTC):%Y-%m-%d}.jsonl"
    handle = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT)
    try:
        size = os.fstat(handle).st_size
        cut = size > 0 and os.pread(handle, 1, size - 1) != b"\n"  # a write a full disk cut short
        os.write(handle, ("\n" if cut else "").encode() + (json.dumps(line) + "\n").encode())
    finally:
        os.close(handle)


def _lines(path: Path) -> Iterable[dict]:
    for text in path.read_text(errors="replace").splitlines():
        try:
            line = json.loads(text)
        except json.JSONDecodeError:
            continue  # a line cut by a full disk: the others still count
        if isinstance(line, dict) and line.get("outcome") in OUTCOMES:
            yield line


def read(data_dir: Path, start: datetime, end: datetime) -> pl.DataFrame:
    """The polls of `[start, end)`."""
    days = {(start + timedelta(days=n)).astimezone(UTC).date() for n in range((end - start).days + 2)}
    rows = [
        line
        for day in sorted(days)
        if (path := data_dir / POLLS / f"date={day:%Y-%m-%d}.jsonl").is_file()
        for line in _lines(path)
    ]
    text_schema = {name: pl.Float64() if name == "lag_s" else pl.String() for name in POLL_SCHEMA}
    columns = {name: [row.get(name) for row in rows] for name in POLL_SCHEMA}
    frame = pl.DataFrame(columns, schema=text_schema).with_columns(
        pl.col("at", "capture_time").str.to_datetime(time_zone="UTC", time_unit="us", strict=False),
        pl.col("outcome").cast(pl.Enum(OUTCOMES)),
    )
    return frame.filter(pl.col("at").is_between(start, end, closed="left")).sort("at")
