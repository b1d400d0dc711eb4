"""The DuckDB serving database: views over the lake for analysts, BI and SQL."""

from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource

from velib_assets.defs.ingestion import OWNERS, RAW
from velib_assets.defs.marts import DISTRICT_OCCUPANCY, RANKINGS, STATION_OCCUPANCY
from velib_assets.defs.resources import LakeResource
from velib_assets.defs.staging import CLEAN, QUARANTINE, REFERENCE
from velib_assets.defs.stations import STATION_CHANGES, STATIONS
from velib_assets.forecast import store as forecast_store
from velib_assets.network_now import NOW
from velib_assets.serving import ServingFileError, publish_views

DUCKDB_POOL = "duckdb_writer"


@dg.asset(
    deps=[
        RAW, CLEAN, QUARANTINE, REFERENCE, STATIONS, STATION_CHANGES, STATION_OCCUPANCY, DISTRICT_OCCUPANCY,
        RANKINGS, NOW, forecast_store.FORECASTS, forecast_store.BACKTEST,
    ],
    group_name="reports",
    kinds={"duckdb"},
    owners=OWNERS,
    pool=DUCKDB_POOL,
    description=(
        "`warehouse.duckdb`: schemas raw, staging and marts with one view per lake asset (the forecasts and "
        "their backtest included), plus `marts.top_critical_stations` and `marts.critical_stations_2h`. "
        "Rebuilt aside and renamed into place, so readers holding the file open never block a run; tables "
        "and views analysts created in it are carried over, and anything else of theirs makes the refresh "
        "refuse rather than drop it."
    ),
)
def duckdb_views(lake_store: LakeResource, duckdb: DuckDBResource) -> dg.MaterializeResult:
    def connect(path: str):
        return DuckDBResource(database=path, connection_config=duckdb.connection_config).get_connection()

    try:
        counts, skipped, carried = publish_views(Path(duckdb.database), lake_store.lake, connect)
    except ServingFileError as exc:
        raise dg.Failure(str(exc)) from exc
    return dg.MaterializeResult(
        metadata={
            "database": duckdb.database,
            "views": dg.MetadataValue.json(counts),
            "skipped_without_data": ", ".join(skipped) or "none",
            "analyst_objects_carried_over": ", ".join(carried) or "none",
        }
    )
