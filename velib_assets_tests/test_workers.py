"""Backfill partitions run in worker processes: in input order, errors surfacing, inline when asked."""

import json
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from velib_assets import workers


def pid_and_threads(item: int) -> tuple[int, int, str | None]:
    return item, os.getpid(), os.environ.get("POLARS_MAX_THREADS")


def fail_on_three(item: int) -> int:
    if item == 3:
        raise ValueError(f"item {item} is broken")
    return item


def test_items_run_in_other_processes_in_input_order(monkeypatch) -> None:
    monkeypatch.setenv("VELIB_WORKERS", "2")
    monkeypatch.delenv("POLARS_MAX_THREADS", raising=False)
    workers.shutdown()
    results = workers.map_parallel(pid_and_threads, range(12))
    assert [item for item, _, _ in results] == list(range(12))
    assert {pid for _, pid, _ in results}.isdisjoint({os.getpid()})
    assert {threads for _, _, threads in results} == {"1"}  # one Polars thread per worker process
    assert "POLARS_MAX_THREADS" not in os.environ  # the run's own setting is left as it was


def test_the_first_error_propagates(monkeypatch) -> None:
    monkeypatch.setenv("VELIB_WORKERS", "2")
    with pytest.raises(ValueError, match="item 3 is broken"):
        workers.map_parallel(fail_on_three, range(6))


@pytest.mark.parametrize("configured", ["1", ""])
def test_one_worker_or_one_item_runs_inline(monkeypatch, configured: str) -> None:
    monkeypatch.setenv("VELIB_WORKERS", configured)
    items = range(4) if configured == "1" else range(1)
    assert {pid for _, pid, _ in workers.map_parallel(pid_and_threads, items)} == {os.getpid()}


def _map_in_a_child(queue) -> None:
    os.environ["VELIB_WORKERS"] = "2"
    queue.put([item for item, _, _ in workers.map_parallel(pid_and_threads, range(4))])


def test_a_multiprocessing_child_using_the_pool_exits() -> None:
    """A step of Dagster's multiprocess executor is such a child: it must not hang at exit joining
    the pool's idle workers."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_map_in_a_child, args=(queue,))
    child.start()
    assert queue.get(timeout=60) == [0, 1, 2, 3]
    child.join(timeout=30)
    if child.is_alive():
        child.kill()
    assert child.exitcode == 0


def touch_or_fail(job: tuple[str, int]) -> int:
    folder, item = job
    if item == 0:
        raise ValueError("the first item is broken")
    time.sleep(0.05)
    (Path(folder) / str(item)).touch()
    return item


def test_a_failure_cancels_the_items_not_started(monkeypatch, tmp_path: Path) -> None:
    """A month-long backfill that fails on its first hour does not go on building the other 700."""
    monkeypatch.setenv("VELIB_WORKERS", "2")
    with pytest.raises(ValueError, match="first item"):
        workers.map_parallel(touch_or_fail, [(str(tmp_path), i) for i in range(60)])
    workers._pool(2).submit(os.getpid).result()  # queued behind whatever was not cancelled
    time.sleep(0.3)
    assert len(list(tmp_path.iterdir())) < 10


def test_workers_do_not_import_the_main_module(tmp_path: Path) -> None:
    """Workers start without re-running the parent's `__main__`: a script without a main guard would
    otherwise start its work again in each of them (and break the pool), and the `dagster` CLI of a
    run worker cost each of them a second to import."""
    script = tmp_path / "unguarded.py"
    script.write_text(
        "import os\n"
        "from velib_assets import workers\n"
        "from velib_assets_tests.test_workers import pid_and_threads\n"
        "os.environ['VELIB_WORKERS'] = '2'\n"
        "print([item for item, _, _ in workers.map_parallel(pid_and_threads, range(4))])\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[0, 1, 2, 3]"


def test_workers_exit_when_their_parent_is_killed(tmp_path: Path) -> None:
    """A run killed with SIGKILL mid-backfill must not leave its ~110 MB workers behind forever.

    The parent prints the pool's processes, not the ones that ran items: eight quick items may all
    run on the same worker."""
    script = tmp_path / "parent.py"
    script.write_text(
        "import os, time\n"
        "from velib_assets import workers\n"
        "from velib_assets_tests.test_workers import pid_and_threads\n"
        "os.environ['VELIB_WORKERS'] = '2'\n"
        "workers.map_parallel(pid_and_threads, range(8))\n"
        "print(sorted(workers._POOLS[2]._processes), flush=True)\n"
        "time.sleep(120)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        worker_pids = json.loads(parent.stdout.readline())
        assert len(worker_pids) == 2 and all(_alive(pid) for pid in worker_pids)
        parent.kill()
        parent.wait(timeout=10)
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in worker_pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(pid) for pid in worker_pids), "workers outlived their killed parent"
    finally:
        parent.kill()


def _alive(pid: int) -> bool:
    """Running, not a zombie (an orphan reaped by init leaves no zombie; this checks the state)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
