"""What Dagster's own bookkeeping costs the benchmark's backfill, with no data work at all.

The project's derived assets (same keys, daily partitions, backfill policies and check specs) with
bodies that only report their materializations and passing checks, run as the same single-run
backfill over the same range as `benchmarks.project`. Dagster records one planned and one
materialization event per asset and partition, so this is the floor under the project's figure that
no pipeline code can remove. `--instance` picks the storage that records them: `memory` (as
`benchmarks.project`), `sqlite` (a fresh local DAGSTER_HOME, as `velib run` and `dagster dev`) or
`postgres` (a fresh database on the server DAGSTER_POSTGRES_* name, as in production; dropped after).
The clock starts once the instance and its tables exist.

`python -m benchmarks.dagster_floor --start S --days N --instance I` prints one JSON line.
"""

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import psycopg2

from benchmarks.project import DERIVED_ASSETS, QUARANTINE

FLOOR_JOB = "floor_derived"


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

    originals = {defs.get_assets_def(key).node_def.name: defs.get_assets_def(key) for key in DERIVED_ASSETS}
    return dg.Definitions(
        assets=[_noop(assets_def) for assets_def in originals.values()],
        jobs=[dg.define_asset_job(FLOOR_JOB, selection=[*DERIVED_ASSETS, QUARANTINE])],
    )


def _postgres(dbname: str = "postgres") -> "psycopg2.extensions.connection":
    connection = psycopg2.connect(
        host=os.environ.get("DAGSTER_POSTGRES_HOST", "127.0.0.1"),
        port=int(os.environ.get("DAGSTER_POSTGRES_PORT", "5432")),
        user=os.environ.get("DAGSTER_POSTGRES_USER", "postgres"),
        password=os.environ.get("DAGSTER_POSTGRES_PASSWORD", ""),
        dbname=dbname,
        connect_timeout=5,
    )
    connection.autocommit = True
    return connection


@contextmanager
def instance_of(kind: str) -> Iterator[dg.DagsterInstance]:
    if kind == "memory":
        yield dg.DagsterInstance.ephemeral()
        return
    with tempfile.TemporaryDirectory(prefix="velib_floor_") as home:
        if kind == "sqlite":
            (Path(home) / "dagster.yaml").write_text("")
            yield dg.DagsterInstance.from_config(home)
            return
        database = f"velib_floor_{uuid.uuid4().hex[:12]}"
        with closing(_postgres()) as admin, admin.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{database}"')
        try:
            (Path(home) / "dagster.yaml").write_text(
                "storage:\n  postgres:\n    postgres_db:\n"
                + "".join(
                    f"      {key}: {{env: DAGSTER_POSTGRES_{env}}}\n"
                    for key, env in (("username", "USER"), ("password", "PASSWORD"), ("hostname", "HOST"))
                )
                + f"      db_name: {database}\n      port: {{env: DAGSTER_POSTGRES_PORT}}\n"
                "      scheme: postgresql+psycopg2\n"
            )
            with dg.DagsterInstance.from_config(home) as instance:
                yield instance
        finally:
            with closing(_postgres()) as admin, admin.cursor() as cursor:
                cursor.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def main(argv: list[str] | None = None) -> None:
    from velib_assets.pipeline import QUIET, range_tags

    parser = argparse.ArgumentParser()
    parser.add_argument("--start", type=date.fromisoformat, required=True)
    parser.add_argument("--days", type=int, required=True)
    parser.add_argument("--instance", choices=("memory", "sqlite", "postgres"), default="memory")
    args = parser.parse_args(argv)
    for key, default in (("HOST", "127.0.0.1"), ("PORT", "5432"), ("USER", "postgres"), ("PASSWORD", "")):
        os.environ.setdefault(f"DAGSTER_POSTGRES_{key}", default)
    first, last = args.start, args.start + timedelta(days=args.days - 1)
    definitions = floor_definitions()
    with instance_of(args.instance) as instance:
        began = time.perf_counter()
        definitions.resolve_job_def(FLOOR_JOB).execute_in_process(
            instance=instance,
            tags=range_tags(first.isoformat(), last.isoformat()),
            run_config=QUIET,
            raise_on_error=True,
        )
        wall = time.perf_counter() - began
    sys.stdout.write(json.dumps({"wall_s": round(wall, 3)}) + "\n")


if __name__ == "__main__":
    main()
