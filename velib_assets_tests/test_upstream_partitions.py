"""Derived partitions whose inputs are missing or from an older layout fail and say what to do."""

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl

from velib_assets import lake, serving
from velib_assets.defs.marts import critical_station_rankings, station_occupancy
from velib_assets.defs.resources import KpiResource, LakeResource
from velib_assets.defs.staging import clean_stations
from velib_assets.kpis.occupancy import STATION_OCCUPANCY_SCHEMA, STREAK_COLUMNS


def test_missing_upstream_hour_names_the_partition_to_materialize(tmp_path: Path) -> None:
    resources = {"lake_store": LakeResource(data_dir=str(tmp_path)), "kpi": KpiResource()}
    for asset, upstream in ((clean_stations, "raw_station_snapshots"), (station_occupancy, "clean_stations")):
        result = dg.materialize(
            [asset], partition_key="2024-11-03-10:00", resources=resources, raise_on_error=False
        )
        assert not result.success
        message = result.get_step_failure_events()[0].event_specific_data.error.message
        assert f"{upstream} has no partition 2024-11-03-10:00" in message
        assert "materialize it first" in message
    assert not (tmp_path / "lake" / "clean_stations").exists()


def test_rankings_name_occupancy_hours_written_before_the_streak_columns(tmp_path: Path) -> None:
    """An hour of station_occupancy from before it kept streak summaries fails the day's ranking
    with the partition and the fix, not a schema error from deep inside Polars."""
    store = LakeResource(data_dir=str(tmp_path))
    hour = datetime(2024, 11, 3, 9, tzinfo=UTC)  # 10:00 in Paris
    old_columns = {k: v for k, v in STATION_OCCUPANCY_SCHEMA.items() if k not in STREAK_COLUMNS}
    old = pl.DataFrame([{"station_code": "16107", "hour_start": hour}], schema=old_columns)
    lake.write_parquet(old, lake.hour_dir(store.lake, "station_occupancy", hour))
    result = dg.materialize(
        [critical_station_rankings],
        partition_key="2024-11-03",
        resources={"lake_store": store, "kpi": KpiResource()},
        raise_on_error=False,
    )
    assert not result.success
    message = result.get_step_failure_events()[0].event_specific_data.error.message
    assert "station_occupancy/date=2024-11-03/hour=09 was written before" in message
    assert "materialize station_occupancy for 2024-11-03 again" in message


def test_views_read_partitions_written_before_a_column_was_added(tmp_path: Path) -> None:
    lake_root = tmp_path / "lake"
    hours = [datetime(2024, 11, 3, h, tzinfo=UTC) for h in (9, 10)]
    for hour, streak in zip(hours, (None, 12.5), strict=True):
        row = {"station_code": "16107", "hour_start": hour, "longest_empty_streak_minutes": streak}
        frame = pl.DataFrame([row], schema=STATION_OCCUPANCY_SCHEMA)
        if streak is None:  # as written before station_occupancy kept streaks
            frame = frame.drop(STREAK_COLUMNS)
        lake.write_parquet(frame, lake.hour_dir(lake_root, "station_occupancy", hour))
    database = tmp_path / "warehouse.duckdb"
    counts, _, _ = serving.publish_views(database, lake_root, duckdb.connect)
    assert counts["marts.station_occupancy"] == 2
    with duckdb.connect(str(database), read_only=True) as db:
        query = "SELECT longest_empty_streak_minutes FROM marts.station_occupancy ORDER BY hour_start"
        assert db.execute(query).fetchall() == [(None,), (12.5,)]
