"""Pins the Dagster graph analysts see: assets, lineage, partitions, groups, owners, kinds, column
schemas, backfill policies, jobs, the sensor and the asset checks; and that the code location
loads cleanly and validates with the `dagster` command."""

import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from velib_assets.columns import COLUMNS
from velib_assets.definitions import defs
from velib_assets.forecast.backtest import BACKTEST_SCHEMA
from velib_assets.forecast.features import FEATURE_SCHEMA, TARGET_SCHEMA
from velib_assets.forecast.store import FORECAST_SCHEMA
from velib_assets.health import HEALTH_SCHEMA
from velib_assets.kpis.clean import QUARANTINE_SCHEMA
from velib_assets.kpis.occupancy import DISTRICT_OCCUPANCY_SCHEMA, STATION_OCCUPANCY_SCHEMA
from velib_assets.kpis.rankings import RANKINGS_SCHEMA
from velib_assets.kpis.stations import CLEAN_MINUTE_SCHEMA, STATION_CHANGES_SCHEMA, STATIONS_SCHEMA
from velib_assets.network_now import NOW_SCHEMA
from velib_assets.schema import RAW_SCHEMA, REFERENCE_SCHEMA
from velib_assets_tests.analytics_fixtures import PROJECT_ROOT, child_env, make_dagster_home

DAILY = "daily"

# asset -> (deps, partitions, group, kinds)
GRAPH: dict[str, tuple[set[str], str | None, str, set[str]]] = {
    "velib_landing": (set(), DAILY, "ingestion", {"json", "file"}),
    "raw_station_snapshots": ({"velib_landing"}, DAILY, "ingestion", {"polars", "parquet"}),
    "station_reference": (set(), None, "staging", {"polars", "parquet"}),
    "clean_stations": (
        {"raw_station_snapshots", "station_reference"},
        DAILY,
        "staging",
        {"polars", "parquet"},
    ),
    "clean_stations_quarantine": ({"raw_station_snapshots"}, DAILY, "staging", {"polars", "parquet"}),
    "station_occupancy": ({"clean_stations"}, DAILY, "marts", {"polars", "parquet"}),
    "district_occupancy": ({"station_occupancy"}, DAILY, "marts", {"polars", "parquet"}),
    "critical_station_rankings": ({"station_occupancy"}, DAILY, "marts", {"polars", "parquet"}),
    "stations": ({"clean_stations"}, None, "staging", {"polars", "parquet"}),
    "station_changes": ({"stations"}, None, "staging", {"polars", "parquet"}),
    "stations_now": ({"velib_landing", "station_reference"}, None, "marts", {"polars", "parquet"}),
    "collection_health": (
        {"velib_landing", "raw_station_snapshots"}, DAILY, "ingestion", {"polars", "parquet"}
    ),
    "duckdb_views": (
        {
            "raw_station_snapshots",
            "clean_stations",
            "clean_stations_quarantine",
            "station_reference",
            "stations",
            "station_changes",
            "station_occupancy",
            "district_occupancy",
            "critical_station_rankings",
            "stations_now",
            "availability_forecast",
            "forecast_backtest",
        },
        None,
        "reports",
        {"duckdb"},
    ),
    "velib_report": (
        {"critical_station_rankings", "district_occupancy", "station_occupancy", "station_reference"},
        DAILY,
        "reports",
        {"html"},
    ),
    "forecast_features": (
        {"clean_stations", "critical_station_rankings"}, DAILY, "marts", {"polars", "parquet"}
    ),
    "forecast_model": ({"forecast_features"}, DAILY, "marts", {"lightgbm"}),
    "availability_forecast": (
        {"forecast_model", "forecast_features", "clean_stations"}, DAILY, "marts", {"lightgbm", "parquet"}
    ),
    "forecast_backtest": ({"forecast_model", "forecast_features"}, None, "marts", {"polars", "parquet"}),
}
LAKE_SCHEMAS = {
    "raw_station_snapshots": RAW_SCHEMA,
    "station_reference": REFERENCE_SCHEMA,
    "clean_stations": CLEAN_MINUTE_SCHEMA,
    "stations": STATIONS_SCHEMA,
    "station_changes": STATION_CHANGES_SCHEMA,
    "clean_stations_quarantine": QUARANTINE_SCHEMA,
    "station_occupancy": STATION_OCCUPANCY_SCHEMA,
    "district_occupancy": DISTRICT_OCCUPANCY_SCHEMA,
    "critical_station_rankings": RANKINGS_SCHEMA,
    "stations_now": NOW_SCHEMA,
    "collection_health": HEALTH_SCHEMA,
    "forecast_features": {**FEATURE_SCHEMA, **TARGET_SCHEMA},
    "availability_forecast": FORECAST_SCHEMA,
    "forecast_backtest": BACKTEST_SCHEMA,
}
SINGLE_RUN_BACKFILL = {
    "collection_health",
    "raw_station_snapshots",
    "clean_stations",
    "clean_stations_quarantine",
    "station_occupancy",
    "district_occupancy",
    "critical_station_rankings",
    "velib_report",
    "forecast_features",
    "forecast_model",
    "availability_forecast",
}
# (asset, check) -> blocking
CHECKS = {
    ("velib_landing", "landing_freshness"): False,
    ("raw_station_snapshots", "raw_parse_errors"): False,
    ("raw_station_snapshots", "raw_empty_station_lists"): False,
    ("raw_station_snapshots", "landing_coverage"): False,
    ("raw_station_snapshots", "raw_frozen_feed"): False,
    ("station_reference", "reference_arrondissement_rule"): True,
    ("clean_stations", "clean_unique_keys"): True,
    ("clean_stations", "clean_non_null_keys"): True,
    ("clean_stations", "clean_counts_non_negative"): True,
    ("clean_stations", "clean_arrondissement_rule"): True,
    ("clean_stations", "clean_bike_types_add_up"): False,
    ("clean_stations", "clean_capacity_mismatch_share"): False,
    ("clean_stations", "clean_stale_share"): False,
    ("clean_stations", "clean_station_count"): False,
    ("station_occupancy", "occupancy_minutes_in_range"): True,
    ("station_occupancy", "occupancy_fill_rate_in_range"): True,
    ("critical_station_rankings", "rankings_contiguous"): True,
    ("critical_station_rankings", "rankings_day_coverage"): False,
    ("forecast_backtest", "forecast_beats_baselines"): False,
}
JOBS = {
    "daily_chain_job": (
        {
            "raw_station_snapshots",
            "clean_stations",
            "clean_stations_quarantine",
            "station_occupancy",
            "district_occupancy",
            "critical_station_rankings",
            "velib_report",
            "stations",
            "station_changes",
            "collection_health",
            "forecast_features",
            "forecast_model",
            "availability_forecast",
            "forecast_backtest",
        },
        DAILY,
    ),
    "serving_job": ({"duckdb_views"}, None),
    "landing_checks_job": (set(), None),
}

