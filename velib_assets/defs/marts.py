"""Marts: time-weighted occupancy per station and district, and the daily critical-station rankings."""

from functools import partial

import dagster as dg
import polars as pl

from velib_assets import builds, quality
from velib_assets.builds import CLEAN, DISTRICT_OCCUPANCY, RANKINGS, STATION_OCCUPANCY
from velib_assets.defs import checks
from velib_assets.defs.ingestion import OWNERS
from velib_assets.defs.metadata import markdown_table, spec_metadata
from velib_assets.defs.partitions import daily_partitions, hourly_partitions, local_day
from velib_assets.defs.resources import KpiResource, LakeResource
from velib_assets.defs.windows import require_upstream, run_windows
from velib_assets.kpis.occupancy import DISTRICT_OCCUPANCY_SCHEMA, STATION_OCCUPANCY_SCHEMA
from velib_assets.kpis.rankings import RANKINGS_SCHEMA
from velib_assets.workers import map_parallel


@dg.asset(
    name=STATION_OCCUPANCY,
    deps=[CLEAN],
    partitions_def=hourly_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="marts",
    kinds={"polars", "parquet"},
    owners=OWNERS,
    metadata=spec_metadata(STATION_OCCUPANCY_SCHEMA),
    check_specs=[
        dg.AssetCheckSpec("occupancy_minutes_in_range", asset=STATION_OCCUPANCY, blocking=True),
        dg.AssetCheckSpec("occupancy_fill_rate_in_range", asset=STATION_OCCUPANCY, blocking=True),
    ],
    description=(
        "Per station and hour: minutes observed, in service, empty, full, nearly empty/full, with each "
        "observation lasting until the next one, at most MAX_GAP, never past the hour (DESIGN §3); "
        "the longest empty and full streaks of the hour and those touching its first and last "
        "observation, from which the daily rankings chain whole-day streaks."
    ),
)
def station_occupancy(context: dg.AssetExecutionContext, lake_store: LakeResource, kpi: KpiResource):
    windows = run_windows(context, hourly_partitions)
    require_upstream(lake_store.lake, CLEAN, windows)
    build = partial(builds.occupancy_hour, lake_store.lake, kpi.thresholds())
    occupancy = pl.concat(map_parallel(build, windows))
    yield dg.MaterializeResult(
        metadata={
            "dagster/row_count": occupancy.height,
            "empty_minutes": round(float(occupancy["empty_minutes"].sum()), 1),
            "full_minutes": round(float(occupancy["full_minutes"].sum()), 1),
            "preview": dg.MetadataValue.md(markdown_table(occupancy)),
        }
    )
    yield checks.report(quality.occupancy_minutes_in_range(occupancy))
    yield checks.report(quality.occupancy_fill_rate_in_range(occupancy))


@dg.asset(
    name=DISTRICT_OCCUPANCY,
    deps=[STATION_OCCUPANCY],
    partitions_def=hourly_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="marts",
    kinds={"polars", "parquet"},
    owners=OWNERS,
    metadata=spec_metadata(DISTRICT_OCCUPANCY_SCHEMA),
    description=(
        "Per district (a Paris arrondissement such as 'Paris 16e', or a commune) and hour: the stations' "
        "minute sums and station-weighted mean fill rate."
    ),
)
def district_occupancy(context: dg.AssetExecutionContext, lake_store: LakeResource) -> dg.MaterializeResult:
    windows = run_windows(context, hourly_partitions)
    require_upstream(lake_store.lake, STATION_OCCUPANCY, windows)
    districts = pl.concat(map_parallel(partial(builds.districts_hour, lake_store.lake), windows))
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": districts.height,
            "districts": districts["district"].n_unique(),
            "preview": dg.MetadataValue.md(markdown_table(districts.sort("empty_minutes", descending=True))),
        }
    )


@dg.asset(
    name=RANKINGS,
    deps=[STATION_OCCUPANCY],
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="marts",
    kinds={"polars", "parquet"},
    owners=OWNERS,
    metadata=spec_metadata(RANKINGS_SCHEMA),
    check_specs=[dg.AssetCheckSpec("rankings_contiguous", asset=RANKINGS, blocking=True)],
    description=(
        "Per local day, stations in service ranked by critical minutes (empty + full), then empty "
        "minutes, then code; with the longest empty and full streaks, chained across the day's hours."
    ),
)
def critical_station_rankings(context: dg.AssetExecutionContext, lake_store: LakeResource, kpi: KpiResource):
    keys = context.partition_keys
    days = [local_day(key) for key in keys]
    for day in days:
        if outdated := builds.occupancy_without_streaks(lake_store.lake, day):
            raise dg.Failure(
                f"{outdated} was written before station_occupancy kept the hourly streaks the rankings "
                f"chain: materialize station_occupancy for {day} again"
            )
    ranked = map_parallel(partial(builds.ranking_day, lake_store.lake, kpi.thresholds()), days)
    frames = [ranking for ranking, _ in ranked]
    hours_present = {key: hours for key, (_, hours) in zip(keys, ranked, strict=True)}
    rankings = pl.concat(frames)
    yield dg.MaterializeResult(
        metadata={
            "dagster/row_count": rankings.height,
            "days": len(frames),
            "hours_with_occupancy": dg.MetadataValue.json(hours_present),
            "top_10": dg.MetadataValue.md(markdown_table(rankings.filter(pl.col("rank") <= 10), rows=30)),
        }
    )
    yield checks.report(quality.rankings_contiguous(rankings))
