"""`raw_station_snapshots` materialized for real days of the bundled sample, with Dagster's `materialize`."""

import gzip
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from velib_assets import lake, landing
from velib_assets.builds import RawHour
from velib_assets.days import day_hours, day_of
from velib_assets.defs.ingestion import RAW, raw_station_snapshots
from velib_assets.defs.resources import KpiResource, LakeResource
from velib_assets.schema import RAW_SCHEMA
from velib_assets.sources import formats, parsers

from .conftest import SAMPLE

OPENDATA_DAY = "2024-11-03"
OPENDATA_HOUR = datetime(2024, 11, 3, 16, tzinfo=UTC)  # 17:00 in Paris, 11 recorded exports
OPENDATA_FOLDER = "date=2024-11-03/hour=16"
GBFS_DAY = "2024-11-05"
GBFS_HOUR = datetime(2024, 11, 5, 16, tzinfo=UTC)  # the minute series, 16:48 to 16:55 UTC
GBFS_FOLDER = "date=2024-11-05/hour=16"
STATUS_2024 = SAMPLE / "gbfs-2024-11" / "velib_station_status_2024-10-30_18-12-13.json"
METADATA_KEYS = {
    "snapshots", "captures", "dagster/row_count", "distinct_stations", "bytes", "parse_errors", "preview",
    "provisional", "hours_built", "hours_parsed_this_run",
}


def resources(data_dir: Path) -> dict[str, object]:
    return {"lake_store": LakeResource(data_dir=str(data_dir)), "kpi": KpiResource()}


def materialize(data_dir: Path, partition_key: str) -> dg.ExecuteInProcessResult:
    return dg.materialize([raw_station_snapshots], partition_key=partition_key, resources=resources(data_dir))


def metadata(result: dg.ExecuteInProcessResult) -> dict[str, object]:
    [event] = result.asset_materializations_for_node(RAW)
    return {key: getattr(value, "value", value) for key, value in event.metadata.items()}


