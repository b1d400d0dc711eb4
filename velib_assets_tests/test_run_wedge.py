"""No run wedges another: `velib run` killed at each stage, interrupted, or started twice at once on a
new Dagster home, and the next one still completes, with nothing left running or held."""

import fcntl
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import dagster as dg
import duckdb
import psutil
import pytest

from velib_assets import run_guard
from velib_assets_tests.analytics_fixtures import PROJECT_ROOT, child_env, make_dagster_home

DAY = "2024-11-03"
DAY_BEFORE = "2024-11-02"
VELIB = str(Path(sys.executable).with_name("velib"))


@pytest.fixture
def data(imported_sample, tmp_path: Path) -> Path:
    """A data directory whose landing zone holds the whole imported sample."""
    source, _ = imported_sample
    shutil.copytree(source, tmp_path / "data" / "landing")
    return tmp_path / "data"


def start_run(data: Path, home: Path, first: str = DAY, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [VELIB, "run", "--from", first, "--to", DAY],
        cwd=PROJECT_ROOT,
        env={**child_env(data, home), "PYTHONUNBUFFERED": "1", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def run_to_end(data: Path, home: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [VELIB, "run", "--from", DAY, "--to", DAY],
        cwd=PROJECT_ROOT,
        env={**child_env(data, home), **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def wait_for_line(process: subprocess.Popen, prefix: str) -> list[str]:
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith(prefix):
            return lines
    raise AssertionError(f"the run ended before {prefix!r}: {''.join(lines)}")


def output_within(process: subprocess.Popen, seconds: float) -> str:
    """The rest of its output once it ends; killed, and the test failed, when it outlives `seconds`."""
    try:
        return process.communicate(timeout=seconds)[0]
    except subprocess.TimeoutExpired:
        process.kill()
        rest = process.communicate()[0]
        raise AssertionError(f"still running after {seconds} s: {rest}") from None


def wait_until(condition: Callable[[], bool], seconds: float = 30, poll: float = 0.01) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(poll)


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def spawned_workers(pid: int) -> list[int]:
    """The `velib_assets.workers` processes of `pid` (multiprocessing's spawned children)."""
    found = []
    for child in psutil.Process(pid).children():
        try:
            if "spawn_main" in " ".join(child.cmdline()):
                found.append(child.pid)
        except psutil.Error:
            continue
    return found


def running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def started(home: Path, job: str) -> Callable[[], bool]:
    """True once a run of `job` is executing in the instance (read as the UI reads it)."""

    def check() -> bool:
        with dg.DagsterInstance.from_config(str(home)) as instance:
            runs = instance.get_runs(
                filters=dg.RunsFilter(job_name=job, statuses=[dg.DagsterRunStatus.STARTED])
            )
        return bool(runs)

    return check


def in_flight(home: Path) -> list[dg.DagsterRun]:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        return list(instance.get_runs(filters=dg.RunsFilter(statuses=run_guard.IN_FLIGHT)))


def held_slots(home: Path) -> set[str]:
    """The runs holding or waiting for a `duckdb_writer` slot."""
    with dg.DagsterInstance.from_config(str(home)) as instance:
        info = instance.event_log_storage.get_concurrency_info("duckdb_writer")
        return {slot.run_id for slot in info.claimed_slots} | {step.run_id for step in info.pending_steps}


def hold_pool(home: Path) -> dg.DagsterRun:
    """A live run holding `duckdb_writer`: a STARTED run of this test's own live process, its slot claimed."""
    holder = dg.DagsterRun(
        job_name="holder",
        run_id="a11ce000-0000-4000-8000-000000000000",
        status=dg.DagsterRunStatus.STARTED,
        tags={run_guard.PROCESS_TAG: run_guard.process_identity()},
    )
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.add_run(holder)
        storage = instance.event_log_storage
        storage.initialize_concurrency_limit_to_default("duckdb_writer")
        assert storage.claim_concurrency_slot("duckdb_writer", holder.run_id, "duckdb_views").is_claimed
    return holder


STAGES = {
    "days chain": ("[1/", "daily_chain_job"),
    "duckdb views": ("[2/", "serving_job"),
}


@pytest.mark.parametrize("stage", list(STAGES))
def test_a_run_killed_at_any_stage_wedges_nothing(data: Path, tmp_path: Path, stage: str) -> None:
    """Killed inside a stage, found by the process's own output and files rather than by opening the
    instance (the views step lasts under a second): the days' chain once the workers run, the views
    once the file is half built, its slot claimed. The next `velib run` clears what it left behind."""
    home = make_dagster_home(tmp_path / "home")
    first = run_to_end(data, home)
    assert first.returncode == 0, first.stderr
    prefix, job = STAGES[stage]
    victim = start_run(data, home, first=DAY_BEFORE, VELIB_WORKERS="2")  # two days: the pool starts
    wait_for_line(victim, prefix)
    wait_until(lambda: len(spawned_workers(victim.pid)) >= 2, seconds=60)
    pool = spawned_workers(victim.pid)
    half_built = f".warehouse.duckdb.{victim.pid}-*.tmp"
    if stage == "duckdb views":
        wait_until(lambda: any(data.glob(half_built)), poll=0.001)
    workers = children(victim.pid)  # the pool's workers, and Dagster's compute log tailers
    victim.kill()
    rest = victim.communicate(timeout=30)[0]
    assert " done in " not in rest, rest  # killed inside the stage, not after it
    assert stage == "days chain" or any(data.glob(half_built))
    assert set(pool) <= set(workers)
    wait_until(lambda: not any(running(pid) for pid in workers), seconds=15)
    [killed] = in_flight(home)
    assert (killed.job_name, killed.status) == (job, dg.DagsterRunStatus.STARTED)
    if stage == "duckdb views":
        assert held_slots(home) == {killed.run_id}

    again = run_to_end(data, home, VELIB_POOL_WAIT_SECONDS="20")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "views refreshed" in again.stdout
    assert not any(data.glob(".warehouse.duckdb.*.tmp*"))
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert not instance.get_runs(filters=dg.RunsFilter(statuses=run_guard.IN_FLIGHT))
        assert not instance.event_log_storage.get_concurrency_run_ids()
        failed = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE]))
        assert [run.run_id for run in failed] == [killed.run_id]  # marked failed by the next velib run
    assert "its process died; marked failed" in again.stdout


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_sigint_and_sigterm_stop_a_run_promptly(data: Path, tmp_path: Path, signum: int) -> None:
    home = make_dagster_home(tmp_path / "home")
    victim = start_run(data, home)
    wait_for_line(victim, "[2/")  # the reference, then the days' chain
    wait_until(started(home, "daily_chain_job"))
    workers = children(victim.pid)
    sent = time.monotonic()
    victim.send_signal(signum)
    output = victim.communicate(timeout=30)[0]
    assert time.monotonic() - sent < 10
    assert victim.returncode == 130, output
    assert output.strip().splitlines()[-1].startswith("velib: interrupted")
    assert "Traceback" not in output
    wait_until(lambda: not any(running(pid) for pid in workers), seconds=15)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert not instance.get_runs(filters=dg.RunsFilter(statuses=run_guard.IN_FLIGHT))


def test_a_run_waiting_for_a_held_pool_says_so_and_gives_up(data: Path, tmp_path: Path) -> None:
    home = make_dagster_home(tmp_path / "home")
    holder = hold_pool(home)
    done = run_to_end(data, home, VELIB_POOL_WAIT_SECONDS="2")
    assert done.returncode == 1
    assert f"waiting up to 2 s for pool duckdb_writer, held by run {holder.run_id[:8]}" in done.stdout
    [line] = [line for line in done.stderr.splitlines() if line.startswith("velib:")]
    assert "pool duckdb_writer still held after 2 s" in line and "gave up" in line


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_run_waiting_for_a_held_pool_stops_on_a_signal(data: Path, tmp_path: Path, signum: int) -> None:
    """The wait the issue was about: a run stuck there ignored signals until the pool came free."""
    home = make_dagster_home(tmp_path / "home")
    holder = hold_pool(home)
    victim = start_run(data, home, VELIB_POOL_WAIT_SECONDS="600")
    wait_for_line(victim, "      waiting up to 600 s for pool duckdb_writer")
    victim.send_signal(signum)
    output = output_within(victim, 5)
    assert victim.returncode == 130, output
    assert output.strip().splitlines()[-1].startswith("velib: interrupted")
    assert held_slots(home) == {holder.run_id}  # its own claim, waiting in the queue, is gone
    assert [run.run_id for run in in_flight(home)] == [holder.run_id]


def test_sigterm_stops_a_run_before_any_stage_ran(data: Path, tmp_path: Path) -> None:
    """Here SIGTERM is velib's own handler's: Dagster maps SIGTERM to SIGINT's handler only once a
    stage ran in the process (as before the pool wait above). The run waits on the home's init lock."""
    home = make_dagster_home(tmp_path / "home")
    with open(home / ".velib-init.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # as another first `velib run` creating the instance
        victim = start_run(data, home)
        waiting = f"-> FLOCK  ADVISORY  WRITE {victim.pid} "
        wait_until(lambda: waiting in Path("/proc/locks").read_text(), seconds=60)
        victim.send_signal(signal.SIGTERM)
        output = output_within(victim, 5)
    assert victim.returncode == 130, output
    assert output.strip().splitlines()[-1].startswith("velib: interrupted")


RACER = """
import sys, time
from pathlib import Path
from velib_assets.pipeline import instance_for_cli
Path(sys.argv[1]).touch()
while not Path(sys.argv[2]).exists():
    time.sleep(0.0005)
instance = instance_for_cli()
print(len(instance.get_runs()), instance.event_log_storage.get_pool_config().default_pool_limit)
"""


def test_first_instances_on_a_new_home_do_not_race(tmp_path: Path) -> None:
    """Processes imported and waiting for one signal all create the instance at once, as two first
    `velib run`s can: Dagster's SQLite migrations then clash (e.g. "table runs already exists")."""
    home = tmp_path / "home"  # does not exist yet: every racer creates the instance
    go = tmp_path / "go"
    ready = [tmp_path / f"ready-{i}" for i in range(8)]
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(flag), str(go)],
            cwd=PROJECT_ROOT,
            env=child_env(tmp_path / "data", home),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for flag in ready
    ]
    wait_until(lambda: all(flag.exists() for flag in ready) or any(r.poll() is not None for r in racers), 120)
    go.touch()
    outputs = [racer.communicate(timeout=120) for racer in racers]
    assert [racer.returncode for racer in racers] == [0] * len(racers), [err for _, err in outputs]
    assert all(out.split() == ["0", "1"] for out, _ in outputs), outputs  # no run, the project's pools


