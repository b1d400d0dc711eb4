"""`velib serve`: says where it listens, answers, stops on SIGTERM; clear one-line errors otherwise."""

import signal
import socket
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import duckdb
import httpx
import polars as pl
import pytest

from velib_assets import lake, serving
from velib_assets.kpis.rankings import RANKINGS_SCHEMA
from velib_assets_tests.analytics_fixtures import PROJECT_ROOT, child_env

VELIB = str(Path(sys.executable).parent / "velib")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def published(data_dir: Path) -> Path:
    ranking = pl.DataFrame(
        [{"day": date(2024, 11, 3), "rank": 1, "station_code": "16107", "in_service_minutes": 60.0,
          "empty_minutes": 5.0, "full_minutes": 0.0, "critical_minutes": 5.0,
          "longest_empty_streak_minutes": 5.0, "longest_full_streak_minutes": 0.0}],
        schema=RANKINGS_SCHEMA,
    )
    day_dir = lake.day_dir(data_dir / "lake", "critical_station_rankings", date(2024, 11, 3))
    lake.write_parquet(ranking, day_dir)
    serving.publish_views(data_dir / "warehouse.duckdb", data_dir / "lake", duckdb.connect)
    return data_dir


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_serve_listens_on_localhost_answers_and_stops_on_sigterm_or_ctrl_c(
    tmp_path: Path, stop: signal.Signals
) -> None:
    data_dir, port = published(tmp_path / "data"), free_port()
    server = subprocess.Popen(
        [VELIB, "serve", "--port", str(port)], cwd=PROJECT_ROOT, env=child_env(data_dir),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        banner = server.stdout.readline()  # type: ignore[union-attr]
        assert f"http://127.0.0.1:{port}/api/" in banner and str(data_dir / "warehouse.duckdb") in banner
        deadline = time.monotonic() + 30
        while True:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/api/days", timeout=5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the server never answered"
                time.sleep(0.1)
        assert answer.json()["items"] == [{"day": "2024-11-03", "stations": 1}]
        assert server.poll() is None
        server.send_signal(stop)
        _, stderr = server.communicate(timeout=15)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    assert server.returncode == 0  # a normal stop (`docker stop`), not a failure
    assert stderr == "API stopped\n"


def run(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [VELIB, *args], cwd=PROJECT_ROOT, env=child_env(data_dir), capture_output=True, text=True, timeout=60,
        check=False,
    )


def test_serve_without_a_serving_file_says_what_to_run(tmp_path: Path) -> None:
    done = run(tmp_path / "data", "serve")
    assert done.returncode == 2
    assert done.stderr == (
        f"velib: no serving file at {tmp_path / 'data' / 'warehouse.duckdb'} yet: "
        "run `velib demo` or `velib run` first\n"
    )


def test_serve_on_a_busy_port_is_one_line(tmp_path: Path) -> None:
    data_dir = published(tmp_path / "data")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = run(data_dir, "serve", "--port", str(port))
    assert done.returncode == 2
    assert done.stderr.startswith(f"velib: cannot listen on 127.0.0.1:{port}: Address already in use")
    assert done.stderr.count("\n") == 1


