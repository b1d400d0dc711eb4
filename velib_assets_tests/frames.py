"""Hand-built rows shared by the KPI tests: small enough to check every minute by hand."""

from datetime import datetime
from typing import Any

import polars as pl

from velib_assets.schema import REFERENCE_SCHEMA

BENJAMIN_GODARD = {
    "station_code": "16107",
    "name": "Benjamin Godard",
    "lat": 48.865,
    "lon": 2.275,
    "capacity": 35,
    "commune": "Paris",
    "code_insee": "75116",
    "arrondissement": 16,
}
BOULOGNE_CENTRE = {
    "station_code": "21010",
    "name": "Boulogne Centre",
    "lat": 48.835,
    "lon": 2.240,
    "capacity": 20,
    "commune": "Boulogne-Billancourt",
    "code_insee": "92012",
    "arrondissement": None,
}


def reference(*rows: dict[str, Any]) -> pl.DataFrame:
    return pl.DataFrame(list(rows), schema=REFERENCE_SCHEMA)


def in_service(
    ts: datetime, code: str = "16107", bikes: int = 5, docks: int = 5, ebike: int = 0, **fields
) -> dict:
    """A healthy in-service snapshot (reported when captured); override what a test needs."""
    row = {
        "snapshot_ts": ts,
        "station_code": code,
        "bikes": bikes,
        "mechanical": bikes - ebike,
        "ebike": ebike,
        "docks": docks,
        "is_installed": True,
        "is_renting": True,
        "is_returning": True,
        "reported_at": ts,
    }
    row.update(fields)
    return row