def test_a_failed_step_prints_its_own_message_alone(data: Path, tmp_path: Path) -> None:
    """The refusal a user reads is the step's message, without Python's class path before it."""
    home = make_dagster_home(tmp_path / "home")
    with duckdb.connect(str(data / "warehouse.duckdb")) as analyst:
        analyst.execute("CREATE MACRO fill_pct(b, d) AS 100.0 * b / (b + d)")
    done = run_to_end(data, home)
    assert done.returncode == 1, done.stdout + done.stderr
    [line] = [line for line in done.stderr.splitlines() if line.startswith("  duckdb_views:")]
    assert line.startswith(f"  duckdb_views: {data / 'warehouse.duckdb'} holds macro main.fill_pct, which")
    assert "Failure" not in line and "dagster." not in line


def test_a_slot_claimed_for_a_run_about_to_start_is_not_reaped(tmp_path: Path, monkeypatch) -> None:
    """`velib run` claims its views slot a moment before its run exists: another `velib run`
    reaping meanwhile must leave it; a claim left that way by a dead process goes after the grace."""
    home = make_dagster_home(tmp_path / "home")
    starting = "b0000000-0000-4000-8000-000000000000"
    with dg.DagsterInstance.from_config(str(home)) as instance:
        run_guard.claim_pool(instance, "duckdb_writer", starting, "duckdb_views", 1, print)
        assert run_guard.reap_dead_runs(instance) == []
        assert instance.event_log_storage.get_concurrency_run_ids() == {starting}
        monkeypatch.setattr(run_guard, "CLAIM_GRACE", timedelta(0))
        [line] = run_guard.reap_dead_runs(instance)
        assert line == f"run {starting[:8]}: freed the pool slots it still held"
        assert not instance.event_log_storage.get_concurrency_run_ids()


def test_an_interrupted_query_logs_no_traceback_from_the_storage_pool(caplog) -> None:
    """A SIGTERM inside a query of Dagster's SQLite storage made SQLAlchemy's pool log "Error closing
    cursor" with a traceback beside the one-line "velib: interrupted" (seen once in CI)."""
    import logging

    from velib_assets import cli

    cli.quiet_pool_logs()
    with caplog.at_level(logging.WARNING):
        try:
            raise RuntimeError("interrupted")
        except RuntimeError:
            logging.getLogger("sqlalchemy.pool.impl.QueuePool").error("Error closing cursor", exc_info=True)
    assert caplog.records == []
