"""No run wedges another: `velib run` killed at each stage, interrupted, or started twice at once on a
new Dagster home, and the next one still completes, with nothing left running or held."""

import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import dagster as dg
import pytest

from velib_assets import run_guard
from velib_assets_tests.analytics_fixtures import PROJECT_ROOT, child_env, make_dagster_home

DAY = "2024-11-03"
VELIB = str(Path(sys.executable).with_name("velib"))


@pytest.fixture
def data(imported_sample, tmp_path: Path) -> Path:
    """A data directory whose landing zone holds the whole imported sample."""
    source, _ = imported_sample
    shutil.copytree(source, tmp_path / "data" / "landing")
    return tmp_path / "data"


def start_run(data: Path, home: Path, **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [VELIB, "run", "--from", DAY, "--to", DAY],
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


def wait_until(condition: Callable[[], bool], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


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


STAGES = {
    "days chain": ("[1/", "daily_chain_job"),
    "duckdb views": ("[2/", "serving_job"),
}


@pytest.mark.parametrize("stage", list(STAGES))
def test_a_run_killed_at_any_stage_wedges_nothing(data: Path, tmp_path: Path, stage: str) -> None:
    home = make_dagster_home(tmp_path / "home")
    first = run_to_end(data, home)
    assert first.returncode == 0, first.stderr
    prefix, job = STAGES[stage]
    victim = start_run(data, home)
    wait_for_line(victim, prefix)
    wait_until(started(home, job))
    if stage == "duckdb views":  # inside the step, the pool slot claimed and the file half built
        wait_until(lambda: any(data.glob(".warehouse.duckdb.*.tmp")))
    workers = children(victim.pid)
    victim.kill()
    victim.wait(timeout=30)
    wait_until(lambda: not any(running(pid) for pid in workers), seconds=15)

    again = run_to_end(data, home, VELIB_POOL_WAIT_SECONDS="20")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "views refreshed" in again.stdout
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert not instance.get_runs(filters=dg.RunsFilter(statuses=run_guard.IN_FLIGHT))
        assert not instance.event_log_storage.get_concurrency_run_ids()
        failed = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE]))
        assert len(failed) == 1  # the killed run, marked failed by the next velib run
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
    """A live run holding `duckdb_writer` (here a slot claimed for this test's own live process)."""
    home = make_dagster_home(tmp_path / "home")
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
    done = run_to_end(data, home, VELIB_POOL_WAIT_SECONDS="2")
    assert done.returncode == 1
    assert f"waiting up to 2 s for pool duckdb_writer, held by run {holder.run_id[:8]}" in done.stdout
    [line] = [line for line in done.stderr.splitlines() if line.startswith("velib:")]
    assert "pool duckdb_writer still held after 2 s" in line and "gave up" in line


def test_two_first_runs_on_a_new_home_do_not_race(data: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"  # does not exist yet: both runs create the instance
    runs = [start_run(data, home) for _ in range(2)]
    outputs = [run.communicate(timeout=300)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    assert all("views refreshed" in output for output in outputs)


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
