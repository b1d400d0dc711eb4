"""End to end on the bundled real exports: landing zone -> every asset -> DuckDB views, the report
and the `velib` command, on a temporary lake and Dagster instance.

The recorded exports are imported with `velib import`'s code rather than captured by the sensor:
the Opendatasoft source stamps a capture with its fetch time (now), so sensor captures would land in
the current, still open hour, while imported files keep their recorded 2024 times and give fixed,
closed partitions whose results can be pinned. The runs happen in a child process (see
`analytics_fixtures`) because the definitions read `VELIB_DATA_DIR` when imported.

Two local days keep the suite quick: 2024-11-03 (56 exports) and 2024-11-04 (60 exports, 27 of them
without any station metadata and two whose station codes are all null: real defects of the feed).
"""

import json
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from velib_assets import builds, lake
from velib_assets.definitions import defs
from velib_assets.defs.resources import KpiResource, LakeResource
from velib_assets.importer import import_paths
from velib_assets.kpis.clean import clean_snapshots
from velib_assets.kpis.occupancy import station_occupancy
from velib_assets.kpis.rankings import critical_station_rankings
from velib_assets.reference import REFERENCE_FILE, load_bundled_reference
from velib_assets.schema import conform_raw
from velib_assets.settings import PARIS, KpiThresholds
from velib_assets_tests.analytics_fixtures import (
    child_env,
    make_dagster_home,
    run_child,
    sample_files,
)

FIRST, DAY = date(2024, 11, 3), date(2024, 11, 4)
DAYS = (FIRST, DAY)
EARLIEST = datetime(2024, 8, 1, tzinfo=UTC)
RANKINGS = "critical_station_rankings"
DAILY_ASSETS = (
    "raw_station_snapshots",
    "clean_stations",
    "clean_stations_quarantine",
    "station_occupancy",
    "district_occupancy",
    RANKINGS,
    "velib_report",
)
CHAIN = ("raw_station_snapshots", "clean_stations", "station_occupancy", "district_occupancy", RANKINGS)
DAY_FILES = (
    "clean_stations", "clean_stations_quarantine", "station_occupancy", "district_occupancy", RANKINGS
)
CHECKS = {
    "raw_station_snapshots": ("raw_parse_errors", "raw_empty_station_lists", "landing_coverage"),
    "clean_stations": (
        "clean_unique_keys",
        "clean_non_null_keys",
        "clean_counts_non_negative",
        "clean_arrondissement_rule",
        "clean_bike_types_add_up",
        "clean_capacity_mismatch_share",
        "clean_stale_share",
        "clean_station_count",
    ),
    "station_occupancy": ("occupancy_minutes_in_range", "occupancy_fill_rate_in_range"),
    RANKINGS: ("rankings_contiguous",),
}


@dataclass(frozen=True)
class Backfill:
    data: Path
    home: Path
    stages: list[dict]

    @property
    def lake(self) -> Path:
        return self.data / "lake"

    def run_id(self, stage_prefix: str) -> str:
        return next(s["run_id"] for s in self.stages if s["name"].startswith(stage_prefix))


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(), PARIS)
    return start.astimezone(UTC), datetime.combine(day + timedelta(days=1), time(), PARIS).astimezone(UTC)


def read_day(root: Path, asset: str, day: date) -> pl.DataFrame:
    return pl.read_parquet(lake.day_dir(root, asset, day) / lake.PART_FILE)


def read_rankings(root: Path, day: date) -> pl.DataFrame:
    return pl.read_parquet(lake.day_dir(root, RANKINGS, day) / lake.PART_FILE)


def land_sample(data: Path) -> list[Path]:
    report = import_paths(sample_files(*DAYS), data / "landing", EARLIEST)
    assert not report.rejected
    return report.imported


