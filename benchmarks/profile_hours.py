"""Where one worker's time goes: the hourly builds of one day of the benchmark lake, under cProfile.

Runs `builds.clean_hour`, `builds.occupancy_hour` and `builds.districts_hour` for the 24 hours of a
day already generated (`make bench` first), in one process with a one-thread Polars pool, exactly as
a backfill worker runs them, and prints the milliseconds per hour of the project's own functions and
of the Parquet reads and writes below them. Then, without the profiler, the I/O any build of the
clean table needs: reading each raw hour and writing its clean rows (best of three passes).

    POLARS_MAX_THREADS=1 .venv/bin/python -m benchmarks.profile_hours [--day 2024-10-15]
"""

import argparse
import cProfile
import pstats
import tempfile
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import TypeVar

import polars as pl

from benchmarks.generate import DEFAULT_DATA_DIR, local_day_window
from velib_assets import builds, lake
from velib_assets.reference import load_bundled_reference
from velib_assets.settings import KpiThresholds

T = TypeVar("T")
SHOWN = ("velib_assets/", "write_parquet", "read_parquet", "scan_parquet", "collect")


def _best_ms_per_item(action: Callable[[T], object], items: list[T], passes: int = 3) -> float:
    """Milliseconds per item of the fastest pass: the least disturbed by other guests of the host."""
    best = float("inf")
    for _ in range(passes):
        began = time.perf_counter()
        for item in items:
            action(item)
        best = min(best, time.perf_counter() - began)
    return best / len(items) * 1000


def required_io(root: Path, windows: list[builds.Window]) -> tuple[float, float]:
    """Milliseconds per hour to read the raw partition, and to write the clean one (as the lake does)."""
    raw = [lake.hour_dir(root, builds.RAW, w.start) / lake.PART_FILE for w in windows]
    clean = [pl.read_parquet(lake.hour_dir(root, builds.CLEAN, w.start) / lake.PART_FILE) for w in windows]
    with tempfile.TemporaryDirectory() as scratch:
        target = Path(scratch) / lake.PART_FILE
        write = _best_ms_per_item(lambda frame: lake.write_parquet_file(frame, target), clean)
    return _best_ms_per_item(pl.read_parquet, raw), write


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--day", type=date.fromisoformat, default=date(2024, 10, 15))
    args = parser.parse_args(argv)
    root = DEFAULT_DATA_DIR / "lake"
    begin, end = local_day_window(args.day)
    hours = int((end - begin).total_seconds() // 3600)
    windows = [
        builds.Window("", begin + timedelta(hours=h), begin + timedelta(hours=h + 1)) for h in range(hours)
    ]
    reference, thresholds = load_bundled_reference(), KpiThresholds.from_env()
    profile = cProfile.Profile()
    profile.enable()
    for window in windows:
        builds.clean_hour(root, reference, thresholds, window)
        builds.occupancy_hour(root, thresholds, window)
        builds.districts_hour(root, window)
    profile.disable()
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    rows = sorted(
        ((cumulative, f"{file.split('site-packages/')[-1]}:{line} {name}")
         for (file, line, name), (_, _, _, cumulative, _) in stats.items()
         if any(part in file or part in name for part in SHOWN)),
        reverse=True,
    )
    print(f"ms per hour over the {hours} hours of {args.day} (cumulative, one Polars thread)")
    for cumulative, where in rows[:30]:
        print(f"{cumulative / hours * 1000:8.2f}  {where}")
    read, write = required_io(root, windows)
    print(f"required I/O, ms per hour (no profiler, best of 3): read the raw hour {read:.1f}, "
          f"write its clean rows {write:.1f}")


if __name__ == "__main__":
    main()
