"""Marts: time-weighted occupancy per station and district, and the daily critical-station rankings."""

from functools import partial

import dagster as dg
import polars as pl

from velib_assets import builds, quality
from velib_assets.builds import CLEAN, DISTRICT_OCCUPANCY, RANKINGS, STATION_OCCUPANCY
from velib_assets.days import closed_through
from velib_assets.defs import checks
from velib_assets.defs.ingestion import OWNERS
from velib_assets.defs.metadata import markdown_table, provisional_metadata, spec_metadata
from velib_assets.defs.partitions import daily_partitions, local_day
from velib_assets.defs.resources import KpiResource, LakeResource
from velib_assets.defs.windows import require_upstream
from velib_assets.kpis.occupancy import DISTRICT_OCCUPANCY_SCHEMA, STATION_OCCUPANCY_SCHEMA
from velib_assets.kpis.rankings import RANKINGS_SCHEMA
from velib_assets.workers import map_parallel


@dg.asset(
    name=STATION_OCCUPANCY,
    deps=[CLEAN],
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="marts",
    kinds={"polars", "parquet"},
    owners=OWNERS,
    metadata=spec_metadata(STATION_OCCUPANCY_SCHEMA),
    check_specs=[
        dg.AssetCheckSpec(
            "occupancy_minutes_in_range",
            asset=STATION_OCCUPANCY,
            blocking=True,
            description="Every minute column of every station-hour is within [0, 60].",
        ),
        dg.AssetCheckSpec(
            "occupancy_fill_rate_in_range",
            asset=STATION_OCCUPANCY,
            blocking=True,
            description="Every `mean_fill_rate` is within [0, 1] (null: no observation with a fill rate).",
        ),
    ],
    description=(
        "Per station and hour, one file per local day: minutes observed, in service, empty, full, "
        "nearly empty/full, with each "
        "observation lasting until the next one, at most MAX_GAP, never past the hour (DESIGN §3); "
        "the longest empty and full streaks of the hour and those touching its first and last "
        "observation, from which the daily rankings chain whole-day streaks."
    ),
)
def station_occupancy(context: dg.AssetExecutionContext, lake_store: LakeResource, kpi: KpiResource):
    keys = context.partition_keys
    days = [local_day(key) for key in keys]
    require_upstream(lake_store.lake, CLEAN, days)
    built = map_parallel(partial(builds.occupancy_day, lake_store.lake, kpi.thresholds()), days)
    for key, day in zip(keys, built, strict=True):
        context.add_asset_metadata(
            {
                "dagster/row_count": day.rows,
                "stations": day.stations,
                "hours": day.hours,
                **day.minutes,
                "preview": dg.MetadataValue.md(markdown_table(day.preview)),
            },
            partition_key=key,
        )
    yield dg.MaterializeResult(metadata={"run_days": len(days)})
    yield from checks.merge_partitions([day.verdicts for day in built], keys)


@dg.asset(
    name=DISTRICT_OCCUPANCY,
    deps=[STATION_OCCUPANCY],
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="marts",
    kinds={"polars", "parquet"},
    owners=OWNERS,
    metadata=spec_metadata(DISTRICT_OCCUPANCY_SCHEMA),
    description=(
        "Per district (a Paris arrondissement such as 'Paris 16e', or a commune) and hour, one file per "
        "local day: the stations' "
        "minute sums and station-weighted mean fill rate."
    ),
)
def district_occupancy(context: dg.AssetExecutionContext, lake_store: LakeResource) -> dg.MaterializeResult:
    keys = context.partition_keys
    days = [local_day(key) for key in keys]
    require_upstream(lake_store.lake, STATION_OCCUPANCY, days)
    built = map_parallel(partial(builds.districts_day, lake_store.lake), days)
    for key, (rows, districts, worst) in zip(keys, built, strict=True):
        context.add_asset_metadata(
            {
                "dagster/row_count": rows,
                "districts": districts,
                "preview": dg.MetadataValue.md(markdown_table(worst)),
            },
            partition_key=key,
        )
    return dg.MaterializeResult(metadata={"run_days": len(days)})


@dg.asset(
    name=RANKINGS,
    deps=[STATION_OCCUPANCY],
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="marts",
    kinds={"polars", "parquet"},
    owners=OWNERS,
    metadata=spec_metadata(RANKINGS_SCHEMA),
    check_specs=[
        dg.AssetCheckSpec(
            "rankings_contiguous",
            asset=RANKINGS,
            blocking=True,
            description="Each day's ranks are exactly 1..n: no gap, no repeat.",
        ),
        dg.AssetCheckSpec(
            "rankings_day_coverage",
            asset=RANKINGS,
            description="Each day was observed at least VELIB_MIN_DAY_COVERAGE of the time (default 80 %).",
        ),
    ],
    description=(
        "Per local day, stations in service ranked by critical minutes (empty + full), then empty "
        "minutes, then code; with the longest empty and full streaks, chained across the day's hours. "
        "Each day's materialization says how much of the day the collection saw; today's is provisional "
        "(refreshed as its hours close) until the day ends."
    ),
)
def critical_station_rankings(context: dg.AssetExecutionContext, lake_store: LakeResource, kpi: KpiResource):
    keys = context.partition_keys
    days = [local_day(key) for key in keys]
    require_upstream(lake_store.lake, STATION_OCCUPANCY, days)
    now = checks.run_now(context)
    build = partial(
        builds.ranking_day, lake_store.lake, lake_store.landing, kpi.thresholds(), kpi.cadence_s, now
    )
    ranked = map_parallel(build, days)
    for key, day, ranking in zip(keys, days, ranked, strict=True):
        context.add_asset_metadata(
            {
                "dagster/row_count": ranking.ranking.height,
                **provisional_metadata(day, closed_through(day, now)),
                "hours_with_occupancy": ranking.hours_with_occupancy,
                **ranking.coverage.metadata(),
                "top_10": dg.MetadataValue.md(markdown_table(ranking.ranking.filter(pl.col("rank") <= 10))),
            },
            partition_key=key,
        )
    yield dg.MaterializeResult(metadata={"run_days": len(ranked)})
    yield from checks.merge_partitions([[quality.rankings_contiguous(d.ranking)] for d in ranked], keys)
    yield checks.report(quality.rankings_day_coverage([d.coverage for d in ranked], kpi.min_day_coverage))
