"""Station attributes as spells and an SCD2 dimension: split/join is lossless, versions merge and
split where they should, and only real station events become changes."""

import math
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from velib_assets.kpis.clean import CLEAN_SCHEMA
from velib_assets.kpis.stations import (
    CLEAN_MINUTE_SCHEMA,
    EARTH_RADIUS_M,
    SPELL_SCHEMA,
    STATION_ATTRIBUTES,
    STATION_CHANGES_SCHEMA,
    STATIONS_SCHEMA,
    join_spells,
    split_clean,
    station_changes,
    station_versions,
)
from velib_assets_tests.analytics_fixtures import clean_captures
from velib_assets_tests.frames import BENJAMIN_GODARD, BOULOGNE_CENTRE

# Galilée - Vernet (8003) really reported capacity 17, then 47, 17 and 47 again on 2024-11-04 (UTC+1).
FLAPPING_FILES = (
    "velib_data_20241104_110001.json.gz",
    "velib_data_20241104_111001.json.gz",
    "velib_data_20241104_141501.json.gz",
    "velib_data_20241104_162501.json.gz",
)
T = datetime(2024, 11, 1, tzinfo=UTC)
DAY = timedelta(days=1)
GODARD = {name: BENJAMIN_GODARD.get(name) for name in STATION_ATTRIBUTES} | {"station_id": 213688169}
BOULOGNE = {name: BOULOGNE_CENTRE.get(name) for name in STATION_ATTRIBUTES} | {"station_id": 17278902806}
METRES_PER_DEGREE = EARTH_RADIUS_M * math.pi / 180


def minute(at: int, code: str = "16107", **attributes) -> dict:
    """A clean row `at` minutes after T with Benjamin Godard's attributes; override what a test needs."""
    return {
        "station_code": code,
        "snapshot_ts": T + timedelta(minutes=at),
        "bikes": at,
        **GODARD,
        **attributes,
    }


def spell(code: str, start: datetime, end: datetime, **attributes) -> dict:
    """A spell of one snapshot a minute from `start` to `end`, Benjamin Godard's attributes overridden."""
    rows = int((end - start) / timedelta(minutes=1)) + 1
    return {"station_code": code, **GODARD, **attributes, "first_seen": start, "last_seen": end, "rows": rows}


def frame(rows: list[dict], schema: dict[str, pl.DataType]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=schema)


def test_split_and_join_are_exact_on_real_rows_and_a_real_capacity_flap_is_three_changes():
    clean = clean_captures(*FLAPPING_FILES)
    minutes, spells = split_clean(clean)

    assert minutes.schema == pl.Schema(CLEAN_MINUTE_SCHEMA)
    assert spells.schema == pl.Schema(SPELL_SCHEMA)
    assert minutes.equals(clean.select(list(CLEAN_MINUTE_SCHEMA)))
    assert spells["rows"].sum() == clean.height
    flapping = spells.filter(pl.col("station_code") == "8003")
    assert flapping["capacity"].to_list() == [17, 47, 17, 47]
    assert spells.height == clean["station_code"].n_unique() + 3  # every other station: one spell

    joined = join_spells(minutes, spells)
    assert joined.schema == pl.Schema(CLEAN_SCHEMA)
    assert joined.equals(clean)

    changes = station_changes(station_versions(spells))
    assert changes.select("station_code", "change", "before", "after").rows() == [
        ("8003", "capacity", "17", "47"),
        ("8003", "capacity", "47", "17"),
        ("8003", "capacity", "17", "47"),
    ]


def test_spells_take_null_as_equal_to_null_and_a_flap_as_three_spells():
    clean = frame(
        [
            minute(0, lat=None),
            minute(1, lat=None),  # null == null: same spell
            minute(2, lat=None, name="Godard"),
            minute(3, lat=None),  # back to the first name: a third spell, not the first one again
            minute(4),  # the latitude appears
            minute(0, "21010", capacity=None, commune=None, arrondissement=None),
            minute(1, "21010", capacity=None, commune=None, arrondissement=None),
        ],
        CLEAN_SCHEMA,
    )
    minutes, spells = split_clean(clean)

    assert spells.select(
        "station_code", "name", "lat", "capacity", "first_seen", "last_seen", "rows"
    ).rows() == [
        ("16107", "Benjamin Godard", None, 35, T, T + timedelta(minutes=1), 2),
        ("16107", "Godard", None, 35, T + timedelta(minutes=2), T + timedelta(minutes=2), 1),
        ("16107", "Benjamin Godard", None, 35, T + timedelta(minutes=3), T + timedelta(minutes=3), 1),
        ("16107", "Benjamin Godard", 48.865, 35, T + timedelta(minutes=4), T + timedelta(minutes=4), 1),
        ("21010", "Benjamin Godard", 48.865, None, T, T + timedelta(minutes=1), 2),
    ]
    assert join_spells(minutes, spells).equals(clean)


