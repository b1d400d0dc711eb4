"""Parsers and capture dating on every bundled real format: one schema, defects kept, bad bytes refused."""

import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from velib_assets.schema import RAW_SCHEMA
from velib_assets.settings import PARIS
from velib_assets.sources import formats, parsers
from velib_assets.sources.formats import CaptureParseError
from velib_assets.sources.recorded import detect_format, name_time, read_recorded

from .conftest import GBFS_INFO_2025, GBFS_STATUS_2025, SAMPLE, sample_bytes

T = datetime(2024, 11, 3, 16, 35, 1, tzinfo=UTC)
EXPORT = "opendata-exports-5min/velib_data_20241103_173501.json.gz"
EXPORT_NULL_METADATA = "opendata-exports-5min/velib_data_20241104_111001.json.gz"
CSV = "opendata-export-csv/velib-disponibilite-en-temps-reel-paris-data.csv"
PARQUET = "opendata-export-parquet/velib-disponibilite-en-temps-reel.parquet"
STATUS_2024 = "gbfs-2024-11/velib_station_status_2024-10-30_18-12-13.json"
MINUTE = "gbfs-2024-11/minute-series/velib_station_status_2024-11-05_16-48-41.jsonl"

BUNDLED = [
    # file, format, rows, source
    (EXPORT, formats.OPENDATA_JSON, 1485, "opendata"),
    (EXPORT_NULL_METADATA, formats.OPENDATA_JSON, 1485, "opendata"),
    (CSV, formats.OPENDATA_CSV, 1473, "opendata"),
    (PARQUET, formats.OPENDATA_PARQUET, 1499, "opendata"),
    ("gbfs-2025-10/station_status.json", formats.GBFS_STATUS, 1495, "gbfs"),
    (STATUS_2024, formats.GBFS_STATUS, 1485, "gbfs"),
    (MINUTE, formats.GBFS_STATUS_LINES, 1485, "gbfs"),
]


def parse(relative: str, fmt: str, when: datetime = T) -> pl.DataFrame:
    return parsers.parse_capture((SAMPLE / relative).read_bytes(), fmt, when)


def station(frame: pl.DataFrame, code: str) -> dict:
    rows = frame.filter(pl.col("station_code") == code).to_dicts()
    assert len(rows) == 1
    return rows[0]


@pytest.mark.parametrize(("relative", "fmt", "rows", "source"), BUNDLED, ids=[b[0] for b in BUNDLED])
def test_every_bundled_format_parses_to_the_raw_schema(relative, fmt, rows, source):
    frame = parse(relative, fmt)

    assert frame.schema == pl.Schema(RAW_SCHEMA)
    assert frame.height == rows
    assert frame["snapshot_ts"].unique().to_list() == [T]
    assert frame["source"].unique().to_list() == [source]
    assert frame["station_code"].null_count() == 0
    assert frame["bikes"].null_count() == 0 and frame["docks"].null_count() == 0
    assert frame.filter(pl.col("mechanical") + pl.col("ebike") != pl.col("bikes")).is_empty()
    assert detect_format(SAMPLE / relative, (SAMPLE / relative).read_bytes()) == fmt


def test_opendata_export_keeps_every_field_and_converts_mixed_offsets_to_utc():
    records = json.loads(sample_bytes(EXPORT))
    frame = parse(EXPORT, formats.OPENDATA_JSON)

    assert {r["duedate"][-6:] for r in records} == {"+01:00", "+02:00"}
    expected = [datetime.fromisoformat(r["duedate"]).astimezone(UTC) for r in records]
    assert frame["reported_at"].to_list() == expected
    assert station(frame, "16107") == {
        "snapshot_ts": T,
        "station_code": "16107",
        "station_id": None,
        "name": "Benjamin Godard - Victor Hugo",
        "lat": 48.865983,
        "lon": 2.275725,
        "capacity": 35,
        "bikes": 0,
        "mechanical": 0,
        "ebike": 0,
        "docks": 35,
        "is_installed": True,
        "is_renting": True,
        "is_returning": True,
        "reported_at": datetime(2024, 11, 3, 15, 54, 28, tzinfo=UTC),
        "commune": "Paris",
        "code_insee": "75056",
        "source": "opendata",
    }


