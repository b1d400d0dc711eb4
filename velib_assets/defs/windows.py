"""The partition windows a run covers, and the upstream partitions they need."""

from collections.abc import Sequence
from pathlib import Path

import dagster as dg

from velib_assets import lake
from velib_assets.builds import Window
from velib_assets.defs.partitions import utc_window


def run_windows(
    context: dg.AssetExecutionContext, partitions: dg.TimeWindowPartitionsDefinition
) -> list[Window]:
    return [Window(key, *utc_window(partitions, key)) for key in context.partition_keys]


def require_upstream(lake_root: Path, asset: str, windows: Sequence[Window]) -> None:
    """Fail before any work when an upstream hourly partition is missing, naming the first one."""
    for window in windows:
        if not (lake.hour_dir(lake_root, asset, window.start) / lake.PART_FILE).is_file():
            raise dg.Failure(f"{asset} has no partition {window.key} in {lake_root}: materialize it first")
