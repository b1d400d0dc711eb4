"""Clean rows -> time-weighted occupancy per station and hour, then per district (DESIGN §3).

Observation i of a station lasts `min(t(i+1), t(i) + MAX_GAP, window_end) - t(i)`, t(i+1) being the
station's next observation in the same window: a missing capture does not stretch the previous one
past MAX_GAP, and nothing counts past the window's end (nor before the first observation in it).

A streak is a maximal run of a station's consecutive observations (by time, at most MAX_GAP apart)
that are all empty (resp. full); its length is the sum of their minutes. Each station-hour keeps its
longest streak and the streaks touching its first and last observation, so the daily rankings chain
hours into streaks from these rows alone (`kpis.rankings`), never re-reading the clean rows.
"""

from datetime import UTC, datetime, timedelta

import polars as pl

from velib_assets.schema import UTC_TS
from velib_assets.settings import KpiThresholds

HOUR = timedelta(hours=1)
US_PER_MINUTE = 60_000_000
UNKNOWN_DISTRICT = "Unknown"
WINDOW_ORDER = ("hour_start", "station_code", "snapshot_ts")
OCCUPANCY_INPUT = (
    "station_code",
    "snapshot_ts",
    "in_service",
    "is_empty",
    "is_full",
    "is_nearly_empty",
    "is_nearly_full",
    "fill_rate",
    "bikes",
    "docks",
    "ebike",
    "name",
    "commune",
    "arrondissement",
)
"""The clean columns occupancy reads: selecting them first keeps a day's worth of rows small."""

MINUTE_COLUMNS = (
    "observed_minutes",
    "in_service_minutes",
    "empty_minutes",
    "full_minutes",
    "nearly_empty_minutes",
    "nearly_full_minutes",
)
_FLAG_OF = {
    "in_service_minutes": "in_service",
    "empty_minutes": "is_empty",
    "full_minutes": "is_full",
    "nearly_empty_minutes": "is_nearly_empty",
    "nearly_full_minutes": "is_nearly_full",
}

STREAK_STATES = ("empty", "full")
STREAK_COLUMNS = tuple(
    f"{part}_{state}_{suffix}"
    for state in STREAK_STATES
    for part, suffix in (("leading", "minutes"), ("trailing", "minutes"), ("longest", "streak_minutes"))
)

STATION_OCCUPANCY_SCHEMA: dict[str, pl.DataType] = {
    "station_code": pl.String(),
    "hour_start": UTC_TS,
    "name": pl.String(),
    "district": pl.String(),
    **{name: pl.Float64() for name in MINUTE_COLUMNS},
    "mean_fill_rate": pl.Float64(),
    "min_bikes": pl.Int32(),
    "max_bikes": pl.Int32(),
    "min_docks": pl.Int32(),
    "max_docks": pl.Int32(),
    "mean_ebike": pl.Float64(),
    "snapshots": pl.UInt32(),
    "first_snapshot_ts": UTC_TS,
    "last_snapshot_ts": UTC_TS,
    **{name: pl.Float64() for name in STREAK_COLUMNS},
}
"""One row per station and window; `mean_fill_rate` is time-weighted, `mean_ebike` a plain mean of the
window's snapshots (e-bike counts only describe stock, not time spent in a state). `name` is the
station's latest name in the window. `leading_empty_minutes` is the empty streak that starts at the
window's first observation (0 when that one is not empty), `trailing_empty_minutes` the one that ends
at its last observation, `longest_empty_streak_minutes` the longest inside the window; the same for
full."""

OTHER, EMPTY, FULL = 0, 1, 2  # a station's state in a streak; in service it cannot be empty and full at once
_STATE_CODE = {"empty": EMPTY, "full": FULL}

DISTRICT_OCCUPANCY_SCHEMA: dict[str, pl.DataType] = {
    "district": pl.String(),
    "hour_start": UTC_TS,
    "stations": pl.UInt32(),
    **{name: pl.Float64() for name in MINUTE_COLUMNS},
    "mean_fill_rate": pl.Float64(),
    "mean_ebike": pl.Float64(),
    "snapshots": pl.UInt32(),
}
"""One row per district and window: minute sums, and means over the district's stations (each
station weighs the same, however many snapshots it sent)."""


def district_label(arrondissement: pl.Expr, commune: pl.Expr) -> pl.Expr:
    """Label `Paris 1er`, `Paris 16e` for arrondissements, else the commune, else `Unknown`."""
    suffix = pl.when(arrondissement == 1).then(pl.lit("er")).otherwise(pl.lit("e"))
    return (
        pl.when(arrondissement.is_not_null())
        .then(pl.concat_str(pl.lit("Paris "), arrondissement.cast(pl.String), suffix))
        .otherwise(commune.fill_null(UNKNOWN_DISTRICT))
    )


