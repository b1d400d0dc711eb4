"""Materialize every asset for a range of local days, through Dagster, as single-run backfills.

Used by `velib run`, `make demo` and the benchmarks: the same definitions and instance as the UI,
so every partition and check result shows up in `dagster dev` afterwards.
"""

import fcntl
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import dagster as dg

from velib_assets import lake, run_guard, settings, workers
from velib_assets.definitions import defs
from velib_assets.defs.jobs import daily_chain_job, serving_job
from velib_assets.defs.serving import DUCKDB_POOL, duckdb_views
from velib_assets.defs.staging import REFERENCE
from velib_assets.settings import data_dir
from velib_assets.step_errors import user_message

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
SILENT = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
"""`velib run` prints each failed step's message itself, one line, instead of Dagster's stack traces."""


@dataclass(frozen=True)
class StageResult:
    name: str
    run_id: str
    success: bool
    seconds: float
    errors: tuple[str, ...] = ()


def _step_errors(outcome: dg.ExecuteInProcessResult) -> tuple[str, ...]:
    """`step: message` for each failed step (`step_errors.user_message`), else the run's own failure."""
    failures = [e for e in outcome.all_events if e.is_step_failure] or [
        e for e in outcome.all_events if e.is_run_failure
    ]
    lines = []
    for event in failures:
        error = getattr(event.event_specific_data, "error", None)
        message = user_message(error) if error is not None else event.message or ""
        lines.append(f"{event.step_key or 'run'}: {message}")
    return tuple(lines)


def _was_interrupted(outcome: dg.ExecuteInProcessResult) -> bool:
    """Dagster turns Ctrl-C inside a step into a failed run; the command treats it as an interrupt."""
    for event in outcome.all_events:
        error = getattr(event.event_specific_data, "error", None)
        if event.is_run_failure and getattr(error, "cls_name", None) == "DagsterExecutionInterruptedError":
            return True
    return False


def instance_for_cli() -> dg.DagsterInstance:
    """The instance under `DAGSTER_HOME` (`./.dagster_home` when unset), created on first use with
    the project's `./dagster.yaml` when there is one, as `make dev` does.

    Two first runs at once would both create Dagster's SQLite tables and one would crash on "table
    runs already exists": an exclusive lock on the home makes the first one create them alone.
    """
    home = Path(os.environ.get("DAGSTER_HOME") or ".dagster_home").expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(home)
    with open(home / ".velib-init.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        config = Path("dagster.yaml")
        if config.is_file() and not (home / "dagster.yaml").exists():
            staged = home / f".dagster.yaml.{os.getpid()}.tmp"
            staged.write_text(config.read_text())
            staged.replace(home / "dagster.yaml")
        instance = dg.DagsterInstance.get()
        instance.get_runs(limit=1)
        instance.event_log_storage.get_pool_limits()
        if instance.schedule_storage is not None:
            instance.schedule_storage.all_instigator_state()
    return instance


def range_tags(first: str, last: str) -> dict[str, str]:
    return {"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}


def _execute(
    job: dg.JobDefinition | None, instance: dg.DagsterInstance, run_id: str, tags: dict[str, str]
) -> dg.ExecuteInProcessResult:
    if job is None:
        return dg.materialize(
            [defs.get_assets_def(REFERENCE)],
            instance=instance,
            resources=defs.resources,
            run_config=SILENT,
            raise_on_error=False,
            tags=tags,
        )
    return job.execute_in_process(
        instance=instance, run_id=run_id, tags=tags, run_config=SILENT, raise_on_error=False
    )


def _interrupted(instance: dg.DagsterInstance, tags: dict[str, str]) -> None:
    """Ctrl-C or SIGTERM mid-stage: stop the workers, and leave no run in flight and no slot held."""
    workers.shutdown()
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=run_guard.IN_FLIGHT, tags=tags)):
        instance.report_run_canceled(run, "velib run was interrupted (SIGINT or SIGTERM).")
        run_guard.free_slots(instance, run.run_id)


def run_days(
    first: date,
    last: date,
    instance: dg.DagsterInstance,
    progress: Callable[[str], None] = print,
    views: bool = True,
) -> list[StageResult]:
    """The days' chain, raw to report, then the DuckDB views: one run each.

    Runs left in flight by a killed earlier process are failed first, so they hold nothing; the
    views stage claims the `duckdb_writer` pool before it starts (`run_guard.claim_pool`).
    Raises `run_guard.PoolWaitTimeout` when the pool stays held by a live run.
    """
    if last < first:
        raise ValueError(f"--to {last} is before --from {first}")
    for line in run_guard.reap_dead_runs(instance):
        progress(f"      {line}")
    stages: list[tuple[str, dg.JobDefinition | None, dict[str, str]]] = []
    if not (data_dir() / "lake" / REFERENCE / lake.PART_FILE).is_file():
        stages.append(("station_reference", None, {}))
    stages.append(
        (
            f"days {first} .. {last}, raw to report",
            defs.resolve_job_def(daily_chain_job.name),
            range_tags(first.isoformat(), last.isoformat()),
        )
    )
    if views:
        stages.append(("duckdb views", defs.resolve_job_def(serving_job.name), {}))
    results = []
    for name, job, range_ in stages:
        progress(f"[{len(results) + 1}/{len(stages)}] {name} ...")
        started = time.perf_counter()
        run_id = str(uuid.uuid4())  # known before the run exists, so its pool slot can be claimed
        tags = {**range_, run_guard.PROCESS_TAG: run_guard.process_identity()}
        try:
            if job is not None and job.name == serving_job.name:
                wait = settings.pool_wait_seconds()
                run_guard.claim_pool(instance, DUCKDB_POOL, run_id, duckdb_views.op.name, wait, progress)
            outcome = _execute(job, instance, run_id, tags)
            if _was_interrupted(outcome):
                raise KeyboardInterrupt
        except KeyboardInterrupt:
            _interrupted(instance, {run_guard.PROCESS_TAG: tags[run_guard.PROCESS_TAG]})
            raise
        finally:
            run_guard.free_slots(instance, run_id)
        seconds = time.perf_counter() - started
        result = StageResult(name, outcome.run_id, outcome.success, seconds, _step_errors(outcome))
        progress(
            f"      {'done' if result.success else 'FAILED'} in {result.seconds:.1f} s "
            f"(run {result.run_id[:8]})"
        )
        results.append(result)
        if not result.success:
            break
    return results
