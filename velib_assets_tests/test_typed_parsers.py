"""The typed decoders give the reference parser's rows, and its reasons, on every capture.

`formats` (the parser of earlier releases) is the reference: on every recorded GBFS status capture and
Opendatasoft export, and on thousands of damaged ones, the typed path must give the same frame, bit
for bit, or the same `CaptureParseError` message.
"""

import copy
import gzip
import json
import random
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from velib_assets.sources import formats, parsers, typed
from velib_assets.sources.formats import CaptureParseError

from .conftest import GBFS_STATUS_2025, SAMPLE

T = datetime(2024, 11, 3, 16, 35, 1, tzinfo=UTC)
RECORDED = Path(__file__).parent / "recorded"
GBFS_STATUS_FILES = [
    GBFS_STATUS_2025,
    SAMPLE / "gbfs-2024-11" / "velib_station_status_2024-10-30_18-12-13.json",
    RECORDED / "gbfs-2022-02" / "station_status.json.gz",
]
EXPORTS = sorted((SAMPLE / "opendata-exports-5min").glob("*.json.gz"))

Parse = Callable[[bytes, datetime], pl.DataFrame]


def outcome(parse: Parse, body: bytes) -> pl.DataFrame | str:
    try:
        return parse(body, T)
    except CaptureParseError as exc:
        return f"CaptureParseError: {exc}"


def assert_same(body: bytes, typed_parse: Parse, reference: Parse, case: object = "") -> None:
    fast, expected = outcome(typed_parse, body), outcome(reference, body)
    if isinstance(expected, str) or isinstance(fast, str):
        assert fast == expected, case
    else:
        try:
            assert_frame_equal(fast, expected, check_exact=True)
        except AssertionError as exc:
            raise AssertionError(f"case {case!r}: {exc}") from exc


def test_every_recorded_gbfs_status_capture_reads_as_the_reference_reads_it() -> None:
    assert len(GBFS_STATUS_FILES) == 3
    for path in GBFS_STATUS_FILES:
        body = path.read_bytes()
        fast = typed._gbfs(body, T)
        assert fast is not None, f"{path.name} fell back to the reference parser"
        assert_frame_equal(fast, formats.parse_gbfs_status(body, T), check_exact=True)
        assert fast.height > 1400


def test_every_recorded_opendatasoft_export_reads_as_the_reference_reads_it() -> None:
    assert len(EXPORTS) == 198
    for path in EXPORTS:
        body = path.read_bytes()
        fast = typed._opendata(body, T)
        assert fast is not None, f"{path.name} fell back to the reference parser"
        assert_frame_equal(fast, formats.parse_opendata_json(body, T), check_exact=True)


def test_the_two_minute_formats_are_routed_to_the_typed_decoders() -> None:
    assert parsers.PARSERS[formats.GBFS_STATUS] is typed.parse_gbfs_status
    assert parsers.PARSERS[formats.OPENDATA_JSON] is typed.parse_opendata_json


