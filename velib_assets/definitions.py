"""Assembles the Dagster definitions from `defs/`: nothing else lives here."""

import dagster as dg

from velib_assets.defs import (
    forecasts,
    ingestion,
    jobs,
    marts,
    operations,
    reports,
    serving,
    staging,
    stations,
)
from velib_assets.defs.resources import build_resources
from velib_assets.defs.sensors import velib_snapshot_sensor

defs = dg.Definitions(
    assets=dg.with_source_code_references(
        [
            ingestion.velib_landing,
            ingestion.raw_station_snapshots,
            staging.station_reference,
            staging.clean_stations,
            stations.stations,
            stations.station_changes_asset,
            marts.station_occupancy,
            marts.district_occupancy,
            marts.critical_station_rankings,
            operations.stations_now,
            operations.collection_health,
            serving.duckdb_views,
            reports.velib_report,
            forecasts.forecast_features,
            forecasts.forecast_model,
            forecasts.availability_forecast,
            forecasts.forecast_backtest,
        ]
    ),
    asset_checks=[ingestion.landing_freshness],
    jobs=[jobs.daily_chain_job, jobs.serving_job, jobs.landing_checks_job],
    sensors=[velib_snapshot_sensor, operations.velib_network_sensor, operations.velib_run_failure_alerts],
    resources=build_resources(),
)