GRAPH_VIEW = defs.resolve_asset_graph()


def node(name: str):
    return GRAPH_VIEW.get(dg.AssetKey(name))


def cadence(partitions: dg.PartitionsDefinition | None) -> str | None:
    if partitions is None:
        return None
    assert isinstance(partitions, dg.TimeWindowPartitionsDefinition)
    assert partitions.timezone == "Europe/Paris"
    return {dg.DailyPartitionsDefinition: DAILY}[type(partitions)]


def test_exact_asset_keys() -> None:
    assert {k.to_user_string() for k in GRAPH_VIEW.get_all_asset_keys()} == set(GRAPH)


@pytest.mark.parametrize("name", GRAPH)
def test_asset_lineage_partitions_group_owner_kinds(name: str) -> None:
    deps, partitions, group, kinds = GRAPH[name]
    asset = node(name)
    assert {k.to_user_string() for k in asset.parent_keys} == deps
    assert cadence(asset.partitions_def) == partitions
    assert asset.group_name == group
    assert asset.owners == ["team:velib-data"]
    assert set(asset.kinds) == kinds
    assert asset.description


def test_landing_is_an_external_asset_fed_by_the_sensor() -> None:
    assert not node("velib_landing").is_materializable
    assert all(node(name).is_materializable for name in GRAPH if name != "velib_landing")


def test_every_partitioned_asset_shares_the_daily_partitions() -> None:
    partitioned = {node(name).partitions_def for name in GRAPH if GRAPH[name][1]}
    assert len(partitioned) == 1
    [daily] = partitioned
    assert daily.start.hour == 0 and daily.start.minute == 0  # local midnight


