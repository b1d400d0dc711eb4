"""The partition windows a run covers: one for a single partition, many for a single-run backfill."""

from dataclasses import dataclass
from datetime import datetime

import dagster as dg

from velib_assets.defs.partitions import utc_window


@dataclass(frozen=True)
class Window:
    key: str
    start: datetime
    end: datetime


def run_windows(
    context: dg.AssetExecutionContext, partitions: dg.TimeWindowPartitionsDefinition
) -> list[Window]:
    return [Window(key, *utc_window(partitions, key)) for key in context.partition_keys]
