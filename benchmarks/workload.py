"""What every implementation is asked to do, the tables it writes, and the child-process plumbing.

Each implementation runs as `python -m benchmarks.<impl> --data-dir D --start S --days N --out O` in
its own process, so the parent measures that process tree's memory alone. It reads the raw hour files
of the local days [S, S + N) from the lake, writes the four tables of `TABLES` under O in the lake's
layout (`O/<table>/day=YYYY-MM-DD/part.parquet`) and prints one JSON line with the time spent
between its imports being done and its last table being written.
"""

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from benchmarks.generate import RAW_ASSET
from velib_assets import lake
from velib_assets.kpis.clean import CLEAN_SCHEMA
from velib_assets.kpis.occupancy import MINUTE_COLUMNS
from velib_assets.settings import KpiThresholds

CLEAN = "clean_stations"
STATION_OCCUPANCY = "station_occupancy"
DISTRICT_OCCUPANCY = "district_occupancy"
RANKINGS = "critical_station_rankings"


@dataclass(frozen=True)
class Table:
    """A table every implementation writes: its key, and the other columns compared across them."""

    keys: tuple[str, ...]
    columns: tuple[str, ...]


_CLEAN_KEYS = ("station_code", "snapshot_ts")
TABLES: dict[str, Table] = {
    CLEAN: Table(_CLEAN_KEYS, tuple(c for c in CLEAN_SCHEMA if c not in _CLEAN_KEYS)),
    STATION_OCCUPANCY: Table(
        ("station_code", "hour_start"),
        ("name", "district", *MINUTE_COLUMNS, "mean_fill_rate", "min_bikes", "max_bikes", "min_docks",
         "max_docks", "mean_ebike", "snapshots"),
    ),
    DISTRICT_OCCUPANCY: Table(
        ("district", "hour_start"), ("stations", *MINUTE_COLUMNS, "mean_fill_rate", "mean_ebike", "snapshots")
    ),
    RANKINGS: Table(
        ("day", "station_code"),
        ("rank", "name", "district", "in_service_minutes", "empty_minutes", "full_minutes",
         "critical_minutes", "longest_empty_streak_minutes", "longest_full_streak_minutes"),
    ),
}
"""DESIGN §3's columns of each table. The project's occupancy rows also carry the per-hour streak
summaries its rankings chain (`first_snapshot_ts`, `leading_*`, ...): an implementation detail, not
compared."""


@dataclass(frozen=True)
class Workload:
    data_dir: Path
    start: date
    days: int

    @property
    def day_list(self) -> list[date]:
        return [self.start + timedelta(days=d) for d in range(self.days)]

    def raw_files(self, day: date) -> list[Path]:
        """The day's raw hour files, in time order (an hour never captured is simply absent)."""
        return lake.hour_files(self.data_dir / "lake", RAW_ASSET, day)


def table_file(out: Path, table: str, day: date) -> Path:
    """Where an implementation writes a day of `table` under its output folder `out`."""
    return lake.day_dir(out, table, day) / lake.PART_FILE


def thresholds() -> KpiThresholds:
    return KpiThresholds.from_env()


def parse_args(argv: list[str] | None = None) -> tuple[Workload, Path]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--start", type=date.fromisoformat, required=True)
    parser.add_argument("--days", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True, help="folder the tables are written under")
    args = parser.parse_args(argv)
    return Workload(args.data_dir, args.start, args.days), args.out


def run_child(compute: Callable[[Workload, Path], None], argv: list[str] | None = None) -> None:
    """Time `compute` writing its tables under `--out` and print the timing as one JSON line."""
    workload, out = parse_args(argv)
    began = time.perf_counter()
    compute(workload, out)
    wall = time.perf_counter() - began
    sys.stdout.write(json.dumps({"wall_s": wall}) + "\n")
