"""Materialize every asset for a range of local days, through Dagster, as single-run backfills.

Used by `velib run`, `make demo` and the benchmarks: the same definitions and instance as the UI,
so every partition and check result shows up in `dagster dev` afterwards.
"""

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import dagster as dg

from velib_assets import lake, landing
from velib_assets.definitions import defs
from velib_assets.defs.ingestion import velib_landing
from velib_assets.defs.jobs import daily_rankings_job, hourly_snapshots_job, serving_job
from velib_assets.defs.partitions import hour_key
from velib_assets.defs.staging import REFERENCE
from velib_assets.kpis.rankings import local_day_bounds
from velib_assets.settings import data_dir

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@dataclass(frozen=True)
class StageResult:
    name: str
    run_id: str
    success: bool
    seconds: float


def instance_for_cli() -> dg.DagsterInstance:
    """The instance under `DAGSTER_HOME` (`./.dagster_home` when unset), created on first use with
    the project's `./dagster.yaml` when there is one, as `make dev` does."""
    home = Path(os.environ.get("DAGSTER_HOME") or ".dagster_home").expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True)
    config = Path("dagster.yaml")
    if config.is_file() and not (home / "dagster.yaml").exists():
        (home / "dagster.yaml").write_text(config.read_text())
    os.environ["DAGSTER_HOME"] = str(home)
    return dg.DagsterInstance.get()


def report_landed(instance: dg.DagsterInstance, captures: list[landing.Capture]) -> None:
    """Record imported captures as events of `velib_landing`, one per hour, as the sensor does."""
    by_hour: dict[str, list[landing.Capture]] = {}
    for capture in captures:
        by_hour.setdefault(hour_key(capture.capture_time), []).append(capture)
    for key, landed in sorted(by_hour.items()):
        instance.report_runless_asset_event(
            dg.AssetMaterialization(
                asset_key=velib_landing.key,
                partition=key,
                metadata={"captures_imported": len(landed), "newest": landed[-1].path.name},
            )
        )


def range_tags(first: str, last: str) -> dict[str, str]:
    return {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}


def hour_range(first: date, last: date) -> tuple[str, str]:
    start, _ = local_day_bounds(first)
    _, end = local_day_bounds(last)
    return hour_key(start), hour_key(end - timedelta(hours=1))


def run_days(
    first: date,
    last: date,
    instance: dg.DagsterInstance,
    progress: Callable[[str], None] = print,
    views: bool = True,
) -> list[StageResult]:
    """Hourly chain, then daily marts and reports, then the DuckDB views: one run each."""
    if last < first:
        raise ValueError(f"--to {last} is before --from {first}")
    stages: list[tuple[str, dg.JobDefinition | None, dict[str, str]]] = []
    if not (data_dir() / "lake" / REFERENCE / lake.PART_FILE).is_file():
        stages.append(("station_reference", None, {}))
    stages += [
        (
            "hourly chain " + " .. ".join(hour_range(first, last)),
            defs.resolve_job_def(hourly_snapshots_job.name),
            range_tags(*hour_range(first, last)),
        ),
        (
            f"daily marts {first} .. {last}",
            defs.resolve_job_def(daily_rankings_job.name),
            range_tags(first.isoformat(), last.isoformat()),
        ),
    ]
    if views:
        stages.append(("duckdb views", defs.resolve_job_def(serving_job.name), {}))
    results = []
    for name, job, tags in stages:
        progress(f"[{len(results) + 1}/{len(stages)}] {name} ...")
        started = time.perf_counter()
        if job is None:
            outcome = dg.materialize(
                [defs.get_assets_def(REFERENCE)],
                instance=instance,
                resources=defs.resources,
                run_config=QUIET,
                raise_on_error=False,
            )
        else:
            outcome = job.execute_in_process(
                instance=instance, tags=tags, run_config=QUIET, raise_on_error=False
            )
        result = StageResult(name, outcome.run_id, outcome.success, time.perf_counter() - started)
        progress(
            f"      {'done' if result.success else 'FAILED'} in {result.seconds:.1f} s "
            f"(run {result.run_id[:8]})"
        )
        results.append(result)
        if not result.success:
            break
    return results
