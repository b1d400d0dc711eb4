"""The project's own pipeline on the benchmark lake: clean -> occupancy -> rankings over the whole range.

`VELIB_DATA_DIR` points at the benchmark data dir, whose lake already holds the raw partitions, so
"lake to rankings" is exactly the derived assets.
"""

import os
import sys
from datetime import timedelta

import polars as pl

from benchmarks.workload import Workload, run_child, thresholds
from velib_assets import lake
from velib_assets.kpis import (
    clean_snapshots,
    critical_station_rankings,
    district_occupancy,
    station_occupancy,
)
from velib_assets.reference import load_bundled_reference

HOUR = timedelta(hours=1)


def kpis_per_partition(workload: Workload) -> pl.DataFrame:
    """The assets' work, partition by partition, calling the `velib_assets.kpis` functions directly."""
    root = workload.data_dir / "lake"
    reference = load_bundled_reference()
    limits = thresholds()
    days = []
    for day in workload.day_list:
        for hour in workload.hour_starts(day):
            raw = lake.scan([lake.hour_dir(root, "raw_station_snapshots", hour)], {}).collect()
            result = clean_snapshots(raw, reference, limits)
            lake.write_parquet(result.clean, lake.hour_dir(root, "clean_stations", hour))
            lake.write_parquet(result.quarantine, lake.hour_dir(root, "quarantine", hour))
            occupancy = station_occupancy(result.clean, hour, hour + HOUR, limits)
            lake.write_parquet(occupancy, lake.hour_dir(root, "station_occupancy", hour))
            lake.write_parquet(district_occupancy(occupancy), lake.hour_dir(root, "district_occupancy", hour))
        hours = workload.hour_starts(day)
        clean = lake.scan([lake.hour_dir(root, "clean_stations", h) for h in hours], {})
        occupancy = lake.scan([lake.hour_dir(root, "station_occupancy", h) for h in hours], {})
        ranked = critical_station_rankings(occupancy, clean, day, limits)
        lake.write_parquet(ranked, lake.day_dir(root, "critical_station_rankings", day))
        days.append(ranked)
    return pl.concat(days)


def main() -> None:
    os.environ.setdefault("VELIB_DATA_DIR", sys.argv[sys.argv.index("--data-dir") + 1])
    run_child(kpis_per_partition)


if __name__ == "__main__":
    main()
