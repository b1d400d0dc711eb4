"""What every implementation is asked to do, and the child-process plumbing they share.

Each implementation runs as `python -m benchmarks.<impl> --data-dir D --start S --days N --out F` in
its own process, so the parent measures that process tree's memory alone. It reads the raw lake
partitions of the local days [S, S + N), writes its rankings to F (Parquet) and prints one JSON line
with the time spent between its imports being done and its rankings being written.
"""

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import polars as pl

from benchmarks.generate import RAW_ASSET, local_day_window
from velib_assets import lake
from velib_assets.settings import KpiThresholds

RANKING_COLUMNS = (
    "day",
    "rank",
    "station_code",
    "in_service_minutes",
    "empty_minutes",
    "full_minutes",
    "critical_minutes",
    "longest_empty_streak_minutes",
    "longest_full_streak_minutes",
)
"""The columns all three implementations produce and the agreement check compares."""


@dataclass(frozen=True)
class Workload:
    data_dir: Path
    start: date
    days: int

    @property
    def day_list(self) -> list[date]:
        return [self.start + timedelta(days=d) for d in range(self.days)]

    def hour_starts(self, day: date) -> list:
        begin, end = local_day_window(day)
        return [begin + timedelta(hours=h) for h in range(int((end - begin).total_seconds() // 3600))]

    def raw_files(self, day: date) -> list[Path]:
        """The day's raw hour partitions that exist (an hour never captured is simply absent)."""
        dirs = [lake.hour_dir(self.data_dir / "lake", RAW_ASSET, h) for h in self.hour_starts(day)]
        return lake.existing_files(dirs)

    def all_raw_files(self) -> list[Path]:
        return [path for day in self.day_list for path in self.raw_files(day)]


def thresholds() -> KpiThresholds:
    return KpiThresholds.from_env()


def parse_args(argv: list[str] | None = None) -> tuple[Workload, Path]:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--start", type=date.fromisoformat, required=True)
    parser.add_argument("--days", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    return Workload(args.data_dir, args.start, args.days), args.out


def run_child(compute: Callable[[Workload], pl.DataFrame], argv: list[str] | None = None) -> None:
    """Time `compute` on the workload, write its rankings and print the timing as one JSON line."""
    workload, out = parse_args(argv)
    began = time.perf_counter()
    rankings = compute(workload)
    out.parent.mkdir(parents=True, exist_ok=True)
    rankings.select(RANKING_COLUMNS).write_parquet(out)
    wall = time.perf_counter() - began
    sys.stdout.write(json.dumps({"wall_s": wall, "ranking_rows": rankings.height}) + "\n")
