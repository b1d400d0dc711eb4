"""Synthetic clean station history with a known daily pattern, written where `clean_stations` writes.

Half the stations fill in the morning and empty in the evening, the other half the other way round
(a sine over the local day, its peak shifted by 0, 2 or 4 hours from station to station), with a
little noise; counts clip at 0 and at capacity, so stations sit empty and full for a while every
day, but never all at once: a network where no count moves is a feed repeating itself, and the
forecasts read it as no news (`features.fresh_captures`). Small enough for tests: 30 stations
every 5 minutes.
"""

import math
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from velib_assets import lake
from velib_assets.builds import CLEAN, SPELLS_FILE
from velib_assets.kpis.clean import CLEAN_SCHEMA
from velib_assets.kpis.rankings import local_day_bounds
from velib_assets.kpis.stations import split_clean
from velib_assets.settings import PARIS

CAPACITY = 20


def clean_day(
    day: date, stations: int = 30, cadence_minutes: int = 5, seed: int = 1, offset_minutes: int = 1
) -> pl.DataFrame:
    """A local day of clean rows (CLEAN_SCHEMA) for `stations` stations, captured `offset_minutes`
    after each multiple of the cadence (as real captures land a little after the minute)."""
    rng = np.random.default_rng([seed, day.toordinal()])
    start, end = local_day_bounds(day)
    times, at = [], start + timedelta(minutes=offset_minutes)
    while at < end:
        times.append(at)
        at += timedelta(minutes=cadence_minutes)
    rows = []
    for s in range(stations):
        phase = 12.0 * (s % 2) + 2.0 * (s // 2 % 3)
        for ts in times:
            local = ts.astimezone(PARIS)
            hour = local.hour + local.minute / 60
            level = 10 + 12 * math.sin(2 * math.pi * (hour - 9 - phase) / 24) + rng.integers(-1, 2)
            bikes = int(min(CAPACITY, max(0, round(level))))
            rows.append((ts, f"{16100 + s}", bikes, CAPACITY - bikes))
    frame = pl.DataFrame(rows, schema=["snapshot_ts", "station_code", "bikes", "docks"], orient="row")
    fill = pl.col("bikes") / CAPACITY
    full = frame.with_columns(
        pl.lit("Station").alias("name"),
        pl.lit(CAPACITY).alias("capacity"),
        pl.col("bikes").alias("mechanical"),
        pl.lit(0).alias("ebike"),
        pl.lit(True).alias("is_installed"),
        pl.lit(True).alias("is_renting"),
        pl.lit(True).alias("is_returning"),
        pl.lit("Paris").alias("commune"),
        pl.lit("75116").alias("code_insee"),
        pl.lit(16).alias("arrondissement"),
        pl.lit(False).alias("is_stale"),
        pl.lit(True).alias("in_service"),
        pl.lit("in_service").alias("status"),
        fill.alias("fill_rate"),
        (pl.col("bikes") == 0).alias("is_empty"),
        (pl.col("docks") == 0).alias("is_full"),
        (fill <= 0.1).alias("is_nearly_empty"),
        (fill >= 0.9).alias("is_nearly_full"),
        pl.lit(False).alias("capacity_mismatch"),
    )
    return full.select(
        (pl.col(c) if c in full.columns else pl.lit(None)).cast(t).alias(c) for c, t in CLEAN_SCHEMA.items()
    ).sort("station_code", "snapshot_ts")


def write_clean(lake_root: Path, day: date, clean: pl.DataFrame) -> None:
    """Write `clean` as the day's `clean_stations` partition (minutes and spells)."""
    minutes, spells = split_clean(clean)
    folder = lake.day_dir(lake_root, CLEAN, day)
    lake.write_parquet_file(spells, folder / SPELLS_FILE)
    lake.write_parquet(minutes, folder)


def write_history(lake_root: Path, first: date, days: int, stations: int = 30) -> list[date]:
    written = [first + timedelta(days=d) for d in range(days)]
    for day in written:
        write_clean(lake_root, day, clean_day(day, stations))
    return written
