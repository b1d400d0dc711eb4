"""Ingestion: the landing zone (an external asset fed by the sensor) and hourly raw snapshots."""

import dagster as dg

from velib_assets import lake, landing, quality, snapshots
from velib_assets.builds import RAW
from velib_assets.defs import checks
from velib_assets.defs.metadata import errors_table, markdown_table, spec_metadata
from velib_assets.defs.partitions import hourly_partitions
from velib_assets.defs.resources import KpiResource, LakeResource
from velib_assets.defs.windows import run_windows
from velib_assets.schema import RAW_SCHEMA

OWNERS = ["team:velib-data"]

velib_landing = dg.AssetSpec(
    "velib_landing",
    description=(
        "Verbatim feed captures written by `velib_snapshot_sensor` (or `velib import`): one immutable "
        "file per capture under `landing/captures/date=…/hour=…/`, named by capture time. Hours that "
        "were never captured cannot be fetched after the fact."
    ),
    group_name="ingestion",
    partitions_def=hourly_partitions,
    kinds={"json", "file"},
    owners=OWNERS,
)

RAW_CHECKS = [
    dg.AssetCheckSpec("raw_parse_errors", asset=RAW, description="Captures of the hour that did not parse."),
    dg.AssetCheckSpec(
        "raw_empty_station_lists", asset=RAW, description="Captures with an empty station list."
    ),
    dg.AssetCheckSpec("landing_coverage", asset=RAW, description="Share of expected snapshots that landed."),
    dg.AssetCheckSpec(
        "raw_frozen_feed",
        asset=RAW,
        description="Station data unchanged under new capture times for longer than MAX_GAP (a frozen feed).",
    ),
]


@dg.asset(
    name=RAW,
    deps=[velib_landing],
    partitions_def=hourly_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="ingestion",
    kinds={"polars", "parquet"},
    owners=OWNERS,
    check_specs=RAW_CHECKS,
    metadata=spec_metadata(RAW_SCHEMA),
    description=(
        "Every station row of every capture of the hour, parsed into one schema (GBFS and Opendatasoft "
        "alike), nothing dropped or fixed. A capture that does not parse is listed with its reason; the "
        "hour fails only when nothing in it parses."
    ),
)
def raw_station_snapshots(context: dg.AssetExecutionContext, lake_store: LakeResource, kpi: KpiResource):
    windows = run_windows(context, hourly_partitions)
    errors: list[tuple[str, str]] = []
    per_hour: dict[str, int] = {}
    frozen: dict[str, float] = {}
    totals = {"captures": 0, "rows": 0}
    tail: snapshots.Unchanged | None = None  # a frozen spell goes on across the run's hours
    for window in windows:
        parsed = snapshots.parse_window(lake_store.landing, window.start, window.end, tail)
        tail = parsed.tail
        if len(windows) == 1 and parsed.parsed == 0:
            reasons = "; ".join(f"{n}: {r}" for n, r in parsed.errors[:5]) or "no capture landed"
            raise dg.Failure(
                f"hour {window.key}: nothing parsed ({reasons}). Hours that were never captured cannot be "
                "fetched after the fact; import recorded files with `velib import` if you have them.",
                metadata={"parse_errors": dg.MetadataValue.md(errors_table(parsed.errors))},
            )
        lake.write_parquet(parsed.frame, lake.hour_dir(lake_store.lake, RAW, window.start))
        expected = kpi.expected_snapshots_per_hour
        context.add_asset_metadata(hour_metadata(parsed, expected), partition_key=window.key)
        errors.extend(parsed.errors)
        per_hour[window.key] = parsed.captures
        frozen[window.key] = parsed.longest_frozen_s
        totals["captures"] += parsed.captures
        totals["rows"] += parsed.frame.height
    if totals["rows"] == 0:
        raise dg.Failure(f"no capture parsed in {len(windows)} hours ({windows[0].key} .. {windows[-1].key})")
    context.log.info(f"{totals['captures']} captures, {totals['rows']} rows, {len(errors)} parse errors")
    yield dg.MaterializeResult(metadata={"run_hours": len(windows), "run_row_count": totals["rows"]})
    yield checks.report(quality.raw_parse_errors(totals["captures"], errors))
    yield checks.report(quality.raw_empty_station_lists(errors))
    yield checks.report(quality.landing_coverage(per_hour, kpi.expected_snapshots_per_hour))
    yield checks.report(quality.raw_frozen_feed(frozen, kpi.thresholds().max_gap))


def hour_metadata(parsed: snapshots.WindowSnapshots, expected: int) -> dict[str, object]:
    """What one hour's materialization shows in the UI: its own figures, never the run's totals."""
    return {
        "dagster/row_count": parsed.frame.height,
        "snapshots": parsed.parsed,
        "capture_share": round(parsed.captures / expected, 4) if expected else 0.0,
        "longest_unchanged_minutes": round(parsed.longest_frozen_s / 60, 1),
        "distinct_stations": parsed.frame["station_code"].drop_nulls().n_unique(),
        "bytes": parsed.bytes_read,
        "parse_errors": len(parsed.errors),
        "parse_error_details": dg.MetadataValue.md(errors_table(parsed.errors)),
        "preview": dg.MetadataValue.md(markdown_table(parsed.frame.head(10))),
    }


@dg.asset_check(
    asset=velib_landing.key,
    description="Age of the newest capture in the landing zone; a capture dated in the future fails it.",
)
def landing_freshness(lake_store: LakeResource) -> dg.AssetCheckResult:
    newest = landing.newest_capture(lake_store.landing)
    return checks.report(quality.landing_freshness(newest.capture_time if newest else None, checks.now_utc()))
