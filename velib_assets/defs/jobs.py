"""Jobs the sensor launches: the hourly chain for a closed hour, the daily marts, the serving views."""

import dagster as dg

from velib_assets.defs.ingestion import raw_station_snapshots, velib_landing
from velib_assets.defs.marts import critical_station_rankings, district_occupancy, station_occupancy
from velib_assets.defs.reports import velib_report
from velib_assets.defs.serving import duckdb_views
from velib_assets.defs.staging import clean_stations

hourly_snapshots_job = dg.define_asset_job(
    "hourly_snapshots_job",
    selection=dg.AssetSelection.assets(
        raw_station_snapshots, clean_stations, station_occupancy, district_occupancy
    ),
    description="Raw, clean and occupancy of one closed hour (what the sensor requests).",
)
daily_rankings_job = dg.define_asset_job(
    "daily_rankings_job",
    selection=dg.AssetSelection.assets(critical_station_rankings, velib_report),
    description="Rankings and report of one local day, once its hours are in.",
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
