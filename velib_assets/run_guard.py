"""Keep a dead run from wedging the next one.

A run executed in-process (`velib run`, the demo, the benchmarks) that is killed stays STARTED in
Dagster's storage, and a slot it held in the `duckdb_writer` pool stays claimed: every later run
then waits for that slot forever (Dagster 1.13's in-process executor even busy-waits for it). So
each such run is tagged with the identity of the process that executes it, and before a stage
starts, runs whose process is gone are marked failed and their slots freed. Slots are claimed
here, before the stage, with a wait that says what it waits for, honours Ctrl-C and gives up after
`VELIB_POOL_WAIT_SECONDS`; Dagster then finds the slot already claimed for the step.
"""

import os
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg

PROCESS_TAG = "velib/process"
IN_FLIGHT = [
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]
POLL_SECONDS = 1.0
CLAIM_GRACE = timedelta(minutes=2)


class PoolWaitTimeout(Exception):
    """A pool stayed held by a live run for longer than the configured wait."""


def _start_ticks(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), so a reused pid never matches."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def process_identity(pid: int | None = None) -> str:
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}:{pid}:{_start_ticks(pid) or '?'}"


def process_alive(identity: str) -> bool | None:
    """Whether the process named by `identity` still runs; None when it ran on another host."""
    host, pid, ticks = identity.rsplit(":", 2)
    if host != socket.gethostname():
        return None
    if ticks != "?":
        return _start_ticks(int(pid)) == ticks
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def free_slots(instance: dg.DagsterInstance, run_id: str) -> None:
    """Free whatever pool slots `run_id` holds or waits for (a no-op on storages without pools)."""
    if instance.event_log_storage.supports_global_concurrency_limits:
        instance.event_log_storage.free_concurrency_slots_for_run(run_id)


def reap_dead_runs(instance: dg.DagsterInstance, starting: str | None = None) -> list[str]:
    """Mark failed the in-flight runs whose executing process died, and free every pool slot held by
    a run that is over (except `starting`, the run whose slot is being claimed before it exists);
    returns one line per run handled."""
    handled = []
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=IN_FLIGHT)):
        identity = run.tags.get(PROCESS_TAG)
        if identity and process_alive(identity) is False:
            instance.report_run_failed(
                run, f"Its process ({identity}) is gone (killed?); marked failed by the next velib run."
            )
            handled.append(f"run {run.run_id[:8]} ({run.job_name}): its process died; marked failed")
    storage = instance.event_log_storage
    if storage.supports_global_concurrency_limits:
        for run_id in storage.get_concurrency_run_ids() - {starting}:
            run = instance.get_run_by_id(run_id)
            if (run is None and _claimed_long_ago(instance, run_id)) or (run is not None and run.is_finished):
                storage.free_concurrency_slots_for_run(run_id)
                handled.append(f"run {run_id[:8]}: freed the pool slots it still held")
    return handled


def _claimed_long_ago(instance: dg.DagsterInstance, run_id: str) -> bool:
    """A slot claimed for a run that does not exist: `claim_pool` of a live `velib run` creates its
    run a moment later, so only a claim older than the grace period was left by a dead process."""
    storage = instance.event_log_storage
    cutoff = datetime.now(UTC) - CLAIM_GRACE
    for pool in storage.get_concurrency_keys():
        for step in storage.get_concurrency_info(pool).pending_steps:
            if step.run_id == run_id and step.enqueued_timestamp > cutoff:
                return False
    return True


def _pool_limited(instance: dg.DagsterInstance, pool: str) -> bool:
    """Whether steps of `pool` claim slots at all (op granularity, and a limit set or defaulted)."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return False
    config = storage.get_pool_config()
    if config.pool_granularity is not None and config.pool_granularity.value == "run":
        return False
    if pool not in {limit.name for limit in storage.get_pool_limits()}:
        if config.default_pool_limit is None:
            return False
        storage.initialize_concurrency_limit_to_default(pool)
    return True


def _holders(instance: dg.DagsterInstance, pool: str) -> str:
    info = instance.event_log_storage.get_concurrency_info(pool)
    holders = []
    for slot in info.claimed_slots:
        run = instance.get_run_by_id(slot.run_id)
        status = run.status.value if run else "unknown run"
        holders.append(f"run {slot.run_id[:8]} ({status}, step {slot.step_key})")
    return ", ".join(holders) or "no run yet (the slot is being handed over)"


def claim_pool(
    instance: dg.DagsterInstance,
    pool: str,
    run_id: str,
    step_key: str,
    wait_seconds: float,
    progress: Callable[[str], None],
) -> None:
    """Claim a slot of `pool` for the step of the run about to start, waiting politely for it."""
    if not _pool_limited(instance, pool):
        return
    storage = instance.event_log_storage
    deadline = time.monotonic() + wait_seconds
    announced = False
    while not storage.claim_concurrency_slot(pool, run_id, step_key).is_claimed:
        for line in reap_dead_runs(instance, starting=run_id):
            progress(f"      {line}")
        if time.monotonic() >= deadline:
            holders = _holders(instance, pool)
            free_slots(instance, run_id)
            raise PoolWaitTimeout(
                f"pool {pool} still held after {wait_seconds:.0f} s by {holders}; gave up "
                "(VELIB_POOL_WAIT_SECONDS sets the wait; a dead run's slot is freed in the Dagster UI, "
                "Deployment > Concurrency)"
            )
        if not announced:
            holders = _holders(instance, pool)
            progress(f"      waiting up to {wait_seconds:.0f} s for pool {pool}, held by {holders}")
            announced = True
        time.sleep(POLL_SECONDS)