def _ahead(*names: str) -> pl.Expr:
    """Each row strictly after the previous one in lexicographic order of `names` (null on row 0)."""
    first, *rest = (pl.col(name) for name in names)
    after = first > first.shift(1)
    if rest:
        after = after | ((first == first.shift(1)) & _ahead(*names[1:]))
    return after


def _in_order(frame: pl.DataFrame, *names: str) -> bool:
    return frame.select(_ahead(*names).slice(1).all(ignore_nulls=False)).item() is True


def _window_ordered(frame: pl.DataFrame) -> pl.DataFrame:
    """Rows in (hour_start, station_code, snapshot_ts) order, sorting as little as the input allows.

    A range of clean partitions read in hour order is already in that order; one clean frame over
    several hours is in (station_code, snapshot_ts) order and needs only a stable sort on the hour.
    Either check is one vectorised pass, far cheaper than sorting string codes.
    """
    if _in_order(frame, *WINDOW_ORDER):
        return frame
    if _in_order(frame, "station_code", "snapshot_ts"):
        return frame.sort("hour_start", maintain_order=True)
    return frame.sort(*WINDOW_ORDER)


def with_observed_us(windowed: pl.DataFrame, max_gap: timedelta) -> pl.DataFrame:
    """Add `observed_us`, how long each observation counts (microseconds), to rows carrying
    `hour_start` and `window_end`.

    Integer durations make every sum exact, so hour-by-hour and all-at-once runs count the same
    microseconds (the minutes derived from them can still differ in the last bit: Polars' float
    division by a constant is not always correctly rounded). A re-run gives the same bits.
    The result is in (hour_start, station_code, snapshot_ts) order, so a station's next observation
    in its window is simply the next row when it has the same station and window.
    """
    ordered = _window_ordered(windowed)
    hour, code, ts = (pl.col(name) for name in WINDOW_ORDER)
    next_ts = pl.when((code == code.shift(-1)) & (hour == hour.shift(-1))).then(ts.shift(-1))
    end = pl.min_horizontal(next_ts, ts + max_gap, pl.col("window_end"))
    return ordered.with_columns((end - ts).dt.total_microseconds().alias("observed_us"))


def _streaks(weighted: pl.DataFrame, max_gap: timedelta) -> pl.LazyFrame:
    """Per station and window (`_group`, in row order): the leading, trailing and longest empty and
    full streaks (microseconds).

    Rows are in (hour, station, time) order, so runs are cut with neighbour comparisons only; the
    runs (far fewer than rows) are then summed from a running total of the weights.
    """
    group, ts = pl.col("_group"), pl.col("snapshot_ts")
    us, state = pl.col("observed_us"), pl.col("_state")
    starts = (
        (group != group.shift(1)) | (ts - ts.shift(1) > max_gap) | (state != state.shift(1))
    ).fill_null(True)
    runs = (
        weighted.lazy()
        .with_columns(
            pl.when(pl.col("is_full")).then(FULL).when(pl.col("is_empty")).then(EMPTY).otherwise(OTHER)
            .alias("_state"),
            (us.cum_sum() - us).alias("_us_before"),
        )
        .filter(starts)
        .select(
            "_group",
            state,
            (
                pl.col("_us_before").shift(-1, fill_value=weighted["observed_us"].sum())
                - pl.col("_us_before")
            ).alias("_us"),
        )
    )
    run_us = pl.col("_us")
    return runs.group_by("_group", maintain_order=True).agg(
        aggregate
        for name, value in _STATE_CODE.items()
        for aggregate in (
            pl.when(state.first() == value).then(run_us.first()).otherwise(0).alias(f"leading_{name}_us"),
            pl.when(state.last() == value).then(run_us.last()).otherwise(0).alias(f"trailing_{name}_us"),
            run_us.filter(state == value).max().fill_null(0).alias(f"longest_{name}_streak_us"),
        )
    )