def test_join_spells_rejects_spells_that_do_not_fit_the_minutes():
    clean = frame([minute(0), minute(1), minute(0, "21010")], CLEAN_SCHEMA)
    minutes, spells = split_clean(clean)

    with pytest.raises(ValueError, match="spells cover 5 rows but minutes has 3"):
        join_spells(minutes, spells.with_columns(pl.col("rows") + 1))
    with pytest.raises(ValueError, match="spells cover 2 rows but minutes has 3"):
        join_spells(minutes, spells.head(1))
    swapped = spells.with_columns(pl.col("rows").reverse())  # 1 + 2 rows instead of 2 + 1
    with pytest.raises(
        ValueError, match="do not line up.* row 1 is station '16107' but its spell is '21010'"
    ):
        join_spells(minutes, swapped)


def test_versions_merge_identical_spells_across_days_and_split_on_a_change():
    minute_ = timedelta(minutes=1)
    day2, day3, renaming = T + DAY, T + 2 * DAY, T + DAY + timedelta(hours=10)
    spells = frame(
        [
            spell("16107", day2, renaming - minute_),  # day 2 until 10:00: the same attributes as day 1
            spell("16107", renaming, day3 - minute_, name="Godard", capacity=36),
            spell("21010", day2, day3 - minute_, **BOULOGNE),
            spell("16107", T, day2 - minute_),
            spell("16107", day3, day3 + timedelta(hours=1)),  # back to the first attributes: a new version
        ],
        SPELL_SCHEMA,
    )
    stations = station_versions(spells.lazy())

    assert stations.schema == pl.Schema(STATIONS_SCHEMA)
    columns = ("station_code", "version", "name", "capacity", "valid_from", "valid_to", "last_seen")
    assert stations.select(*columns, "snapshots", "changed").rows() == [
        ("16107", 1, "Benjamin Godard", 35, T, renaming, renaming - minute_, 1440 + 600, None),
        ("16107", 2, "Godard", 36, renaming, day3, day3 - minute_, 840, "name,capacity"),
        ("16107", 3, "Benjamin Godard", 35, day3, None, day3 + timedelta(hours=1), 61, "name,capacity"),
        ("21010", 1, "Boulogne Centre", 20, day2, None, day3 - minute_, 1440, None),
    ]
    assert station_versions(spells.reverse()).equals(stations)


def test_changes_report_relocations_capacity_renaming_openings_and_closures():
    north = {"lat": GODARD["lat"] + 60 / METRES_PER_DEGREE}  # 60 m due north
    nudged = {"lat": GODARD["lat"] + 40 / METRES_PER_DEGREE}  # 40 m: noise, not a move
    day2, day3 = T + DAY, T + 2 * DAY
    end = day3 + timedelta(hours=12)
    spells = frame(
        [
            spell("16107", T, day2 - timedelta(minutes=1)),
            spell("16107", day2, end, **north),
            spell("16108", T, day2 - timedelta(minutes=1)),
            spell("16108", day2, day3 - timedelta(minutes=1), **nudged),
            spell("16108", day3, end, **nudged, capacity=40),
            spell("16109", T, day2 - timedelta(minutes=1), name="Godard"),
            spell("16109", day2, end),
            spell("16110", T, day2 - timedelta(minutes=1), lat=None, lon=None, capacity=None, name=None),
            spell("16110", day2, end),  # what was unknown becomes known: no event
            spell("21010", day2, end, **BOULOGNE),
            spell("16111", T, day2 - timedelta(minutes=1), name="Quai"),
            # last seen 1 day + 1 minute before the end, under no name at the end
            spell("16111", day2, day2 + timedelta(hours=11, minutes=59), name=None),
        ],
        SPELL_SCHEMA,
    )
    changes = station_changes(station_versions(spells))

    assert changes.schema == pl.Schema(STATION_CHANGES_SCHEMA)
    assert changes.drop("distance_m").rows() == [
        ("16107", day2, "relocated", "48.865000,2.275000", f"{north['lat']:.6f},2.275000"),
        ("16109", day2, "renamed", "Godard", "Benjamin Godard"),
        ("21010", day2, "opened", None, "Boulogne Centre"),
        ("16111", day2 + timedelta(hours=11, minutes=59), "closed", "Quai", None),
        ("16108", day3, "capacity", "35", "40"),
    ]
    distances = changes["distance_m"].to_list()
    assert distances[0] == pytest.approx(60, abs=1)
    assert distances[1:] == [None] * 4


def test_closed_after_sets_how_long_a_station_may_be_missing():
    spells = frame(
        [
            spell("16107", T, T + 3 * DAY),
            spell("16108", T, T + 2 * DAY - timedelta(minutes=1)),
            spell("16109", T, T + 2 * DAY),  # missing for exactly one day: not more than it
        ],
        SPELL_SCHEMA,
    )
    stations = station_versions(spells)

    assert station_changes(stations).select("station_code", "changed_at", "change", "before").rows() == [
        ("16108", T + 2 * DAY - timedelta(minutes=1), "closed", "Benjamin Godard")
    ]
    assert station_changes(stations, closed_after=DAY + timedelta(minutes=1)).is_empty()
