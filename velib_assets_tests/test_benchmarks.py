"""The benchmark harness on a small history: the generator is deterministic and feed-like, and the
project, pandas and DuckDB implementations agree on the rankings."""

import json
import sys
from datetime import date, timedelta

import polars as pl
import pytest

from benchmarks import generate, run
from benchmarks.rss import measure

DAY = date(2024, 10, 27)  # the autumn DST change: a 25-hour local day


@pytest.fixture(scope="module")
def stations() -> generate.Stations:
    return generate.draw_stations(generate.load_reference(), seed=7, limit=200)


def test_generated_day_is_deterministic_and_has_the_feed_defects(stations: generate.Stations) -> None:
    day = generate.simulate_day(stations, DAY, cadence_s=60, seed=7)
    again = generate.simulate_day(stations, DAY, cadence_s=60, seed=7)
    assert day.equals(again)

    start, end = generate.local_day_window(DAY)
    assert end - start == timedelta(hours=25)
    assert day["snapshot_ts"].min() >= start and day["snapshot_ts"].max() < end
    in_service = day.filter(pl.col("is_installed") & pl.col("is_renting"))
    assert in_service.filter(pl.col("bikes") == 0).height > 0
    assert in_service.filter(pl.col("docks") == 0).height > 0
    assert day.filter(~pl.col("is_installed")).height > 0
    assert day.filter(pl.col("station_code").is_null()).height > 0
    assert day.filter(pl.col("snapshot_ts") - pl.col("reported_at") > timedelta(hours=24)).height > 0
    assert day.filter(pl.col("bikes") + pl.col("docks") > pl.col("capacity")).height > 0
    assert day.filter(pl.col("commune").is_null() & pl.col("station_code").is_not_null()).height > 0
    assert (day["mechanical"] + day["ebike"] == day["bikes"]).all()


def test_three_implementations_agree_and_report_design_keys(tmp_path) -> None:
    results = tmp_path / "results"
    arguments = [
        "--days", "1", "--start", DAY.isoformat(), "--stations", "60", "--cadence", "120",
        "--data-dir", str(tmp_path / "data"), "--results", str(results), "--skip-micro",
    ]
    try:
        run.main(arguments)
    except SystemExit as exc:  # raised on disagreement, once latest.json is written: details below
        assert "disagree" in str(exc)
    report = json.loads((results / "latest.json").read_text())

    assert {"days", "cadence_s", "rows", "agree", "project", "pandas", "duckdb"} <= set(report)
    for name in ("project", "pandas", "duckdb"):
        assert {"wall_s", "peak_rss_mib", "rows_per_s"} <= set(report[name])
        assert report[name]["peak_rss_mib"] > 0 and report[name]["wall_s"] > 0
        steal = report[name]["cpu_steal_share"]  # None where the system does not report steal
        assert report[name]["cpu_s"] > 0 and (steal is None or 0 <= steal < 1)
    assert report["rows"] > 60 * 25 * 25
    # Dagster's own cost, measured with no-op assets on each kind of instance (PostgreSQL runs here).
    floor = report["dagster_floor"]
    assert set(floor) == {"memory", "sqlite", "postgres"}
    assert all(floor[kind]["wall_s"] > 0 and floor[kind]["peak_rss_mib"] > 0 for kind in floor)
    assert report["agree"] is True, report["agreement"]
    rankings = {
        name: pl.read_parquet(tmp_path / "data" / "results" / f"{name}.parquet").sort("day", "rank")
        for name in ("project", "pandas", "duckdb")
    }
    assert rankings["project"].height > 0
    assert rankings["project"]["station_code"].to_list() == rankings["duckdb"]["station_code"].to_list()
    assert rankings["pandas"]["station_code"].to_list() == rankings["duckdb"]["station_code"].to_list()


def test_cpu_seconds_take_in_the_grandchildren() -> None:
    """A worker process's CPU time counts: the project's backfill runs in its run's worker pool."""
    spin = "import time; end = time.process_time() + 0.4\nwhile time.process_time() < end: pass"
    parent = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {spin!r}], check=True)"
    measured = measure([sys.executable, "-c", parent])
    assert measured.returncode == 0, measured.stderr
    assert measured.cpu_s >= 0.4
    assert measured.steal_share is None or 0 <= measured.steal_share < 1
