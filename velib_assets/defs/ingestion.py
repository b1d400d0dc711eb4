"""Ingestion: the landing zone (an external asset fed by the sensor) and raw snapshots per day."""

from datetime import date, datetime, timedelta
from functools import partial

import dagster as dg

from velib_assets import builds, landing, quality, settings
from velib_assets.builds import RAW
from velib_assets.days import closed_through, day_hours, hour_label
from velib_assets.defs import checks
from velib_assets.defs.metadata import errors_table, markdown_table, provisional_metadata, spec_metadata
from velib_assets.defs.partitions import daily_partitions, local_day
from velib_assets.defs.resources import KpiResource, LakeResource
from velib_assets.schema import RAW_SCHEMA
from velib_assets.workers import map_parallel

OWNERS = ["team:velib-data"]

velib_landing = dg.AssetSpec(
    "velib_landing",
    description=(
        "Verbatim feed captures written by `velib_snapshot_sensor` (or `velib import`): one immutable "
        "file per capture under `landing/captures/date=…/hour=…/`, named by capture time. Hours that "
        "were never captured cannot be fetched after the fact."
    ),
    group_name="ingestion",
    partitions_def=daily_partitions,
    kinds={"json", "file"},
    owners=OWNERS,
    # Each landed capture is an event of this asset: when they stop (feed down, or frozen, since an
    # unchanged capture is not landed), the UI turns it yellow, then red.
    freshness_policy=dg.FreshnessPolicy.time_window(
        fail_window=timedelta(minutes=settings.feed_down_minutes()),
        warn_window=timedelta(minutes=settings.feed_down_minutes() / 2),
    ),
)

RAW_CHECKS = [
    dg.AssetCheckSpec(
        "raw_parse_errors", asset=RAW, description="Captures of the run's days that did not parse."
    ),
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
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="ingestion",
    kinds={"polars", "parquet"},
    owners=OWNERS,
    check_specs=RAW_CHECKS,
    metadata=spec_metadata(RAW_SCHEMA),
    description=(
        "Every station row of every capture of the day, parsed into one schema (GBFS and Opendatasoft "
        "alike), nothing dropped or fixed, one file per hour. A refresh of today parses only the hours "
        "whose captures changed. A capture that does not parse is listed with its reason; the day "
        "fails only when nothing in it parses."
    ),
)
def raw_station_snapshots(context: dg.AssetExecutionContext, lake_store: LakeResource, kpi: KpiResource):
    now = checks.run_now(context)
    days = [(key, local_day(key)) for key in context.partition_keys]
    build = partial(builds.raw_day, lake_store.lake, lake_store.landing, now)
    # Days in parallel; a single day (today's refresh, one day rebuilt) parses its hours in parallel.
    built = [build(days[0][1], map_parallel)] if len(days) == 1 else map_parallel(build, [d for _, d in days])
    if len(days) == 1 and not built[0].hours:
        raise dg.Failure(f"day {days[0][0]}: no hour of it has closed yet; its first build comes at 01:00")
    if len(days) == 1 and built[0].parsed == 0:
        key, raw = days[0][0], built[0]
        reasons = "; ".join(f"{n}: {r}" for n, r in raw.errors[:5]) or "no capture landed"
        raise dg.Failure(
            f"day {key}: nothing parsed ({reasons}). Hours that were never captured cannot be "
            "fetched after the fact; import recorded files with `velib import` if you have them.",
            metadata={"parse_errors": dg.MetadataValue.md(errors_table(raw.errors))},
        )
    for (key, day), raw in zip(days, built, strict=True):
        through = closed_through(day, now)
        context.add_asset_metadata(day_metadata(raw, day, through, kpi.cadence_s), partition_key=key)
    if sum(raw.rows for raw in built) == 0:
        raise dg.Failure(f"no capture parsed in {len(days)} days ({days[0][0]} .. {days[-1][0]})")
    captures, errors = sum(r.captures for r in built), [e for r in built for e in r.errors]
    context.log.info(
        f"{captures} captures, {sum(r.rows for r in built)} rows, {len(errors)} parse errors, "
        f"{sum(r.reparsed for r in built)} hours parsed, the others unchanged since the last build"
    )
    yield dg.MaterializeResult(metadata={"run_days": len(days), "run_row_count": sum(r.rows for r in built)})
    yield checks.report(quality.raw_parse_errors(captures, errors))
    yield checks.report(quality.raw_empty_station_lists(errors))
    expected = kpi.expected_snapshots_per_hour
    yield checks.report(quality.landing_coverage(_captures_per_hour(days, built), expected))
    frozen = {key: raw.longest_frozen_s for (key, _), raw in zip(days, built, strict=True)}
    yield checks.report(quality.raw_frozen_feed(frozen, kpi.thresholds().max_gap))


def _captures_per_hour(days: list[tuple[str, date]], built: list[builds.RawDay]) -> dict[str, int]:
    """Captures of every built hour, keyed by its UTC label."""
    return {
        hour_label(hour): built_hour.captures
        for (_, day), raw in zip(days, built, strict=True)
        for hour, built_hour in zip(day_hours(day), raw.hours, strict=False)
    }


def day_metadata(raw: builds.RawDay, day: date, through: datetime, cadence_s: float) -> dict[str, object]:
    """What one day's materialization shows in the UI: its own figures, never the run's totals."""
    expected = round(len(raw.hours) * 3600 / cadence_s)
    return {
        "dagster/row_count": raw.rows,
        "captures": raw.captures,
        "snapshots": raw.parsed,
        "capture_share": round(raw.captures / expected, 4) if expected else 0.0,
        "hours_built": len(raw.hours),
        "hours_parsed_this_run": raw.reparsed,
        **provisional_metadata(day, through),
        "longest_unchanged_minutes": round(raw.longest_frozen_s / 60, 1),
        "distinct_stations": raw.stations,
        "bytes": sum(h.bytes_read for h in raw.hours),
        "parse_errors": len(raw.errors),
        "parse_error_details": dg.MetadataValue.md(errors_table(raw.errors)),
        "preview": dg.MetadataValue.md(markdown_table(raw.preview)),
    }


@dg.asset_check(
    asset=velib_landing.key,
    description="Age of the newest capture in the landing zone; a capture dated in the future fails it.",
)
def landing_freshness(lake_store: LakeResource) -> dg.AssetCheckResult:
    newest = landing.newest_capture(lake_store.landing)
    return checks.report(quality.landing_freshness(newest.capture_time if newest else None, checks.now_utc()))
