"""The partition windows a run covers, and a pool to work through them.

A single-run backfill covers many windows; each is independent (its own input and output files),
and Polars releases the GIL, so a few threads keep both cores busy on one hour's small frames.
"""

import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TypeVar

import dagster as dg
import polars as pl

from velib_assets import lake
from velib_assets.defs.partitions import utc_window

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Window:
    key: str
    start: datetime
    end: datetime


def run_windows(
    context: dg.AssetExecutionContext, partitions: dg.TimeWindowPartitionsDefinition
) -> list[Window]:
    return [Window(key, *utc_window(partitions, key)) for key in context.partition_keys]


def upstream_hour(
    lake_root: Path, asset: str, window: Window, schema: dict[str, pl.DataType]
) -> pl.LazyFrame:
    """An upstream hourly partition, or a failure that says which one to materialize first."""
    directory = lake.hour_dir(lake_root, asset, window.start)
    if not (directory / lake.PART_FILE).is_file():
        raise dg.Failure(f"{asset} has no partition {window.key} in {lake_root}: materialize it first")
    return lake.scan([directory], schema)


def worker_count() -> int:
    configured = os.environ.get("VELIB_WORKERS", "").strip()
    return max(1, int(configured)) if configured else max(1, os.cpu_count() or 1)


def map_windows(work: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """`work` on every item, in input order; the first exception propagates."""
    items = list(items)
    if len(items) < 2:
        return [work(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(worker_count(), len(items))) as pool:
        return list(pool.map(work, items))
