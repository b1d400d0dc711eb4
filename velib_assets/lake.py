"""The lake: Parquet files per asset and local day, written to a temporary name and renamed.

Every derived asset partition is `lake/<asset>/day=YYYY-MM-DD/part.parquet`, keyed by the local
(`Europe/Paris`) day. Raw snapshots keep one file per hour inside their day folder, named by the
hour's UTC start (`2024-10-27T01Z.parquet`: local hours repeat on the autumn DST change, UTC hours
never do), so the hourly refresh of today parses only the hour that closed. A re-run replaces a file
whole.
"""

import os
import uuid
from collections.abc import Iterable
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl

PART_FILE = "part.parquet"
HOUR_FILES = "*Z.parquet"


def day_dir(root: Path, asset: str, day: date) -> Path:
    return root / asset / f"day={day:%Y-%m-%d}"


def hour_file(root: Path, asset: str, day: date, hour_start: datetime) -> Path:
    """The file of the hour starting at `hour_start` inside the folder of its local `day`."""
    return day_dir(root, asset, day) / f"{hour_start.astimezone(UTC):%Y-%m-%dT%H}Z.parquet"


def hour_files(root: Path, asset: str, day: date) -> list[Path]:
    """The hour files of a day, in time order."""
    return sorted(day_dir(root, asset, day).glob(HOUR_FILES))


def write_parquet(frame: pl.DataFrame, directory: Path, lookup_rows: int | None = None) -> Path:
    """Write `frame` as the partition file of `directory`."""
    return write_parquet_file(frame, directory / PART_FILE, lookup_rows)


def write_parquet_file(frame: pl.DataFrame, target: Path, lookup_rows: int | None = None) -> Path:
    """Write `frame` to `target` atomically: readers see the old file or the new one, never half.

    Without column statistics by default: the pipeline reads a partition file whole (its folder
    already says which day it holds), so min/max could never skip anything, and computing them is a
    fifth of the write time. A file the API looks up by key (sorted by that key) is written with
    `lookup_rows` rows per row group and statistics, so a lookup reads only the groups that hold it.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.{uuid.uuid4().hex}.tmp"
    layout = {"statistics": True, "row_group_size": lookup_rows} if lookup_rows else {"statistics": False}
    try:
        frame.write_parquet(tmp, compression="zstd", compression_level=1, **layout)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def write_text(text: str, target: Path) -> Path:
    """Write a small text file atomically (a sidecar written after the file it describes)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.{uuid.uuid4().hex}.tmp"
    try:
        tmp.write_text(text)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def existing_files(directories: Iterable[Path]) -> list[Path]:
    """The partition files that exist among `directories` (missing partitions are simply absent)."""
    return [d / PART_FILE for d in directories if (d / PART_FILE).is_file()]


def scan_files(files: list[Path], schema: dict[str, pl.DataType]) -> pl.LazyFrame:
    """Lazily read `files`; an empty frame with `schema` when there is none."""
    return pl.scan_parquet(files) if files else pl.LazyFrame(schema=schema)


def scan(directories: Iterable[Path], schema: dict[str, pl.DataType]) -> pl.LazyFrame:
    """Lazily read the given partitions; an empty frame with `schema` when none exists."""
    return scan_files(existing_files(directories), schema)


def hourly_layout_folders(root: Path) -> list[Path]:
    """Folders of the hourly layout older versions wrote (`<asset>/date=YYYY-MM-DD/hour=HH/`)."""
    return sorted(root.glob("*/date=*")) if root.is_dir() else []
