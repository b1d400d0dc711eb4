"""clean_snapshots: quarantine reasons, dedupe, metadata from the reference, DESIGN §3 flags."""

from datetime import UTC, datetime, timedelta

import polars as pl

from velib_assets.kpis.clean import ABSURD_COUNT, CLEAN_SCHEMA, QUARANTINE_SCHEMA, clean_snapshots
from velib_assets.schema import conform_raw, empty_raw_frame
from velib_assets.settings import KpiThresholds
from velib_assets_tests.frames import BENJAMIN_GODARD, BOULOGNE_CENTRE, in_service, reference

T = datetime(2024, 11, 4, 10, 0, tzinfo=UTC)
THRESHOLDS = KpiThresholds()
REFERENCE = reference(BENJAMIN_GODARD, BOULOGNE_CENTRE)


def snap(**fields) -> dict:
    """A healthy in-service snapshot of station 16107 at T: 5 bikes, 5 docks; override what a test needs."""
    return {**in_service(T, source="files"), **fields}


def clean(*rows: dict, thresholds: KpiThresholds = THRESHOLDS):
    return clean_snapshots(conform_raw(pl.DataFrame(list(rows))), REFERENCE, thresholds)


def test_quarantine_reasons_and_every_row_lands_exactly_once():
    rows = [
        snap(station_code=None),
        snap(station_code="  "),
        snap(snapshot_ts=None),
        snap(bikes=None),
        snap(docks=-1),
        snap(capacity=-3),
        snap(ebike=-1),
        snap(docks=999_999),
        snap(bikes=ABSURD_COUNT + 1),
        snap(bikes=ABSURD_COUNT, mechanical=ABSURD_COUNT),  # at the limit: kept
        snap(station_code="21010"),
    ]
    result = clean(*rows)
    assert result.clean.height + result.quarantine.height == len(rows)
    assert result.clean["station_code"].to_list() == ["16107", "21010"]
    assert sorted(result.quarantine["reason"].to_list()) == sorted(
        [
            "missing station_code",
            "missing station_code",
            "missing snapshot_ts",
            "missing count",
            "negative count",
            "negative count",
            "negative count",
            "absurd count",
            "absurd count",
        ]
    )
    assert result.quarantine.schema == pl.Schema(QUARANTINE_SCHEMA)


def test_duplicate_keys_keep_the_last_row_in_input_order():
    result = clean(
        snap(bikes=1, docks=9),
        snap(bikes=2, docks=8),
        snap(bikes=3, docks=7),
        snap(snapshot_ts=T + timedelta(minutes=1), bikes=4, docks=6),
    )
    assert result.clean.select("snapshot_ts", "bikes").rows() == [(T, 3), (T + timedelta(minutes=1), 4)]


def test_metadata_comes_from_the_capture_else_the_reference():
    # the real feed has whole exports where every record lost name, coordinates, capacity, commune
    result = clean(snap(), snap(snapshot_ts=T + timedelta(minutes=1), name="Godard (live)", capacity=36))
    assert result.clean.select(
        "name", "capacity", "lat", "commune", "code_insee", "arrondissement"
    ).rows() == [
        ("Benjamin Godard", 35, 48.865, "Paris", "75116", 16),
        ("Godard (live)", 36, 48.865, "Paris", "75116", 16),
    ]


def test_unknown_station_gets_nearest_commune_and_non_paris_has_no_arrondissement():
    result = clean(snap(station_code="21999", lat=48.836, lon=2.241), snap(station_code="21010"))
    assert result.clean.select("station_code", "commune", "arrondissement").rows() == [
        ("21010", "Boulogne-Billancourt", None),
        ("21999", "Boulogne-Billancourt", None),
    ]


def test_stale_station_is_out_of_service_and_null_reported_at_is_not_stale():
    result = clean(
        snap(station_code="16107", reported_at=T - timedelta(hours=25)),
        snap(station_code="21010", reported_at=None),
        snap(station_code="16108", reported_at=T - timedelta(hours=24)),  # exactly 24 h: not older
    )
    got = result.clean.select("station_code", "is_stale", "in_service", "status").rows()
    assert got == [
        ("16107", True, False, "out_of_service"),
        ("16108", False, True, "in_service"),
        ("21010", False, True, "in_service"),
    ]