@pytest.fixture(scope="module")
def backfill(tmp_path_factory: pytest.TempPathFactory) -> Backfill:
    """Both days through `pipeline.run_days`: each stage is ONE run over the whole range."""
    root = tmp_path_factory.mktemp("backfill")
    assert len(land_sample(root / "data")) == len(sample_files(*DAYS)) == 116
    home = make_dagster_home(root / "home")
    stages, _ = run_child(["run-days", FIRST.isoformat(), DAY.isoformat()], root / "data", home)
    return Backfill(root / "data", home, stages)


@pytest.fixture
def instance(backfill: Backfill):
    with dg.DagsterInstance.from_config(str(backfill.home)) as opened:
        yield opened


def test_stages_of_the_backfill(backfill: Backfill) -> None:
    assert [s["name"].split(" ")[0] for s in backfill.stages] == [
        "station_reference",
        "days",
        "duckdb",
    ]
    assert all(s["success"] for s in backfill.stages)


def test_rankings_of_the_day(backfill: Backfill) -> None:
    ranking = read_rankings(backfill.lake, DAY)
    assert ranking.height > 1000
    assert ranking["rank"].to_list() == list(range(1, ranking.height + 1))
    assert ranking["day"].unique().to_list() == [DAY]
    ordered = ranking.sort(
        ["critical_minutes", "empty_minutes", "station_code"], descending=[True, True, False]
    )
    assert ordered["station_code"].to_list() == ranking["station_code"].to_list()
    assert (ranking["in_service_minutes"] > 0).all()
    assert ranking["name"].null_count() == 0
    assert ranking["critical_minutes"].max() > 60


def test_streaks_never_exceed_the_minutes_they_are_part_of(backfill: Backfill) -> None:
    """A streak is a run of the station's empty (full) observations, so it cannot be longer than the
    station's empty (full) minutes, nor critical minutes longer than in-service minutes."""
    ranking = pl.concat(read_rankings(backfill.lake, day) for day in DAYS)
    streak_kinds = [
        ("longest_empty_streak_minutes", "empty_minutes"),
        ("longest_full_streak_minutes", "full_minutes"),
    ]
    for streak, minutes in streak_kinds:
        longer = ranking.filter(pl.col(streak) > pl.col(minutes))
        assert longer.is_empty(), longer.select("day", "station_code", streak, minutes).head(5).rows()
    assert (ranking["critical_minutes"] <= ranking["in_service_minutes"]).all()
    assert ranking["longest_empty_streak_minutes"].max() > 60


def test_report_written(backfill: Backfill) -> None:
    for day in DAYS:
        html = (backfill.data / "reports" / f"velib-report-{day}.html").read_text()
        assert html.startswith("<!DOCTYPE html>")
        assert read_rankings(backfill.lake, day)["station_code"][0] in html


def test_duckdb_views_are_queryable(backfill: Backfill) -> None:
    ranking = read_rankings(backfill.lake, DAY)
    clean_rows = sum(read_day(backfill.lake, "clean_stations", day).height for day in DAYS)
    with duckdb.connect(str(backfill.data / "warehouse.duckdb"), read_only=True) as db:
        assert db.execute(
            "SELECT count(*), min(rank), max(rank) FROM marts.critical_station_rankings WHERE day = ?", [DAY]
        ).fetchone() == (ranking.height, 1, ranking.height)
        top = db.execute(
            "SELECT station_code FROM marts.top_critical_stations WHERE day = ? ORDER BY rank", [DAY]
        )
        assert [row[0] for row in top.fetchall()] == ranking["station_code"].head(10).to_list()
        recent = db.execute(
            "SELECT rank, window_end, critical_minutes FROM marts.critical_stations_2h ORDER BY rank"
        ).fetchall()
        assert [row[0] for row in recent] == list(range(1, 11))
        # The newest capture is 20:15 Paris time, so the newest hour is 19:00-20:00 UTC.
        assert {row[1].astimezone(UTC) for row in recent} == {datetime(2024, 11, 4, 20, tzinfo=UTC)}
        assert [row[2] for row in recent] == sorted((row[2] for row in recent), reverse=True)
        assert db.execute("SELECT count(*) FROM staging.clean_stations").fetchall()[0][0] == clean_rows > 0
        # The view joins the minute rows to the station version valid at each snapshot: the rows of
        # before the station dimension, exactly.
        query = "SELECT * FROM staging.clean_stations WHERE snapshot_ts >= ?"
        joined = db.sql(query, params=[day_bounds(DAY)[0]]).pl().sort("station_code", "snapshot_ts")
        joined = joined.with_columns(pl.col(pl.Datetime).dt.convert_time_zone("UTC"))
        expected = builds.read_clean_day(backfill.lake, DAY).sort("station_code", "snapshot_ts")
        assert_frame_equal(joined, expected, check_dtypes=False)
        versions = db.sql("SELECT count(*), count(DISTINCT station_code) FROM staging.stations").fetchall()[0]
        assert versions[0] >= versions[1] > 1400
        assert db.execute("SELECT count(*) FROM staging.station_changes").fetchall()[0][0] >= 0