def test_export_with_null_metadata_keeps_all_rows():
    """28 recorded exports lost names, capacities, positions and communes: the counts still count."""
    frame = parse(EXPORT_NULL_METADATA, formats.OPENDATA_JSON)

    assert frame.height == 1485
    for column in ("name", "capacity", "lat", "lon", "commune"):
        assert frame[column].null_count() == 1485, column
    assert frame["station_code"].n_unique() == 1485
    assert station(frame, "16107")["bikes"] == 2
    assert frame["is_installed"].null_count() == 0


def test_csv_with_bom_french_labels_and_lat_lon_string():
    body = (SAMPLE / CSV).read_bytes()
    assert body[:3] == b"\xef\xbb\xbf" and b"Identifiant station" in body[:40]

    frame = parse(CSV, formats.OPENDATA_CSV)
    row = station(frame, "16107")

    assert (row["lat"], row["lon"]) == (48.865983, 2.275725)
    assert (row["capacity"], row["bikes"], row["mechanical"], row["ebike"], row["docks"]) == (35, 4, 2, 2, 31)
    assert (row["is_installed"], row["is_renting"], row["is_returning"]) == (True, True, True)
    assert row["reported_at"] == datetime(2025, 6, 3, 12, 56, 11, tzinfo=UTC)  # 14:56:11+02:00
    assert (row["commune"], row["code_insee"]) == ("Paris", "75056")
    assert station(frame, "40001")["commune"] == "Créteil"


def test_geoparquet_wkb_points_and_naive_duedate():
    table = pl.read_parquet(SAMPLE / PARQUET)
    assert table.schema["coordonnees_geo"] == pl.Binary
    assert table.schema["duedate"] == pl.Datetime("ms")

    frame = parse(PARQUET, formats.OPENDATA_PARQUET)
    row = station(frame, "16107")

    assert (row["lat"], row["lon"]) == (48.865983, 2.275725)  # WKB holds (lon, lat): not swapped
    assert row["reported_at"] == datetime(2024, 8, 19, 9, 3, 16, tzinfo=UTC)
    assert frame["lat"].is_between(48.6, 49.1).sum() == frame["lat"].count()
    assert frame["lon"].is_between(2.0, 2.7).sum() == frame["lon"].count()


def test_gbfs_status_bike_types_list_and_int64_station_ids():
    document = json.loads(GBFS_STATUS_2025.read_bytes())
    first = document["data"]["stations"][0]
    assert first["num_bikes_available_types"] == [{"mechanical": 1}, {"ebike": 4}]

    frame = formats.parse_gbfs_status(GBFS_STATUS_2025.read_bytes(), T)
    row = station(frame, "16107")

    assert (row["station_id"], row["bikes"], row["mechanical"], row["ebike"], row["docks"]) == (
        213688169,
        5,
        1,
        4,
        30,
    )
    assert row["reported_at"] == datetime.fromtimestamp(1760776294, UTC)
    assert frame["station_id"].max() > 2**31  # Vélib' ids reach 2.07e10
    assert frame["station_id"].max() == max(s["station_id"] for s in document["data"]["stations"])
    assert frame["name"].null_count() == frame.height  # status alone has no metadata


def test_bike_types_as_a_standard_gbfs_dict():
    stations = [
        {
            "station_id": "42",
            "num_bikes_available": 3,
            "num_bikes_available_types": {"mechanical": 1, "ebike": 2},
            "num_docks_available": 7,
            "is_installed": True,
            "is_renting": True,
            "is_returning": False,
            "last_reported": 1730822539,
        }
    ]
    row = formats.gbfs_status_frame(stations, T).row(0, named=True)
    assert (row["station_code"], row["station_id"], row["mechanical"], row["ebike"]) == ("42", 42, 1, 2)
    assert row["is_returning"] is False


