"""The DESIGN §4 asset checks: each passes on real data and fails on crafted bad data, with the
right severity and figures; the days of a run merge as documented; a failing blocking check stops
the downstream asset inside a real Dagster run."""

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from velib_assets import lake, landing, quality, snapshots
from velib_assets.defs import checks
from velib_assets.defs.resources import KpiResource, LakeResource
from velib_assets.kpis.occupancy import station_occupancy
from velib_assets.kpis.rankings import critical_station_rankings
from velib_assets.reference import load_bundled_reference
from velib_assets.schema import conform_raw
from velib_assets.settings import KpiThresholds
from velib_assets.sources import formats
from velib_assets_tests.analytics_fixtures import SAMPLE, clean_captures

ERROR, WARN = quality.ERROR, quality.WARN
FILES = ("velib_data_20241101_100001.json.gz", "velib_data_20241101_100501.json.gz")
HOUR = (datetime(2024, 11, 1, 9, tzinfo=UTC), datetime(2024, 11, 1, 10, tzinfo=UTC))  # 10:00 Paris
DAY = date(2024, 11, 1)


def figures(result: quality.Verdict | dg.AssetCheckResult) -> dict[str, object]:
    return {
        key: getattr(value, "value", getattr(value, "text", value)) for key, value in result.metadata.items()
    }


@pytest.fixture(scope="module")
def clean() -> pl.DataFrame:
    """Two real consecutive exports, cleaned: 1,485 stations at two snapshot times."""
    return clean_captures(*FILES)


@pytest.fixture(scope="module")
def occupancy(clean: pl.DataFrame) -> pl.DataFrame:
    return station_occupancy(clean, *HOUR, KpiThresholds())


@pytest.fixture(scope="module")
def rankings(clean: pl.DataFrame, occupancy: pl.DataFrame) -> pl.DataFrame:
    return critical_station_rankings(occupancy, DAY, KpiThresholds())


def set_rows(frame: pl.DataFrame, rows: int, **values: object) -> pl.DataFrame:
    """`frame` with the given columns overwritten on its first `rows` rows."""
    first = pl.int_range(pl.len()) < rows
    return frame.with_columns(
        pl.when(first).then(pl.lit(v, dtype=frame.schema[c])).otherwise(pl.col(c)).alias(c)
        for c, v in values.items()
    )


# clean_stations ----------------------------------------------------------------------------------
CLEAN_SEVERITY = {
    quality.clean_unique_keys: ERROR,
    quality.clean_non_null_keys: ERROR,
    quality.clean_counts_non_negative: ERROR,
    quality.arrondissement_rule: ERROR,
    quality.clean_bike_types_add_up: WARN,
    quality.clean_capacity_mismatch_share: WARN,
    quality.clean_stale_share: WARN,
    quality.clean_station_count: WARN,
}


@pytest.mark.parametrize("check", CLEAN_SEVERITY, ids=lambda c: c.__name__)
def test_clean_checks_pass_on_real_exports(clean: pl.DataFrame, check) -> None:
    result = check(clean)
    assert result.passed, figures(result)
    assert result.severity == CLEAN_SEVERITY[check]


def test_clean_check_figures_on_real_exports(clean: pl.DataFrame) -> None:
    assert clean.height == 2 * 1485
    assert figures(quality.clean_station_count(clean)) == {
        "snapshots": 2,
        "min_stations": 1485,
        "max_stations": 1485,
        "expected_band": "1000..2500",
    }
    assert figures(quality.arrondissement_rule(clean))["paris_stations"] == 992
    assert figures(quality.clean_bike_types_add_up(clean)) == {"rows_checked": 2970, "mismatched_rows": 0}


def test_unique_keys_fails_on_duplicates(clean: pl.DataFrame) -> None:
    result = quality.clean_unique_keys(pl.concat([clean, clean.head(3)]))
    assert (result.passed, result.severity, figures(result)) == (False, ERROR, {"duplicate_rows": 3})


def test_non_null_keys_fails_on_null_code_or_time(clean: pl.DataFrame) -> None:
    bad = set_rows(clean, 2, station_code=None)
    bad = pl.concat([bad, set_rows(clean.tail(1), 1, snapshot_ts=None)])
    result = quality.clean_non_null_keys(bad)
    assert (result.passed, result.severity, figures(result)) == (False, ERROR, {"null_keys": 3})


