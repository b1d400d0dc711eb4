"""Time-weighted station and district occupancy (DESIGN §3), on frames whose minutes are countable by hand."""

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from velib_assets.kpis.clean import clean_snapshots
from velib_assets.kpis.occupancy import (
    DISTRICT_OCCUPANCY_SCHEMA,
    STATION_OCCUPANCY_SCHEMA,
    district_occupancy,
    station_occupancy,
    station_occupancy_hours,
)
from velib_assets.schema import REFERENCE_SCHEMA, conform_raw
from velib_assets.settings import KpiThresholds
from velib_assets_tests.frames import in_service

H = datetime(2024, 11, 4, 10, 0, tzinfo=UTC)
THRESHOLDS = KpiThresholds()  # MAX_GAP 15 min
REFERENCE = pl.DataFrame(
    [
        {"station_code": "1001", "lat": 48.86, "lon": 2.34, "commune": "Paris", "arrondissement": 1},
        {"station_code": "16107", "lat": 48.865, "lon": 2.275, "commune": "Paris", "arrondissement": 16},
        {"station_code": "21010", "lat": 48.835, "lon": 2.240, "commune": "Boulogne-Billancourt"},
    ],
    schema=REFERENCE_SCHEMA,
)


def at(minute: float, code: str = "16107", **fields) -> dict:
    return in_service(H + timedelta(minutes=minute), code, **fields)


def clean(*rows: dict) -> pl.DataFrame:
    return clean_snapshots(conform_raw(pl.DataFrame(list(rows))), REFERENCE, THRESHOLDS).clean


def hour(*rows: dict, thresholds: KpiThresholds = THRESHOLDS) -> pl.DataFrame:
    return station_occupancy(clean(*rows), H, H + timedelta(hours=1), thresholds)


def test_time_weighting_gaps_max_gap_and_window_end():
    occupancy = hour(
        at(-1, bikes=0, docks=10),  # previous hour: ignored
        at(0, bikes=0, docks=10),  # empty, lasts until 10:05 -> 5 min
        at(5, bikes=5, docks=5),  # next obs 10:40, capped by MAX_GAP -> 15 min
        at(40, bikes=10, docks=0),  # full, lasts until 10:50 -> 10 min
        at(50, bikes=4, docks=6),  # last: min(11:05, 11:00) -> 10 min
        at(60, bikes=0, docks=10),  # next hour: ignored
    )
    assert occupancy.schema == pl.Schema(STATION_OCCUPANCY_SCHEMA)
    row = occupancy.row(0, named=True)
    assert occupancy.height == 1
    assert row["hour_start"] == H
    assert row["observed_minutes"] == pytest.approx(40)
    assert row["in_service_minutes"] == pytest.approx(40)
    assert row["empty_minutes"] == pytest.approx(5)
    assert row["full_minutes"] == pytest.approx(10)
    assert row["nearly_empty_minutes"] == pytest.approx(5)
    assert row["nearly_full_minutes"] == pytest.approx(10)
    # (0*5 + 0.5*15 + 1*10 + 0.4*10) / 40
    assert row["mean_fill_rate"] == pytest.approx(21.5 / 40)
    assert (row["min_bikes"], row["max_bikes"], row["min_docks"], row["max_docks"]) == (0, 10, 0, 10)
    assert row["snapshots"] == 4


def test_last_observation_runs_to_the_window_end_and_max_gap_is_configurable():
    # one observation at 10:50: 10 min with MAX_GAP 15, 5 min with MAX_GAP 5
    assert hour(at(50))["observed_minutes"].to_list() == [pytest.approx(10)]
    short = hour(at(50), thresholds=KpiThresholds(max_gap=timedelta(minutes=5)))
    assert short["observed_minutes"].to_list() == [pytest.approx(5)]


def test_minute_cadence_covers_the_hour_from_the_first_observation():
    # captures at :00:30, :01:30, ... :59:30: 59 one-minute observations + 30 s for the last
    occupancy = hour(*(at(m + 0.5) for m in range(60)))
    assert occupancy["observed_minutes"].item() == pytest.approx(59.5)
    assert occupancy["in_service_minutes"].item() == pytest.approx(59.5)


def test_stale_and_broken_stations_are_observed_but_never_in_service():
    occupancy = hour(
        at(0, code="16107", bikes=0, docks=10, reported_at=H - timedelta(days=2)),  # stale, would be empty
        at(0, code="21010", bikes=0, docks=0),  # broken: no bike, no dock
    )
    assert occupancy.select(
        "station_code",
        "observed_minutes",
        "in_service_minutes",
        "empty_minutes",
        "full_minutes",
        "mean_fill_rate",
    ).rows() == [
        ("16107", 15.0, 0.0, 0.0, 0.0, 0.0),
        ("21010", 15.0, 0.0, 0.0, 0.0, None),
    ]


