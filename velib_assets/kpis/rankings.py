"""The day's most critical stations: longest time empty or full while in service (DESIGN §3)."""

from datetime import UTC, date, datetime, time, timedelta

import polars as pl

from velib_assets.kpis.occupancy import hour_windows, with_observation_minutes
from velib_assets.settings import PARIS, KpiThresholds

RANKINGS_SCHEMA: dict[str, pl.DataType] = {
    "day": pl.Date(),
    "rank": pl.UInt32(),
    "station_code": pl.String(),
    "name": pl.String(),
    "district": pl.String(),
    "in_service_minutes": pl.Float64(),
    "empty_minutes": pl.Float64(),
    "full_minutes": pl.Float64(),
    "critical_minutes": pl.Float64(),
    "longest_empty_streak_minutes": pl.Float64(),
    "longest_full_streak_minutes": pl.Float64(),
}
"""One row per station in service at some point of the local day, ordered by rank (1 = most critical)."""


def local_day_bounds(day: date) -> tuple[datetime, datetime]:
    """UTC `[start, end)` of a Europe/Paris day: 23, 24 or 25 hours long."""
    start = datetime.combine(day, time(), tzinfo=PARIS)
    end = datetime.combine(day + timedelta(days=1), time(), tzinfo=PARIS)
    return start.astimezone(UTC), end.astimezone(UTC)


def _longest_streaks(rows: pl.DataFrame, thresholds: KpiThresholds) -> pl.LazyFrame:
    """Per station, the longest empty and the longest full streak in minutes.

    A streak is a maximal run of a station's consecutive observations (by snapshot_ts) that are all
    empty (resp. full), consecutive meaning at most MAX_GAP apart: a longer silence breaks the run.
    Its length is the sum of the observations' minutes, weighted as in the hourly occupancy, so a
    streak is never longer than the station's empty (resp. full) minutes and hour ends do not break it.
    """
    ts = pl.col("snapshot_ts")
    by_station = "station_code"
    gap_break = ((ts - ts.shift(1).over(by_station)) > thresholds.max_gap).fill_null(True)

    def run_id(flag: str) -> pl.Expr:
        changed = pl.col(flag).ne_missing(pl.col(flag).shift(1).over(by_station))
        return (gap_break | changed).cum_sum().over(by_station).alias(f"_{flag}_run")

    # rows come in (hour, station, time) order, so each station's rows are in time order for `over`
    runs = (
        with_observation_minutes(rows, thresholds.max_gap)
        .lazy()
        .with_columns(run_id("is_empty"), run_id("is_full"))
    )

    def longest(flag: str, name: str) -> pl.LazyFrame:
        return (
            runs.filter(pl.col(flag))
            .group_by(by_station, f"_{flag}_run")
            .agg(pl.col("minutes").sum())
            .group_by(by_station)
            .agg(pl.col("minutes").max().alias(name))
        )

    return longest("is_empty", "longest_empty_streak_minutes").join(
        longest("is_full", "longest_full_streak_minutes"), on=by_station, how="full", coalesce=True
    )


def critical_station_rankings(
    occupancy: pl.DataFrame | pl.LazyFrame,
    clean: pl.DataFrame | pl.LazyFrame,
    day: date,
    thresholds: KpiThresholds,
) -> pl.DataFrame:
    """Rank the stations of local `day` by minutes empty or full while in service.

    `occupancy` holds hourly station rows (any range: the day's hours are picked by `hour_start`);
    `clean` the day's clean rows, for names and streaks. Rank ties break on empty minutes then code.
    """
    start, end = local_day_bounds(day)
    totals = (
        occupancy.lazy()
        .filter((pl.col("hour_start") >= start) & (pl.col("hour_start") < end))
        .group_by("station_code")
        .agg(
            pl.col("in_service_minutes", "empty_minutes", "full_minutes").sum(),
            pl.col("district").sort_by("hour_start").drop_nulls().last(),
        )
        .filter(pl.col("in_service_minutes") > 0)
    )
    rows = hour_windows(
        clean.lazy()
        .select("station_code", "snapshot_ts", "name", "is_empty", "is_full")
        .filter((pl.col("snapshot_ts") >= start) & (pl.col("snapshot_ts") < end))
    )
    names = (
        rows.lazy().group_by("station_code").agg(pl.col("name").sort_by("snapshot_ts").drop_nulls().last())
    )
    streak_columns = ["longest_empty_streak_minutes", "longest_full_streak_minutes"]
    ranked = (
        totals.join(names, on="station_code", how="left")
        .join(_longest_streaks(rows, thresholds), on="station_code", how="left")
        .with_columns(
            pl.col(streak_columns).fill_null(0.0),
            (pl.col("empty_minutes") + pl.col("full_minutes")).alias("critical_minutes"),
            pl.lit(day, pl.Date).alias("day"),
        )
        .sort("critical_minutes", "empty_minutes", "station_code", descending=[True, True, False])
        .with_row_index("rank", offset=1)
    )
    return ranked.select(pl.col(name).cast(dtype) for name, dtype in RANKINGS_SCHEMA.items()).collect()