@pytest.mark.parametrize("column", ["bikes", "docks", "mechanical", "ebike", "capacity"])
def test_counts_non_negative_fails_on_any_negative_count(clean: pl.DataFrame, column: str) -> None:
    result = quality.clean_counts_non_negative(set_rows(clean, 4, **{column: -1}))
    assert (result.passed, result.severity, figures(result)) == (False, ERROR, {"negative_rows": 4})


def test_counts_non_negative_counts_rows_not_cells(clean: pl.DataFrame) -> None:
    result = quality.clean_counts_non_negative(set_rows(clean, 2, bikes=-1, docks=-2))
    assert figures(result) == {"negative_rows": 2}


def test_bike_types_fails_when_they_do_not_add_up(clean: pl.DataFrame) -> None:
    known = clean.filter(pl.col("mechanical").is_not_null() & pl.col("ebike").is_not_null())
    bad = known.with_columns(
        pl.when(pl.int_range(pl.len()) < 5).then(pl.col("mechanical") + 1).otherwise(pl.col("mechanical"))
    )
    result = quality.clean_bike_types_add_up(bad)
    assert (result.passed, result.severity) == (False, WARN)
    assert figures(result) == {"rows_checked": known.height, "mismatched_rows": 5}


def test_bike_types_ignores_rows_without_types(clean: pl.DataFrame) -> None:
    result = quality.clean_bike_types_add_up(set_rows(clean, 7, mechanical=None, bikes=99))
    assert result.passed
    assert figures(result)["rows_checked"] == clean.height - 7


SHARE_CHECKS = {
    "capacity_mismatch": (quality.clean_capacity_mismatch_share, quality.MAX_CAPACITY_MISMATCH_SHARE),
    "is_stale": (quality.clean_stale_share, quality.MAX_STALE_SHARE),
}


@pytest.mark.parametrize(
    ("column", "flagged", "passed"),
    [
        ("capacity_mismatch", 25, True),
        ("capacity_mismatch", 26, False),
        ("is_stale", 10, True),
        ("is_stale", 11, False),
    ],
)
def test_share_thresholds(clean: pl.DataFrame, column: str, flagged: int, passed: bool) -> None:
    check, max_share = SHARE_CHECKS[column]
    hundred = set_rows(clean.head(100).with_columns(pl.lit(False).alias(column)), flagged, **{column: True})
    result = check(hundred)
    assert (result.passed, result.severity) == (passed, WARN)
    assert figures(result) == {"share": flagged / 100, "max_share": max_share}


def test_station_count_fails_below_the_band(clean: pl.DataFrame) -> None:
    first = clean["snapshot_ts"].min()
    half_feed = clean.filter(
        (pl.col("snapshot_ts") != first) | (pl.int_range(pl.len()).over("snapshot_ts") < 999)
    )
    result = quality.clean_station_count(half_feed)
    assert (result.passed, result.severity) == (False, WARN)
    assert figures(result)["min_stations"] == 999
    assert figures(result)["max_stations"] == 1485


def test_station_count_fails_above_the_band(clean: pl.DataFrame) -> None:
    doubled = pl.concat([clean, clean.with_columns(pl.col("station_code") + "_copy")])
    result = quality.clean_station_count(doubled)
    assert not result.passed
    assert figures(result)["max_stations"] == 2970


def test_station_count_leaves_an_hour_without_rows_to_the_coverage_checks(clean: pl.DataFrame) -> None:
    """An hour without captures is not a half-empty feed: raw and landing_coverage report it."""
    result = quality.clean_station_count(clean.clear())
    assert result.passed
    assert figures(result)["snapshots"] == 0


@pytest.mark.parametrize("code", ["21001", "999", "16107_relais", "abc"])
def test_arrondissement_rule_fails_on_paris_code_without_arrondissement(clean: pl.DataFrame, code) -> None:
    paris = clean.filter(pl.col("commune") == "Paris")
    victim = paris["station_code"][0]
    bad = clean.with_columns(
        pl.when(pl.col("station_code") == victim)
        .then(pl.lit(code))
        .otherwise(pl.col("station_code"))
        .alias("station_code"),
        pl.when(pl.col("station_code") == victim)
        .then(None)
        .otherwise(pl.col("arrondissement"))
        .alias("arrondissement"),
    )
    result = quality.arrondissement_rule(bad)
    assert (result.check_name, result.passed, result.severity) == ("clean_arrondissement_rule", False, ERROR)
    assert figures(result)["violations"] == 1
    assert figures(result)["examples"] == code


