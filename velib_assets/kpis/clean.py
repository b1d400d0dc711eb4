"""Raw snapshots -> clean station rows and a quarantine, exactly as DESIGN §3 defines them.

One clean row per (station_code, snapshot_ts), metadata filled from the station reference, and the
derived service flags every KPI is built on. Rows that cannot be trusted at all go to the quarantine
with a reason instead of silently disappearing: every input row lands in exactly one of the two.
"""

from dataclasses import dataclass

import polars as pl

from velib_assets.reference import attach_reference
from velib_assets.schema import RAW_SCHEMA
from velib_assets.settings import KpiThresholds

ABSURD_COUNT = 1000
"""Counts above this are feed glitches (999999 docks has been seen): the largest Vélib' station has
well under 100 docks and the largest bike-share stations anywhere a few hundred."""

COUNT_COLUMNS = ("bikes", "docks", "mechanical", "ebike", "capacity")
KEY = ("station_code", "snapshot_ts")

CLEAN_SCHEMA: dict[str, pl.DataType] = {
    **{name: dtype for name, dtype in RAW_SCHEMA.items() if name != "source"},
    "arrondissement": pl.Int8(),
    "source": pl.String(),
    "is_stale": pl.Boolean(),
    "in_service": pl.Boolean(),
    "status": pl.String(),
    "fill_rate": pl.Float64(),
    "is_empty": pl.Boolean(),
    "is_full": pl.Boolean(),
    "is_nearly_empty": pl.Boolean(),
    "is_nearly_full": pl.Boolean(),
    "capacity_mismatch": pl.Boolean(),
}
"""Raw columns with metadata filled, plus `arrondissement` and the derived KPI flags."""

QUARANTINE_SCHEMA: dict[str, pl.DataType] = {**RAW_SCHEMA, "reason": pl.String()}
"""The rejected raw rows, untouched, with why they were rejected."""


@dataclass(frozen=True)
class CleanResult:
    clean: pl.DataFrame
    quarantine: pl.DataFrame


def _reason() -> pl.Expr:
    """First reason that disqualifies a row, null for a usable one.

    Rows without bikes or docks carry no availability at all: counting them as out of service would
    invent downtime, so they are quarantined and the previous observation covers the gap (up to MAX_GAP).
    """
    counts = [pl.col(c) for c in COUNT_COLUMNS]
    return (
        pl.when(pl.col("station_code").is_null() | (pl.col("station_code").str.strip_chars() == ""))
        .then(pl.lit("missing station_code"))
        .when(pl.col("snapshot_ts").is_null())
        .then(pl.lit("missing snapshot_ts"))
        .when(pl.col("bikes").is_null() | pl.col("docks").is_null())
        .then(pl.lit("missing count"))
        .when(pl.any_horizontal(c < 0 for c in counts))
        .then(pl.lit("negative count"))
        .when(pl.any_horizontal(c > ABSURD_COUNT for c in counts))
        .then(pl.lit("absurd count"))
        .otherwise(None)
        .alias("reason")
    )


def _usable_last_per_key(flagged: pl.DataFrame) -> pl.DataFrame:
    """The usable rows sorted by key, only each key's last one (the sort is stable, so input order
    decides among duplicates).

    Sorting and deduplicating a narrow frame, then gathering the wide rows once, copies the raw
    columns once instead of three times (filter, sort, deduplicate). The narrow frame sorts on each
    code's rank among the hour's distinct codes (an integer: a string sort is twice as slow), and on
    the code alone when the rows already come in time order, as captures do.
    """
    usable = (
        flagged.select(*KEY, pl.col("reason").is_null().alias("_usable"))
        .with_row_index("_row")
        .filter(pl.col("_usable"))
    )
    codes = usable["station_code"]
    station = codes.cast(pl.Enum(codes.unique().sort())).to_physical().alias("_station")
    order = ["_station"] if usable["snapshot_ts"].is_sorted() else ["_station", "snapshot_ts"]
    rank, ts = pl.col("_station"), pl.col("snapshot_ts")
    is_last = ((rank != rank.shift(-1)) | (ts != ts.shift(-1))).fill_null(True)
    rows = usable.with_columns(station).sort(order, maintain_order=True).filter(is_last)["_row"]
    return flagged.drop("reason")[rows]


def _derived(thresholds: KpiThresholds) -> list[pl.Expr]:
    """The DESIGN §3 flags. A null `reported_at` is not stale (the feed simply did not say);
    null service booleans count as False; capacity 0 with bikes or docks is a mismatch."""
    total = pl.col("bikes") + pl.col("docks")
    is_stale = (pl.col("snapshot_ts") - pl.col("reported_at") > thresholds.stale_after).fill_null(False)
    installed = pl.col("is_installed").fill_null(False)
    in_service = (
        installed
        & pl.col("is_renting").fill_null(False)
        & pl.col("is_returning").fill_null(False)
        & ~is_stale
        & (total > 0)
    )
    fill_rate = pl.when(total > 0).then(pl.col("bikes") / total).otherwise(None)
    return [
        is_stale.alias("is_stale"),
        in_service.alias("in_service"),
        pl.when(~installed)
        .then(pl.lit("closed"))
        .when(~in_service)
        .then(pl.lit("out_of_service"))
        .otherwise(pl.lit("in_service"))
        .alias("status"),
        fill_rate.alias("fill_rate"),
        (in_service & (pl.col("bikes") == 0)).alias("is_empty"),
        (in_service & (pl.col("docks") == 0)).alias("is_full"),
        (in_service & (fill_rate <= thresholds.nearly_empty_rate)).alias("is_nearly_empty"),
        (in_service & (fill_rate >= thresholds.nearly_full_rate)).alias("is_nearly_full"),
        (total > pl.col("capacity")).fill_null(False).alias("capacity_mismatch"),
    ]


def clean_snapshots(
    raw: pl.DataFrame | pl.LazyFrame, reference: pl.DataFrame, thresholds: KpiThresholds
) -> CleanResult:
    """Split raw rows into clean rows and quarantine; both sorted by (station_code, snapshot_ts).

    Sorting makes re-runs byte-identical; it is cheap because it runs on one hour's rows at a time.
    """
    flagged = (
        raw.lazy()
        .select(pl.col(name).cast(dtype) for name, dtype in RAW_SCHEMA.items())
        .with_columns(_reason())
        .collect()
    )
    quarantine = (
        flagged.filter(pl.col("reason").is_not_null())
        .sort(*KEY, maintain_order=True)
        .select(pl.col(name).cast(dtype) for name, dtype in QUARANTINE_SCHEMA.items())
    )
    usable = _usable_last_per_key(flagged)
    clean = (
        attach_reference(usable, reference)
        .with_columns(_derived(thresholds))
        .select(pl.col(name).cast(dtype) for name, dtype in CLEAN_SCHEMA.items())
    )
    return CleanResult(clean=clean, quarantine=quarantine)
