"""The benchmark harness on a small history: the generator is deterministic, feed-like and lays raw
hours out as the project does; the project, pandas and DuckDB implementations write the same four
tables, and the comparison would catch a difference."""

import gzip
import json
import sys
from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest

from benchmarks import generate, run
from benchmarks.compare import Agreement, compare_day, in_key_order
from benchmarks.rss import measure
from benchmarks.workload import TABLES, Workload, table_file
from velib_assets import lake

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


def test_raw_hours_land_in_their_local_day_folder(tmp_path) -> None:
    generate.generate(tmp_path, DAY, days=1, cadence_s=600, seed=7, station_limit=20, workers=1)
    start, _ = generate.local_day_window(DAY)
    files = Workload(tmp_path, DAY, 1).raw_files(DAY)
    assert files == [lake.hour_file(tmp_path / "lake", generate.RAW_ASSET, DAY, start + timedelta(hours=h))
                     for h in range(25)]
    assert files[0].name == "2024-10-26T22Z.parquet"
    assert sum(pl.read_parquet(f).height for f in files) > 0


def test_comparison_counts_every_kind_of_disagreement() -> None:
    table = TABLES["station_occupancy"]
    hours = [datetime(2024, 10, 27, h, tzinfo=UTC) for h in range(3)]
    project = pl.DataFrame({"station_code": ["1001", "1001", "2002"], "hour_start": hours}).with_columns(
        *(pl.lit(1.0).alias(c) for c in table.columns if c not in ("name", "district", "snapshots")),
        pl.lit("a").alias("name"),
        pl.lit("Paris 1er").alias("district"),
        pl.lit(3, pl.UInt32).alias("snapshots"),
    )
    agreeing = project.reverse().with_columns(pl.col("observed_minutes") + 1e-9)  # order and float noise
    same = Agreement()
    compare_day(in_key_order(project, table), agreeing, table, same)
    assert same.agree and same.rows == 3

    other = project.slice(1).with_columns(  # the first row missing, two values off
        pl.when(pl.col("station_code") == "2002").then(2.0).otherwise(1.0).alias("mean_fill_rate"),
        pl.lit(None, pl.String).alias("name"),
    )
    differs = Agreement()
    compare_day(in_key_order(project, table), other, table, differs)
    assert not differs.agree
    assert (differs.only_in_project, differs.only_in_other) == (1, 0)
    assert differs.mismatches == {"mean_fill_rate": 1, "name": 2}
    assert "station_code=2002" in differs.examples["mean_fill_rate"]


def test_three_implementations_agree_and_report_design_keys(tmp_path) -> None:
    results = tmp_path / "results"
    arguments = [
        "--days", "1", "--start", DAY.isoformat(), "--stations", "60", "--cadence", "120",
        "--data-dir", str(tmp_path / "data"), "--results", str(results), "--skip-micro", "--skip-landing-day",
    ]
    try:
        run.main(arguments)
    except SystemExit as exc:  # raised on disagreement, once latest.json is written: details below
        assert "disagree" in str(exc)
    report = json.loads((results / "latest.json").read_text())

    assert {"days", "cadence_s", "rows", "agree", "project", "pandas", "duckdb", "targets"} <= set(report)
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
    for name in ("project_sqlite", "pandas", "duckdb"):
        assert set(report["agreement"][name]) == set(TABLES)
        assert all(a["agree"] and a["rows"] > 0 for a in report["agreement"][name].values())
    # Targets from the run's own figures: a 1-day run checks the ratios and the agreement only.
    met = {t["target"]: t["met"] for t in report["targets"]}
    assert met["every table agrees with the project's"] is True
    assert {t["measured"] for t in report["targets"] if "pandas" in t["target"]} == {
        report["ratios"]["pandas_over_project_wall"]}
    assert not any("20 s" in target for target in met)

    outputs = tmp_path / "data" / "outputs"
    for name in ("project", "pandas", "duckdb"):
        assert all(table_file(outputs / name, table, DAY).is_file() for table in TABLES)
    assert (table_file(outputs / "project", "clean_stations", DAY).with_name("spells.parquet")).is_file()
    rankings = {
        name: pl.read_parquet(table_file(outputs / name, "critical_station_rankings", DAY)).sort("rank")
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


def test_the_landing_day_benchmark_times_one_new_hour_and_sizes_the_day(capsys) -> None:
    """The 23:00 refresh parses the one hour that closed, the final build the last one; the day's
    storage and its rebuild from the landing zone are reported."""
    from benchmarks import landing_day

    landing_day.main(["--per-hour", "2", "--rebuild-days", "2"])

    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert figures["at_22h"]["hours_parsed"] == 22 and figures["at_22h"]["provisional"] is True
    assert (figures["at_23h"]["hours_parsed"], figures["at_23h"]["hours_built"]) == (1, 23)
    assert (figures["final"]["hours_parsed"], figures["final"]["hours_built"]) == (1, 24)
    assert figures["final"]["provisional"] is False
    assert figures["final"]["rows"] == 48 * 1495
    assert figures["at_23h"]["seconds"] > 0
    storage = figures["storage"]
    assert storage["landing_files_per_day"] == storage["listed"] == 48
    assert 0 < storage["landing_mb_per_day"] < 0.1 * 48 * 0.457  # gzipped: under a tenth of 457 KB each
    assert set(storage["lake_mb_per_day"]) >= {"raw_station_snapshots", "clean_stations", "station_occupancy"}
    assert figures["rebuild"]["day_s"] > 0 and figures["rebuild"]["year_landing_files"] == 48 * 365
    rebuilt = figures["rebuild_many"]
    assert rebuilt["days"] == 2 and 0 < rebuilt["seconds_to_rankings"] < rebuilt["seconds"]
    packing = figures["packing"]
    assert packing["packed_mb"] == pytest.approx(storage["landing_mb_per_day"], abs=0.1)
    assert packing["list_and_read_day_files_ms"] > 0 and packing["list_and_read_day_packed_ms"] > 0


def test_the_parse_rate_is_measured_on_decompressed_bytes_beside_the_reference_parser() -> None:
    from benchmarks import micro

    exports = [gzip.decompress(path.read_bytes()) for path in micro.EXPORTS[:3]]
    rate = micro.parse_rate("opendata-json", exports, None)

    assert rate["captures"] == 60 and rate["distinct_captures"] == len(set(exports))
    assert rate["mb"] == pytest.approx(sum(len(e) for e in exports) * 20 / 1e6, abs=0.01)
    assert rate["mb_landed"] < rate["mb"] / 5  # landed gzipped
    assert rate["mb_per_s"] > 0 and rate["reference_mb_per_s"] > 0 and rate["speedup"] > 1