def test_arrondissement_rule_fails_on_arrondissement_outside_paris(clean: pl.DataFrame) -> None:
    outside = clean.filter(pl.col("commune") != "Paris")["station_code"][0]
    bad = clean.with_columns(
        pl.when(pl.col("station_code") == outside)
        .then(pl.lit(16, pl.Int8))
        .otherwise(pl.col("arrondissement"))
        .alias("arrondissement")
    )
    result = quality.arrondissement_rule(bad, "reference_arrondissement_rule")
    assert (result.check_name, result.passed) == ("reference_arrondissement_rule", False)
    assert figures(result)["examples"] == outside


def test_arrondissement_rule_holds_for_the_bundled_reference() -> None:
    result = quality.arrondissement_rule(load_bundled_reference())
    assert result.passed, figures(result)
    assert figures(result)["paris_stations"] == 992


# occupancy and rankings --------------------------------------------------------------------------
def test_occupancy_checks_pass_on_real_occupancy(occupancy: pl.DataFrame) -> None:
    assert occupancy.height == 1485
    for check in (quality.occupancy_minutes_in_range, quality.occupancy_fill_rate_in_range):
        result = check(occupancy)
        assert (result.passed, result.severity) == (True, ERROR)
        assert figures(result) == {"rows": 1485, "rows_out_of_range": 0}


@pytest.mark.parametrize(
    ("column", "value", "passed"),
    [
        ("empty_minutes", 60.5, False),
        ("observed_minutes", 61.0, False),
        ("nearly_full_minutes", -0.1, False),
        ("in_service_minutes", 60.0, True),
        ("full_minutes", 0.0, True),
    ],
)
def test_occupancy_minutes_range(occupancy: pl.DataFrame, column: str, value: float, passed: bool) -> None:
    result = quality.occupancy_minutes_in_range(set_rows(occupancy, 3, **{column: value}))
    assert (result.passed, result.severity) == (passed, ERROR)
    assert figures(result)["rows_out_of_range"] == (0 if passed else 3)


@pytest.mark.parametrize(("value", "passed"), [(1.01, False), (-0.01, False), (1.0, True), (None, True)])
def test_occupancy_fill_rate_range(occupancy: pl.DataFrame, value: float | None, passed: bool) -> None:
    result = quality.occupancy_fill_rate_in_range(set_rows(occupancy, 2, mean_fill_rate=value))
    assert (result.passed, result.severity) == (passed, ERROR)
    assert figures(result)["rows_out_of_range"] == (0 if passed else 2)


def test_rankings_contiguous_passes_on_real_rankings(rankings: pl.DataFrame) -> None:
    result = quality.rankings_contiguous(rankings)
    assert (result.passed, result.severity) == (True, ERROR)
    assert figures(result) == {"days": 1, "broken_days": "none"}


@pytest.mark.parametrize(
    "broken",
    [
        pytest.param(lambda r: r.filter(pl.col("rank") != 2), id="gap"),
        pytest.param(lambda r: set_rows(r, 2, rank=1), id="duplicate"),
        pytest.param(lambda r: r.with_columns(pl.col("rank") + 1), id="starts-at-2"),
    ],
)
def test_rankings_contiguous_fails_on_broken_ranks(rankings: pl.DataFrame, broken) -> None:
    next_day = rankings.with_columns(pl.lit(date(2024, 11, 2)).alias("day"))
    result = quality.rankings_contiguous(pl.concat([broken(rankings), next_day]))
    assert (result.passed, result.severity) == (False, ERROR)
    assert figures(result) == {"days": 2, "broken_days": "2024-11-01"}


# landing and raw ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("per_hour", "passed", "worst", "below"),
    [
        ({"2024-11-01-10:00": 60, "2024-11-01-11:00": 30}, True, 0.5, 0),
        ({"2024-11-01-10:00": 60, "2024-11-01-11:00": 29}, False, 0.483333, 1),
        ({"2024-11-01-10:00": 0, "2024-11-01-11:00": 12}, False, 0.0, 2),
        ({}, False, 0.0, 0),
    ],
)
def test_landing_coverage(per_hour: dict[str, int], passed: bool, worst: float, below: int) -> None:
    result = quality.landing_coverage(per_hour, 60)
    assert (result.passed, result.severity) == (passed, WARN)
    assert figures(result) == {
        "expected_per_hour": 60,
        "worst_hour_share": worst,
        "hours_below_threshold": below,
    }


