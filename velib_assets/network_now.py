"""The network right now: each station's latest state and how long it has held it, from the captures.

A station's state is DESIGN §3's flags on its latest clean row, the most specific first: `closed`,
`out_of_service`, `empty`, `full`, `nearly_empty`, `nearly_full`, `ok`. `since` is the capture time
of the first capture of its current run of that state: captures date it, never a station's own
`last_reported`. The table lives in the lake (`stations_now/part.parquet`, the DuckDB view
`marts.stations_now` reads it at query time) and is brought up to date
incrementally: an update parses only the captures landed after the one it was last built through,
so it costs one capture's parse per poll. Started afresh (no table yet, or one older than
`LOOKBACK`), it reads the last `LOOKBACK` of captures; a station that held its state all that time
is marked `since_at_least` (it may have held it longer).
"""

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl

from velib_assets import lake, landing, snapshots
from velib_assets.kpis.clean import clean_snapshots
from velib_assets.kpis.occupancy import district_label
from velib_assets.schema import UTC_TS
from velib_assets.settings import KpiThresholds

STATES = ("closed", "out_of_service", "empty", "full", "nearly_empty", "nearly_full", "ok")
LOOKBACK = timedelta(hours=3)
"""How far back a fresh table looks: 180 captures, a few seconds to parse."""
NOW = "stations_now"

NOW_SCHEMA: dict[str, pl.DataType] = {
    "station_code": pl.String(),
    "name": pl.String(),
    "district": pl.String(),
    "capacity": pl.Int32(),
    "bikes": pl.Int32(),
    "mechanical": pl.Int32(),
    "ebike": pl.Int32(),
    "docks": pl.Int32(),
    "state": pl.Enum(STATES),
    "since": UTC_TS,
    "since_at_least": pl.Boolean(),
    "minutes_in_state": pl.Float64(),
    "latest_capture": UTC_TS,
    "in_latest_capture": pl.Boolean(),
    "through": UTC_TS,
}
"""One row per station ever seen in the window: `latest_capture` is its own newest capture,
`through` the newest capture of the network (the same on every row), `minutes_in_state` counts from
`since` to `through`."""


@dataclass(frozen=True)
class Update:
    table: pl.DataFrame
    captures: int
    """Captures parsed by this update (0: the table was already current)."""
    errors: list[tuple[str, str]]


def state_expr() -> pl.Expr:
    return (
        pl.when(pl.col("status") == "closed")
        .then(pl.lit("closed"))
        .when(pl.col("status") == "out_of_service")
        .then(pl.lit("out_of_service"))
        .when(pl.col("is_empty"))
        .then(pl.lit("empty"))
        .when(pl.col("is_full"))
        .then(pl.lit("full"))
        .when(pl.col("is_nearly_empty"))
        .then(pl.lit("nearly_empty"))
        .when(pl.col("is_nearly_full"))
        .then(pl.lit("nearly_full"))
        .otherwise(pl.lit("ok"))
        .cast(pl.Enum(STATES))
    )


def _observations(raw: pl.DataFrame, reference: pl.DataFrame, thresholds: KpiThresholds) -> pl.DataFrame:
    """Clean rows of the new captures with their state, in (station_code, snapshot_ts) order."""
    clean = clean_snapshots(raw, reference, thresholds).clean
    return clean.select(
        "station_code",
        "snapshot_ts",
        "name",
        district_label(pl.col("arrondissement"), pl.col("commune")).alias("district"),
        "capacity",
        "bikes",
        "mechanical",
        "ebike",
        "docks",
        state_expr().alias("state"),
    )


def _latest(observations: pl.DataFrame, fresh: bool) -> pl.DataFrame:
    """Per station: its last row, and when its last run of equal states began in these rows."""
    run = (pl.col("state") != pl.col("state").shift(1)).fill_null(True).cum_sum().over("station_code")
    return (
        observations.with_columns(run.alias("_run"))
        .group_by("station_code", maintain_order=True)
        .agg(
            pl.all().exclude("_run", "snapshot_ts").last(),
            pl.col("snapshot_ts").last().alias("latest_capture"),
            pl.col("snapshot_ts").filter(pl.col("_run") == pl.col("_run").max()).first().alias("since"),
            (pl.col("_run").max() == 1).alias("_one_run"),
        )
        .with_columns((pl.col("_one_run") & fresh).alias("since_at_least"))
    )