def test_instance_holds_every_partition(backfill: Backfill, instance: dg.DagsterInstance) -> None:
    for asset in DAILY_ASSETS:
        assert instance.get_materialized_partitions(dg.AssetKey(asset)) == {str(d) for d in DAYS}, asset
    for asset in ("station_reference", "stations", "station_changes", "duckdb_views"):
        assert instance.get_latest_materialization_event(dg.AssetKey(asset)) is not None
    chain_runs = instance.get_runs(dg.RunsFilter(job_name="daily_chain_job"))
    assert [run.run_id for run in chain_runs] == [backfill.run_id("days")]


def latest_metadata(instance: dg.DagsterInstance, asset: str, partition: str) -> dict[str, object]:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition]), limit=1
    ).records
    metadata = records[0].asset_materialization.metadata
    return {key: getattr(value, "value", getattr(value, "md_str", value)) for key, value in metadata.items()}


def test_each_partition_shows_its_own_figures(backfill: Backfill, instance: dg.DagsterInstance) -> None:
    """In one single-run backfill, each day's materialization shows that day's figures, not the
    run's total, and each day's rankings preview lists that day's stations only."""
    for asset in DAY_FILES:
        counts = [latest_metadata(instance, asset, str(day))["dagster/row_count"] for day in DAYS]
        assert counts == [read_day(backfill.lake, asset, day).height for day in DAYS], asset
    raw = [latest_metadata(instance, "raw_station_snapshots", str(day)) for day in DAYS]
    assert [figures["captures"] for figures in raw] == [56, 60]
    assert all(figures["provisional"] is False for figures in raw)
    for day in DAYS:
        figures = latest_metadata(instance, RANKINGS, str(day))
        assert figures["dagster/row_count"] == read_rankings(backfill.lake, day).height
        listed_days = {line.split(" | ")[0].strip("| ") for line in figures["top_10"].splitlines()[2:]}
        assert listed_days == {str(day)}
        assert 0 < figures["observed_share"] < 0.8 and figures["captures"] in (56, 60)
        assert figures["hours_without_capture"].startswith("00:00-")  # the night had no capture


def test_instance_holds_the_check_evaluations(backfill: Backfill, instance: dg.DagsterInstance) -> None:
    keys = [dg.AssetCheckKey(dg.AssetKey(asset), name) for asset, names in CHECKS.items() for name in names]
    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(keys)
    expected_run = {asset: backfill.run_id("days") for asset in CHECKS}
    for key in keys:
        record = latest[key]
        evaluation = record.event.dagster_event.event_specific_data
        assert record.run_id == expected_run[key.asset_key.to_user_string()], key
        assert evaluation.severity == (
            dg.AssetCheckSeverity.ERROR if evaluation.blocking else dg.AssetCheckSeverity.WARN
        ), key
        if evaluation.blocking:
            assert evaluation.passed, key
        if key.asset_key == dg.AssetKey("clean_stations"):
            assert evaluation.metadata["partitions_checked"].value == 2, key
    # A 5-minute recording against 60 expected captures an hour, and night hours with none at all.
    coverage = latest[dg.AssetCheckKey(dg.AssetKey("raw_station_snapshots"), "landing_coverage")]
    coverage = coverage.event.dagster_event.event_specific_data
    assert not coverage.passed
    assert coverage.metadata["hours_below_threshold"].value == 48
    assert coverage.metadata["worst_hour_share"].value == 0.0