def checks(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def lake_file(data_dir: Path, hour: datetime) -> Path:
    return lake.hour_file(data_dir / "lake", RAW, day_of(hour), hour)


def parsed_captures(folder: Path) -> list[pl.DataFrame]:
    frames = []
    for path in sorted(folder.iterdir()):
        capture = landing.parse_capture_name(path)
        assert capture is not None
        frames.append(parsers.parse_capture(path.read_bytes(), capture.fmt, capture.capture_time))
    return frames


def test_a_day_with_an_hour_of_opendata_exports(data_dir_with):
    data_dir = data_dir_with(OPENDATA_FOLDER)
    folder = data_dir / "landing" / "captures" / OPENDATA_FOLDER
    expected = parsed_captures(folder)

    result = materialize(data_dir, OPENDATA_DAY)

    assert result.success
    meta = metadata(result)
    assert METADATA_KEYS <= meta.keys()
    assert meta["snapshots"] == meta["captures"] == 11 and meta["parse_errors"] == 0
    assert (meta["hours_built"], meta["hours_parsed_this_run"], meta["provisional"]) == (24, 24, False)
    assert meta["dagster/row_count"] == sum(f.height for f in expected)
    assert meta["distinct_stations"] == pl.concat(expected)["station_code"].n_unique()
    assert meta["bytes"] == sum(p.stat().st_size for p in folder.iterdir())
    assert meta["preview"].startswith("| snapshot_ts | station_code |")
    assert checks(result)["raw_parse_errors"].passed

    written = pl.read_parquet(lake_file(data_dir, OPENDATA_HOUR))
    assert lake_file(data_dir, OPENDATA_HOUR).name == "2024-11-03T16Z.parquet"
    assert lake_file(data_dir, OPENDATA_HOUR).parent.name == "day=2024-11-03"
    hour_files = lake.hour_files(data_dir / "lake", RAW, date(2024, 11, 3))
    other_hours = [f for f in hour_files if "T16Z" not in f.name]
    assert len(other_hours) == 23 and all(pl.read_parquet(f).is_empty() for f in other_hours)
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


def test_gbfs_status_takes_metadata_from_station_information(data_dir_with):
    data_dir = data_dir_with(GBFS_FOLDER)

    result = materialize(data_dir, GBFS_DAY)

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

    result = materialize(data_dir, OPENDATA_DAY)

    assert result.success
    meta = metadata(result)
    assert (meta["snapshots"], meta["parse_errors"], meta["dagster/row_count"]) == (11, 2, good_rows)
    details = meta["parse_error_details"]
    assert re.search(r"20241103T165959Z\.opendata-json\.json\.gz \| truncated or corrupt gzip", details)
    assert "20241103T165800Z.opendata-json.json | HTML page, not JSON" in details
    parse_check = checks(result)["raw_parse_errors"]
    assert not parse_check.passed and parse_check.severity == dg.AssetCheckSeverity.WARN
    assert pl.read_parquet(lake_file(data_dir, OPENDATA_HOUR)).height == good_rows


def test_a_day_where_nothing_parses_fails_with_the_reasons(tmp_path: Path):
    start = datetime(2024, 11, 4, 9, tzinfo=UTC)
    root = tmp_path / "landing"
    landing.write_capture(root, start + timedelta(minutes=5), formats.OPENDATA_JSON, b"[]")
    landing.write_capture(root, start + timedelta(minutes=10), formats.OPENDATA_JSON, b"<!DOCTYPE html>")

    with pytest.raises(dg.Failure, match=r"day 2024-11-04: nothing parsed") as failed:
        materialize(tmp_path, "2024-11-04")

    message = str(failed.value)
    assert "20241104T090500Z.opendata-json.json.gz: empty station list" in message
    assert "20241104T091000Z.opendata-json.json.gz: HTML page, not JSON" in message


def test_a_day_never_captured_fails_clearly(tmp_path: Path):
    with pytest.raises(dg.Failure, match=r"no capture landed.*cannot be fetched after the fact"):
        materialize(tmp_path, "2024-11-04")


def test_dst_days_have_25_and_23_hours_in_distinct_utc_files():
    autumn = day_hours(date(2024, 10, 27))
    assert len(autumn) == 25
    names = {lake.hour_file(Path("lake"), RAW, date(2024, 10, 27), h).name for h in autumn}
    assert len(names) == 25
    assert autumn[0] == datetime(2024, 10, 26, 22, tzinfo=UTC)
    assert autumn[-1] == datetime(2024, 10, 27, 22, tzinfo=UTC)
    assert len(day_hours(date(2025, 3, 30))) == 23


def test_both_2am_hours_of_the_dst_change_land_in_their_own_files(tmp_path: Path):
    body = STATUS_2024.read_bytes()
    first, second = datetime(2024, 10, 27, 0, 30, tzinfo=UTC), datetime(2024, 10, 27, 1, 30, tzinfo=UTC)
    for when in (first, second):
        landing.write_capture(tmp_path / "landing", when, formats.GBFS_STATUS, body)

    result = materialize(tmp_path, "2024-10-27")

    assert metadata(result)["dagster/row_count"] == 2 * 1485
    for when in (first, second):
        written = pl.read_parquet(lake.hour_file(tmp_path / "lake", RAW, date(2024, 10, 27), when))
        assert written["snapshot_ts"].unique().to_list() == [when]


def test_a_rerun_gives_identical_files_and_parses_nothing_again(data_dir_with):
    data_dir = data_dir_with(OPENDATA_FOLDER)
    path = lake_file(data_dir, OPENDATA_HOUR)

    materialize(data_dir, OPENDATA_DAY)
    first_bytes, first_frame = path.read_bytes(), pl.read_parquet(path)
    again = metadata(materialize(data_dir, OPENDATA_DAY))

    assert again["hours_parsed_this_run"] == 0 and again["captures"] == 11
    assert pl.read_parquet(path).equals(first_frame)
    assert path.read_bytes() == first_bytes
    names = sorted(p.name for p in path.parent.iterdir())
    assert len(names) == 48 and not [n for n in names if n.endswith(".tmp")]


def test_a_rerun_after_a_late_import_parses_only_that_hour(data_dir_with):
    data_dir = data_dir_with(OPENDATA_FOLDER)
    materialize(data_dir, OPENDATA_DAY)
    before = pl.read_parquet(lake_file(data_dir, OPENDATA_HOUR))
    earlier = lake_file(data_dir, OPENDATA_HOUR - timedelta(hours=1))
    earlier_written = earlier.stat().st_mtime_ns
    later = [lake_file(data_dir, OPENDATA_HOUR + timedelta(hours=n)) for n in range(1, 7)]
    later_written = [path.stat().st_mtime_ns for path in later]
    late = SAMPLE / "gbfs-2024-11" / "minute-series" / "velib_station_status_2024-11-05_16-48-41.jsonl"
    landing.write_capture(
        data_dir / "landing",
        datetime(2024, 11, 3, 16, 59, 30, tzinfo=UTC),
        formats.GBFS_STATUS_LINES,
        late.read_bytes(),
    )

    meta = metadata(materialize(data_dir, OPENDATA_DAY))

    # The hour alone: the (empty) hours after it to 23:00 UTC are not parsed again, only their
    # sidecars restitched, so they carry the new last capture's spell on.
    assert meta["hours_parsed_this_run"] == 1
    assert earlier.stat().st_mtime_ns == earlier_written
    assert [path.stat().st_mtime_ns for path in later] == later_written
    hours = [lake_file(data_dir, OPENDATA_HOUR), *later]
    tails = {RawHour.read(path.with_suffix(".json")).tail for path in hours}
    assert len(tails) == 1 and next(iter(tails)).since == datetime(2024, 11, 3, 16, 59, 30, tzinfo=UTC)
    after = pl.read_parquet(lake_file(data_dir, OPENDATA_HOUR))
    assert after.height == before.height + 1485
    assert after.filter(pl.col("source") == "opendata").equals(before)


def test_a_stale_sidecar_or_a_deleted_hour_file_is_parsed_again(data_dir_with):
    data_dir = data_dir_with(OPENDATA_FOLDER)
    materialize(data_dir, OPENDATA_DAY)
    path = lake_file(data_dir, OPENDATA_HOUR)
    expected = pl.read_parquet(path)
    path.with_suffix(".json").write_text("{not json")
    assert metadata(materialize(data_dir, OPENDATA_DAY))["hours_parsed_this_run"] >= 1
    path.unlink()
    assert metadata(materialize(data_dir, OPENDATA_DAY))["hours_parsed_this_run"] >= 1
    assert pl.read_parquet(path).equals(expected)


def test_today_is_built_on_its_closed_hours_and_marked_provisional(data_dir_with, monkeypatch):
    """At 17:10 UTC only the hours before 17:00 exist; the running hour is not built half."""
    data_dir = data_dir_with(OPENDATA_FOLDER, "date=2024-11-03/hour=17")
    monkeypatch.setattr("velib_assets.defs.checks.now_utc", lambda: datetime(2024, 11, 3, 17, 10, tzinfo=UTC))

    meta = metadata(materialize(data_dir, OPENDATA_DAY))

    assert meta["provisional"] is True and meta["built_through"] == "2024-11-03T18:00+01:00"
    assert meta["hours_built"] == 18 and meta["captures"] == 11  # 00:00-18:00 local, not 18:00's exports
    files = lake.hour_files(data_dir / "lake", RAW, date(2024, 11, 3))
    assert files[-1].name == "2024-11-03T16Z.parquet"


def test_single_run_backfill_of_several_days(data_dir_with):
    """Each day's materialization carries its own figures, not the run's: a day without any
    capture shows 0 rows."""
    folders = ["date=2024-11-03/hour=15", OPENDATA_FOLDER, "date=2024-11-03/hour=17"]
    data_dir = data_dir_with(*folders)
    captures = sum(len(list((data_dir / "landing" / "captures" / f).iterdir())) for f in folders)
    keys = ["2024-11-02", "2024-11-03", "2024-11-04"]

    result = dg.materialize(
        [raw_station_snapshots],
        resources=resources(data_dir),
        tags={"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]},
    )

    events = {e.partition: e.metadata for e in result.asset_materializations_for_node(RAW)}
    assert sorted(events) == keys
    assert [events[key]["captures"].value for key in keys] == [0, captures, 0]
    rows = [events[key]["dagster/row_count"].value for key in keys]
    assert rows[0] == rows[2] == 0 and rows[1] > 0
    assert events[keys[0]]["preview"].value == "_no rows_"
    assert {events[key]["run_days"].value for key in keys} == {3}


def test_the_landing_is_never_modified(data_dir_with):
    data_dir = data_dir_with(OPENDATA_FOLDER)
    folder = data_dir / "landing" / "captures" / OPENDATA_FOLDER
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    materialize(data_dir, OPENDATA_DAY)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert all(gzip.decompress(body)[:1] == b"[" for body in before.values())


def test_a_new_parser_parses_every_hour_again(data_dir_with, monkeypatch):
    """After an upgrade that changes the parsing code, a day is never stitched from two parsers."""
    data_dir = data_dir_with(OPENDATA_FOLDER)
    materialize(data_dir, OPENDATA_DAY)
    monkeypatch.setattr("velib_assets.builds.PARSER_VERSION", "another parser")
    assert metadata(materialize(data_dir, OPENDATA_DAY))["hours_parsed_this_run"] == 24


def test_today_before_its_first_hour_closed_says_so(data_dir_with, monkeypatch):
    data_dir = data_dir_with(OPENDATA_FOLDER)
    monkeypatch.setattr("velib_assets.defs.checks.now_utc", lambda: datetime(2024, 11, 2, 23, 30, tzinfo=UTC))
    with pytest.raises(dg.Failure, match="day 2024-11-03: no hour of it has closed yet"):
        materialize(data_dir, OPENDATA_DAY)