@pytest.mark.parametrize(("age_minutes", "passed"), [(14, True), (15, True), (16, False), (600, False)])
def test_landing_freshness(age_minutes: int, passed: bool) -> None:
    now = datetime(2024, 11, 1, 12, tzinfo=UTC)
    result = quality.landing_freshness(now - timedelta(minutes=age_minutes), now)
    assert (result.passed, result.severity) == (passed, WARN)
    assert figures(result)["age_seconds"] == age_minutes * 60
    assert figures(result)["max_age_seconds"] == 900


def test_landing_freshness_fails_without_any_capture() -> None:
    result = quality.landing_freshness(None, datetime(2024, 11, 1, tzinfo=UTC))
    assert not result.passed
    assert figures(result)["newest_capture"] == "none"
    assert figures(result)["age_seconds"] == -1.0


def land(root: Path, minute: int, body: bytes) -> None:
    landing.write_capture(root, datetime(2024, 11, 1, 9, minute, tzinfo=UTC), formats.OPENDATA_JSON, body)


def test_raw_checks_pass_on_real_captures(tmp_path: Path) -> None:
    for minute, name in zip((0, 5), FILES, strict=True):
        land(tmp_path, minute, (SAMPLE / name).read_bytes())
    parsed = snapshots.parse_window(tmp_path, *HOUR)
    parse_errors = quality.raw_parse_errors(parsed.captures, parsed.errors)
    empty_lists = quality.raw_empty_station_lists(parsed.errors)
    assert (parse_errors.passed, parse_errors.severity) == (True, WARN)
    assert figures(parse_errors) == {"captures": 2, "parse_errors": 0}
    assert (empty_lists.passed, figures(empty_lists)) == (True, {"empty_station_lists": 0})


def test_raw_checks_fail_on_broken_and_empty_captures(tmp_path: Path) -> None:
    """Reasons come from the real parsers, so the checks stay tied to what they report."""
    land(tmp_path, 0, (SAMPLE / FILES[0]).read_bytes())
    land(tmp_path, 5, b"[]")
    land(tmp_path, 10, b'[{"stationcode": "16107", "numbikes')
    land(tmp_path, 15, b"<html><body>502 Bad Gateway</body></html>")
    parsed = snapshots.parse_window(tmp_path, *HOUR)
    parse_errors = quality.raw_parse_errors(parsed.captures, parsed.errors)
    empty_lists = quality.raw_empty_station_lists(parsed.errors)
    assert (parse_errors.passed, parse_errors.severity) == (False, WARN)
    assert figures(parse_errors) == {"captures": 4, "parse_errors": 3}
    assert (empty_lists.passed, empty_lists.severity) == (False, WARN)
    assert figures(empty_lists) == {"empty_station_lists": 1}


# merging the days of one run ---------------------------------------------------------------------
KEYS = ["2024-11-01", "2024-11-02", "2024-11-03", "2024-11-04"]


def days(*shares: float) -> list[list[quality.Verdict]]:
    """Per day: a stale-share check and a blocking duplicate check, as clean_stations yields them."""
    return [
        [
            quality.Verdict("clean_stale_share", passed=s <= 0.1, severity=WARN, metadata={"share": s}),
            quality.Verdict(
                "clean_unique_keys", passed=s < 0.5, severity=ERROR, metadata={"duplicate_rows": int(s * 10)}
            ),
        ]
        for s in shares
    ]


def test_merge_partitions_passes_when_every_day_passes() -> None:
    merged = checks.merge_partitions(days(0.01, 0.02, 0.03), KEYS[:3])
    assert [(m.check_name, m.passed, m.severity) for m in merged] == [
        ("clean_stale_share", True, dg.AssetCheckSeverity.WARN),
        ("clean_unique_keys", True, dg.AssetCheckSeverity.ERROR),
    ]
    assert figures(merged[0]) == {
        "share": 0.01,
        "partitions_checked": 3,
        "partitions_failed": 0,
        "shown_partition": KEYS[0],
        "failed_partitions": "none",
    }


