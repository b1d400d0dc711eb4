"""The network right now, kept current beside the capture sensor rather than by hourly runs.

`velib_network_sensor` brings `stations_now` up to the newest landed capture on every tick: one
capture's parse, a few hundred milliseconds, and no run (1,440 runs a day would swamp the run
storage). It is a sensor of its own so that nothing it does can delay or fail a capture.
"""

import dagster as dg
import polars as pl

from velib_assets import network_now
from velib_assets.defs.ingestion import OWNERS, velib_landing
from velib_assets.defs.resources import LakeResource
from velib_assets.defs.staging import REFERENCE, read_reference
from velib_assets.settings import KpiThresholds


@dg.asset(
    name=network_now.NOW,
    deps=[velib_landing, REFERENCE],
    group_name="marts",
    kinds={"polars", "parquet"},
    owners=OWNERS,
    description=(
        "Every station's latest state (closed, out_of_service, empty, full, nearly_empty, "
        "nearly_full, ok), since when, counted on capture times, with its bikes and docks. Kept within "
        "one poll of the newest capture by `velib_network_sensor` (without a run); materializing it "
        "brings it current by hand. `velib now` prints it and the DuckDB view `marts.stations_now` "
        "reads it."
    ),
)
def stations_now(lake_store: LakeResource) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata=now_metadata(_update(lake_store)))


def _update(lake_store: LakeResource) -> network_now.Update:
    return network_now.update(lake_store.root, read_reference(lake_store), KpiThresholds.from_env())


def now_metadata(update: network_now.Update) -> dict[str, object]:
    table = update.table
    counts = dict(table.group_by("state").len().iter_rows())
    through = table["through"].max()
    return {
        "through": through.isoformat() if through else "no capture yet",  # type: ignore[union-attr]
        "stations": table.height,
        "captures_parsed": update.captures,
        **{f"stations_{state}": int(counts.get(state, 0)) for state in network_now.STATES},
        "longest_empty": dg.MetadataValue.md(_longest(table, "empty")),
    }


def _longest(table: pl.DataFrame, state: str) -> str:
    rows = table.filter(pl.col("state") == state).sort("minutes_in_state", descending=True).head(10)
    lines = [
        f"| {r['station_code']} | {r['name'] or ''} | {r['district']} | {r['minutes_in_state']:.0f} |"
        for r in rows.iter_rows(named=True)
    ]
    return "\n".join(["| code | name | district | minutes |", "|---|---|---|---|", *lines])


@dg.sensor(
    name="velib_network_sensor",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Keeps stations_now (each station's state and since when) at the newest landed capture.",
)
def velib_network_sensor(context: dg.SensorEvaluationContext, lake_store: LakeResource):
    update = _update(lake_store)
    for name, reason in update.errors:
        context.log.warning(f"{name} did not parse: {reason}")
    if update.captures == 0 or update.table.is_empty():
        return dg.SkipReason("stations_now is at the newest landed capture")
    event = dg.AssetMaterialization(asset_key=stations_now.key, metadata=now_metadata(update))
    return dg.SensorResult(asset_events=[event])
