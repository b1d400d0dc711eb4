"""The project's own pipeline on the benchmark lake: one Dagster run of clean -> occupancy -> rankings.

`VELIB_DATA_DIR` points at the benchmark data dir, whose lake already holds the raw hour files, so
"lake to rankings" is exactly the derived assets: `clean_stations` (+ quarantine),
`station_occupancy`, `district_occupancy` and `critical_station_rankings`, all on the daily
partitions, as one single-run backfill of the whole range (`BackfillPolicy.single_run()`,
partition-range tags), as `velib run` does it. The definitions are loaded before the clock starts
(measured on their own by `benchmarks.micro`). `VELIB_BENCH_INSTANCE=sqlite` runs the same backfill on
the SQLite instance under `DAGSTER_HOME` instead of an in-memory one.

The derived assets' folders are then moved from the lake to `--out` (a rename on one file system),
where `benchmarks.run` compares them with the other implementations' tables.
"""

import os
import shutil
import sys
from pathlib import Path

import dagster as dg

from benchmarks.workload import CLEAN, DISTRICT_OCCUPANCY, RANKINGS, STATION_OCCUPANCY, Workload, run_child

DERIVED_ASSETS = (CLEAN, STATION_OCCUPANCY, DISTRICT_OCCUPANCY, RANKINGS)
QUARANTINE = "clean_stations_quarantine"
JOB = "bench_derived"


def _benchmark_defs() -> dg.Definitions:
    """The project's definitions plus a job of only the derived assets (raw is given)."""
    from velib_assets.definitions import defs

    selection = dg.AssetSelection.assets(*DERIVED_ASSETS).required_multi_asset_neighbors()
    return dg.Definitions.merge(defs, dg.Definitions(jobs=[dg.define_asset_job(JOB, selection=selection)]))


def backfill(workload: Workload, out: Path, definitions: dg.Definitions) -> None:
    from velib_assets.pipeline import QUIET, range_tags

    first, last = workload.day_list[0], workload.day_list[-1]
    # `memory`: Dagster's in-memory instance, so the figure is the pipeline's own cost; `sqlite`: the
    # instance under DAGSTER_HOME as `velib run` uses it, which adds the event log's disk writes.
    memory = os.environ.get("VELIB_BENCH_INSTANCE", "memory") == "memory"
    instance = dg.DagsterInstance.ephemeral() if memory else dg.DagsterInstance.get()
    outcome = definitions.resolve_job_def(JOB).execute_in_process(
        instance=instance,
        tags=range_tags(first.isoformat(), last.isoformat()),
        run_config=QUIET,
        raise_on_error=True,
    )
    if not outcome.success:
        raise RuntimeError(f"{JOB} failed (run {outcome.run_id})")
    out.mkdir(parents=True, exist_ok=True)
    for asset in (*DERIVED_ASSETS, QUARANTINE):
        shutil.move(workload.data_dir / "lake" / asset, out / asset)


def main() -> None:
    os.environ.setdefault("VELIB_DATA_DIR", sys.argv[sys.argv.index("--data-dir") + 1])
    definitions = _benchmark_defs()
    run_child(lambda workload, out: backfill(workload, out, definitions))


if __name__ == "__main__":
    main()