def test_mean_ebike_is_a_plain_mean_of_snapshots():
    # lasting 1 min and 15 min, but each snapshot counts once: (2 + 6) / 2
    occupancy = hour(at(0, bikes=5, ebike=2), at(1, bikes=7, docks=3, ebike=6))
    assert occupancy["mean_ebike"].item() == pytest.approx(4.0)


def test_district_labels():
    occupancy = hour(at(0, code="1001"), at(0, code="16107"), at(0, code="21010"), at(0, code="99999"))
    assert occupancy.select("station_code", "district").rows() == [
        ("1001", "Paris 1er"),
        ("16107", "Paris 16e"),
        ("21010", "Boulogne-Billancourt"),
        ("99999", "Unknown"),
    ]


def test_district_occupancy_sums_minutes_and_averages_stations():
    occupancy = hour(
        at(0, code="16107", bikes=0, docks=10),
        at(30, code="16107", bikes=0, docks=10),  # 30 min empty, fill 0
        at(0, code="16999", bikes=10, docks=0, lat=48.866, lon=2.276),  # unknown, near 16107: 15 min full
        at(0, code="1001"),
    )
    districts = district_occupancy(occupancy)
    assert districts.schema == pl.Schema(DISTRICT_OCCUPANCY_SCHEMA)
    assert districts.select(
        "district",
        "stations",
        "observed_minutes",
        "empty_minutes",
        "full_minutes",
        "mean_fill_rate",
        "snapshots",
    ).rows() == [
        ("Paris 16e", 2, 45.0, 30.0, 15.0, 0.5, 3),  # station-weighted: (0 + 1) / 2, not (0*30 + 1*15) / 45
        ("Paris 1er", 1, 15.0, 0.0, 0.0, 0.5, 1),
    ]


def test_all_hours_at_once_equals_hour_by_hour():
    rows = clean(at(0), at(50, bikes=0, docks=10), at(61, bikes=0, docks=10), at(75), at(10, code="21010"))
    both = station_occupancy_hours(rows, THRESHOLDS)
    one_by_one = pl.concat(
        [
            station_occupancy(rows, H + timedelta(hours=h), H + timedelta(hours=h + 1), THRESHOLDS)
            for h in (0, 1)
        ]
    )
    assert both.equals(one_by_one)
    # the 10:50 observation stops at 11:00 although the next one (11:01) is within MAX_GAP
    assert both.filter(pl.col("station_code") == "16107")["empty_minutes"].to_list() == [10.0, 14.0]


def test_row_order_of_the_input_does_not_matter():
    rows = clean(at(0), at(5, bikes=0, docks=10), at(40), at(50, bikes=10, docks=0), at(3, code="21010"))
    window = (H, H + timedelta(hours=1), THRESHOLDS)
    in_order = station_occupancy(rows, *window)
    assert in_order["empty_minutes"].to_list() == [15.0, 0.0]
    assert station_occupancy(rows.reverse(), *window).equals(in_order)
    assert station_occupancy(rows.sample(fraction=1.0, shuffle=True, seed=7), *window).equals(in_order)


def test_empty_window_and_naive_bounds():
    assert station_occupancy(
        clean(at(0)), H + timedelta(hours=3), H + timedelta(hours=4), THRESHOLDS
    ).is_empty()
    with pytest.raises(ValueError, match="no time zone"):
        station_occupancy(clean(at(0)), datetime(2024, 11, 4, 10), datetime(2024, 11, 4, 11), THRESHOLDS)


def test_district_rollup_is_bit_for_bit_the_same_whatever_the_row_order():
    """A re-run must give the same rows: float sums added in a hash group-by's varying order gave
    district means that differed in the last digit between two identical runs of a day."""
    hours = [datetime(2024, 11, 4, tzinfo=UTC) + timedelta(hours=h) for h in range(24)]
    rows = [
        {
            "station_code": f"{district}{station:03d}",
            "hour_start": hour,
            "district": f"Paris {district}e",
            "observed_minutes": 60.0,
            "empty_minutes": (district * station * (index + 1) % 97) / 7,
            "mean_fill_rate": ((district + 3) * (station + 5) * (index + 7) % 1009) / 1009,
            "mean_ebike": ((district + 1) * (station + 2) * (index + 3) % 31) / 3,
        }
        for index, hour in enumerate(hours)
        for district in range(1, 21)
        for station in range(60)
    ]
    stations = pl.DataFrame(rows).select(
        pl.col(name).cast(dtype) if name in rows[0] else pl.lit(0).cast(dtype).alias(name)
        for name, dtype in STATION_OCCUPANCY_SCHEMA.items()
    )
    first = district_occupancy(stations)
    for seed in range(15):
        assert district_occupancy(stations.sample(fraction=1.0, shuffle=True, seed=seed)).equals(first)
