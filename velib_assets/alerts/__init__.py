"""Alerts on the network now: rules over `network_now`'s table, episodes in a SQLite store, messages
through Apprise. The sensor and `velib alerts` call `evaluate_and_deliver` once per evaluation and
`episodes` / `export_parquet` to show what happened; the parts are importable for finer use."""

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import polars as pl

from velib_assets import lake
from velib_assets.alerts import store as alert_store
from velib_assets.alerts.channels import from_env as channels_from_env
from velib_assets.alerts.delivery import deliver, give_up_after_from_env
from velib_assets.alerts.rules import AlertRules, Condition, conditions, content_fingerprint
from velib_assets.alerts.store import AlertStore, reconcile

STORE_FILE = Path("ops") / "alerts.sqlite"
REPLAY_STORE_FILE = Path("ops") / "alerts-replay.sqlite"
"""Replays (`velib alerts check --at`) keep their episodes apart: a past morning must neither
resolve today's open episodes nor move the frozen-feed rule's memory."""
EXPORT_DIR = Path("lake") / "alerts"

__all__ = [
    "AlertOutcome",
    "AlertRules",
    "AlertStore",
    "Condition",
    "channels_from_env",
    "conditions",
    "deliver",
    "episodes",
    "evaluate_and_deliver",
    "evaluate_now",
    "export_parquet",
    "give_up_after_from_env",
    "reconcile",
    "store_path",
    "summary",
]


@dataclass(frozen=True)
class AlertOutcome:
    opened: int
    resolved: int
    delivered: int
    """Messages sent by this evaluation."""
    pending: int
    failed: int
    """Messages waiting for a channel, and given up, in the whole outbox."""


def store_path(data_dir: Path, replay: bool = False) -> Path:
    return data_dir / (REPLAY_STORE_FILE if replay else STORE_FILE)


def evaluate_and_deliver(
    data_dir: Path,
    table: pl.DataFrame,
    newest_capture_time: datetime | None,
    now: datetime,
    rules: AlertRules,
    channels: list[str],
    deadline: float | None = None,
    replay: bool = False,
) -> AlertOutcome:
    """One evaluation: the conditions of `table` (from `network_now.update` or `as_of`) at `now`,
    episodes opened and resolved, the outbox delivered until `deadline` (`time.monotonic()`),
    and the Parquet export rewritten (a few KB). Safe to run twice, or concurrently. A `replay`
    works on its own store and leaves the export (the live episodes) alone."""
    with AlertStore(store_path(data_dir, replay)) as store:
        unchanged_since = None
        if not table.is_empty():
            through = table["through"].max()
            unchanged_since = alert_store.observe_content(store, content_fingerprint(table), through)  # type: ignore[arg-type]
        found = conditions(table, now, newest_capture_time, rules, unchanged_since)
        changes = reconcile(store, found, now, channels, ended=newest_capture_time)
        delivered = deliver(store, channels, now, give_up_after_from_env(), deadline)
        frame = alert_store.episodes(store)
    if not replay:
        lake.write_parquet(frame, data_dir / EXPORT_DIR)
    return AlertOutcome(
        len(changes.opened), len(changes.resolved), delivered.sent, delivered.pending, delivered.failed
    )


def evaluate_now(
    data_dir: Path, table: pl.DataFrame, now: datetime, deadline: float | None = None, replay: bool = False
) -> AlertOutcome:
    """`evaluate_and_deliver` with the rules and channels of the environment (a bad variable is a
    ValueError naming it), the feed judged by the table's newest capture: the sensor's evaluation,
    and `velib alerts check`'s, at a past time too."""
    through = None if table.is_empty() else table["through"].max()
    rules, channels = AlertRules.from_env(), channels_from_env()
    return evaluate_and_deliver(data_dir, table, through, now, rules, channels, deadline, replay)  # type: ignore[arg-type]


def summary(outcome: AlertOutcome) -> str:
    return (
        f"alerts: {outcome.opened} opened, {outcome.resolved} resolved, {outcome.delivered} delivered, "
        f"{outcome.pending} waiting for a channel, {outcome.failed} given up"
    )


def episodes(data_dir: Path, replay: bool = False) -> pl.DataFrame:
    """Every episode with each message's channel, status and attempts (`store.EPISODES_SCHEMA`)."""
    with AlertStore(store_path(data_dir, replay)) as store:
        return alert_store.episodes(store)


def export_parquet(data_dir: Path) -> Path:
    """Write `episodes` to `lake/alerts/part.parquet` atomically, for the DuckDB view `marts.alerts`."""
    return lake.write_parquet(episodes(data_dir), data_dir / EXPORT_DIR)
