"""Staging: the station reference and clean, deduplicated station rows (plus their quarantine)."""

from functools import partial

import dagster as dg
import polars as pl

from velib_assets import builds, lake, quality
from velib_assets.builds import CLEAN, QUARANTINE, RAW
from velib_assets.defs import checks
from velib_assets.defs.ingestion import OWNERS, raw_station_snapshots
from velib_assets.defs.metadata import markdown_table, spec_metadata
from velib_assets.defs.partitions import hourly_partitions
from velib_assets.defs.resources import FeedResource, KpiResource, LakeResource
from velib_assets.defs.windows import require_upstream, run_windows
from velib_assets.kpis.clean import CLEAN_SCHEMA, QUARANTINE_SCHEMA
from velib_assets.reference import build_reference, load_bundled_reference
from velib_assets.schema import REFERENCE_SCHEMA
from velib_assets.sources import formats
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
    check_specs=[dg.AssetCheckSpec("reference_arrondissement_rule", asset=REFERENCE, blocking=True)],
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
            rows = formats.parse_capture(fetched.body, formats.OPENDATA_JSON, fetched.fetched_at)
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
    dg.AssetCheckSpec("clean_unique_keys", asset=CLEAN, blocking=True),
    dg.AssetCheckSpec("clean_non_null_keys", asset=CLEAN, blocking=True),
    dg.AssetCheckSpec("clean_counts_non_negative", asset=CLEAN, blocking=True),
    dg.AssetCheckSpec("clean_arrondissement_rule", asset=CLEAN, blocking=True),
    dg.AssetCheckSpec("clean_bike_types_add_up", asset=CLEAN),
    dg.AssetCheckSpec("clean_capacity_mismatch_share", asset=CLEAN),
    dg.AssetCheckSpec("clean_stale_share", asset=CLEAN),
    dg.AssetCheckSpec("clean_station_count", asset=CLEAN),
]


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            CLEAN,
            deps=[raw_station_snapshots, REFERENCE],
            description=(
                "One row per (station_code, snapshot_ts) with capture-time keys, reference metadata, "
                "staleness, `in_service`, `status`, fill rate and empty/full flags (DESIGN §3). "
                "Capacity mismatches are kept and flagged."
            ),
            metadata=spec_metadata(CLEAN_SCHEMA),
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
    partitions_def=hourly_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    check_specs=CLEAN_CHECKS,
    can_subset=False,
)
def clean_stations(context: dg.AssetExecutionContext, lake_store: LakeResource, kpi: KpiResource):
    windows = run_windows(context, hourly_partitions)
    require_upstream(lake_store.lake, RAW, windows)
    build = partial(builds.clean_hour, lake_store.lake, read_reference(lake_store), kpi.thresholds())
    hours = map_parallel(build, windows)
    rows = sum(h.rows for h in hours)
    reasons: dict[str, int] = {}
    for hour in hours:
        for reason, count in hour.reasons.items():
            reasons[reason] = reasons.get(reason, 0) + count
    first = next((w for w, h in zip(windows, hours, strict=True) if h.rows), None)
    preview = (
        markdown_table(
            pl.read_parquet(lake.hour_dir(lake_store.lake, CLEAN, first.start) / lake.PART_FILE, n_rows=10)
        )
        if first
        else "_no rows_"
    )
    yield dg.MaterializeResult(
        asset_key=CLEAN,
        metadata={
            "dagster/row_count": rows,
            "distinct_stations": len(frozenset().union(*(h.stations for h in hours))),
            "in_service_share": round(sum(h.in_service for h in hours) / rows, 4) if rows else 0.0,
            "preview": dg.MetadataValue.md(preview),
        },
    )
    yield dg.MaterializeResult(
        asset_key=QUARANTINE,
        metadata={"dagster/row_count": sum(reasons.values()), "reasons": dg.MetadataValue.json(reasons)},
    )
    yield from checks.merge_hourly([h.verdicts for h in hours])
