"""Derived partitions whose inputs are missing fail and say what to do; a lake in the hourly layout of
earlier versions is replaced by `velib rebuild` from the landing zone, which it never touches."""

import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl

from velib_assets import lake, serving
from velib_assets.defs.marts import station_occupancy
from velib_assets.defs.resources import KpiResource, LakeResource
from velib_assets.defs.staging import clean_stations
from velib_assets.kpis.occupancy import STATION_OCCUPANCY_SCHEMA, STREAK_COLUMNS
from velib_assets_tests.analytics_fixtures import PROJECT_ROOT, child_env, make_dagster_home


def test_missing_upstream_day_names_the_partition_to_materialize(tmp_path: Path) -> None:
    resources = {"lake_store": LakeResource(data_dir=str(tmp_path)), "kpi": KpiResource()}
    for asset, upstream in ((clean_stations, "raw_station_snapshots"), (station_occupancy, "clean_stations")):
        result = dg.materialize(
            [asset], partition_key="2024-11-03", resources=resources, raise_on_error=False
        )
        assert not result.success
        message = result.get_step_failure_events()[0].event_specific_data.error.message
        assert f"{upstream} has no partition 2024-11-03" in message
        assert "materialize it first" in message
    assert not (tmp_path / "lake" / "clean_stations").exists()


def test_views_read_partitions_written_before_a_column_was_added(tmp_path: Path) -> None:
    lake_root = tmp_path / "lake"
    for day, streak in ((date(2024, 11, 2), None), (date(2024, 11, 3), 12.5)):
        hour = datetime(day.year, day.month, day.day, 9, tzinfo=UTC)
        row = {"station_code": "16107", "hour_start": hour, "longest_empty_streak_minutes": streak}
        frame = pl.DataFrame([row], schema=STATION_OCCUPANCY_SCHEMA)
        if streak is None:  # as written before station_occupancy kept streaks
            frame = frame.drop(STREAK_COLUMNS)
        lake.write_parquet(frame, lake.day_dir(lake_root, "station_occupancy", day))
    database = tmp_path / "warehouse.duckdb"
    counts, _, _ = serving.publish_views(database, lake_root, duckdb.connect)
    assert counts["marts.station_occupancy"] == 2
    with duckdb.connect(str(database), read_only=True) as db:
        query = "SELECT longest_empty_streak_minutes FROM marts.station_occupancy ORDER BY hour_start"
        assert db.execute(query).fetchall() == [(None,), (12.5,)]


def test_rebuild_replaces_an_hourly_layout_lake_from_the_landing_zone(data_dir_with, tmp_path: Path) -> None:
    """The upgrade path: a data dir written by the hourly version keeps its landing zone, and one
    command rebuilds every closed day from it in the daily layout."""
    data_dir = data_dir_with("date=2024-11-03/hour=16", "date=2024-11-03/hour=17")
    landing_before = {p: p.read_bytes() for p in (data_dir / "landing").rglob("*") if p.is_file()}
    for asset in ("clean_stations", "station_occupancy"):  # what the hourly version left
        old = data_dir / "lake" / asset / "date=2024-11-03" / "hour=16"
        old.mkdir(parents=True)
        (old / lake.PART_FILE).write_bytes(b"PAR1 hourly layout")
    env = {
        **child_env(data_dir, make_dagster_home(tmp_path / "home")),
        "VELIB_PARTITIONS_START": "2024-10-31",
        "VELIB_PARTITIONS_END": "2024-11-04",
    }

    done = subprocess.run(
        [sys.executable, "-m", "velib_assets.cli", "rebuild"],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )

    assert done.returncode == 0, done.stderr
    assert "removed 2 day folders of the hourly lake layout" in done.stdout
    assert "rebuilding 1 days with captures: 2024-11-03" in done.stdout
    assert not list((data_dir / "lake").glob("*/date=*"))
    ranking = pl.read_parquet(lake.day_dir(data_dir / "lake", "critical_station_rankings", date(2024, 11, 3)))
    assert ranking.height > 1000
    assert {p: p.read_bytes() for p in (data_dir / "landing").rglob("*") if p.is_file()} == landing_before
