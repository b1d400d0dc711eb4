"""Features per station and forecast origin, from the clean rows, using nothing after the origin.

A station's state at an origin `t` is its last observation at or before `t`, if it is at most
MAX_GAP old (the KPIs' rule: an observation counts for up to MAX_GAP); the same rule gives the
state 5, 15 and 60 minutes earlier (recent changes) and, for training and the backtest, the target
at `t + h`. Every join is backward in time, so changing any row after `t` changes no feature at `t`
(a test perturbs the future to prove it). A capture that repeats the one before it for every station
is not an observation (`fresh_captures`): a feed frozen for an hour observed nothing in that hour.

A day's feature rows have origins every `step` minutes of that local day; the day before is read
for context (recent changes, minutes in the current state, up to `CONTEXT`), never the day after:
targets past the day's end are left out, so a day's rows depend on that day and the one before,
and a model trained on days before D has never seen a row of D.

The hour-of-week profile is a station's mean bikes and frequency of empty and full at a local
weekday and hour over past days. Each day keeps the sums of its own origins (`profile_sums`), and
`profile_of` folds those of the days before the day being predicted: a profile never includes the
day it is used on.
"""

from collections.abc import Sequence
from datetime import date, datetime, timedelta

import polars as pl

from velib_assets.forecast.config import HORIZONS
from velib_assets.kpis.occupancy import district_label
from velib_assets.kpis.rankings import local_day_bounds
from velib_assets.schema import UTC_TS
from velib_assets.settings import PARIS

DELTAS = (5, 15, 60)
"""Minutes back for the recent changes of bikes."""
CONTEXT = timedelta(hours=12)
"""How far into the day before a day's features look: minutes in a state are capped there."""
MINUTES_IN_STATE_CAP = CONTEXT.total_seconds() / 60

SERIES_INPUT = (
    "station_code",
    "snapshot_ts",
    "bikes",
    "docks",
    "in_service",
    "is_empty",
    "is_full",
    "is_nearly_empty",
    "is_nearly_full",
    "capacity",
    "code_insee",
    "commune",
    "arrondissement",
    "name",
)
"""The clean columns the features read."""

CLOSED, EMPTY, NEARLY_EMPTY, OK, NEARLY_FULL, FULL = range(6)
"""`state_now` codes: out of service (or closed), then from empty to full."""

FEATURE_SCHEMA: dict[str, pl.DataType] = {
    "station_code": pl.String(),
    "origin": UTC_TS,
    "observed_at": UTC_TS,
    "name": pl.String(),
    "district": pl.String(),
    "district_code": pl.Int32(),
    "capacity": pl.Int32(),
    "bikes_now": pl.Int32(),
    "docks_now": pl.Int32(),
    "total_now": pl.Int32(),
    "fill_now": pl.Float64(),
    "state_now": pl.Int8(),
    "in_service_now": pl.Boolean(),
    "age_minutes": pl.Float64(),
    "minutes_in_state": pl.Float64(),
    **{f"delta_{d}": pl.Int32() for d in DELTAS},
    "local_hour": pl.Float64(),
    "weekday": pl.Int8(),
}
"""One row per station and origin: what is known at the origin."""

TARGET_SCHEMA: dict[str, pl.DataType] = {
    name: dtype
    for h in HORIZONS
    for name, dtype in (
        (f"bikes_{h}", pl.Int32()),
        (f"docks_{h}", pl.Int32()),
        (f"empty_{h}", pl.Boolean()),
        (f"full_{h}", pl.Boolean()),
    )
}
"""What happened `h` minutes after the origin (null: not observed within MAX_GAP, or after the day)."""

PROFILE_SUMS_SCHEMA: dict[str, pl.DataType] = {
    "station_code": pl.String(),
    "weekday": pl.Int8(),
    "hour": pl.Int8(),
    "n": pl.UInt32(),
    "bikes_sum": pl.Int64(),
    "empty_n": pl.UInt32(),
    "full_n": pl.UInt32(),
}
"""Per station, local weekday and hour of one day: in-service origins, their bikes, empty and full."""

PROFILE_COLUMNS = ("profile_bikes", "profile_p_empty", "profile_p_full")


