"""Forecast features on hand-built series: values, targets, the profile, and no look-ahead."""

from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest

from velib_assets.forecast import features
from velib_assets.forecast.features import EMPTY, FEATURE_SCHEMA, FULL, OK
from velib_assets_tests.forecast_history import clean_day

MAX_GAP = timedelta(minutes=15)
DAY = date(2024, 11, 5)  # a Tuesday; 10:00 UTC is 11:00 in Paris


def at(hour: int, minute: int = 0) -> datetime:
    return datetime(2024, 11, 5, hour, minute, tzinfo=UTC)


def clean_rows(points: list[tuple[datetime, int]], code: str = "16107", total: int = 10) -> list[dict]:
    return [
        {
            "station_code": code,
            "snapshot_ts": ts,
            "bikes": b,
            "docks": total - b,
            "in_service": True,
            "is_empty": b == 0,
            "is_full": b == total,
            "is_nearly_empty": b <= 1,
            "is_nearly_full": b >= 9,
            "capacity": total,
            "code_insee": "75116",
            "commune": "Paris",
            "arrondissement": 16,
            "name": "Godard",
        }
        for ts, b in points
    ]


def series_of(points: list[tuple[datetime, int]], code: str = "16107", total: int = 10) -> pl.DataFrame:
    """The series of one station, captured beside a busy neighbour: a network where a single
    station sits still would be a feed repeating itself (`features.fresh_captures`)."""
    busy = [(ts, i % 2) for i, (ts, _) in enumerate(points)]
    rows = clean_rows(points, code, total) + clean_rows(busy, "99999")
    return features.station_series(pl.DataFrame(rows), MAX_GAP).filter(pl.col("station_code") == code)


def test_features_by_hand():
    # 5 bikes at 9:00 (held 30 min), 3 at 9:30, 0 (empty) from 9:45, observed every 5 minutes.
    points = [(at(9, m), 5) for m in range(0, 30, 5)] + [(at(9, 30), 3), (at(9, 35), 3), (at(9, 40), 3)]
    points += [(at(9, m), 0) for m in range(45, 60, 5)] + [(at(10, 0), 0)]
    row = features.features_at(series_of(points), [at(10, 2)], MAX_GAP).row(0, named=True)
    assert row["bikes_now"] == 0 and row["docks_now"] == 10 and row["total_now"] == 10
    assert row["state_now"] == EMPTY and row["fill_now"] == 0
    assert row["observed_at"] == at(10, 0) and row["age_minutes"] == pytest.approx(2)
    assert row["minutes_in_state"] == pytest.approx(17)  # empty since 9:45
    assert row["delta_5"] == 0  # 9:57 -> the 9:55 observation
    assert row["delta_15"] == 0 - 0  # 9:47 -> 9:45, already empty
    assert row["delta_60"] == 0 - 5  # 9:02 -> 9:00
    assert row["local_hour"] == pytest.approx(11 + 2 / 60) and row["weekday"] == 1
    assert row["district"] == "Paris 16e" and row["district_code"] == 75116


def test_a_stale_state_gives_no_row_and_a_gap_restarts_the_state():
    points = [(at(8, 0), 4), (at(9, 0), 4), (at(9, 5), 4)]  # an hour unobserved between 8:00 and 9:00
    frame = features.features_at(series_of(points), [at(8, 30), at(9, 10)], MAX_GAP)
    assert frame["origin"].to_list() == [at(9, 10)]  # at 8:30 the last observation is 30 min old
    assert frame["minutes_in_state"].item() == pytest.approx(10)  # the run began again at 9:00
    assert frame["state_now"].item() == OK


