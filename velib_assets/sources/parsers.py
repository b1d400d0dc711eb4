"""Which parser reads which capture format: the typed decoders for the two formats landed every
minute, the reference parsers of `formats` for the rest."""

from collections.abc import Callable
from datetime import datetime

import polars as pl

from velib_assets.sources import formats, typed
from velib_assets.sources.formats import CaptureParseError

PARSERS: dict[str, Callable[[bytes, datetime], pl.DataFrame]] = {
    formats.OPENDATA_JSON: typed.parse_opendata_json,
    formats.OPENDATA_CSV: formats.parse_opendata_csv,
    formats.OPENDATA_PARQUET: formats.parse_opendata_parquet,
    formats.GBFS_STATUS: typed.parse_gbfs_status,
    formats.GBFS_STATUS_LINES: formats.parse_gbfs_status_lines,
}


def parse_capture(body: bytes, fmt: str, snapshot_ts: datetime) -> pl.DataFrame:
    """Raw rows of one capture, or `CaptureParseError`; GBFS rows lack metadata until joined to info."""
    parser = PARSERS.get(fmt)
    if parser is None:
        raise CaptureParseError(f"unknown capture format {fmt!r}")
    return parser(body, snapshot_ts)