def test_broken_station_with_no_bikes_and_no_docks_is_neither_empty_nor_full():
    row = clean(snap(bikes=0, mechanical=0, docks=0)).clean.row(0, named=True)
    assert row["in_service"] is False
    assert row["status"] == "out_of_service"
    assert row["fill_rate"] is None
    assert (row["is_empty"], row["is_full"], row["is_nearly_empty"], row["is_nearly_full"]) == (
        False,
        False,
        False,
        False,
    )


def test_closed_and_null_service_flags():
    result = clean(
        snap(station_code="16107", is_installed=False),
        snap(station_code="16108", is_renting=None),
        snap(station_code="16109", is_installed=None),
    )
    assert result.clean.select("station_code", "in_service", "status").rows() == [
        ("16107", False, "closed"),
        ("16108", False, "out_of_service"),
        ("16109", False, "closed"),
    ]


def test_empty_full_and_nearly_thresholds():
    codes = ["16101", "16102", "16103", "16104", "16105", "16106"]
    counts = [(0, 10), (1, 9), (2, 8), (8, 2), (9, 1), (10, 0)]  # fill 0, .1, .2, .8, .9, 1
    result = clean(
        *(
            snap(station_code=c, bikes=b, mechanical=b, docks=d)
            for c, (b, d) in zip(codes, counts, strict=True)
        )
    )
    got = result.clean.select("fill_rate", "is_empty", "is_nearly_empty", "is_nearly_full", "is_full").rows()
    assert got == [
        (0.0, True, True, False, False),
        (0.1, False, True, False, False),
        (0.2, False, False, False, False),
        (0.8, False, False, False, False),
        (0.9, False, False, True, False),
        (1.0, False, False, True, True),
    ]
    wider = clean(
        *(
            snap(station_code=c, bikes=b, mechanical=b, docks=d)
            for c, (b, d) in zip(codes, counts, strict=True)
        ),
        thresholds=KpiThresholds(nearly_empty_rate=0.2, nearly_full_rate=0.8),
    )
    assert wider.clean["is_nearly_empty"].to_list() == [True, True, True, False, False, False]
    assert wider.clean["is_nearly_full"].to_list() == [False, False, False, True, True, True]


def test_capacity_mismatch_is_kept_and_flagged():
    result = clean(
        snap(station_code="16107", capacity=8),  # 5 + 5 > 8
        snap(station_code="16108", capacity=10),  # equal: fine
        snap(station_code="16109", capacity=0),  # capacity 0 with bikes and docks: mismatch
        snap(station_code="16110"),  # unknown capacity: cannot be a mismatch
    )
    assert result.quarantine.is_empty()
    assert result.clean.select("station_code", "capacity_mismatch").rows() == [
        ("16107", True),
        ("16108", False),
        ("16109", True),
        ("16110", False),
    ]


def test_output_schema_sorted_and_identical_whatever_the_input_order():
    rows = [
        snap(station_code=c, snapshot_ts=T + timedelta(minutes=m))
        for c in ("21010", "16107")
        for m in (2, 0, 1)
    ]
    first = clean(*rows).clean
    again = clean(*reversed(rows)).clean
    assert first.schema == pl.Schema(CLEAN_SCHEMA)
    assert first.equals(again)
    assert first.select("station_code", "snapshot_ts").rows() == sorted(
        first.select("station_code", "snapshot_ts").rows()
    )


def test_empty_input_gives_empty_frames_with_the_schemas():
    result = clean_snapshots(empty_raw_frame().lazy(), REFERENCE, THRESHOLDS)
    assert result.clean.is_empty() and result.clean.schema == pl.Schema(CLEAN_SCHEMA)
    assert result.quarantine.is_empty() and result.quarantine.schema == pl.Schema(QUARANTINE_SCHEMA)
