"""Column names and Polars dtypes shared by every layer (DESIGN §3).

One place for the schemas so the parsers, the lake and the KPIs agree on names and types.
All timestamps are UTC; counts are Int32 (Vélib' counts fit easily, and it halves memory at scale).
"""

import polars as pl

UTC_TS = pl.Datetime("us", "UTC")

RAW_SCHEMA: dict[str, pl.DataType] = {
    "snapshot_ts": UTC_TS,
    "station_code": pl.String(),
    "station_id": pl.Int64(),
    "name": pl.String(),
    "lat": pl.Float64(),
    "lon": pl.Float64(),
    "capacity": pl.Int32(),
    "bikes": pl.Int32(),
    "mechanical": pl.Int32(),
    "ebike": pl.Int32(),
    "docks": pl.Int32(),
    "is_installed": pl.Boolean(),
    "is_renting": pl.Boolean(),
    "is_returning": pl.Boolean(),
    "reported_at": UTC_TS,
    "commune": pl.String(),
    "code_insee": pl.String(),
    "source": pl.String(),
}
"""One row per station and capture, as parsed from any source: nothing dropped, nothing fixed."""

REFERENCE_SCHEMA: dict[str, pl.DataType] = {
    "station_code": pl.String(),
    "name": pl.String(),
    "lat": pl.Float64(),
    "lon": pl.Float64(),
    "capacity": pl.Int32(),
    "commune": pl.String(),
    "code_insee": pl.String(),
    "arrondissement": pl.Int8(),
}
"""The station reference: where each station is, which commune and arrondissement it belongs to."""


def empty_raw_frame() -> pl.DataFrame:
    return pl.DataFrame(schema=RAW_SCHEMA)


def conform_raw(frame: pl.DataFrame) -> pl.DataFrame:
    """Add missing raw columns as nulls and cast all of them, in schema order."""
    return frame.select(
        [
            (pl.col(name) if name in frame.columns else pl.lit(None)).cast(dtype).alias(name)
            for name, dtype in RAW_SCHEMA.items()
        ]
    )
