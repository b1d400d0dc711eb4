"""`raw_station_snapshots` materialized for real hours of the bundled sample, with Dagster's `materialize`."""

import gzip
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from velib_assets import lake, landing
from velib_assets.defs.ingestion import RAW, raw_station_snapshots
from velib_assets.defs.partitions import hourly_partitions, utc_window
from velib_assets.defs.resources import KpiResource, LakeResource
from velib_assets.schema import RAW_SCHEMA
from velib_assets.sources import formats

from .conftest import SAMPLE

OPENDATA_HOUR = "2024-11-03-17:00"  # Paris time; 16:00 UTC, 11 recorded exports
OPENDATA_FOLDER = "date=2024-11-03/hour=16"
GBFS_HOUR = "2024-11-05-17:00"  # the minute series, 16:48 to 16:55 UTC
GBFS_FOLDER = "date=2024-11-05/hour=16"
STATUS_2024 = SAMPLE / "gbfs-2024-11" / "velib_station_status_2024-10-30_18-12-13.json"
METADATA_KEYS = {"snapshots", "dagster/row_count", "distinct_stations", "bytes", "parse_errors", "preview"}


def resources(data_dir: Path) -> dict[str, object]:
    return {"lake_store": LakeResource(data_dir=str(data_dir)), "kpi": KpiResource()}


def materialize(data_dir: Path, partition_key: str) -> dg.ExecuteInProcessResult:
    return dg.materialize([raw_station_snapshots], partition_key=partition_key, resources=resources(data_dir))


def metadata(result: dg.ExecuteInProcessResult) -> dict[str, object]:
    [event] = result.asset_materializations_for_node(RAW)
    return {key: getattr(value, "value", value) for key, value in event.metadata.items()}