def test_minute_series_lines_parse_like_the_envelope():
    frame = parse(MINUTE, formats.GBFS_STATUS_LINES)
    first_line = json.loads((SAMPLE / MINUTE).read_text().splitlines()[0])
    row = station(frame, first_line["stationCode"])
    assert (row["station_id"], row["bikes"], row["docks"]) == (
        first_line["station_id"],
        first_line["num_bikes_available"],
        first_line["num_docks_available"],
    )


def test_station_information_join_fills_name_capacity_and_position():
    status = formats.parse_gbfs_status(GBFS_STATUS_2025.read_bytes(), T)
    info = formats.gbfs_info_frame(json.loads(GBFS_INFO_2025.read_bytes()))

    joined = formats.with_station_information(status, info)

    assert joined.schema == status.schema
    assert joined.height == status.height == info.height == 1495
    assert joined.drop("name", "lat", "lon", "capacity").equals(status.drop("name", "lat", "lon", "capacity"))
    for column in ("name", "lat", "lon", "capacity"):
        assert joined[column].null_count() == 0, column
    row = station(joined, "16107")
    assert (row["name"], row["capacity"], row["lat"], row["lon"]) == (
        "Benjamin Godard - Victor Hugo",
        35,
        48.865983,
        2.275725,
    )
    assert formats.with_station_information(status, None).equals(status)


def test_information_unknown_station_leaves_its_metadata_null():
    status = formats.parse_gbfs_status(GBFS_STATUS_2025.read_bytes(), T)
    info = formats.gbfs_info_frame(json.loads(GBFS_INFO_2025.read_bytes())).filter(
        pl.col("station_code") != "16107"
    )
    joined = formats.with_station_information(status, info)
    assert joined.height == status.height
    assert station(joined, "16107")["name"] is None
    assert joined["name"].null_count() == 1


# --- capture times ---------------------------------------------------------------------------------------
def test_opendata_name_is_local_paris_time():
    capture = read_recorded(SAMPLE / EXPORT)
    assert capture.capture_time == datetime(2024, 11, 3, 17, 35, 1, tzinfo=PARIS).astimezone(UTC)
    assert capture.capture_time == datetime(2024, 11, 3, 16, 35, 1, tzinfo=UTC)
    assert (capture.fmt, capture.stations) == (formats.OPENDATA_JSON, 1485)
    assert capture.body == (SAMPLE / EXPORT).read_bytes()  # verbatim, still gzipped


def test_opendata_name_in_summer_time_is_two_hours_ahead():
    assert name_time("velib_data_20240819_110533.json") == (
        datetime(2024, 8, 19, 9, 5, 33, tzinfo=UTC),
        False,
    )


def test_gbfs_envelope_time_wins_over_the_file_name():
    capture = read_recorded(SAMPLE / STATUS_2024)
    assert capture.capture_time == datetime.fromtimestamp(1730311920, UTC)  # lastUpdatedOther
    assert capture.capture_time == datetime(2024, 10, 30, 18, 12, tzinfo=UTC)


def test_minute_series_name_is_read_as_utc():
    """Read as Paris time the name would precede station reports inside the file: it cannot be local."""
    frame = parse(MINUTE, formats.GBFS_STATUS_LINES)
    local_reading = datetime(2024, 11, 5, 16, 48, 41, tzinfo=PARIS).astimezone(UTC)
    assert local_reading < frame["reported_at"].max()

    capture = read_recorded(SAMPLE / MINUTE)

    assert capture.capture_time == datetime(2024, 11, 5, 16, 48, 41, tzinfo=UTC)
    assert capture.capture_time >= frame["reported_at"].max()


def test_undated_exports_take_their_newest_report():
    csv_capture = read_recorded(SAMPLE / CSV)
    parquet_capture = read_recorded(SAMPLE / PARQUET)
    assert csv_capture.capture_time == parse(CSV, formats.OPENDATA_CSV)["reported_at"].max()
    assert parquet_capture.capture_time == datetime(2024, 8, 19, 9, 5, 33, tzinfo=UTC)


