"""The day's most critical stations: longest time empty or full while in service (DESIGN §3)."""

from datetime import UTC, date, datetime, time, timedelta

import polars as pl

from velib_assets.kpis.occupancy import US_PER_MINUTE, WINDOW_ORDER, hour_windows, with_observed_us
from velib_assets.settings import PARIS, KpiThresholds

SUMMED = ("in_service_minutes", "empty_minutes", "full_minutes")

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

OTHER, EMPTY, FULL = 0, 1, 2  # a station's state in a streak; in service it cannot be empty and full at once


def local_day_bounds(day: date) -> tuple[datetime, datetime]:
    """UTC `[start, end)` of a Europe/Paris day: 23, 24 or 25 hours long."""
    start = datetime.combine(day, time(), tzinfo=PARIS)
    end = datetime.combine(day + timedelta(days=1), time(), tzinfo=PARIS)
    return start.astimezone(UTC), end.astimezone(UTC)


def _longest_streaks(timed: pl.DataFrame, thresholds: KpiThresholds) -> pl.LazyFrame:
    """Per station, the longest empty and the longest full streak in minutes.

    A streak is a maximal run of a station's consecutive observations (by snapshot_ts) that are all
    empty (resp. full), consecutive meaning at most MAX_GAP apart: a longer silence breaks the run.
    Its length is the sum of the observations' minutes, weighted as in the hourly occupancy, so a
    streak is never longer than the station's empty (resp. full) minutes and hour ends do not break it.

    `timed` comes from `with_observed_us`, in (hour, station, time) order. Runs are first cut inside each
    (hour, station) block with neighbour comparisons only, then the resulting segments (far fewer
    than rows) are chained across hours per station: no sort on string codes over the day's rows.
    """
    gap = thresholds.max_gap
    hour, code, ts = (pl.col(name) for name in WINDOW_ORDER)
    us, state = pl.col("observed_us"), pl.col("_state")
    timed = timed.with_columns(
        pl.when(pl.col("is_full"))
        .then(FULL)
        .when(pl.col("is_empty"))
        .then(EMPTY)
        .otherwise(OTHER)
        .alias("_state")
    )
    starts = (
        (code != code.shift(1))
        | (hour != hour.shift(1))
        | (ts - ts.shift(1) > gap)
        | (state != state.shift(1))
    ).fill_null(True)
    segments = (
        timed.lazy()
        .with_columns((us.cum_sum() - us).alias("_us_before"), ts.shift(1).alias("_previous_ts"))
        .filter(starts)
        .select(
            code,
            state,
            ts.alias("_first_ts"),
            pl.col("_previous_ts").shift(-1, fill_value=timed["snapshot_ts"].last()).alias("_last_ts"),
            (
                pl.col("_us_before").shift(-1, fill_value=timed["observed_us"].sum()) - pl.col("_us_before")
            ).alias("_us"),
        )
    )
    continues = (state == state.shift(1).over(code)) & (
        pl.col("_first_ts") - pl.col("_last_ts").shift(1).over(code) <= gap
    )
    runs = (
        segments.with_columns((~continues.fill_null(False)).cum_sum().over(code).alias("_run"))
        .filter(state != OTHER)
        .group_by(code, state, "_run")
        .agg(pl.col("_us").sum())
    )
    return runs.group_by(code).agg(
        (pl.col("_us").filter(state == EMPTY).max() / US_PER_MINUTE).alias("longest_empty_streak_minutes"),
        (pl.col("_us").filter(state == FULL).max() / US_PER_MINUTE).alias("longest_full_streak_minutes"),
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
    # Hourly minutes are whole microseconds divided by 60e6: turning them back into integers makes the
    # daily sums exact, so stations with equal totals really tie and the documented tie-breaks decide.
    totals = (
        occupancy.lazy()
        .filter((pl.col("hour_start") >= start) & (pl.col("hour_start") < end))
        .group_by("station_code")
        .agg(
            *((pl.col(c) * US_PER_MINUTE).round().cast(pl.Int64).sum().alias(f"_{c}_us") for c in SUMMED),
            pl.col("district").sort_by("hour_start").drop_nulls().last(),
        )
        .filter(pl.col("_in_service_minutes_us") > 0)
        .with_columns(
            (pl.col("_empty_minutes_us") + pl.col("_full_minutes_us")).alias("_critical_minutes_us")
        )
    )
    rows = hour_windows(
        clean.lazy()
        .select("station_code", "snapshot_ts", "name", "is_empty", "is_full")
        .filter((pl.col("snapshot_ts") >= start) & (pl.col("snapshot_ts") < end))
    )
    timed = with_observed_us(rows, thresholds.max_gap)
    # In (hour, station, time) order a station's latest name ends one of its hour blocks: grouping
    # those few rows is far cheaper than sorting the day's rows by time within each station.
    hour, code = pl.col("hour_start"), pl.col("station_code")
    ends_block = ((code != code.shift(-1)) | (hour != hour.shift(-1))).fill_null(True)
    names = (
        timed.lazy()
        .filter(pl.col("name").is_not_null())
        .filter(ends_block)
        .group_by("station_code")
        .agg(pl.col("name").last())
    )
    streak_columns = ["longest_empty_streak_minutes", "longest_full_streak_minutes"]
    ranked = (
        totals.join(names, on="station_code", how="left")
        .join(_longest_streaks(timed, thresholds), on="station_code", how="left")
        .sort("_critical_minutes_us", "_empty_minutes_us", "station_code", descending=[True, True, False])
        .with_row_index("rank", offset=1)
        .with_columns(
            pl.col(streak_columns).fill_null(0.0),
            *((pl.col(f"_{c}_us") / US_PER_MINUTE).alias(c) for c in (*SUMMED, "critical_minutes")),
            pl.lit(day, pl.Date).alias("day"),
        )
    )
    return ranked.select(pl.col(name).cast(dtype) for name, dtype in RANKINGS_SCHEMA.items()).collect()