def checks(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def lake_file(data_dir: Path, partition_key: str) -> Path:
    start, _ = utc_window(hourly_partitions, partition_key)
    return lake.hour_dir(data_dir / "lake", RAW, start) / lake.PART_FILE


def parsed_captures(folder: Path) -> list[pl.DataFrame]:
    frames = []
    for path in sorted(folder.iterdir()):
        capture = landing.parse_capture_name(path)
        assert capture is not None
        frames.append(formats.parse_capture(path.read_bytes(), capture.fmt, capture.capture_time))
    return frames


def test_an_hour_of_opendata_exports(data_dir_with):
    data_dir = data_dir_with(OPENDATA_FOLDER)
    folder = data_dir / "landing" / "captures" / OPENDATA_FOLDER
    expected = parsed_captures(folder)

    result = materialize(data_dir, OPENDATA_HOUR)

    assert result.success
    meta = metadata(result)
    assert METADATA_KEYS <= meta.keys()
    assert meta["snapshots"] == 11 and meta["parse_errors"] == 0
    assert meta["dagster/row_count"] == sum(f.height for f in expected)
    assert meta["distinct_stations"] == pl.concat(expected)["station_code"].n_unique()
    assert meta["bytes"] == sum(p.stat().st_size for p in folder.iterdir())
    assert meta["preview"].startswith("| snapshot_ts | station_code |")
    assert checks(result)["raw_parse_errors"].passed

    written = pl.read_parquet(lake_file(data_dir, OPENDATA_HOUR))
    assert lake_file(data_dir, OPENDATA_HOUR).parent.name == "hour=16"
    assert written.schema == pl.Schema(RAW_SCHEMA)
    assert written.height == meta["dagster/row_count"]
    times = written["snapshot_ts"].unique().sort().to_list()
    assert len(times) == 11
    assert times[0] >= datetime(2024, 11, 3, 16, tzinfo=UTC) and times[-1] < datetime(
        2024, 11, 3, 17, tzinfo=UTC
    )
    assert written.sort("snapshot_ts", "station_code").equals(
        pl.concat(expected).sort("snapshot_ts", "station_code")
    )


def test_an_hour_of_gbfs_status_takes_metadata_from_station_information(data_dir_with):
    data_dir = data_dir_with(GBFS_FOLDER)

    result = materialize(data_dir, GBFS_HOUR)

    meta = metadata(result)
    assert (meta["snapshots"], meta["dagster/row_count"], meta["parse_errors"]) == (9, 9 * 1485, 0)
    written = pl.read_parquet(lake_file(data_dir, GBFS_HOUR))
    assert written["source"].unique().to_list() == ["gbfs"]
    row = written.filter(pl.col("station_code") == "16107").sort("snapshot_ts").row(0, named=True)
    assert (row["name"], row["capacity"]) == ("Benjamin Godard - Victor Hugo", 35)
    assert written["name"].null_count() < written.height / 100  # a few stations opened after the info
    assert row["snapshot_ts"] == datetime(2024, 11, 5, 16, 48, 41, tzinfo=UTC)


def test_a_corrupt_capture_is_listed_and_the_rest_materializes(data_dir_with):
    data_dir = data_dir_with(OPENDATA_FOLDER)
    folder = data_dir / "landing" / "captures" / OPENDATA_FOLDER
    good_rows = sum(f.height for f in parsed_captures(folder))
    stored = (folder / "20241103T163501Z.opendata-json.json.gz").read_bytes()
    (folder / "20241103T165959Z.opendata-json.json.gz").write_bytes(stored[: len(stored) // 3])
    (folder / "20241103T165800Z.opendata-json.json").write_bytes(b"<html><body>502 Bad Gateway</body></html>")

    result = materialize(data_dir, OPENDATA_HOUR)

    assert result.success
    meta = metadata(result)
    assert (meta["snapshots"], meta["parse_errors"], meta["dagster/row_count"]) == (11, 2, good_rows)
    details = meta["parse_error_details"]
    assert re.search(r"20241103T165959Z\.opendata-json\.json\.gz \| truncated or corrupt gzip", details)
    assert "20241103T165800Z.opendata-json.json | HTML page, not JSON" in details
    parse_check = checks(result)["raw_parse_errors"]
    assert not parse_check.passed and parse_check.severity == dg.AssetCheckSeverity.WARN
    assert pl.read_parquet(lake_file(data_dir, OPENDATA_HOUR)).height == good_rows


def test_an_hour_where_nothing_parses_fails_with_the_reasons(tmp_path: Path):
    key = "2024-11-04-10:00"
    start, _ = utc_window(hourly_partitions, key)
    root = tmp_path / "landing"
    landing.write_capture(root, start + timedelta(minutes=5), formats.OPENDATA_JSON, b"[]")
    landing.write_capture(root, start + timedelta(minutes=10), formats.OPENDATA_JSON, b"<!DOCTYPE html>")

    with pytest.raises(dg.Failure, match=r"hour 2024-11-04-10:00: nothing parsed") as failed:
        materialize(tmp_path, key)

    message = str(failed.value)
    assert "20241104T090500Z.opendata-json.json: empty station list" in message
    assert "20241104T091000Z.opendata-json.json: HTML page, not JSON" in message
    assert not lake_file(tmp_path, key).exists()


def test_an_hour_never_captured_fails_clearly(tmp_path: Path):
    with pytest.raises(dg.Failure, match=r"no capture landed.*cannot be fetched after the fact"):
        materialize(tmp_path, "2024-11-04-13:00")


def test_the_autumn_dst_day_has_25_hours_in_distinct_utc_folders():
    keys = [k for k in hourly_partitions.get_partition_keys() if k.startswith("2024-10-27")]
    folders = {lake.hour_dir(Path("lake"), RAW, utc_window(hourly_partitions, k)[0]) for k in keys}
    assert len(keys) == 25
    assert len(folders) == 25
    assert utc_window(hourly_partitions, "2024-10-27-02:00")[0] == datetime(2024, 10, 27, 0, tzinfo=UTC)
    assert utc_window(hourly_partitions, "2024-10-27-02:00+0100")[0] == datetime(2024, 10, 27, 1, tzinfo=UTC)
    spring = [k for k in hourly_partitions.get_partition_keys() if k.startswith("2025-03-30")]
    assert len(spring) == 23


def test_both_2am_hours_of_the_dst_change_materialize_separately(tmp_path: Path):
    body = STATUS_2024.read_bytes()
    first, second = datetime(2024, 10, 27, 0, 30, tzinfo=UTC), datetime(2024, 10, 27, 1, 30, tzinfo=UTC)
    for when in (first, second):
        landing.write_capture(tmp_path / "landing", when, formats.GBFS_STATUS, body)

    for key, when in (("2024-10-27-02:00", first), ("2024-10-27-02:00+0100", second)):
        result = materialize(tmp_path, key)
        assert metadata(result)["dagster/row_count"] == 1485
        written = pl.read_parquet(lake_file(tmp_path, key))
        assert written["snapshot_ts"].unique().to_list() == [when]

    hours = sorted(p.parent.name for p in (tmp_path / "lake" / RAW).rglob(lake.PART_FILE))
    assert hours == ["hour=00", "hour=01"]


def test_a_rerun_gives_identical_parquet(data_dir_with):
    data_dir = data_dir_with(OPENDATA_FOLDER)
    path = lake_file(data_dir, OPENDATA_HOUR)

    materialize(data_dir, OPENDATA_HOUR)
    first_bytes, first_frame = path.read_bytes(), pl.read_parquet(path)
    materialize(data_dir, OPENDATA_HOUR)

    assert pl.read_parquet(path).equals(first_frame)
    assert path.read_bytes() == first_bytes
    assert [p.name for p in path.parent.iterdir()] == [lake.PART_FILE]


def test_a_rerun_after_a_late_import_replaces_the_partition(data_dir_with):
    data_dir = data_dir_with(OPENDATA_FOLDER)
    materialize(data_dir, OPENDATA_HOUR)
    before = pl.read_parquet(lake_file(data_dir, OPENDATA_HOUR))
    late = SAMPLE / "gbfs-2024-11" / "minute-series" / "velib_station_status_2024-11-05_16-48-41.jsonl"
    landing.write_capture(
        data_dir / "landing",
        datetime(2024, 11, 3, 16, 59, 30, tzinfo=UTC),
        formats.GBFS_STATUS_LINES,
        late.read_bytes(),
    )

    materialize(data_dir, OPENDATA_HOUR)

    after = pl.read_parquet(lake_file(data_dir, OPENDATA_HOUR))
    assert after.height == before.height + 1485
    assert after.filter(pl.col("source") == "opendata").equals(before)


def test_single_run_backfill_of_several_hours(data_dir_with):
    """Each hour's materialization carries its own figures, not the run's: an hour without any
    capture shows 0 rows (it showed the whole run's total before)."""
    folders = ["date=2024-11-03/hour=15", OPENDATA_FOLDER, "date=2024-11-03/hour=17"]
    data_dir = data_dir_with(*folders)
    captures = [len(list((data_dir / "landing" / "captures" / f).iterdir())) for f in folders]
    keys = ["2024-11-03-16:00", "2024-11-03-17:00", "2024-11-03-18:00", "2024-11-03-19:00"]

    result = dg.materialize(
        [raw_station_snapshots],
        resources=resources(data_dir),
        tags={"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]},
    )

    events = {e.partition: e.metadata for e in result.asset_materializations_for_node(RAW)}
    assert sorted(events) == keys
    assert [events[key]["snapshots"].value for key in keys] == [*captures, 0]
    rows = [events[key]["dagster/row_count"].value for key in keys]
    assert rows[-1] == 0 and all(r > 0 for r in rows[:-1])
    assert [pl.read_parquet(lake_file(data_dir, key)).height for key in keys] == rows
    assert events[keys[-1]]["preview"].value == "_no rows_"
    assert {events[key]["run_hours"].value for key in keys} == {4}


def test_the_landing_is_never_modified(data_dir_with):
    data_dir = data_dir_with(OPENDATA_FOLDER)
    folder = data_dir / "landing" / "captures" / OPENDATA_FOLDER
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    materialize(data_dir, OPENDATA_HOUR)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert all(gzip.decompress(body)[:1] == b"[" for body in before.values())