def _aggregate(weighted: pl.DataFrame, max_gap: timedelta) -> pl.DataFrame:
    """One row per station and window, in (hour_start, station_code) order.

    The rows come in that order (`with_observed_us`), so each station-window is a run of rows: it is
    grouped by the run's number (sorted integers) rather than by hashing codes and timestamps, and
    its first and last rows are its first and last snapshots.
    """
    us = pl.col("observed_us")
    streaks_us = [name.removesuffix("minutes") + "us" for name in STREAK_COLUMNS]
    rate_us = pl.when(pl.col("fill_rate").is_not_null()).then(us).sum()
    grouped = weighted.with_columns(
        pl.struct("hour_start", "station_code").rle_id().set_sorted().alias("_group")
    )
    return (
        grouped.lazy()
        .group_by("_group", maintain_order=True)
        .agg(
            pl.col("station_code", "hour_start").first(),
            (us.sum() / US_PER_MINUTE).alias("observed_minutes"),
            *(
                (pl.when(pl.col(flag)).then(us).otherwise(0).sum() / US_PER_MINUTE).alias(name)
                for name, flag in _FLAG_OF.items()
            ),
            pl.when(rate_us > 0).then((us * pl.col("fill_rate")).sum() / rate_us).alias("mean_fill_rate"),
            pl.col("bikes").min().alias("min_bikes"),
            pl.col("bikes").max().alias("max_bikes"),
            pl.col("docks").min().alias("min_docks"),
            pl.col("docks").max().alias("max_docks"),
            pl.col("ebike").mean().alias("mean_ebike"),
            pl.len().alias("snapshots"),
            pl.col("name", "arrondissement", "commune").drop_nulls().last(),
            pl.col("snapshot_ts").first().alias("first_snapshot_ts"),
            pl.col("snapshot_ts").last().alias("last_snapshot_ts"),
        )
        .with_columns(district_label(pl.col("arrondissement"), pl.col("commune")).alias("district"))
        .join(_streaks(grouped, max_gap), on="_group", how="left", maintain_order="left")
        .with_columns(
            (pl.col(us_name) / US_PER_MINUTE).alias(name)
            for us_name, name in zip(streaks_us, STREAK_COLUMNS, strict=True)
        )
        .select(pl.col(name).cast(dtype) for name, dtype in STATION_OCCUPANCY_SCHEMA.items())
        .collect()
    )


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f"window bound {moment.isoformat()} has no time zone: pass an aware datetime")
    return moment.astimezone(UTC)


def station_occupancy(
    clean: pl.DataFrame | pl.LazyFrame,
    window_start: datetime,
    window_end: datetime,
    thresholds: KpiThresholds,
) -> pl.DataFrame:
    """Occupancy of each station observed in `[window_start, window_end)`; other rows are ignored."""
    start, end = _utc(window_start), _utc(window_end)
    windowed = (
        clean.lazy()
        .select(OCCUPANCY_INPUT)
        .filter((pl.col("snapshot_ts") >= start) & (pl.col("snapshot_ts") < end))
        .with_columns(
            pl.lit(start).cast(UTC_TS).alias("hour_start"), pl.lit(end).cast(UTC_TS).alias("window_end")
        )
        .collect()
    )
    return _aggregate(with_observed_us(windowed, thresholds.max_gap), thresholds.max_gap)


def hour_windows(rows: pl.LazyFrame) -> pl.DataFrame:
    """Tag rows with their UTC hour window: a Paris local hour is a UTC hour (whole-hour offsets)."""
    hour_start = pl.col("snapshot_ts").dt.truncate("1h")
    return rows.with_columns(
        hour_start.alias("hour_start"), (hour_start + HOUR).alias("window_end")
    ).collect()


def station_occupancy_hours(clean: pl.DataFrame | pl.LazyFrame, thresholds: KpiThresholds) -> pl.DataFrame:
    """`station_occupancy` of every hour present in `clean` at once (a single-run backfill)."""
    windowed = hour_windows(clean.lazy().select(OCCUPANCY_INPUT))
    return _aggregate(with_observed_us(windowed, thresholds.max_gap), thresholds.max_gap)


def district_occupancy(station_occupancy: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """Roll station rows up to districts: minute sums and station-weighted means.

    Float sums depend on the order they add up in, and a hash group-by adds a group's rows in an
    order that changes from run to run (a day's district means differed in the 17th digit between
    two identical runs). Sorted rows grouped by runs of equal keys add up in row order: a re-run
    gives the same bits."""
    return (
        station_occupancy.lazy()
        .sort("hour_start", "district", "station_code")
        .with_columns(pl.struct("hour_start", "district").rle_id().set_sorted().alias("_group"))
        .group_by("_group", maintain_order=True)
        .agg(
            pl.col("district", "hour_start").first(),
            pl.len().alias("stations"),
            *(pl.col(name).sum() for name in MINUTE_COLUMNS),
            pl.col("mean_fill_rate").mean(),
            pl.col("mean_ebike").mean(),
            pl.col("snapshots").sum(),
        )
        .select(pl.col(name).cast(dtype) for name, dtype in DISTRICT_OCCUPANCY_SCHEMA.items())
        .sort("hour_start", "district")
        .collect()
    )