VALUES: list[Any] = [
    None, True, False, 0, 1, 2, -1, 7, 1.5, 2.0, -0.0, "12", " 12 ", "", "  ", "OUI", " non ", "x", "\u00a0",
    2**31 - 1, 2**31, -(2**31), -(2**31) + 1, 2**53 + 1, 2**63 - 1, 2**63, 2**64, -(2**63) - 1, 10**30,
    1e13, 1760776294, 1760776294123, 4102444799, 4102444800, 4102444799999, 4102444800000, 10**11,
    10**11 + 1, "1760776294", "19179944124", "2024-10-31T13:40:57+01:00", float("nan"), float("inf"),
    [], {}, [1], {"a": 1}, [{"mechanical": 3}], {"mechanical": 3, "ebike": 1}, {"lon": 2.3, "lat": 48.8},
]
BIKE_TYPES: list[Any] = [
    [], {}, [{"mechanical": 1}], [{"mechanical": None}, {"mechanical": 2}],
    [{"mechanical": 2}, {"mechanical": None}],
    [{"mechanical": 1, "ebike": 2}], {"mechanical": 3, "ebike": 4}, [1], "x", [{"mechanical": 1.5}],
    [{"ebike": 2**31}], [{"mechanical": True}], [[]], [{"mechanical": 1}, "x"],
]
DUEDATES: list[Any] = [
    "2024-10-31T13:40:57+01:00", "2024-10-31T13:40:57+0100", "2024-10-31T13:40:57Z", "2024-10-31T13:40:57",
    "2024-10-31T13:40:57.5+01:00", "2024-02-30T13:40:57+01:00", "0001-01-01T00:30:00+01:00",
    "9999-12-31T23:59:59-01:00", " 2024-10-31T13:40:57+01:00", "2024-10-31T13:40:60+01:00",
    "2024-10-31T24:00:00+01:00", "2024-10-31", "2024-10-31T13:40:57+24:00", "2024-10-31T13:40:57+23:59",
    "1899-12-31T23:59:59+00:00", "2099-12-31T23:59:59-12:00", "2024-1-31T13:40:57+01:00", "", "x",
    "2024-10-31T13:40:57+01:00\n", "2024-10-31 13:40:57+01:00", "2024-W44-4T13:40:57+01:00", 1730378457,
]
POINTS: list[Any] = [
    {"lon": 2.3, "lat": 48.8}, {"lon": "2.3", "lat": 48.8}, {"lat": 48}, {}, [], "x", {"lon": None, "lat": 1},
    {"lon": True, "lat": 48.8}, {"lon": 2.3, "lat": 10**400 // 10**380},
]
GBFS_KEYS = [
    "stationCode", "station_id", "num_bikes_available", "numBikesAvailable", "num_docks_available",
    "numDocksAvailable", "is_installed", "is_renting", "is_returning", "last_reported",
    "num_bikes_available_types",
]
OPENDATA_KEYS = [
    "stationcode", "name", "capacity", "numbikesavailable", "numdocksavailable", "mechanical", "ebike",
    "is_installed", "is_renting", "is_returning", "duedate", "coordonnees_geo", "nom_arrondissement_communes",
    "code_insee_commune",
]


def _value_for(key: str, rng: random.Random) -> Any:
    pools = {"num_bikes_available_types": BIKE_TYPES, "duedate": DUEDATES, "coordonnees_geo": POINTS}
    pool = pools.get(key)
    return rng.choice(pool) if pool and rng.random() < 0.7 else rng.choice(VALUES)


def _damage(stations: list[dict[str, Any]], keys: list[str], rng: random.Random) -> None:
    """One to three changes: a value replaced or a key removed, in one station or in all of them."""
    for _ in range(rng.randint(1, 3)):
        key = rng.choice(keys)
        targets = stations if rng.random() < 0.15 else [rng.choice(stations)]
        value, remove = _value_for(key, rng), rng.random() < 0.15
        for station in targets:
            if remove:
                station.pop(key, None)
            else:
                station[key] = value


def test_damaged_gbfs_captures_read_as_the_reference_reads_them() -> None:
    document = json.loads(GBFS_STATUS_2025.read_bytes())
    document["data"]["stations"] = document["data"]["stations"][:25]
    rng = random.Random(20261207)
    fell_back = 0
    for case in range(2500):
        damaged = copy.deepcopy(document)
        _damage(damaged["data"]["stations"], GBFS_KEYS, rng)
        body = json.dumps(damaged).encode()
        assert_same(body, typed.parse_gbfs_status, formats.parse_gbfs_status, case)
        fell_back += typed._gbfs(body, T) is None
    assert 200 < fell_back < 2300, fell_back  # both paths were exercised


def test_damaged_opendatasoft_exports_read_as_the_reference_reads_them() -> None:
    records = json.loads(gzip.decompress(EXPORTS[0].read_bytes()))[:25]
    rng = random.Random(20261208)
    fell_back = 0
    for case in range(2500):
        damaged = copy.deepcopy(records)
        _damage(damaged, OPENDATA_KEYS, rng)
        document: Any = {"total_count": len(damaged), "results": damaged} if case % 5 == 0 else damaged
        body = json.dumps(document).encode()
        assert_same(body, typed.parse_opendata_json, formats.parse_opendata_json, case)
        fell_back += typed._opendata(body, T) is None
    assert 200 < fell_back < 2300, fell_back


@pytest.mark.parametrize(
    "body",
    [
        b"", b"   ", b"<html><body>502 Bad Gateway</body></html>", b"null", b"[]", b"{}", b'"x"', b"[1, 2]",
        b'{"data": []}', b'{"data": {"stations": {}}}', b'{"data": {"stations": []}}',
        b'{"data": {"stations": [1]}}', b'{"data": {"stations": [{"a": 1}]}}',
        b'{"data": {"stations": [{"stationCode": "1", "numBikesAvailable": 1',
        b'{"data": {"stations": [{"stationCode": "1", "stationCode": null, "station_id": 5, '
        b'"numBikesAvailable": 1}]}}',
        b'{"data": {"stations": [{"stationCode": "1", "numBikesAvailable": 1, "numBikesAvailable": 2.5}]}}',
        b'{"data": {"stations": [{"stationCode": "1", "numBikesAvailable": NaN}]}}',
        b'{"data": {"stations": [{"stationCode": "a\tb", "numBikesAvailable": 1}]}}',
        b'{"data": {"stations": [{"stationCode": "\\ud800", "numBikesAvailable": 1}]}}',
        b'\xef\xbb\xbf{"data": {"stations": [{"stationCode": "1", "numBikesAvailable": 1}]}}',
        '{"data": {"stations": [{"stationCode": "é", "numBikesAvailable": 1}]}}'.encode("utf-16"),
        b'{"data": {"stations": [{"stationCode": "1", "numBikesAvailable": 1}]}} trailing',
        b'{"data": {"stations": [{"stationCode": "1", "numBikesAvailable": ' + b"9" * 5000 + b"}]}}",
        b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03truncated",
        gzip.compress(b'{"data": {"stations": [{"stationCode": " 7 ", "numBikesAvailable": 3}]}}'),
        b'{"data": {"stations": [{"stationCode": "1", "numBikesAvailable": 1, "other": "\xff"}]}}',
        b'{"data": {"stations": [{"stationCode": "1", "numBikesAvailable": 1, "other": '
        + b"[" * 5000 + b"]" * 5000 + b"}]}}",
    ],
)
def test_hostile_bodies_get_the_reference_rows_or_reason_in_both_formats(body: bytes) -> None:
    assert_same(body, typed.parse_gbfs_status, formats.parse_gbfs_status, body[:60])
    assert_same(body, typed.parse_opendata_json, formats.parse_opendata_json, body[:60])


def test_feed_times_convert_as_the_reference_converts_them() -> None:
    rng = random.Random(7)
    values: list[int | None] = [None, 0, -1, 1, 10**11, 10**11 + 1, 4102444799, 4102444800, 4102444800000]
    for low, high in [(1, 10**10), (10**9, 4 * 10**9), (10**11, 5 * 10**12), (1, 2**63 - 1), (-(2**63), 0)]:
        values += [rng.randint(low, high) for _ in range(3000)]
    expected = pl.Series([formats._epoch_utc(v) for v in values], dtype=pl.Datetime("us", "UTC"))
    assert typed._epoch_times(values).equals(expected)


def test_due_dates_convert_as_the_reference_converts_them() -> None:
    strings = [d for d in DUEDATES if isinstance(d, str)] + [None]
    expected = pl.Series([formats._iso_utc(s) for s in strings], dtype=pl.Datetime("us", "UTC"))
    assert typed._iso_times(strings).equals(expected)