def _state() -> pl.Expr:
    return (
        pl.when(~pl.col("in_service").fill_null(False))
        .then(CLOSED)
        .when(pl.col("is_empty"))
        .then(EMPTY)
        .when(pl.col("is_full"))
        .then(FULL)
        .when(pl.col("is_nearly_empty"))
        .then(NEARLY_EMPTY)
        .when(pl.col("is_nearly_full"))
        .then(NEARLY_FULL)
        .otherwise(OK)
        .cast(pl.Int8)
    )


CONTENT = ("station_code", "bikes", "docks", "in_service")
"""What a capture says of a station. Not its report time: the Opendatasoft dataset was seen moving
report times for hours while every count stood still, which no live network does for 15 minutes."""


def fresh_captures(rows: pl.DataFrame) -> pl.DataFrame:
    """`rows` without the captures that repeat the capture before them for every station.

    A repeat is not a new observation: the feed answered with data it had already given (the
    Opendatasoft dataset stays unrefreshed for minutes, sometimes hours). Kept, a repeat would be
    read as "nothing changed since": across a frozen hour, every target would equal its origin,
    a future that persistence predicts by construction. Dropped, a station's last observation is
    the first capture of the repeated content, so a repeat longer than MAX_GAP leaves the station
    unobserved, as a gap in the captures does.
    """
    digest = (
        rows.group_by("snapshot_ts")
        .agg(pl.struct(CONTENT).hash(seed=0).bitwise_xor().alias("_content"), pl.len().alias("_n"))
        .sort("snapshot_ts")
    )
    same = (pl.col("_content") == pl.col("_content").shift(1)) & (pl.col("_n") == pl.col("_n").shift(1))
    fresh = digest.filter(~same.fill_null(False)).select("snapshot_ts")
    return rows.join(fresh, on="snapshot_ts", how="semi")


def station_series(clean: pl.DataFrame, max_gap: timedelta) -> pl.DataFrame:
    """Each station's observations, in time order, with its state and when the state's run began.

    Captures that repeat the one before them are left out (`fresh_captures`). A run ends when the
    state changes or the station goes unobserved longer than MAX_GAP (nobody knows what happened in
    between). The run start is the first observation of the run, so it is known at every later
    observation of it: no look-ahead.
    """
    ts, code = pl.col("snapshot_ts"), pl.col("station_code")
    series = (
        fresh_captures(clean.select(SERIES_INPUT).filter(code.is_not_null() & ts.is_not_null()))
        .sort("station_code", "snapshot_ts")
        .with_columns(_state().alias("state"))
    )
    new_run = (
        (code != code.shift(1)) | (pl.col("state") != pl.col("state").shift(1)) | (ts - ts.shift(1) > max_gap)
    ).fill_null(True)
    return (
        series.with_columns(ts.first().over(new_run.cum_sum()).alias("run_start"))
        .select(
            "station_code",
            "snapshot_ts",
            "bikes",
            "docks",
            "in_service",
            "state",
            "run_start",
            "capacity",
            "name",
            "arrondissement",
            "commune",
            "code_insee",
        )
        .sort("snapshot_ts")
    )


def _asof(left: pl.DataFrame, series: pl.DataFrame, at: str, columns: dict[str, str], max_gap: timedelta):
    """`columns` of each station's last observation at or before `left[at]`, at most `max_gap` old.
    `series` comes from `station_series`, in time order."""
    right = series.select("station_code", pl.col("snapshot_ts").alias("_seen"), *columns).rename(columns)
    joined = left.sort(at).join_asof(
        right,
        left_on=at,
        right_on="_seen",
        by="station_code",
        strategy="backward",
        tolerance=max_gap,
        check_sortedness=False,
    )
    return joined.drop("_seen")


