"""Building one partition of a derived asset: read its inputs from the lake, transform, write, summarise.

Plain functions of paths and frames, without Dagster, so that the worker processes of a backfill
can run them (`velib_assets.workers`). The assets in `velib_assets.defs` check that the inputs
exist, fan the partitions out and report what comes back; each function returns only what the
report needs, so a month of rows never travels back to the run.
"""

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import polars as pl

from velib_assets import lake, quality
from velib_assets.coverage import DayCoverage, day_coverage
from velib_assets.kpis.clean import CLEAN_SCHEMA, clean_snapshots
from velib_assets.kpis.occupancy import (
    STATION_OCCUPANCY_SCHEMA,
    STREAK_COLUMNS,
    district_occupancy,
    station_occupancy,
)
from velib_assets.kpis.rankings import critical_station_rankings, local_day_bounds
from velib_assets.schema import RAW_SCHEMA
from velib_assets.settings import KpiThresholds

RAW = "raw_station_snapshots"
CLEAN = "clean_stations"
QUARANTINE = "clean_stations_quarantine"
STATION_OCCUPANCY = "station_occupancy"
DISTRICT_OCCUPANCY = "district_occupancy"
RANKINGS = "critical_station_rankings"
HOUR = timedelta(hours=1)

CLEAN_VERDICTS = (
    quality.clean_unique_keys,
    quality.clean_non_null_keys,
    quality.clean_counts_non_negative,
    quality.arrondissement_rule,
    quality.clean_bike_types_add_up,
    quality.clean_capacity_mismatch_share,
    quality.clean_stale_share,
    quality.clean_station_count,
)
"""The per-hour checks of `clean_stations`, in the order of its check specs."""


@dataclass(frozen=True)
class Window:
    """One hourly partition: its key and its UTC bounds."""

    key: str
    start: datetime
    end: datetime


@dataclass(frozen=True)
class CleanedHour:
    rows: int
    in_service: int
    stations: frozenset[str]
    reasons: dict[str, int]
    verdicts: list[quality.Verdict]
    preview: pl.DataFrame


def hours_between(start: datetime, end: datetime) -> list[datetime]:
    hours, hour = [], start
    while hour < end:
        hours.append(hour)
        hour += HOUR
    return hours


def day_hour_dirs(root: Path, asset: str, day: date) -> list[Path]:
    """The hourly partition folders of a local day (23, 24 or 25 of them)."""
    return [lake.hour_dir(root, asset, hour) for hour in hours_between(*local_day_bounds(day))]


def _hour(root: Path, asset: str, window: Window, schema: dict[str, pl.DataType]) -> pl.LazyFrame:
    return lake.scan([lake.hour_dir(root, asset, window.start)], schema)


def clean_hour(root: Path, reference: pl.DataFrame, thresholds: KpiThresholds, window: Window) -> CleanedHour:
    result = clean_snapshots(_hour(root, RAW, window, RAW_SCHEMA), reference, thresholds)
    lake.write_parquet(result.clean, lake.hour_dir(root, CLEAN, window.start))
    lake.write_parquet(result.quarantine, lake.hour_dir(root, QUARANTINE, window.start))
    return CleanedHour(
        rows=result.clean.height,
        in_service=int(result.clean["in_service"].sum() or 0),
        stations=frozenset(result.clean["station_code"].unique().to_list()),
        reasons=dict(result.quarantine["reason"].value_counts().iter_rows()),
        verdicts=[verdict(result.clean) for verdict in CLEAN_VERDICTS],
        preview=result.clean.head(10),
    )


def occupancy_hour(root: Path, thresholds: KpiThresholds, window: Window) -> pl.DataFrame:
    clean = _hour(root, CLEAN, window, CLEAN_SCHEMA)
    occupancy = station_occupancy(clean, window.start, window.end, thresholds)
    lake.write_parquet(occupancy, lake.hour_dir(root, STATION_OCCUPANCY, window.start))
    return occupancy


def districts_hour(root: Path, window: Window) -> pl.DataFrame:
    stations = _hour(root, STATION_OCCUPANCY, window, STATION_OCCUPANCY_SCHEMA)
    districts = district_occupancy(stations).sort("district")
    lake.write_parquet(districts, lake.hour_dir(root, DISTRICT_OCCUPANCY, window.start))
    return districts


def occupancy_without_streaks(root: Path, day: date) -> Path | None:
    """The first hour of the day's station_occupancy written before it kept the streak summaries the
    rankings chain (an older layout of the asset), if any."""
    for path in lake.existing_files(day_hour_dirs(root, STATION_OCCUPANCY, day)):
        if not set(STREAK_COLUMNS) <= set(pl.read_parquet_schema(path)):
            return path.parent.relative_to(root)
    return None


@dataclass(frozen=True)
class RankedDay:
    ranking: pl.DataFrame
    hours_with_occupancy: int
    coverage: DayCoverage


def ranking_day(
    root: Path, landing_root: Path, thresholds: KpiThresholds, cadence_s: float, day: date
) -> RankedDay:
    """The day's ranking, how many of its hours had occupancy (hours never captured have none: the
    day is ranked on the hours it has), and how much of the day the collection saw."""
    hours = day_hour_dirs(root, STATION_OCCUPANCY, day)
    occupancy = lake.scan(hours, STATION_OCCUPANCY_SCHEMA)
    ranking = critical_station_rankings(occupancy, day, thresholds)
    lake.write_parquet(ranking, lake.day_dir(root, RANKINGS, day))
    observed = occupancy.select("station_code", "observed_minutes").collect()
    coverage = day_coverage(landing_root, observed, day, cadence_s)
    return RankedDay(ranking, len(lake.existing_files(hours)), coverage)
