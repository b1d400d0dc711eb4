"""Jobs the sensor launches: the day's chain (refreshed as hours close), the views, the landing check."""

import dagster as dg

from velib_assets.defs.forecasts import (
    availability_forecast,
    forecast_backtest,
    forecast_features,
    forecast_model,
)
from velib_assets.defs.ingestion import raw_station_snapshots, velib_landing
from velib_assets.defs.marts import critical_station_rankings, district_occupancy, station_occupancy
from velib_assets.defs.operations import collection_health
from velib_assets.defs.reports import velib_report
from velib_assets.defs.serving import duckdb_views
from velib_assets.defs.staging import clean_stations
from velib_assets.defs.stations import station_changes_asset, stations

daily_chain_job = dg.define_asset_job(
    "daily_chain_job",
    selection=dg.AssetSelection.assets(
        raw_station_snapshots,
        clean_stations,
        station_occupancy,
        district_occupancy,
        critical_station_rankings,
        velib_report,
        stations,
        station_changes_asset,
        collection_health,
        forecast_features,
        forecast_model,
        availability_forecast,
        forecast_backtest,
    ),
    description=(
        "Raw to report for a range of local days, in one run: today's partitions as its hours close "
        "(what the sensor requests), any range as a backfill. The station dimension is refolded at the end, "
        "the collection's health is measured, and the forecasts and their backtest are refreshed."
    ),
)
serving_job = dg.define_asset_job(
    "serving_job",
    selection=dg.AssetSelection.assets(duckdb_views),
    description="Rebuild the DuckDB views database.",
)
landing_checks_job = dg.define_asset_job(
    "landing_checks_job",
    selection=dg.AssetSelection.checks_for_assets(velib_landing.key),
    description="Landing freshness: how old the newest capture is.",
)
