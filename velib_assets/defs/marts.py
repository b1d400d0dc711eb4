"""Marts: time-weighted occupancy per station and district, and the daily critical-station rankings."""

from datetime import date, datetime, timedelta
from pathlib import Path

import dagster as dg
import polars as pl

from velib_assets import lake
from velib_assets.defs import checks
from velib_assets.defs.ingestion import OWNERS
from velib_assets.defs.metadata import markdown_table, spec_metadata
from velib_assets.defs.partitions import daily_partitions, hourly_partitions, local_day
from velib_assets.defs.resources import KpiResource, LakeResource
from velib_assets.defs.staging import CLEAN
from velib_assets.defs.windows import Window, map_windows, run_windows, upstream_hour
from velib_assets.kpis.clean import CLEAN_SCHEMA
from velib_assets.kpis.occupancy import DISTRICT_OCCUPANCY_SCHEMA, STATION_OCCUPANCY_SCHEMA
from velib_assets.kpis.occupancy import district_occupancy as district_rollup
from velib_assets.kpis.occupancy import station_occupancy as station_window
from velib_assets.kpis.rankings import RANKINGS_SCHEMA, local_day_bounds
from velib_assets.kpis.rankings import critical_station_rankings as rank_day

STATION_OCCUPANCY = "station_occupancy"
DISTRICT_OCCUPANCY = "district_occupancy"
RANKINGS = "critical_station_rankings"
HOUR = timedelta(hours=1)


def hours_between(start: datetime, end: datetime) -> list[datetime]:
    hours, hour = [], start
    while hour < end:
        hours.append(hour)
        hour += HOUR
    return hours


def day_hour_dirs(root: Path, asset: str, day: date) -> list[Path]:
    """The hourly partition folders of a local day (23, 24 or 25 of them)."""
    return [lake.hour_dir(root, asset, hour) for hour in hours_between(*local_day_bounds(day))]


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
        "observation lasting until the next one, at most MAX_GAP, never past the hour (DESIGN §3)."
    ),
)
def station_occupancy(context: dg.AssetExecutionContext, lake_store: LakeResource, kpi: KpiResource):
    thresholds = kpi.thresholds()

    def occupancy_of_hour(window: Window) -> pl.DataFrame:
        clean = upstream_hour(lake_store.lake, CLEAN, window, CLEAN_SCHEMA)
        occupancy = station_window(clean, window.start, window.end, thresholds)
        lake.write_parquet(occupancy, lake.hour_dir(lake_store.lake, STATION_OCCUPANCY, window.start))
        return occupancy

    occupancy = pl.concat(map_windows(occupancy_of_hour, run_windows(context, hourly_partitions)))
    yield dg.MaterializeResult(
        metadata={
            "dagster/row_count": occupancy.height,
            "empty_minutes": round(float(occupancy["empty_minutes"].sum()), 1),
            "full_minutes": round(float(occupancy["full_minutes"].sum()), 1),
            "preview": dg.MetadataValue.md(markdown_table(occupancy)),
        }
    )
    yield checks.occupancy_minutes_in_range(occupancy)
    yield checks.occupancy_fill_rate_in_range(occupancy)


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
    def districts_of_hour(window: Window) -> pl.DataFrame:
        stations = upstream_hour(lake_store.lake, STATION_OCCUPANCY, window, STATION_OCCUPANCY_SCHEMA)
        districts = district_rollup(stations).sort("district")
        lake.write_parquet(districts, lake.hour_dir(lake_store.lake, DISTRICT_OCCUPANCY, window.start))
        return districts

    districts = pl.concat(map_windows(districts_of_hour, run_windows(context, hourly_partitions)))
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": districts.height,
            "districts": districts["district"].n_unique(),
            "preview": dg.MetadataValue.md(markdown_table(districts.sort("empty_minutes", descending=True))),
        }
    )


@dg.asset(
    name=RANKINGS,
    deps=[STATION_OCCUPANCY, CLEAN],
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="marts",
    kinds={"polars", "parquet"},
    owners=OWNERS,
    metadata=spec_metadata(RANKINGS_SCHEMA),
    check_specs=[dg.AssetCheckSpec("rankings_contiguous", asset=RANKINGS, blocking=True)],
    description=(
        "Per local day, stations in service ranked by critical minutes (empty + full), then empty "
        "minutes, then code; with the longest empty and full streaks."
    ),
)
def critical_station_rankings(context: dg.AssetExecutionContext, lake_store: LakeResource, kpi: KpiResource):
    thresholds = kpi.thresholds()
    hours_present: dict[str, int] = {}

    def rank(key: str) -> pl.DataFrame:
        day = local_day(key)
        hours = day_hour_dirs(lake_store.lake, STATION_OCCUPANCY, day)
        # Hours the sensor never captured have no partition: the day is ranked on the hours it has.
        hours_present[key] = len(lake.existing_files(hours))
        occupancy = lake.scan(hours, STATION_OCCUPANCY_SCHEMA)
        clean = lake.scan(day_hour_dirs(lake_store.lake, CLEAN, day), CLEAN_SCHEMA).select(
            "station_code", "snapshot_ts", "name", "is_empty", "is_full"
        )
        ranking = rank_day(occupancy, clean, day, thresholds)
        lake.write_parquet(ranking, lake.day_dir(lake_store.lake, RANKINGS, day))
        return ranking

    frames = map_windows(rank, context.partition_keys)
    rankings = pl.concat(frames)
    yield dg.MaterializeResult(
        metadata={
            "dagster/row_count": rankings.height,
            "days": len(frames),
            "hours_with_occupancy": dg.MetadataValue.json(hours_present),
            "top_10": dg.MetadataValue.md(markdown_table(rankings.filter(pl.col("rank") <= 10), rows=30)),
        }
    )
    yield checks.rankings_contiguous(rankings)