def test_without_an_end_today_is_a_partition(tmp_path: Path) -> None:
    """The sensor refreshes today's partitions as its hours close: today must exist."""
    script = (
        "from datetime import datetime\n"
        "from velib_assets.defs.partitions import daily_partitions as d\n"
        "from velib_assets.settings import PARIS\n"
        "print(d.get_last_partition_key() == datetime.now(PARIS).date().isoformat())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=PROJECT_ROOT,
        env=child_env(tmp_path / "data"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True"]


def test_partitions_end_is_the_last_day_inclusive(tmp_path: Path) -> None:
    """Dagster's `end_date` is exclusive: VELIB_PARTITIONS_END names the last day, not the day after."""
    script = (
        "from velib_assets.defs.partitions import daily_partitions as d\n"
        "days = d.get_partition_keys()\n"
        "print(days[0], days[-1], len(days))\n"
    )
    env = {
        **child_env(tmp_path / "data"),
        "VELIB_PARTITIONS_START": "2024-10-31",
        "VELIB_PARTITIONS_END": "2024-11-04",
    }
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["2024-10-31", "2024-11-04", "5"]


@pytest.mark.parametrize("name", LAKE_SCHEMAS)
def test_lake_assets_publish_their_column_schema(name: str) -> None:
    schema = node(name).metadata["dagster/column_schema"]
    assert isinstance(schema, dg.TableSchema)
    assert [c.name for c in schema.columns] == list(LAKE_SCHEMAS[name])


def test_every_column_of_every_schema_is_described() -> None:
    published = {
        name: node(name).metadata["dagster/column_schema"]
        for name in GRAPH
        if "dagster/column_schema" in node(name).metadata
    }
    assert set(published) == set(LAKE_SCHEMAS)
    undescribed = [
        f"{name}.{column.name}"
        for name, schema in published.items()
        for column in schema.columns
        if not (column.description or "").strip()
    ]
    assert not undescribed, f"describe these columns in velib_assets/columns.py: {undescribed}"
    assert not set(COLUMNS) - {c for schema in LAKE_SCHEMAS.values() for c in schema}, "unused descriptions"


def test_every_asset_check_is_described() -> None:
    specs = [GRAPH_VIEW.get_check_spec(key) for key in GRAPH_VIEW.asset_check_keys]
    undescribed = [spec.name for spec in specs if not (spec.description or "").strip()]
    assert not undescribed, f"add a description= to these checks: {sorted(undescribed)}"


def test_assets_carry_code_references() -> None:
    for name in set(GRAPH) - {"velib_landing"}:
        assert "dagster/code_references" in node(name).metadata, name


def test_backfill_policies() -> None:
    for name in GRAPH:
        policy = node(name).backfill_policy
        if name in SINGLE_RUN_BACKFILL:
            assert policy == dg.BackfillPolicy.single_run(), name
        else:
            assert policy is None, name


def test_duckdb_writer_runs_in_its_pool() -> None:
    assert defs.get_assets_def("duckdb_views").op.pool == "duckdb_writer"


def test_check_keys_and_which_block() -> None:
    found = {
        (key.asset_key.to_user_string(), key.name): GRAPH_VIEW.get_check_spec(key).blocking
        for key in GRAPH_VIEW.asset_check_keys
    }
    assert found == CHECKS


@pytest.mark.parametrize("name", JOBS)
def test_jobs(name: str) -> None:
    assets, partitions = JOBS[name]
    job = defs.resolve_job_def(name)
    assert {k.to_user_string() for k in job.asset_layer.selected_asset_keys} == assets
    assert cadence(job.partitions_def) == partitions
    assert job.description


def test_landing_checks_job_runs_the_freshness_check() -> None:
    job = defs.resolve_job_def("landing_checks_job")
    assert {k.name for k in job.asset_layer.asset_graph.asset_check_keys} == {"landing_freshness"}


def test_sensor() -> None:
    sensor = defs.resolve_sensor_def("velib_snapshot_sensor")
    assert sensor.minimum_interval_seconds >= 60
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED
    assert {t.job_name for t in sensor.targets} == set(JOBS)
    assert sensor.required_resource_keys == {"feed", "lake_store"}


def test_resources() -> None:
    assert set(defs.resources) == {"lake_store", "feed", "kpi", "duckdb"}


def test_definitions_load_without_deprecation_warnings(tmp_path: Path) -> None:
    script = (
        "from velib_assets.definitions import defs\n"
        "import dagster as dg\n"
        "dg.Definitions.validate_loadable(defs)\n"
        "defs.resolve_all_job_defs()\n"
        "print('loaded')\n"
    )
    done = subprocess.run(
        [sys.executable, "-W", "error::DeprecationWarning", "-c", script],
        cwd=PROJECT_ROOT,
        env=child_env(tmp_path / "data", tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "loaded"
    assert "DeprecationWarning" not in done.stderr
    assert "Warning" not in done.stderr, done.stderr


def test_dagster_definitions_validate(tmp_path: Path) -> None:
    done = subprocess.run(
        [str(Path(sys.executable).with_name("dagster")), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=PROJECT_ROOT,
        env=child_env(tmp_path / "data", make_dagster_home(tmp_path / "home")),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Validation successful for code location velib_assets" in done.stdout + done.stderr