def features_at(series: pl.DataFrame, origins: Sequence[datetime], max_gap: timedelta) -> pl.DataFrame:
    """Every station observed within MAX_GAP before an origin, at each of `origins` (FEATURE_SCHEMA)."""
    grid = pl.DataFrame({"origin": list(origins)}, schema={"origin": UTC_TS}).unique()
    pairs = series.select("station_code").unique().join(grid, how="cross")
    now = {
        "snapshot_ts": "observed_at",
        "bikes": "bikes_now",
        "docks": "docks_now",
        "in_service": "in_service_now",
        "state": "state_now",
        "run_start": "run_start",
        "capacity": "capacity",
        "name": "name",
        "arrondissement": "arrondissement",
        "commune": "commune",
        "code_insee": "code_insee",
    }
    frame = _asof(pairs, series, "origin", now, max_gap).filter(pl.col("bikes_now").is_not_null())
    for minutes in DELTAS:
        frame = frame.with_columns((pl.col("origin") - timedelta(minutes=minutes)).alias("_back"))
        frame = _asof(frame, series, "_back", {"bikes": f"_bikes_{minutes}"}, max_gap)
        frame = frame.with_columns(
            (pl.col("bikes_now") - pl.col(f"_bikes_{minutes}")).alias(f"delta_{minutes}")
        )
    local = pl.col("origin").dt.convert_time_zone(PARIS.key)
    total = pl.col("bikes_now") + pl.col("docks_now")
    minutes_since = (pl.col("origin") - pl.col("run_start")).dt.total_seconds() / 60
    frame = frame.with_columns(
        district_label(pl.col("arrondissement"), pl.col("commune")).alias("district"),
        pl.col("code_insee").cast(pl.Int32, strict=False).alias("district_code"),
        total.alias("total_now"),
        pl.when(total > 0).then(pl.col("bikes_now") / total).alias("fill_now"),
        ((pl.col("origin") - pl.col("observed_at")).dt.total_seconds() / 60).alias("age_minutes"),
        minutes_since.clip(upper_bound=MINUTES_IN_STATE_CAP).alias("minutes_in_state"),
        (local.dt.hour() + local.dt.minute() / 60).cast(pl.Float64).alias("local_hour"),
        (local.dt.weekday() - 1).cast(pl.Int8).alias("weekday"),
    )
    return frame.select(pl.col(name).cast(dtype) for name, dtype in FEATURE_SCHEMA.items()).sort(
        "station_code", "origin"
    )


def add_targets(
    frame: pl.DataFrame, series: pl.DataFrame, max_gap: timedelta, until: datetime | None = None
) -> pl.DataFrame:
    """Each row's state `h` minutes after its origin (TARGET_SCHEMA); none at or after `until`.

    The state at `origin + h` is the station's last observation at or before it, at most MAX_GAP
    old, as the KPIs read it, and only when that observation came after the one the row's features
    saw: across a gap in the captures, "the same count later" would be the origin's own
    observation again, a target persistence gets right by construction."""
    for h in HORIZONS:
        at = pl.col("origin") + timedelta(minutes=h)
        frame = frame.with_columns(at.alias("_target"))
        frame = _asof(
            frame,
            series,
            "_target",
            {"bikes": f"bikes_{h}", "docks": f"docks_{h}", "state": f"_state_{h}", "snapshot_ts": "_seen_at"},
            max_gap,
        )
        stale = pl.col("_seen_at") <= pl.col("observed_at")
        beyond = stale if until is None else stale | (pl.col("_target") >= until)
        frame = frame.with_columns(
            pl.when(~beyond).then(pl.col(f"bikes_{h}")).alias(f"bikes_{h}"),
            pl.when(~beyond).then(pl.col(f"docks_{h}")).alias(f"docks_{h}"),
            pl.when(~beyond).then(pl.col(f"_state_{h}") == EMPTY).alias(f"empty_{h}"),
            pl.when(~beyond).then(pl.col(f"_state_{h}") == FULL).alias(f"full_{h}"),
        ).drop(f"_state_{h}", "_target", "_seen_at")
    return frame.sort("station_code", "origin")


def day_origins(day: date, step_minutes: int, first: datetime, last: datetime) -> list[datetime]:
    """Origins every `step_minutes` of the local day on the UTC clock, between `first` and `last`."""
    start, end = local_day_bounds(day)
    step = timedelta(minutes=step_minutes)
    origins, at = [], start
    while at < end:
        if first <= at <= last:
            origins.append(at)
        at += step
    return origins


