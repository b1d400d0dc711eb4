"""Staging: the station reference and clean, deduplicated station rows (plus their quarantine)."""

from functools import partial

import dagster as dg
import polars as pl

from velib_assets import builds, lake, quality
from velib_assets.builds import CLEAN, QUARANTINE, RAW
from velib_assets.defs import checks
from velib_assets.defs.ingestion import OWNERS, raw_station_snapshots
from velib_assets.defs.metadata import markdown_table, spec_metadata
from velib_assets.defs.partitions import daily_partitions, local_day
from velib_assets.defs.resources import FeedResource, KpiResource, LakeResource
from velib_assets.defs.windows import require_upstream
from velib_assets.kpis.clean import QUARANTINE_SCHEMA
from velib_assets.kpis.stations import CLEAN_MINUTE_SCHEMA
from velib_assets.reference import build_reference, load_bundled_reference
from velib_assets.schema import REFERENCE_SCHEMA
from velib_assets.sources import formats, parsers
from velib_assets.sources.http import FeedError
from velib_assets.workers import map_parallel

REFERENCE = "station_reference"


class ReferenceConfig(dg.Config):
    """`bundled` uses the copy shipped with the project (offline); `api` refreshes it from Paris Open Data."""

    source: str = "bundled"


def read_reference(store: LakeResource) -> pl.DataFrame:
    """The materialized reference when there is one, else the bundled copy."""
    path = store.lake / REFERENCE / lake.PART_FILE
    return pl.read_parquet(path) if path.is_file() else load_bundled_reference()


@dg.asset(
    name=REFERENCE,
    group_name="staging",
    kinds={"polars", "parquet"},
    owners=OWNERS,
    metadata=spec_metadata(REFERENCE_SCHEMA),
    check_specs=[
        dg.AssetCheckSpec(
            "reference_arrondissement_rule",
            asset=REFERENCE,
            blocking=True,
            description=(
                "Every Paris station's code minus its last three digits is an arrondissement 1..20 "
                "(16107 → 16), and `arrondissement` matches it (null outside Paris)."
            ),
        )
    ],
    description=(
        "Where each station is and which commune and Paris arrondissement it belongs to, from the "
        "Opendatasoft dataset (GBFS has no district field). Bundled for offline use; set config "
        "`source: api` to refresh it from the live dataset."
    ),
)
def station_reference(config: ReferenceConfig, lake_store: LakeResource, feed: FeedResource):
    if config.source == "api":
        try:
            fetched = feed.opendata().export_json()
            rows = parsers.parse_capture(fetched.body, formats.OPENDATA_JSON, fetched.fetched_at)
        except (FeedError, formats.CaptureParseError) as exc:
            raise dg.Failure(
                f"station reference refresh failed: {exc}; the previous reference stays in use"
            ) from exc
        reference = build_reference(rows)
    elif config.source == "bundled":
        reference = load_bundled_reference()
    else:
        raise dg.Failure(f"station_reference config source={config.source!r}: use 'bundled' or 'api'")
    lake.write_parquet(reference, lake_store.lake / REFERENCE)
    yield dg.MaterializeResult(
        metadata={
            "source": config.source,
            "dagster/row_count": reference.height,
            "communes": reference["commune"].n_unique(),
            "preview": dg.MetadataValue.md(markdown_table(reference)),
        }
    )
    yield checks.report(quality.arrondissement_rule(reference, "reference_arrondissement_rule"))


