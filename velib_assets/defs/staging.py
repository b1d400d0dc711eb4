"""Staging: the station reference and clean, deduplicated station rows (plus their quarantine)."""

from dataclasses import dataclass

import dagster as dg
import polars as pl

from velib_assets import lake
from velib_assets.defs import checks
from velib_assets.defs.ingestion import OWNERS, RAW, raw_station_snapshots
from velib_assets.defs.metadata import markdown_table, spec_metadata
from velib_assets.defs.partitions import hourly_partitions
from velib_assets.defs.resources import FeedResource, KpiResource, LakeResource
from velib_assets.defs.windows import Window, map_windows, run_windows, upstream_hour
from velib_assets.kpis.clean import CLEAN_SCHEMA, QUARANTINE_SCHEMA, clean_snapshots
from velib_assets.reference import build_reference, load_bundled_reference
from velib_assets.schema import RAW_SCHEMA, REFERENCE_SCHEMA
from velib_assets.sources import formats
from velib_assets.sources.http import FeedError

REFERENCE = "station_reference"
CLEAN = "clean_stations"
QUARANTINE = "clean_stations_quarantine"


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
    yield checks.arrondissement_rule(reference, "reference_arrondissement_rule")


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
    reference = read_reference(lake_store)
    thresholds = kpi.thresholds()

    def clean_hour(window: Window) -> CleanedHour:
        raw = upstream_hour(lake_store.lake, RAW, window, RAW_SCHEMA)
        result = clean_snapshots(raw, reference, thresholds)
        lake.write_parquet(result.clean, lake.hour_dir(lake_store.lake, CLEAN, window.start))
        lake.write_parquet(result.quarantine, lake.hour_dir(lake_store.lake, QUARANTINE, window.start))
        # Only what the metadata needs is kept: a month of clean rows must not pile up in memory.
        return CleanedHour(
            rows=result.clean.height,
            in_service=int(result.clean["in_service"].sum() or 0),
            stations=frozenset(result.clean["station_code"].unique().to_list()),
            reasons=dict(result.quarantine["reason"].value_counts().iter_rows()),
            # A rendered preview, not a 10-row slice: a slice would keep the whole hour's buffers alive.
            preview=markdown_table(result.clean) if result.clean.height else "",
            checks=[check(result.clean) for check in CLEAN_CHECK_FUNCTIONS],
        )

    hours = map_windows(clean_hour, run_windows(context, hourly_partitions))
    rows = sum(h.rows for h in hours)
    reasons: dict[str, int] = {}
    for hour in hours:
        for reason, count in hour.reasons.items():
            reasons[reason] = reasons.get(reason, 0) + count
    preview = next((h.preview for h in hours if h.rows), "_no rows_")
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
    yield from checks.merge_hourly([h.checks for h in hours])


@dataclass(frozen=True)
class CleanedHour:
    rows: int
    in_service: int
    stations: frozenset[str]
    reasons: dict[str, int]
    preview: str
    checks: list[dg.AssetCheckResult]


CLEAN_CHECK_FUNCTIONS = (
    checks.clean_unique_keys,
    checks.clean_non_null_keys,
    checks.clean_counts_non_negative,
    checks.arrondissement_rule,
    checks.clean_bike_types_add_up,
    checks.clean_capacity_mismatch_share,
    checks.clean_stale_share,
    checks.clean_station_count,
)
