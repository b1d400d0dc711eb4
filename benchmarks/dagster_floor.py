"""What Dagster's own bookkeeping costs the benchmark's backfill, with no data work at all.

The project's derived assets (same keys, hourly and daily partitions, backfill policies and check
specs) with bodies that only report their materializations and passing checks, run as the same two
single-run backfills over the same range on an in-memory instance as `benchmarks.project`. Dagster
records one planned and one materialization event per asset and partition, so this is the floor
under the project's figure that no pipeline code can remove.

`python -m benchmarks.dagster_floor --start S --days N` prints one JSON line.
"""

import argparse
import json
import sys
import time
from datetime import date, timedelta

import dagster as dg

from benchmarks.project import DAILY_ASSETS, HOURLY_ASSETS


def _noop(assets_def: dg.AssetsDefinition) -> dg.AssetsDefinition:
    """`assets_def`'s specs and checks with a body that reports success and does nothing else."""
    specs, check_specs = list(assets_def.specs), list(assets_def.check_specs)

    @dg.multi_asset(
        name=f"{assets_def.node_def.name}_noop",
        specs=specs,
        check_specs=check_specs,
        partitions_def=assets_def.partitions_def,
        backfill_policy=assets_def.backfill_policy,
    )
    def noop():
        for spec in specs:
            yield dg.MaterializeResult(asset_key=spec.key, metadata={"dagster/row_count": 0})
        for check in check_specs:
            yield dg.AssetCheckResult(asset_key=check.asset_key, check_name=check.name, passed=True)

    return noop


def floor_definitions() -> dg.Definitions:
    from velib_assets.definitions import defs

    originals = {defs.get_assets_def(key).node_def.name: defs.get_assets_def(key)
                 for key in (*HOURLY_ASSETS, *DAILY_ASSETS)}
    return dg.Definitions(
        assets=[_noop(assets_def) for assets_def in originals.values()],
        jobs=[
            dg.define_asset_job("floor_hourly", selection=[*HOURLY_ASSETS, "clean_stations_quarantine"]),
            dg.define_asset_job("floor_daily", selection=list(DAILY_ASSETS)),
        ],
    )


def main(argv: list[str] | None = None) -> None:
    from velib_assets.pipeline import QUIET, hour_range, range_tags

    parser = argparse.ArgumentParser()
    parser.add_argument("--start", type=date.fromisoformat, required=True)
    parser.add_argument("--days", type=int, required=True)
    args = parser.parse_args(argv)
    first, last = args.start, args.start + timedelta(days=args.days - 1)
    definitions = floor_definitions()
    instance = dg.DagsterInstance.ephemeral()
    began = time.perf_counter()
    for job_name, tags in (
        ("floor_hourly", range_tags(*hour_range(first, last))),
        ("floor_daily", range_tags(first.isoformat(), last.isoformat())),
    ):
        definitions.resolve_job_def(job_name).execute_in_process(
            instance=instance, tags=tags, run_config=QUIET, raise_on_error=True
        )
    sys.stdout.write(json.dumps({"wall_s": round(time.perf_counter() - began, 3)}) + "\n")


if __name__ == "__main__":
    main()