def test_station_information_is_recognised_and_dated_by_its_envelope():
    capture = read_recorded(GBFS_INFO_2025)
    assert (capture.fmt, capture.stations) == (formats.GBFS_INFO, 1495)
    assert capture.capture_time == datetime.fromtimestamp(1760778679, UTC)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("capture_2024-11-05T16:48:41Z.json", datetime(2024, 11, 5, 16, 48, 41, tzinfo=UTC)),
        ("capture_20241105_164841+01:00.json", datetime(2024, 11, 5, 15, 48, 41, tzinfo=UTC)),
        ("capture_20241105_164841-0500.json", datetime(2024, 11, 5, 21, 48, 41, tzinfo=UTC)),
    ],
)
def test_names_with_an_offset_are_taken_as_said(name, expected):
    assert name_time(name) == (expected, True)


def test_names_without_a_time():
    assert name_time("station_status.json") is None


# --- bad bytes -------------------------------------------------------------------------------------------
def test_gbfs_discovery_is_rejected_with_a_reason():
    path = SAMPLE / "gbfs-2022-02" / "gbfs.json"
    with pytest.raises(CaptureParseError, match="GBFS document without stations"):
        read_recorded(path)
    with pytest.raises(CaptureParseError, match="wrong shape"):
        formats.parse_gbfs_status(path.read_bytes(), T)


def test_system_information_is_rejected_with_a_reason():
    with pytest.raises(CaptureParseError, match="without stations"):
        read_recorded(SAMPLE / "gbfs-2022-02" / "system_information.json")


def test_non_capture_files_are_rejected_by_name(tmp_path: Path):
    readme = tmp_path / "notes.md"
    readme.write_text("# notes")
    with pytest.raises(CaptureParseError, match="not a capture file"):
        read_recorded(readme)


@pytest.mark.parametrize(
    "fraction",
    [0.5, 0.25, 0.75],
    ids=["half", "quarter", "three-quarters"],
)
def test_truncated_gbfs_status_is_named_truncated(fraction):
    """A body cut anywhere (inside a string, a number, after a key) is a truncated body."""
    body = GBFS_STATUS_2025.read_bytes()
    with pytest.raises(CaptureParseError, match="truncated JSON"):
        formats.parse_gbfs_status(body[: int(len(body) * fraction)], T)


@pytest.mark.parametrize(
    "cut",
    [302_370, 302_374, 302_376, 302_380, 302_393, 302_398, 302_404, 302_410],
    ids=[
        "in-value-string",
        "after-value",
        "after-comma",
        "in-key",
        "after-key",
        "in-nested-key",
        "after-colon",
        "in-number",
    ],
)
def test_truncated_opendata_export_is_named_truncated(cut):
    """Cuts around one record of a real export: `...:55+01:00", "coordonnees_geo": {"lon": 2.2872350`."""
    body = sample_bytes(EXPORT)
    with pytest.raises(CaptureParseError, match="truncated JSON"):
        formats.parse_opendata_json(body[:cut], T)


def test_invalid_json_that_is_not_truncated():
    with pytest.raises(CaptureParseError, match="invalid JSON at byte 16: Expecting ':' delimiter"):
        formats.parse_opendata_json(b'[{"stationcode" "16107"}]', T)


