"""The project's own pipeline on the benchmark lake: a Dagster backfill of clean -> occupancy -> rankings.

`VELIB_DATA_DIR` points at the benchmark data dir, whose lake already holds the raw partitions, so
"lake to rankings" is exactly the derived assets: `clean_stations` (+ quarantine),
`station_occupancy`, `district_occupancy` over the range's hourly partitions in one run, then
`critical_station_rankings` over its daily partitions in one run. Two runs because Dagster runs one
partitions definition per run (hourly and daily cannot share one); each is a single-run backfill
of its whole range (`BackfillPolicy.single_run()`, partition-range tags), as `velib run` does it.
The definitions are loaded before the clock starts (measured on their own by `benchmarks.micro`).
`VELIB_BENCH_INSTANCE=sqlite` runs the same backfill on a SQLite instance instead of an in-memory one.
"""

import os
import sys
from datetime import date

import dagster as dg
import polars as pl

from benchmarks.workload import Workload, run_child

HOURLY_ASSETS = ("clean_stations", "station_occupancy", "district_occupancy")
DAILY_ASSETS = ("critical_station_rankings",)


def _benchmark_defs() -> dg.Definitions:
    """The project's definitions plus two jobs selecting only the derived assets (raw is given)."""
    from velib_assets.definitions import defs

    jobs = [
        dg.define_asset_job(
            "bench_hourly_derived",
            selection=dg.AssetSelection.assets(*HOURLY_ASSETS).required_multi_asset_neighbors(),
        ),
        dg.define_asset_job("bench_daily_rankings", selection=dg.AssetSelection.assets(*DAILY_ASSETS)),
    ]
    return dg.Definitions.merge(defs, dg.Definitions(jobs=jobs))


def backfill(workload: Workload, definitions: dg.Definitions) -> pl.DataFrame:
    from velib_assets import lake
    from velib_assets.pipeline import QUIET, hour_range, range_tags

    first, last = workload.day_list[0], workload.day_list[-1]
    # `memory`: Dagster's in-memory instance, so the figure is the pipeline's own cost; `sqlite`: the
    # instance under DAGSTER_HOME as `velib run` uses it, which adds the event log's disk writes.
    memory = os.environ.get("VELIB_BENCH_INSTANCE", "memory") == "memory"
    instance = dg.DagsterInstance.ephemeral() if memory else dg.DagsterInstance.get()
    for job_name, tags in (
        ("bench_hourly_derived", range_tags(*hour_range(first, last))),
        ("bench_daily_rankings", range_tags(first.isoformat(), last.isoformat())),
    ):
        outcome = definitions.resolve_job_def(job_name).execute_in_process(
            instance=instance, tags=tags, run_config=QUIET, raise_on_error=True
        )
        if not outcome.success:
            raise RuntimeError(f"{job_name} failed (run {outcome.run_id})")
    days: list[date] = workload.day_list
    files = lake.existing_files(lake.day_dir(workload.data_dir / "lake", DAILY_ASSETS[0], d) for d in days)
    return pl.read_parquet(files)


def main() -> None:
    os.environ.setdefault("VELIB_DATA_DIR", sys.argv[sys.argv.index("--data-dir") + 1])
    definitions = _benchmark_defs()
    run_child(lambda workload: backfill(workload, definitions))


if __name__ == "__main__":
    main()