def day_features(
    clean: pl.DataFrame, context: pl.DataFrame, day: date, step_minutes: int, max_gap: timedelta
) -> pl.DataFrame:
    """The feature rows of a local day with their targets (FEATURE_SCHEMA + TARGET_SCHEMA).

    `clean`: the day's clean rows; `context`: the day before's (only its last `CONTEXT` is read).
    """
    start, end = local_day_bounds(day)
    recent = context.select(SERIES_INPUT).filter(pl.col("snapshot_ts") >= start - CONTEXT)
    day_rows = clean.select(SERIES_INPUT).filter(pl.col("snapshot_ts").is_between(start, end, closed="left"))
    if day_rows.is_empty():
        return pl.DataFrame(schema={**FEATURE_SCHEMA, **TARGET_SCHEMA})
    series = station_series(pl.concat([recent, day_rows]), max_gap)
    first, last = day_rows["snapshot_ts"].min(), day_rows["snapshot_ts"].max()
    origins = day_origins(day, step_minutes, first, last)  # type: ignore[arg-type]
    return add_targets(features_at(series, origins, max_gap), series, max_gap, until=end)


def profile_sums(features: pl.DataFrame) -> pl.DataFrame:
    """A day's contribution to the hour-of-week profile, from its in-service origins."""
    return (
        features.filter(pl.col("in_service_now"))
        .group_by("station_code", "weekday", pl.col("local_hour").floor().cast(pl.Int8).alias("hour"))
        .agg(
            pl.len().alias("n"),
            pl.col("bikes_now").cast(pl.Int64).sum().alias("bikes_sum"),
            (pl.col("state_now") == EMPTY).sum().alias("empty_n"),
            (pl.col("state_now") == FULL).sum().alias("full_n"),
        )
        .select(pl.col(name).cast(dtype) for name, dtype in PROFILE_SUMS_SCHEMA.items())
        .sort("station_code", "weekday", "hour")
    )


def profile_of(sums: Sequence[pl.DataFrame]) -> dict[str, pl.DataFrame]:
    """The profile of past days: per station at a local weekday and hour, and, where that weekday
    was never seen, at the hour over all weekdays; then over the whole day."""
    every = (
        pl.concat([s.select(list(PROFILE_SUMS_SCHEMA)) for s in sums])
        if sums
        else pl.DataFrame(schema=PROFILE_SUMS_SCHEMA)
    )

    def fold(keys: list[str]) -> pl.DataFrame:
        return (
            every.group_by(keys)
            .agg(
                (pl.col("bikes_sum").sum() / pl.col("n").sum()).alias("profile_bikes"),
                (pl.col("empty_n").sum() / pl.col("n").sum()).alias("profile_p_empty"),
                (pl.col("full_n").sum() / pl.col("n").sum()).alias("profile_p_full"),
            )
            .sort(keys)
        )

    return {
        "week": fold(["station_code", "weekday", "hour"]),
        "day": fold(["station_code", "hour"]),
        "station": fold(["station_code"]),
    }


def with_profile(frame: pl.DataFrame, profile: dict[str, pl.DataFrame], minutes_ahead: int) -> pl.DataFrame:
    """Add the profile at each row's origin + `minutes_ahead` (`PROFILE_COLUMNS`), hour-of-week first,
    falling back to the hour of any weekday, then to the station's mean."""
    local = (pl.col("origin") + timedelta(minutes=minutes_ahead)).dt.convert_time_zone(PARIS.key)
    keyed = frame.with_columns(
        (local.dt.weekday() - 1).cast(pl.Int8).alias("_weekday"), local.dt.hour().cast(pl.Int8).alias("_hour")
    )
    levels = (
        ("week", {"weekday": "_weekday", "hour": "_hour"}),
        ("day", {"hour": "_hour"}),
        ("station", {}),
    )
    for level, renames in levels:
        table = profile[level].rename({**renames, **{c: f"{c}_{level}" for c in PROFILE_COLUMNS}})
        keyed = keyed.join(table, on=["station_code", *renames.values()], how="left", maintain_order="left")
    return keyed.with_columns(
        pl.coalesce(f"{c}_week", f"{c}_day", f"{c}_station").alias(c) for c in PROFILE_COLUMNS
    ).drop("_weekday", "_hour", *(f"{c}_{level}" for c in PROFILE_COLUMNS for level, _ in levels))
