"""The upstream partitions a run needs."""

from collections.abc import Sequence
from datetime import date
from pathlib import Path

import dagster as dg

from velib_assets import lake


def require_upstream(lake_root: Path, asset: str, days: Sequence[date]) -> None:
    """Fail before any work when an upstream day partition was never built, naming the first one."""
    for day in days:
        if not lake.day_dir(lake_root, asset, day).is_dir():
            raise dg.Failure(f"{asset} has no partition {day} in {lake_root}: materialize it first")
