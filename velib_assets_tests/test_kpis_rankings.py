"""Critical station rankings: daily sums over local-day hours (DST included), streaks, rank order."""

from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest

from velib_assets.kpis.clean import clean_snapshots
from velib_assets.kpis.occupancy import STATION_OCCUPANCY_SCHEMA, STREAK_COLUMNS, station_occupancy_hours
from velib_assets.kpis.rankings import RANKINGS_SCHEMA, critical_station_rankings, local_day_bounds
from velib_assets.schema import REFERENCE_SCHEMA, conform_raw
from velib_assets.settings import KpiThresholds
from velib_assets_tests.frames import in_service

THRESHOLDS = KpiThresholds()  # MAX_GAP 15 min
REFERENCE = pl.DataFrame(
    [{"station_code": "16107", "lat": 48.865, "lon": 2.275, "commune": "Paris", "arrondissement": 16}],
    schema=REFERENCE_SCHEMA,
)


def snap(ts: datetime, state: str = "ok", code: str = "16107", **fields) -> dict:
    bikes, docks = {"empty": (0, 10), "full": (10, 0), "ok": (5, 5)}[state]
    return in_service(ts, code, bikes=bikes, docks=docks, **fields)


def rank_day(rows: list[dict], day: date, thresholds: KpiThresholds = THRESHOLDS) -> pl.DataFrame:
    """Raw rows -> clean -> hourly occupancy -> the day's ranking, as the assets chain them."""
    clean = clean_snapshots(conform_raw(pl.DataFrame(rows)), REFERENCE, thresholds).clean
    occupancy = station_occupancy_hours(clean, thresholds)
    return critical_station_rankings(occupancy, day, thresholds)


@pytest.mark.parametrize(
    ("day", "hours"), [(date(2024, 10, 27), 25), (date(2024, 3, 31), 23), (date(2024, 11, 4), 24)]
)
def test_local_day_sums_its_23_24_or_25_hourly_windows(day, hours):
    start, end = local_day_bounds(day)
    assert end - start == timedelta(hours=hours)
    # empty all day, one capture every 15 minutes: each capture counts 15 minutes
    captures = [start + timedelta(minutes=15 * i) for i in range(4 * hours)]
    outside = [start - timedelta(minutes=15), end]  # the neighbouring days' captures are not counted
    ranking = rank_day([snap(ts, "empty") for ts in captures + outside], day)
    assert ranking.schema == pl.Schema(RANKINGS_SCHEMA)
    row = ranking.row(0, named=True)
    assert ranking.height == 1
    assert row["day"] == day
    assert row["in_service_minutes"] == pytest.approx(60 * hours)
    assert row["empty_minutes"] == pytest.approx(60 * hours)
    assert row["longest_empty_streak_minutes"] == pytest.approx(60 * hours)
    assert row["critical_minutes"] == pytest.approx(60 * hours)


def test_streaks_cross_hour_boundaries_and_break_on_gaps_longer_than_max_gap():
    t = datetime(2024, 11, 4, 10, 45, tzinfo=UTC)
    m = [timedelta(minutes=x) for x in (0, 10, 20, 30, 35, 45, 75, 85, 105, 125)]
    rows = [
        snap(t + m[0], "empty", name="Old name"),  # 10:45 -> 10:55: 10 min
        snap(t + m[1], "empty"),  # 10:55 -> 11:00 (hour end): 5
        snap(t + m[2], "empty"),  # 11:05 -> 11:15: 10
        snap(t + m[3], "empty", name="New name"),  # 11:15 -> 11:20: 5   => empty run of 30 across 11:00
        snap(t + m[4], "ok"),  # 11:20 -> 11:30: 10
        snap(t + m[5], "empty"),  # 11:30 -> 11:45 (MAX_GAP): 15      => empty run of 15
        snap(t + m[6], "full"),  # 12:00 -> 12:10: 10
        snap(t + m[7], "full"),  # 12:10 -> 12:25 (MAX_GAP): 15      => full run of 25 (gap 20 follows)
        snap(t + m[8], "full"),  # 12:30 -> 12:45 (MAX_GAP): 15      => full run of 15 (gap 20 follows)
        snap(t + m[9], "full"),  # 12:50 -> 13:00: 10                => full run of 10
    ]
    # a second station observed at the same instants must not disturb the first one's runs
    neighbour = [
        snap(row["snapshot_ts"], "empty" if i % 2 else "ok", code="16108") for i, row in enumerate(rows)
    ]
    ranking = rank_day(rows + neighbour, date(2024, 11, 4))
    assert ranking["station_code"].to_list() == ["16107", "16108"]
    row = ranking.row(0, named=True)
    assert row["name"] == "New name"
    assert row["district"] == "Paris 16e"
    assert row["in_service_minutes"] == pytest.approx(105)
    assert row["empty_minutes"] == pytest.approx(45)
    assert row["full_minutes"] == pytest.approx(50)
    assert row["critical_minutes"] == pytest.approx(95)
    assert row["longest_empty_streak_minutes"] == pytest.approx(30)
    assert row["longest_full_streak_minutes"] == pytest.approx(25)