def test_merge_partitions_fails_on_one_day_and_shows_the_first_failing_day() -> None:
    merged = checks.merge_partitions(days(0.01, 0.2, 0.6, 0.05), KEYS)
    stale, unique = merged
    assert (stale.passed, stale.severity) == (False, dg.AssetCheckSeverity.WARN)
    assert figures(stale) == {
        "share": 0.2,
        "partitions_checked": 4,
        "partitions_failed": 2,
        "shown_partition": KEYS[1],
        "failed_partitions": f"{KEYS[1]}, {KEYS[2]}",
    }
    assert (unique.passed, unique.severity) == (False, dg.AssetCheckSeverity.ERROR)
    assert figures(unique)["shown_partition"] == KEYS[2] and figures(unique)["partitions_failed"] == 1


def test_merge_partitions_rejects_days_with_different_checks() -> None:
    ragged = days(0.01, 0.02)
    ragged[1].pop()
    with pytest.raises(ValueError):
        checks.merge_partitions(ragged, KEYS[:2])


def test_report_turns_a_verdict_into_an_asset_check_result() -> None:
    result = checks.report(quality.Verdict("clean_stale_share", False, ERROR, {"share": 0.5}))
    assert isinstance(result, dg.AssetCheckResult)
    assert (result.check_name, result.passed, result.severity) == (
        "clean_stale_share",
        False,
        dg.AssetCheckSeverity.ERROR,
    )
    assert figures(result) == {"share": 0.5}


# inside a real Dagster run -----------------------------------------------------------------------
def test_blocking_check_failure_stops_downstream_asset_in_the_run(tmp_path: Path) -> None:
    """A reference placing station 99001 in Paris gives a clean row no arrondissement 1..20: the
    blocking arrondissement check fails and station_occupancy of the same run never materializes."""
    from velib_assets.definitions import defs

    ts = [datetime(2024, 11, 1, 9, m, tzinfo=UTC) for m in (0, 5)]
    raw = conform_raw(
        pl.DataFrame(
            {
                "snapshot_ts": ts * 2,
                "station_code": ["16107", "16107", "99001", "99001"],
                "bikes": [3, 4, 0, 0],
                "docks": [10, 9, 5, 5],
                "mechanical": [1, 2, 0, 0],
                "ebike": [2, 2, 0, 0],
                "capacity": [13, 13, 5, 5],
                "is_installed": [True] * 4,
                "is_renting": [True] * 4,
                "is_returning": [True] * 4,
                "source": ["opendata"] * 4,
            }
        )
    )
    store = LakeResource(data_dir=str(tmp_path))
    lake.write_parquet_file(raw, lake.hour_file(store.lake, "raw_station_snapshots", DAY, HOUR[0]))
    reference = load_bundled_reference()
    nowhere = pl.DataFrame(
        {
            "station_code": ["99001"],
            "name": ["Nowhere"],
            "lat": [48.85],
            "lon": [2.35],
            "capacity": [5],
            "commune": ["Paris"],
            "code_insee": ["75056"],
            "arrondissement": [None],
        },
        schema=reference.schema,
    )
    lake.write_parquet(pl.concat([reference, nowhere]), store.lake / "station_reference")

    outcome = dg.materialize(
        [defs.get_assets_def("clean_stations"), defs.get_assets_def("station_occupancy")],
        partition_key=DAY.isoformat(),
        resources={"lake_store": store, "kpi": KpiResource()},
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )

    assert not outcome.success
    evaluations = {e.check_name: e for e in outcome.get_asset_check_evaluations()}
    rule = evaluations["clean_arrondissement_rule"]
    assert (rule.passed, rule.severity) == (False, dg.AssetCheckSeverity.ERROR)
    assert rule.metadata["violations"].value == 1
    assert rule.metadata["examples"].text == "99001"
    assert all(evaluations[name].passed for name in ("clean_unique_keys", "clean_counts_non_negative"))
    materialized = {e.asset_key.to_user_string() for e in outcome.get_asset_materialization_events()}
    assert "clean_stations" in materialized
    assert "station_occupancy" not in materialized
    assert not lake.day_dir(store.lake, "station_occupancy", DAY).exists()
