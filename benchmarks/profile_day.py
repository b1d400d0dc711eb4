"""Where one worker's time goes: the daily builds of one day of the benchmark lake, under cProfile.

Runs `builds.clean_day`, `builds.occupancy_day`, `builds.districts_day` and `builds.ranking_day` for
a day already generated (`make bench` first), in one process with a one-thread Polars pool, exactly
as a backfill worker runs them, and prints the milliseconds of the project's own functions and of
the Parquet reads and writes below them, then the process's peak RSS (a worker's share of the
backfill's memory). Then, without the profiler, the I/O any build of the clean table needs: reading
the day's raw hours and writing its clean rows (minute columns and spells), best of three passes.
The builds overwrite that day's derived partitions in the lake, which `benchmarks.run` clears anyway.

    POLARS_MAX_THREADS=1 .venv/bin/python -m benchmarks.profile_day [--day 2024-10-15]
"""

import argparse
import cProfile
import pstats
import resource
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl

from benchmarks.generate import DEFAULT_DATA_DIR
from velib_assets import builds, lake
from velib_assets.reference import load_bundled_reference
from velib_assets.settings import KpiThresholds

SHOWN = ("velib_assets/", "write_parquet", "read_parquet", "scan_parquet", "collect")
CADENCE_S = 60.0


def _best_ms(action: Callable[[], object], passes: int = 3) -> float:
    """Milliseconds of the fastest pass: the least disturbed by other guests of the host."""
    best = float("inf")
    for _ in range(passes):
        began = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - began)
    return best * 1000


def required_io(root: Path, day: date) -> tuple[float, float]:
    """Milliseconds to read the day's raw hour files, and to write its clean minutes and spells."""
    raw = lake.hour_files(root, builds.RAW, day)
    folder = lake.day_dir(root, builds.CLEAN, day)
    minutes, spells = pl.read_parquet(folder / lake.PART_FILE), pl.read_parquet(folder / builds.SPELLS_FILE)
    with tempfile.TemporaryDirectory() as scratch:
        target = Path(scratch)

        def write() -> None:
            lake.write_parquet_file(minutes, target / lake.PART_FILE)
            lake.write_parquet_file(spells, target / builds.SPELLS_FILE)

        return _best_ms(lambda: pl.read_parquet(raw)), _best_ms(write)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--day", type=date.fromisoformat, default=date(2024, 10, 15))
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    args = parser.parse_args(argv)
    root, day = args.data_dir / "lake", args.day
    if not lake.hour_files(root, builds.RAW, day):
        raise SystemExit(f"no raw hour files for {day} under {root}: generate them first (`make bench`)")
    reference, thresholds = load_bundled_reference(), KpiThresholds.from_env()
    profile = cProfile.Profile()
    profile.enable()
    builds.clean_day(root, reference, thresholds, day)
    builds.occupancy_day(root, thresholds, day)
    builds.districts_day(root, day)
    builds.ranking_day(root, args.data_dir / "landing", thresholds, CADENCE_S, datetime.now(UTC), day)
    profile.disable()
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    rows = sorted(
        ((cumulative, f"{file.split('site-packages/')[-1]}:{line} {name}")
         for (file, line, name), (_, _, _, cumulative, _) in stats.items()
         if any(part in file or part in name for part in SHOWN)),
        reverse=True,
    )
    print(f"ms for the day {day} (cumulative, one Polars thread)")
    for cumulative, where in rows[:30]:
        print(f"{cumulative * 1000:9.1f}  {where}")
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this process: {peak_mib:.0f} MiB")
    read, write = required_io(root, day)
    print(f"required I/O, ms for the day (no profiler, best of 3): read the raw hours {read:.0f}, "
          f"write its clean minutes and spells {write:.0f}")


if __name__ == "__main__":
    main()
