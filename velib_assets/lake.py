"""The lake: one Parquet file per asset partition, written to a temporary name and renamed.

Hourly partitions live under `lake/<asset>/date=YYYY-MM-DD/hour=HH/` keyed by the window start in
UTC (local hours repeat on the autumn DST change, UTC hours never do); daily partitions under
`lake/<asset>/day=YYYY-MM-DD/` keyed by the local day. A re-run replaces the file whole.
"""

import os
import uuid
from collections.abc import Iterable
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl

PART_FILE = "part.parquet"


def hour_dir(root: Path, asset: str, window_start: datetime) -> Path:
    start = window_start.astimezone(UTC)
    return root / asset / f"date={start:%Y-%m-%d}" / f"hour={start:%H}"


def day_dir(root: Path, asset: str, day: date) -> Path:
    return root / asset / f"day={day:%Y-%m-%d}"


def write_parquet(frame: pl.DataFrame, directory: Path) -> Path:
    """Write `frame` as the partition file of `directory`."""
    return write_parquet_file(frame, directory / PART_FILE)


def write_parquet_file(frame: pl.DataFrame, target: Path) -> Path:
    """Write `frame` to `target` atomically: readers see the old file or the new one, never half.

    Without column statistics: a partition file is one row group whose bounds its folder already
    says, so min/max could never skip anything, and computing them is a fifth of the write time.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.{uuid.uuid4().hex}.tmp"
    try:
        frame.write_parquet(tmp, compression="zstd", compression_level=1, statistics=False)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def existing_files(directories: Iterable[Path]) -> list[Path]:
    """The partition files that exist among `directories` (missing partitions are simply absent)."""
    return [d / PART_FILE for d in directories if (d / PART_FILE).is_file()]


def scan(directories: Iterable[Path], schema: dict[str, pl.DataType]) -> pl.LazyFrame:
    """Lazily read the given partitions; an empty frame with `schema` when none exists."""
    files = existing_files(directories)
    if not files:
        return pl.LazyFrame(schema=schema)
    return pl.scan_parquet(files)