def test_single_run_backfill_matches_per_partition_runs(backfill: Backfill, tmp_path: Path) -> None:
    """One run per day, as the sensor's final builds request them, writes the same files."""
    data = tmp_path / "data"
    land_sample(data)
    runs = [f"daily_chain_job:{day}" for day in DAYS]
    results, _ = run_child(["runs", "--ephemeral", *runs], data, make_dagster_home(tmp_path / "home"))
    assert [r["success"] for r in results] == [True] * len(runs)

    for day in DAYS:
        for asset in DAY_FILES:
            assert_frame_equal(read_day(backfill.lake, asset, day), read_day(data / "lake", asset, day))
        roots = (data / "lake", backfill.lake)
        spells = [lake.day_dir(root, "clean_stations", day) / builds.SPELLS_FILE for root in roots]
        assert spells[0].read_bytes() == spells[1].read_bytes()
        assert [p.read_bytes() for p in lake.hour_files(data / "lake", "raw_station_snapshots", day)] == [
            p.read_bytes() for p in lake.hour_files(backfill.lake, "raw_station_snapshots", day)
        ]
    quarantine = pl.concat(read_day(data / "lake", "clean_stations_quarantine", day) for day in DAYS)
    assert quarantine["reason"].value_counts().rows() == [("missing station_code", 2950)]