def advance(
    previous: pl.DataFrame | None, observations: pl.DataFrame, through: datetime, fresh: bool
) -> pl.DataFrame:
    """The table after `observations` (captures up to `through`): a station whose new rows are all
    in its previous state keeps its `since`; one the new captures lack keeps its row, until it has
    been missing for `LOOKBACK` (a station removed from the feed leaves the table)."""
    latest = _latest(observations, fresh)
    if previous is not None and not previous.is_empty():
        kept = previous.select(
            "station_code",
            pl.col("state").alias("_prev_state"),
            pl.col("since").alias("_prev_since"),
            pl.col("since_at_least").alias("_prev_at_least"),
        )
        continued = pl.col("_one_run") & (pl.col("state") == pl.col("_prev_state"))
        latest = latest.join(kept, on="station_code", how="left", maintain_order="left").with_columns(
            pl.when(continued).then(pl.col("_prev_since")).otherwise(pl.col("since")).alias("since"),
            pl.when(continued)
            .then(pl.col("_prev_at_least"))
            .otherwise(pl.col("since_at_least"))
            .alias("since_at_least"),
        )
        unseen = previous.join(latest.select("station_code"), on="station_code", how="anti")
        latest = pl.concat([latest, unseen], how="diagonal_relaxed")
    at = pl.lit(through, dtype=UTC_TS)
    return (
        latest.filter(pl.col("latest_capture") >= at - LOOKBACK)  # a station gone from the feed goes
        .with_columns(
            at.alias("through"),
            ((at - pl.col("since")).dt.total_microseconds() / 60e6).alias("minutes_in_state"),
            (pl.col("latest_capture") == at).alias("in_latest_capture"),
        )
        .select(pl.col(name).cast(dtype) for name, dtype in NOW_SCHEMA.items())
        .sort("station_code")
    )


@contextmanager
def _exclusive(data_dir: Path) -> Iterator[None]:
    """One updater at a time (the sensor and `velib now` may both bring the table up to date)."""
    lock = data_dir / "lake" / NOW / ".update.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_table(data_dir: Path) -> pl.DataFrame | None:
    path = data_dir / "lake" / NOW / lake.PART_FILE
    return pl.read_parquet(path) if path.is_file() else None


def update(data_dir: Path, reference: pl.DataFrame, thresholds: KpiThresholds) -> Update:
    """Bring the table up to the newest landed capture, parsing only what it has not seen."""
    root = data_dir / "landing"
    with _exclusive(data_dir):
        previous = read_table(data_dir)
        newest = landing.newest_capture(root)
        if newest is None:
            return Update(previous if previous is not None else pl.DataFrame(schema=NOW_SCHEMA), 0, [])
        end = newest.capture_time + timedelta(seconds=1)
        through = previous["through"].max() if previous is not None and not previous.is_empty() else None
        fresh = through is None or through < newest.capture_time - LOOKBACK  # type: ignore[operator]
        start = newest.capture_time - LOOKBACK if fresh else through + timedelta(seconds=1)  # type: ignore[operator]
        if start >= end:
            return Update(previous, 0, [])  # type: ignore[arg-type]
        window = snapshots.parse_window(root, start, end)
        if window.frame.is_empty():
            unchanged = previous if previous is not None else pl.DataFrame(schema=NOW_SCHEMA)
            return Update(unchanged, window.captures, window.errors)
        observations = _observations(window.frame, reference, thresholds)
        table = advance(None if fresh else previous, observations, window.frame["snapshot_ts"].max(), fresh)
        lake.write_parquet(table, data_dir / "lake" / NOW)
        return Update(table, window.captures, window.errors)


def as_of(data_dir: Path, reference: pl.DataFrame, thresholds: KpiThresholds, at: datetime) -> Update:
    """The table as it stood at `at`, from the captures of the `LOOKBACK` before it (replaying
    history, e.g. the alerts of a past morning); nothing is written."""
    window = snapshots.parse_window(data_dir / "landing", at - LOOKBACK, at + timedelta(seconds=1))
    if window.frame.is_empty():
        return Update(pl.DataFrame(schema=NOW_SCHEMA), window.captures, window.errors)
    observations = _observations(window.frame, reference, thresholds)
    table = advance(None, observations, window.frame["snapshot_ts"].max(), fresh=True)
    return Update(table, window.captures, window.errors)