def test_targets_are_what_was_observed_h_minutes_later_within_the_day():
    points = [(at(10, m), m // 5) for m in range(0, 60, 5)] + [(at(11, 0), 10)]
    series = series_of(points)
    frame = features.add_targets(features.features_at(series, [at(10, 0)], MAX_GAP), series, MAX_GAP)
    row = frame.row(0, named=True)
    assert (row["bikes_15"], row["bikes_30"], row["bikes_60"]) == (3, 6, 10)
    assert row["full_60"] is True and row["empty_15"] is False
    cut = features.add_targets(
        features.features_at(series, [at(10, 0)], MAX_GAP), series, MAX_GAP, at(10, 45)
    )
    assert cut["bikes_30"].item() == 6 and cut["bikes_60"].item() is None  # past the cut: unknown


def test_across_a_gap_in_the_captures_the_origins_own_observation_is_no_target():
    # Captures at 10:00 and 10:20 only: at 10:15 the last observation is still 10:00's, the very
    # one the features saw, so "+15" is unknown; "+30" (10:30) reads the 10:20 capture.
    series = series_of([(at(10, 0), 5), (at(10, 20), 0)])
    frame = features.add_targets(features.features_at(series, [at(10, 0)], MAX_GAP), series, MAX_GAP)
    row = frame.row(0, named=True)
    assert row["bikes_15"] is None and row["empty_15"] is None
    assert row["bikes_30"] == 0 and row["empty_30"] is True


def test_captures_repeating_the_whole_network_are_no_observation():
    # Two stations every 5 minutes; from 10:25 the feed repeats 10:20's content until 11:00, and
    # at 10:05 it repeated 10:00's once (the dataset refreshes about every ten minutes).
    times = [at(10, m) for m in range(0, 60, 5)] + [at(11, 0)]
    live = {at(10, m): m // 5 for m in (0, 10, 15, 20)} | {at(10, 5): 0}
    counts = [live.get(ts, live[at(10, 20)]) for ts in times]
    rows = clean_rows(list(zip(times, counts, strict=True))) + clean_rows(
        [(ts, 9 - c) for ts, c in zip(times, counts, strict=True)], "99999"
    )
    series = features.station_series(pl.DataFrame(rows), MAX_GAP)
    assert series.filter(pl.col("station_code") == "16107")["snapshot_ts"].to_list() == [
        at(10, 0),
        at(10, 10),
        at(10, 15),
        at(10, 20),
    ]
    frame = features.add_targets(
        features.features_at(series, [at(10, 7), at(10, 15), at(10, 45)], MAX_GAP), series, MAX_GAP
    ).filter(pl.col("station_code") == "16107")
    # 10:07 reads 10:00 (the 10:05 repeat is no newer); by 10:45 the newest news is 25 minutes old.
    assert frame["origin"].to_list() == [at(10, 7), at(10, 15)]
    assert frame["observed_at"].to_list() == [at(10, 0), at(10, 15)]
    row = frame.row(1, named=True)
    # +15 (10:30) reads 10:20's news, 10 minutes old; +30 and +60 fall in the frozen feed: unknown,
    # where counting the repeats would have scored "no change", the answer persistence gives.
    assert row["bikes_15"] == 4 and row["bikes_30"] is None and row["bikes_60"] is None


def test_no_look_ahead_perturbing_the_future_changes_no_feature():
    clean = clean_day(DAY, stations=6)
    context = clean_day(DAY - timedelta(days=1), stations=6)
    cut = at(12, 0)
    future = pl.col("snapshot_ts") > cut
    perturbed = pl.concat(
        [
            clean.filter(~future),
            clean.filter(future)
            .with_columns(  # the future turned upside down, a station dropped
                (20 - pl.col("bikes")).alias("bikes"),
                pl.col("bikes").alias("docks"),
                pl.col("is_full").alias("is_empty"),
                pl.col("is_empty").alias("is_full"),
            )
            .filter(pl.col("station_code") != "16101"),
        ]
    )
    columns = list(FEATURE_SCHEMA)
    before = features.day_features(clean, context, DAY, 15, MAX_GAP).filter(pl.col("origin") <= cut)
    after = features.day_features(perturbed, context, DAY, 15, MAX_GAP).filter(pl.col("origin") <= cut)
    assert before.height > 6 * 40
    assert before.select(columns).equals(after.select(columns))
    # ...while the targets that look past the cut did change: the perturbation was real.
    assert not before["bikes_60"].equals(after["bikes_60"])


def test_day_features_never_reach_past_the_day():
    clean = pl.concat([clean_day(DAY, stations=2), clean_day(DAY + timedelta(days=1), stations=2)])
    frame = features.day_features(clean, clean.clear(), DAY, 15, MAX_GAP)
    start, end = datetime(2024, 11, 4, 23, tzinfo=UTC), datetime(2024, 11, 5, 23, tzinfo=UTC)
    # The first capture lands at 00:01 Paris: the first origin with a state is 00:15.
    assert frame["origin"].min() == start + timedelta(minutes=15) and frame["origin"].max() < end
    late = frame.filter(pl.col("origin") > end - timedelta(minutes=60))
    assert late["bikes_60"].null_count() == late.height  # their +60 targets are tomorrow's
    assert frame.filter(pl.col("origin") == end - timedelta(minutes=60))["bikes_60"].null_count() == 2


def test_profile_sums_and_fallbacks_by_hand():
    day_rows = pl.DataFrame(
        {
            "station_code": ["A", "A", "A", "B"],
            "origin": [at(10), at(10, 30), at(11), at(10)],
            "local_hour": [11.0, 11.5, 12.0, 11.0],
            "weekday": [1, 1, 1, 1],
            "in_service_now": [True, True, True, False],
            "bikes_now": [0, 4, 6, 3],
            "state_now": [EMPTY, OK, FULL, OK],
        },
        schema_overrides={"weekday": pl.Int8, "bikes_now": pl.Int32, "state_now": pl.Int8},
    )
    sums = features.profile_sums(day_rows)
    assert sums.filter(pl.col("hour") == 11).row(0, named=True) == {
        "station_code": "A",
        "weekday": 1,
        "hour": 11,
        "n": 2,
        "bikes_sum": 4,
        "empty_n": 1,
        "full_n": 0,
    }
    assert "B" not in sums["station_code"].to_list()  # out of service: not part of any profile
    profile = features.profile_of([sums])
    # Tuesday 11:00 Paris is known; Wednesday 11:00 falls back to 11:00 of any day; 15:00 to the station.
    asked = pl.DataFrame(
        {"station_code": ["A", "A", "A"], "origin": [at(10), at(10) + timedelta(days=1), at(14)]}
    )
    got = features.with_profile(asked, profile, 0)
    assert got["profile_bikes"].to_list() == [2.0, 2.0, pytest.approx(10 / 3)]
    assert got["profile_p_empty"].to_list() == [0.5, 0.5, pytest.approx(1 / 3)]
    assert got["profile_p_full"].to_list()[2] == pytest.approx(1 / 3)