CLEAN_CHECKS = [
    dg.AssetCheckSpec(
        "clean_unique_keys",
        asset=CLEAN,
        blocking=True,
        description="One row per (station_code, snapshot_ts).",
    ),
    dg.AssetCheckSpec(
        "clean_non_null_keys",
        asset=CLEAN,
        blocking=True,
        description="No null station_code or snapshot_ts.",
    ),
    dg.AssetCheckSpec(
        "clean_counts_non_negative",
        asset=CLEAN,
        blocking=True,
        description="bikes, docks, mechanical, ebike and capacity are never negative.",
    ),
    dg.AssetCheckSpec(
        "clean_arrondissement_rule",
        asset=CLEAN,
        blocking=True,
        description=(
            "Every Paris station's code minus its last three digits is an arrondissement 1..20 (16107 → 16),"
            " and `arrondissement` matches it (null outside Paris)."
        ),
    ),
    dg.AssetCheckSpec(
        "clean_bike_types_add_up",
        asset=CLEAN,
        description="mechanical + ebike = bikes wherever both are known.",
    ),
    dg.AssetCheckSpec(
        "clean_capacity_mismatch_share",
        asset=CLEAN,
        description="At most 25 % of rows have bikes + docks above capacity (common in the real feed).",
    ),
    dg.AssetCheckSpec(
        "clean_stale_share",
        asset=CLEAN,
        description="At most 10 % of rows are stale (reported_at older than VELIB_STALE_HOURS).",
    ),
    dg.AssetCheckSpec(
        "clean_station_count",
        asset=CLEAN,
        description="Stations per snapshot within the expected band, 1,000 to 2,500 (a half-empty feed).",
    ),
]


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            CLEAN,
            deps=[raw_station_snapshots, REFERENCE],
            description=(
                "One row per (station_code, snapshot_ts) with what changes every minute: counts, "
                "staleness, `in_service`, `status`, fill rate and empty/full flags (DESIGN §3). "
                "Capacity mismatches are kept and flagged. The station's name, position, capacity, "
                "commune and arrondissement are in `stations`; the DuckDB view `staging.clean_stations` "
                "joins them back."
            ),
            metadata=spec_metadata(CLEAN_MINUTE_SCHEMA),
            kinds={"polars", "parquet"},
            owners=OWNERS,
            group_name="staging",
        ),
        dg.AssetSpec(
            QUARANTINE,
            deps=[raw_station_snapshots],
            description=(
                "Raw rows rejected by cleaning (no station code; missing, negative or absurd counts), "
                "with the reason."
            ),
            metadata=spec_metadata(QUARANTINE_SCHEMA),
            kinds={"polars", "parquet"},
            owners=OWNERS,
            group_name="staging",
        ),
    ],
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    check_specs=CLEAN_CHECKS,
    can_subset=False,
)
def clean_stations(context: dg.AssetExecutionContext, lake_store: LakeResource, kpi: KpiResource):
    keys = context.partition_keys
    days = [local_day(key) for key in keys]
    require_upstream(lake_store.lake, RAW, days)
    build = partial(builds.clean_day, lake_store.lake, read_reference(lake_store), kpi.thresholds())
    # Days in parallel; a single day (today's refresh, one day rebuilt) cleans its hours in parallel.
    cleaned = [build(days[0], map_parallel)] if len(days) == 1 else map_parallel(build, days)
    for key, day in zip(keys, cleaned, strict=True):
        context.add_asset_metadata(
            {
                "dagster/row_count": day.rows,
                "distinct_stations": day.stations,
                "station_versions": day.versions,
                "in_service_share": round(day.in_service / day.rows, 4) if day.rows else 0.0,
                "preview": dg.MetadataValue.md(markdown_table(day.preview)),
            },
            asset_key=CLEAN,
            partition_key=key,
        )
        context.add_asset_metadata(
            {"dagster/row_count": sum(day.reasons.values()), "reasons": dg.MetadataValue.json(day.reasons)},
            asset_key=QUARANTINE,
            partition_key=key,
        )
    yield dg.MaterializeResult(asset_key=CLEAN, metadata={"run_days": len(days)})
    yield dg.MaterializeResult(asset_key=QUARANTINE, metadata={"run_days": len(days)})
    yield from checks.merge_partitions([d.verdicts for d in cleaned], keys)
