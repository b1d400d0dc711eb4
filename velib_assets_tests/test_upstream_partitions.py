"""A derived hour whose upstream partition was never materialized fails and says which one."""

from pathlib import Path

import dagster as dg

from velib_assets.defs.marts import station_occupancy
from velib_assets.defs.resources import KpiResource, LakeResource
from velib_assets.defs.staging import clean_stations


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