def occupancy_row(code: str, hour: datetime, in_service: float, empty: float, full: float) -> dict:
    """An hourly row with scattered empty and full minutes: no streak longer than a minute."""
    return {
        "station_code": code,
        "hour_start": hour,
        "name": f"Station {code}",
        "district": "Paris 16e",
        "observed_minutes": 60.0,
        "in_service_minutes": in_service,
        "empty_minutes": empty,
        "full_minutes": full,
        "first_snapshot_ts": hour,
        "last_snapshot_ts": hour + timedelta(minutes=59),
        **dict.fromkeys(STREAK_COLUMNS, 0.0),
    }


def test_rank_order_ties_and_exclusions():
    h1 = datetime(2024, 11, 4, 10, tzinfo=UTC)
    h2 = h1 + timedelta(hours=1)
    occupancy = pl.DataFrame(
        [
            occupancy_row("16001", h1, 60, 10, 10),  # over two hours: empty 30, full 10 -> 40
            occupancy_row("16001", h2, 60, 20, 0),
            occupancy_row("16002", h1, 60, 20, 20),  # 40, fewer empty minutes than 16001
            occupancy_row("16003", h1, 60, 20, 20),  # same as 16002: code decides
            occupancy_row("16004", h1, 60, 50, 0),  # 50: most critical
            occupancy_row("16005", h1, 60, 0, 0),  # in service, never critical: last
            occupancy_row("16006", h1, 0, 0, 0),  # never in service: not ranked
            occupancy_row("16007", h1 + timedelta(days=1), 60, 60, 0),  # another day
        ],
        schema={k: v for k, v in STATION_OCCUPANCY_SCHEMA.items() if k in occupancy_row("", h1, 0, 0, 0)},
    )
    ranking = critical_station_rankings(occupancy, date(2024, 11, 4), THRESHOLDS)
    assert ranking.select("rank", "station_code", "critical_minutes", "empty_minutes").rows() == [
        (1, "16004", 50.0, 50.0),
        (2, "16001", 40.0, 30.0),
        (3, "16002", 40.0, 20.0),
        (4, "16003", 40.0, 20.0),
        (5, "16005", 0.0, 0.0),
    ]
    assert ranking["longest_empty_streak_minutes"].to_list() == [0.0] * 5


def test_stations_never_in_service_are_not_ranked():
    t = datetime(2024, 11, 4, 10, tzinfo=UTC)
    rows = [snap(t, "empty", code="16107"), snap(t, "empty", code="16108", is_installed=False)]
    assert rank_day(rows, date(2024, 11, 4))["station_code"].to_list() == ["16107"]


def brute_force_streaks(rows: list[dict], max_gap: timedelta) -> dict[str, tuple[float, float]]:
    """The streak definition read literally, one observation at a time."""
    result = {}
    for code in {row["station_code"] for row in rows}:
        mine = sorted((r for r in rows if r["station_code"] == code), key=lambda r: r["snapshot_ts"])
        longest = {"empty": 0.0, "full": 0.0}
        current = {"empty": 0.0, "full": 0.0}
        previous = None
        for i, row in enumerate(mine):
            ts = row["snapshot_ts"]
            window_end = ts.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
            ends = [ts + max_gap, window_end] + ([mine[i + 1]["snapshot_ts"]] if i + 1 < len(mine) else [])
            minutes = (min(ends) - ts) / timedelta(minutes=1)
            for state in ("empty", "full"):
                linked = previous is not None and ts - previous <= max_gap
                if row["bikes" if state == "empty" else "docks"] == 0:
                    current[state] = (current[state] if linked else 0.0) + minutes
                    longest[state] = max(longest[state], current[state])
                else:
                    current[state] = 0.0
            previous = ts
        result[code] = (longest["empty"], longest["full"])
    return result


@pytest.mark.parametrize("max_gap_minutes", [15, 90])
@pytest.mark.parametrize("seed", range(8))
def test_streaks_match_a_literal_reading_of_the_definition(seed, max_gap_minutes):
    """Hourly rows chained into daily streaks give what a walk over the observations gives, also
    when MAX_GAP exceeds an hour and a streak spans an hour without any capture."""
    import random

    rng = random.Random(seed)
    thresholds = KpiThresholds(max_gap=timedelta(minutes=max_gap_minutes))
    rows = []
    for code in ("16107", "16108", "16109"):
        ts = datetime(2024, 11, 4, 9, 0, tzinfo=UTC)
        while ts < datetime(2024, 11, 4, 15, 0, tzinfo=UTC):
            rows.append(snap(ts, rng.choice(["empty", "empty", "empty", "full", "full", "ok"]), code=code))
            ts += timedelta(seconds=rng.choice([30, 60, 90, 600, 900, 1000, 1500, 3900, 5000]))
    ranking = rank_day(rows, date(2024, 11, 4), thresholds)
    expected = brute_force_streaks(rows, thresholds.max_gap)
    got = {
        code: (empty, full)
        for code, empty, full in ranking.select(
            "station_code", "longest_empty_streak_minutes", "longest_full_streak_minutes"
        ).rows()
    }
    assert got.keys() == expected.keys()
    for code, (empty, full) in expected.items():
        assert got[code] == (pytest.approx(empty), pytest.approx(full))