def test_truncated_gzip_is_refused():
    stored = (SAMPLE / EXPORT).read_bytes()
    with pytest.raises(CaptureParseError, match="truncated or corrupt gzip"):
        formats.parse_opendata_json(stored[: len(stored) // 2], T)


def test_truncated_json_lines_name_the_line():
    lines = (SAMPLE / MINUTE).read_bytes()
    cut = lines[: lines.index(b"\n", 1000) + 40]
    with pytest.raises(CaptureParseError, match=r"line \d+: truncated or invalid JSON"):
        formats.parse_gbfs_status_lines(cut, T)


@pytest.mark.parametrize("fmt", [formats.OPENDATA_JSON, formats.GBFS_STATUS, formats.GBFS_STATUS_LINES])
def test_html_page_is_refused(fmt):
    page = b"\n<!DOCTYPE html><html><body><h1>502 Bad Gateway</h1></body></html>"
    with pytest.raises(CaptureParseError, match="HTML page"):
        parsers.parse_capture(page, fmt, T)


@pytest.mark.parametrize(
    ("body", "fmt"),
    [
        (b"[]", formats.OPENDATA_JSON),
        (b'{"total_count": 0, "results": []}', formats.OPENDATA_JSON),
        (b'{"lastUpdatedOther": 1760778556, "ttl": 3600, "data": {"stations": []}}', formats.GBFS_STATUS),
        (b"\n\n", formats.GBFS_STATUS_LINES),
        (gzip.compress(b"[]"), formats.OPENDATA_JSON),
    ],
    ids=["export", "records-page", "gbfs", "lines", "gzipped-export"],
)
def test_empty_station_list_is_refused(body, fmt):
    with pytest.raises(CaptureParseError, match="empty station list"):
        parsers.parse_capture(body, fmt, T)


def test_csv_header_only_is_an_empty_station_list():
    header = (SAMPLE / CSV).read_bytes().split(b"\n", 1)[0] + b"\n"
    with pytest.raises(CaptureParseError, match="empty station list"):
        formats.parse_opendata_csv(header, T)


def test_empty_body_and_unknown_format():
    with pytest.raises(CaptureParseError, match="empty body"):
        formats.parse_opendata_json(b"  ", T)
    with pytest.raises(CaptureParseError, match="unknown capture format 'xml'"):
        parsers.parse_capture(b"[]", "xml", T)


def test_corrupt_parquet_is_refused():
    body = (SAMPLE / PARQUET).read_bytes()
    with pytest.raises(CaptureParseError, match="not a readable Parquet file"):
        formats.parse_opendata_parquet(body[: len(body) // 2], T)


def test_absurd_counts_are_kept_and_out_of_range_integers_dropped():
    records = json.loads(sample_bytes(EXPORT))[:2]
    records[0]["numdocksavailable"] = 999_999
    records[1]["numdocksavailable"] = 10**12
    frame = formats.opendata_records_frame(records, T)
    assert frame["docks"].to_list() == [999_999, None]


def test_max_reported_at_ignores_empty_frames():
    frame = parse(EXPORT, formats.OPENDATA_JSON)
    empty = frame.clear()
    assert formats.max_reported_at([empty, frame]) == frame["reported_at"].max()
    assert formats.max_reported_at([empty]) is None
    assert frame["reported_at"].max() < T and T - frame["reported_at"].max() < timedelta(hours=2)


def test_a_gzip_body_with_corrupt_deflate_data_is_refused():
    """A valid gzip header over damaged data: zlib.error is not an OSError, and once escaped the parser."""
    body = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + b"not deflate data"
    with pytest.raises(CaptureParseError, match="corrupt gzip"):
        parsers.parse_capture(body, formats.GBFS_STATUS, T)


@pytest.mark.parametrize("fmt", [formats.GBFS_STATUS, formats.OPENDATA_JSON, formats.GBFS_STATUS_LINES])
def test_a_lone_surrogate_escape_refuses_the_capture_with_a_reason(fmt):
    """json.loads reads `"\\ud800"` as a string Polars cannot hold: a refused capture, not a crash."""
    station = (
        '{"stationCode": "\\ud800", "stationcode": "\\ud800", "numBikesAvailable": 1, "numbikesavailable": 1}'
    )
    body = {
        formats.GBFS_STATUS: f'{{"data": {{"stations": [{station}]}}}}',
        formats.OPENDATA_JSON: f"[{station}]",
        formats.GBFS_STATUS_LINES: station,
    }[fmt].encode()
    with pytest.raises(CaptureParseError, match="lone UTF-16 surrogate"):
        parsers.parse_capture(body, fmt, T)
