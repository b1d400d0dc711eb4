"""The daily HTML report: a station map coloured by critical minutes, the ranking, district hours."""

import dagster as dg

from velib_assets import builds, lake
from velib_assets.builds import DISTRICT_OCCUPANCY, RANKINGS, STATION_OCCUPANCY
from velib_assets.coverage import day_coverage
from velib_assets.days import closed_through
from velib_assets.defs import checks
from velib_assets.defs.ingestion import OWNERS
from velib_assets.defs.metadata import provisional_metadata
from velib_assets.defs.partitions import daily_partitions, local_day
from velib_assets.defs.resources import KpiResource, LakeResource
from velib_assets.defs.staging import REFERENCE, read_reference
from velib_assets.kpis.rankings import RANKINGS_SCHEMA
from velib_assets.report import find_reports, render_report, write_index, write_report


def report_path(store: LakeResource, day: str):
    return store.reports / f"velib-report-{day}.html"


@dg.asset(
    deps=[RANKINGS, DISTRICT_OCCUPANCY, STATION_OCCUPANCY, REFERENCE],
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="reports",
    kinds={"html"},
    owners=OWNERS,
    description=(
        "A self-contained HTML report per local day under `$VELIB_DATA_DIR/reports/`, and `index.html` "
        "listing them with each day's figures."
    ),
)
def velib_report(
    context: dg.AssetExecutionContext, lake_store: LakeResource, kpi: KpiResource
) -> dg.MaterializeResult:
    now = checks.run_now(context)
    for key in context.partition_keys:
        day = local_day(key)
        through = closed_through(day, now)
        rankings = lake.scan([lake.day_dir(lake_store.lake, RANKINGS, day)], RANKINGS_SCHEMA).collect()
        districts = builds.read_districts_day(lake_store.lake, day).collect()
        observed = builds.read_occupancy_day(lake_store.lake, day).select("station_code", "observed_minutes")
        coverage = day_coverage(lake_store.landing, observed.collect(), day, kpi.cadence_s, through)
        so_far = provisional_metadata(day, through)
        title = f"Vélib' critical stations, {key}"
        if so_far["provisional"]:
            title += f" (so far: through {str(so_far['built_through'])[11:16]}, provisional)"
        html = render_report(rankings, districts, read_reference(lake_store), title, coverage)
        path = write_report(html, report_path(lake_store, key))
        context.add_asset_metadata(
            {
                "path": dg.MetadataValue.path(str(path)),
                **so_far,
                "stations_ranked": rankings.height,
                "observed_share": coverage.observed_share,
                "hours_without_capture": len(coverage.missing_hours),
            },
            partition_key=key,
        )
    # The index lists every report on disk, with the rankings of their days: the trend across days.
    days = [report.day for report in find_reports(lake_store.reports)]
    ranked = lake.scan([lake.day_dir(lake_store.lake, RANKINGS, d) for d in days], RANKINGS_SCHEMA).collect()
    index = write_index(lake_store.reports, ranked)
    return dg.MaterializeResult(
        metadata={"run_days": len(context.partition_keys), "index": dg.MetadataValue.path(str(index))}
    )
