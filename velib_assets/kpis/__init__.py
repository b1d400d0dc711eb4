"""The DESIGN §3 KPIs as pure Polars functions: the Dagster assets, the CLI and the benchmarks share them."""

from velib_assets.kpis.clean import CLEAN_SCHEMA, QUARANTINE_SCHEMA, CleanResult, clean_snapshots
from velib_assets.kpis.occupancy import (
    DISTRICT_OCCUPANCY_SCHEMA,
    STATION_OCCUPANCY_SCHEMA,
    district_occupancy,
    station_occupancy,
    station_occupancy_hours,
)
from velib_assets.kpis.rankings import RANKINGS_SCHEMA, critical_station_rankings, local_day_bounds

__all__ = [
    "CLEAN_SCHEMA",
    "DISTRICT_OCCUPANCY_SCHEMA",
    "QUARANTINE_SCHEMA",
    "RANKINGS_SCHEMA",
    "STATION_OCCUPANCY_SCHEMA",
    "CleanResult",
    "clean_snapshots",
    "critical_station_rankings",
    "district_occupancy",
    "local_day_bounds",
    "station_occupancy",
    "station_occupancy_hours",
]
