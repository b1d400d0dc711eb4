"""The day's most critical stations: longest time empty or full while in service (DESIGN §3)."""

from datetime import UTC, date, datetime, time, timedelta

import polars as pl

from velib_assets.kpis.occupancy import STREAK_STATES, US_PER_MINUTE
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


def local_day_bounds(day: date) -> tuple[datetime, datetime]:
    """UTC `[start, end)` of a Europe/Paris day: 23, 24 or 25 hours long."""
    start = datetime.combine(day, time(), tzinfo=PARIS)
    end = datetime.combine(day + timedelta(days=1), time(), tzinfo=PARIS)
    return start.astimezone(UTC), end.astimezone(UTC)


def _longest_streaks(hours: pl.LazyFrame, thresholds: KpiThresholds) -> pl.LazyFrame:
    """Per station, the day's longest empty and full streak in minutes, from its hourly rows.

    A streak continues from one station-hour into the station's next one when the first ends on it
    (`trailing_*`), the next starts on it (`leading_*`) and their observations are at most MAX_GAP
    apart. Hours that are one streak from end to end (`leading_* = observed_minutes`) pass it on
    whole, so a chain of such hours is summed as one group: its first hour brings the streak it
    inherits, every hour adds its leading streak. The longest streak is then the largest of these
    chains, of the trailing streaks and of each hour's own longest streak. Minutes are turned back
    into whole microseconds, so the sums are exact.
    """
    code, first_ts, last_ts = pl.col("station_code"), pl.col("first_snapshot_ts"), pl.col("last_snapshot_ts")
    ordered = hours.sort("station_code", "hour_start")
    observed = _us("observed_minutes")
    longest = []
    for state in STREAK_STATES:
        leading, trailing = _us(f"leading_{state}_minutes"), _us(f"trailing_{state}_minutes")
        whole = (leading > 0) & (leading == observed)
        continues = (
            (code == code.shift(1))
            & (trailing.shift(1) > 0)
            & (leading > 0)
            & (first_ts - last_ts.shift(1) <= thresholds.max_gap)
        ).fill_null(False)
        passes_whole = continues & whole.shift(1).fill_null(False)
        inherited = pl.when(continues & ~passes_whole).then(trailing.shift(1)).otherwise(0)
        # Shifts first, over the whole frame: inside `.over()` they would only see their own group.
        ordered = ordered.with_columns(
            (inherited + leading).alias("_adds"), (~passes_whole).cum_sum().alias("_chain")
        ).with_columns(
            pl.max_horizontal(
                pl.col("_adds").sum().over("_chain"), trailing, _us(f"longest_{state}_streak_minutes")
            ).alias(f"_{state}_us")
        )
        longest.append(
            (pl.col(f"_{state}_us").max() / US_PER_MINUTE).alias(f"longest_{state}_streak_minutes")
        )
    return ordered.group_by("station_code").agg(longest)


def _us(minutes: str) -> pl.Expr:
    """Hourly minutes are whole microseconds divided by 60e6: back to integers, sums are exact."""
    return (pl.col(minutes) * US_PER_MINUTE).round().cast(pl.Int64)


def critical_station_rankings(
    occupancy: pl.DataFrame | pl.LazyFrame, day: date, thresholds: KpiThresholds
) -> pl.DataFrame:
    """Rank the stations of local `day` by minutes empty or full while in service.

    `occupancy` holds hourly station rows (any range: the day's hours are picked by `hour_start`).
    Rank ties break on empty minutes then code; stations never in service that day are left out.
    """
    start, end = local_day_bounds(day)
    hours = occupancy.lazy().filter((pl.col("hour_start") >= start) & (pl.col("hour_start") < end))
    # Integer sums make stations with equal totals really tie, so the documented tie-breaks decide.
    totals = (
        hours.group_by("station_code")
        .agg(
            *(_us(c).sum().alias(f"_{c}_us") for c in SUMMED),
            pl.col("district").sort_by("hour_start").drop_nulls().last(),
            pl.col("name").sort_by("hour_start").drop_nulls().last(),
        )
        .filter(pl.col("_in_service_minutes_us") > 0)
        .with_columns(
            (pl.col("_empty_minutes_us") + pl.col("_full_minutes_us")).alias("_critical_minutes_us")
        )
    )
    streak_columns = ["longest_empty_streak_minutes", "longest_full_streak_minutes"]
    ranked = (
        totals.join(_longest_streaks(hours, thresholds), on="station_code", how="left")
        .sort("_critical_minutes_us", "_empty_minutes_us", "station_code", descending=[True, True, False])
        .with_row_index("rank", offset=1)
        .with_columns(
            pl.col(streak_columns).fill_null(0.0),
            *((pl.col(f"_{c}_us") / US_PER_MINUTE).alias(c) for c in (*SUMMED, "critical_minutes")),
            pl.lit(day, pl.Date).alias("day"),
        )
    )
    return ranked.select(pl.col(name).cast(dtype) for name, dtype in RANKINGS_SCHEMA.items()).collect()