def test_refreshing_today_hour_by_hour_ends_in_the_final_build(
    backfill: Backfill, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sensor refreshes today as its hours close: each refresh parses only the new hours and is
    provisional; the build once the day is over equals a backfill of the closed day, file for file."""
    data = tmp_path / "data"
    land_sample(data)
    resources = {"lake_store": LakeResource(data_dir=str(data)), "kpi": KpiResource()}
    assets = [defs.get_assets_def(name) for name in (*CHAIN, "velib_report")]
    report = data / "reports" / f"velib-report-{DAY}.html"
    refreshes, titles = [], []
    for local_now in (time(13, 0, 5), time(18, 0, 5), None):
        after_the_day = day_bounds(DAY)[1] + timedelta(hours=1)
        now = datetime.combine(DAY, local_now, PARIS) if local_now else after_the_day
        monkeypatch.setattr("velib_assets.defs.checks.now_utc", lambda now=now: now.astimezone(UTC))
        result = dg.materialize(assets, partition_key=str(DAY), resources=resources)
        titles.append(report.read_text().split("<title>")[1].split("</title>")[0])
        events = [e.event_specific_data.materialization for e in result.get_asset_materialization_events()]
        refreshes.append({
            e.asset_key.to_user_string(): {k: getattr(v, "value", v) for k, v in e.metadata.items()}
            for e in events
        })

    first, second, final = refreshes
    assert first["raw_station_snapshots"]["hours_parsed_this_run"] == 13  # 00:00 to 13:00
    assert second["raw_station_snapshots"]["hours_parsed_this_run"] == 5  # 13:00 to 18:00 only
    assert final["raw_station_snapshots"]["hours_parsed_this_run"] == 6
    assert first[RANKINGS]["provisional"] is True
    assert first[RANKINGS]["built_through"] == "2024-11-04T13:00+01:00"
    assert second[RANKINGS]["hours_with_occupancy"] <= 18 and second[RANKINGS]["provisional"] is True
    assert (final[RANKINGS]["provisional"], final[RANKINGS]["built_through"]) == (False, "end of day")
    assert titles[0].endswith(f"{DAY} (so far: through 13:00, provisional)")
    assert titles[1].endswith("(so far: through 18:00, provisional)")
    assert titles[2].endswith(str(DAY))
    for asset in DAY_FILES:
        assert_frame_equal(read_day(data / "lake", asset, DAY), read_day(backfill.lake, asset, DAY))


# An independent implementation of DESIGN §3 in DuckDB SQL, from raw rows to the day's ranking.
CLEAN_SQL = """
CREATE TEMP TABLE clean AS
WITH usable AS (
  SELECT * FROM read_parquet($files, filename = true, file_row_number = true)
  WHERE station_code IS NOT NULL AND trim(station_code) <> '' AND snapshot_ts IS NOT NULL
    AND bikes IS NOT NULL AND docks IS NOT NULL
    AND NOT coalesce(bikes < 0 OR docks < 0 OR mechanical < 0 OR ebike < 0 OR capacity < 0, false)
    AND NOT coalesce(greatest(bikes, docks, mechanical, ebike, capacity) > 1000, false)
  QUALIFY row_number() OVER (
    PARTITION BY station_code, snapshot_ts ORDER BY filename DESC, file_row_number DESC) = 1
), flagged AS (
  SELECT u.station_code, u.snapshot_ts, u.bikes, u.docks, coalesce(u.name, r.name) AS name,
         coalesce(u.capacity, r.capacity) AS capacity, coalesce(u.commune, r.commune) AS commune,
         coalesce(u.is_installed, false) AND coalesce(u.is_renting, false) AND coalesce(u.is_returning, false)
           AND NOT coalesce(u.snapshot_ts - u.reported_at > INTERVAL 24 HOUR, false)
           AND u.bikes + u.docks > 0 AS in_service
  FROM usable u LEFT JOIN read_parquet($reference) r USING (station_code)
)
SELECT *, in_service AND bikes = 0 AS is_empty, in_service AND docks = 0 AS is_full,
       date_trunc('hour', snapshot_ts) AS hour_start
FROM flagged WHERE snapshot_ts >= $start AND snapshot_ts < $end
"""
TIMED_SQL = """
CREATE TEMP TABLE timed AS
SELECT *,
  epoch_us(least(lead(snapshot_ts) OVER (PARTITION BY station_code, hour_start ORDER BY snapshot_ts),
                 snapshot_ts + $gap, hour_start + INTERVAL 1 HOUR)) - epoch_us(snapshot_ts) AS observed_us,
  CASE WHEN is_full THEN 'full' WHEN is_empty THEN 'empty' ELSE 'other' END AS state
FROM clean
"""
RANK_SQL = """
WITH daily AS (
  -- Whole microseconds until the end: equal durations stay exactly equal, so ties go to the tie-breakers.
  SELECT station_code,
    coalesce(sum(observed_us) FILTER (in_service), 0) AS in_service_us,
    coalesce(sum(observed_us) FILTER (is_empty), 0) AS empty_us,
    coalesce(sum(observed_us) FILTER (is_full), 0) AS full_us
  FROM timed GROUP BY ALL HAVING sum(observed_us) FILTER (in_service) > 0
), starts AS (
  SELECT *, coalesce(lag(state) OVER w IS DISTINCT FROM state OR snapshot_ts - lag(snapshot_ts) OVER w > $gap,
                     true) AS starts_run
  FROM timed WINDOW w AS (PARTITION BY station_code ORDER BY snapshot_ts)
), runs AS (
  SELECT station_code, state, observed_us,
         sum(starts_run::INT) OVER (PARTITION BY station_code ORDER BY snapshot_ts) AS run
  FROM starts
), streaks AS (
  SELECT station_code,
    coalesce(max(minutes) FILTER (state = 'empty'), 0) AS longest_empty_streak_minutes,
    coalesce(max(minutes) FILTER (state = 'full'), 0) AS longest_full_streak_minutes
  FROM (SELECT station_code, state, run, sum(observed_us) / 60e6 AS minutes FROM runs GROUP BY ALL)
  GROUP BY ALL
), labels AS (
  SELECT station_code, name, commune, snapshot_ts, TRY_CAST(station_code AS BIGINT) // 1000 AS prefix
  FROM clean
), names AS (
  SELECT station_code, arg_max(name, snapshot_ts) FILTER (name IS NOT NULL) AS name,
         arg_max(CASE WHEN commune = 'Paris' AND prefix BETWEEN 1 AND 20
                      THEN 'Paris ' || prefix || CASE WHEN prefix = 1 THEN 'er' ELSE 'e' END
                      ELSE coalesce(commune, 'Unknown') END, snapshot_ts) AS district
  FROM labels GROUP BY ALL
)
SELECT row_number() OVER (ORDER BY empty_us + full_us DESC, empty_us DESC, station_code) AS rank,
       station_code, name, district, in_service_us / 60e6 AS in_service_minutes,
       empty_us / 60e6 AS empty_minutes, full_us / 60e6 AS full_minutes,
       (empty_us + full_us) / 60e6 AS critical_minutes,
       longest_empty_streak_minutes, longest_full_streak_minutes
FROM daily JOIN streaks USING (station_code) JOIN names USING (station_code)
ORDER BY rank
"""


def test_rankings_agree_with_independent_duckdb_sql(backfill: Backfill) -> None:
    start, end = day_bounds(DAY)
    files = [str(path) for path in lake.hour_files(backfill.lake, "raw_station_snapshots", DAY)]
    assert len(files) == 24
    gap = timedelta(minutes=15)
    with duckdb.connect() as db:
        db.execute("SET TimeZone = 'UTC'").fetchall()
        params = {"files": files, "reference": str(REFERENCE_FILE), "start": start, "end": end}
        db.execute(CLEAN_SQL, params).fetchall()
        db.execute(TIMED_SQL, {"gap": gap}).fetchall()
        expected_clean = db.sql("SELECT * EXCLUDE (hour_start) FROM clean ORDER BY ALL").pl()
        expected = db.sql(RANK_SQL, params={"gap": gap}).pl()
    actual_clean = builds.read_clean_day(backfill.lake, DAY)
    # Metadata from the reference where 27 of the day's exports carry none; flags from the counts.
    assert actual_clean["name"].null_count() == expected_clean["name"].null_count() == 0
    assert_frame_equal(
        actual_clean.select(expected_clean.columns).sort("station_code", "snapshot_ts"),
        expected_clean.sort("station_code", "snapshot_ts"),
        check_dtypes=False,
    )
    actual = read_rankings(backfill.lake, DAY)
    assert expected.height == actual.height
    assert_frame_equal(actual.select(expected.columns), expected, check_dtypes=False, abs_tol=1e-6, rel_tol=0)


def test_rank_ties_follow_exact_durations_not_float_noise() -> None:
    """Two stations empty for exactly 18 s: 6 s + 12 s across an hour boundary, and 18 s in one hour.
    DESIGN §3 breaks the tie on empty minutes, then on the code: 10000 ranks before 10001. Summing
    the hourly Float64 minutes gives 0.1 + 0.2 = 0.30000000000000004 > 0.3 and inverts them."""

    def at(hour: int, minute: int, second: int) -> datetime:
        return datetime(2024, 11, 4, hour, minute, second, tzinfo=UTC)

    observations = [
        ("10001", at(9, 59, 54), 0),
        ("10001", at(10, 0, 0), 0),
        ("10001", at(10, 0, 12), 5),
        ("10000", at(11, 0, 0), 0),
        ("10000", at(11, 0, 18), 5),
    ]
    n = len(observations)
    raw = conform_raw(
        pl.DataFrame(
            {
                "station_code": [o[0] for o in observations],
                "snapshot_ts": [o[1] for o in observations],
                "bikes": [o[2] for o in observations],
                "docks": [20 - o[2] for o in observations],
                "capacity": [20] * n,
                "is_installed": [True] * n,
                "is_renting": [True] * n,
                "is_returning": [True] * n,
                "source": ["opendata"] * n,
            }
        )
    )
    thresholds = KpiThresholds()
    clean = clean_snapshots(raw, load_bundled_reference(), thresholds).clean
    hourly = pl.concat(
        station_occupancy(clean, at(hour, 0, 0), at(hour + 1, 0, 0), thresholds) for hour in (9, 10, 11)
    )
    ranking = critical_station_rankings(hourly, DAY, thresholds)
    assert ranking["station_code"].to_list() == ["10000", "10001"]
    assert ranking["critical_minutes"].to_list() == [0.3, 0.3]


def test_views_rebuild_while_a_reader_holds_the_database(backfill: Backfill) -> None:
    warehouse = backfill.data / "warehouse.duckdb"
    query = "SELECT count(*), max(critical_minutes), sum(rank) FROM marts.critical_station_rankings"
    reader = duckdb.connect(str(warehouse), read_only=True)
    try:
        before = reader.execute(query).fetchone()
        results, _ = run_child(["runs", "serving_job"], backfill.data, backfill.home)
        assert results[0]["success"]
        assert reader.execute(query).fetchone() == before
    finally:
        reader.close()
    with duckdb.connect(str(warehouse), read_only=True) as fresh:
        assert fresh.execute(query).fetchone() == before
    with dg.DagsterInstance.from_config(str(backfill.home)) as instance:
        latest = instance.get_latest_materialization_event(dg.AssetKey("duckdb_views"))
        assert latest.run_id == results[0]["run_id"]


def velib(*args: str, data: Path, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(Path(sys.executable).with_name("velib")), *args],
        cwd=cwd,
        env=child_env(data),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_rankings_json_matches_the_lake(backfill: Backfill, tmp_path: Path) -> None:
    done = velib("rankings", "--day", str(DAY), "--top", "5", "--json", data=backfill.data, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    lake_top = read_rankings(backfill.lake, DAY).head(5)
    assert [r["rank"] for r in rows] == [1, 2, 3, 4, 5]
    assert [r["station_code"] for r in rows] == lake_top["station_code"].to_list()
    assert [r["critical_minutes"] for r in rows] == pytest.approx(lake_top["critical_minutes"].to_list())
    assert {r["day"] for r in rows} == {str(DAY)}


def test_cli_run_rejects_a_reversed_range(tmp_path: Path) -> None:
    done = velib("run", "--from", "2024-11-04", "--to", "2024-11-01", data=tmp_path / "data", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.strip().splitlines() == ["velib: --to 2024-11-01 is before --from 2024-11-04"]
    assert list(tmp_path.iterdir()) == []


def test_cli_rankings_for_a_day_without_data(backfill: Backfill, tmp_path: Path) -> None:
    done = velib("rankings", "--day", "2024-11-02", data=backfill.data, cwd=tmp_path)
    assert done.returncode != 0
    assert done.stdout == ""
    [line] = done.stderr.strip().splitlines()
    assert "no rankings for 2024-11-02" in line
    assert "velib run --from 2024-11-02 --to 2024-11-02" in line


def test_a_range_backfill_through_the_multiprocess_executor(tmp_path: Path) -> None:
    """What a backfill launched from the UI runs: Dagster's multiprocess executor puts each step in
    its own process, and that process builds the range's days in the worker pool, then exits."""
    data, home = tmp_path / "data", make_dagster_home(tmp_path / "home")
    land_sample(data)
    days = (str(FIRST), str(DAY))
    selection = ",".join((*CHAIN, "clean_stations_quarantine"))
    command = [
        str(Path(sys.executable).with_name("dagster")),
        *("asset", "materialize", "-m", "velib_assets.definitions"),
        *("--select", selection, "--partition-range", "...".join(days)),
    ]
    done = subprocess.run(command, env=child_env(data, home), capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "Executing steps using multiprocess executor" in done.stderr
    for day in DAYS:
        assert read_day(data / "lake", "clean_stations", day).height > 0
        assert read_day(data / "lake", "station_occupancy", day).height > 1000
        assert read_day(data / "lake", RANKINGS, day).height > 1000
