"""Operations: the network right now, its alerts, and the health of the collection.

`velib_network_sensor` brings `stations_now` up to the newest landed capture on every tick (one
capture's parse, a few hundred milliseconds, and no run: 1,440 runs a day would swamp the run
storage), then evaluates the alert rules and delivers what waits in the outbox. It is a sensor of
its own so that nothing it does can delay or fail a capture. `velib_run_failure_alerts` sends
failed runs to the same channels.
`collection_health` is a daily asset of the day's chain: captures per hour, polls lost and why, the
landing lag, frozen spells and gaps.
"""

import dataclasses
import sqlite3
import time
from datetime import UTC, date, datetime

import dagster as dg
import polars as pl

from velib_assets import alerts, health, lake, network_now, settings
from velib_assets.alerts import store as alert_store
from velib_assets.alerts.rules import ServiceHours
from velib_assets.builds import RAW
from velib_assets.days import closed_through
from velib_assets.defs import checks
from velib_assets.defs.ingestion import OWNERS, velib_landing
from velib_assets.defs.metadata import markdown_table, provisional_metadata, spec_metadata
from velib_assets.defs.partitions import daily_partitions, local_day
from velib_assets.defs.resources import LakeResource
from velib_assets.defs.staging import REFERENCE, read_reference
from velib_assets.settings import PARIS, KpiThresholds
from velib_assets.step_errors import user_message

HEALTH = "collection_health"
ALERT_BUDGET_SECONDS = 20.0
"""Of a tick's 60 s: delivery stops in time, and what waits goes out at the next tick."""


class AlertConfig(dg.Config):
    """The alert rules for one evaluation launched from the UI: each field set here overrides its
    environment variable (`VELIB_ALERT_*`, `VELIB_FEED_DOWN_MINUTES`); the sensor uses the environment."""

    minutes: float | None = None
    district_share: float | None = None
    district_min_stations: int | None = None
    service_hours: str | None = None
    watch: list[str] | None = None
    feed_down_minutes: float | None = None

    def rules(self) -> alerts.AlertRules:
        rules = alerts.AlertRules.from_env()
        given = {name: value for name, value in self.model_dump().items() if value is not None}
        if "service_hours" in given:
            given["service_hours"] = ServiceHours.parse(given["service_hours"])
        if "watch" in given:
            given["watch"] = frozenset(given["watch"])
        return dataclasses.replace(rules, **given)


@dg.asset(
    name=network_now.NOW,
    deps=[velib_landing, REFERENCE],
    group_name="marts",
    kinds={"polars", "parquet"},
    owners=OWNERS,
    metadata=spec_metadata(network_now.NOW_SCHEMA),
    description=(
        "Every station's latest state (closed, out_of_service, empty, full, nearly_empty, "
        "nearly_full, ok), since when, counted on capture times, with its bikes and docks. Kept within "
        "one poll of the newest capture by `velib_network_sensor` (without a run), which also evaluates "
        "the alert rules. Materializing it brings it current by hand and evaluates the alerts once, "
        "with the rules of the run config where set. `velib now` prints it and the DuckDB view "
        "`marts.stations_now` reads it."
    ),
)
def stations_now(config: AlertConfig, lake_store: LakeResource) -> dg.MaterializeResult:
    update = _update(lake_store)
    outcome = alerts.evaluate_and_deliver(
        lake_store.root,
        update.table,
        None if update.table.is_empty() else update.table["through"].max(),  # type: ignore[arg-type]
        datetime.now(UTC),
        config.rules(),
        alerts.channels_from_env(),
        time.monotonic() + ALERT_BUDGET_SECONDS,
    )
    return dg.MaterializeResult(metadata={**now_metadata(update), "alerts": alerts.summary(outcome)})


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
    began = time.monotonic()
    try:
        update = _update(lake_store)
    except (OSError, ValueError, pl.exceptions.PolarsError) as exc:
        # A corrupt table or a full disk must not silence the alerts (the feed-down one above all).
        context.log.warning(f"stations_now not updated: {exc}")
        update = network_now.Update(_last_table(lake_store), 0, [])
    for name, reason in update.errors:
        context.log.warning(f"{name} did not parse: {reason}")
    alerted = _alerts(lake_store, update.table, began + ALERT_BUDGET_SECONDS)
    if update.captures == 0 or update.table.is_empty():
        return dg.SkipReason(f"stations_now is at the newest landed capture; {alerted}")
    context.log.info(alerted)
    event = dg.AssetMaterialization(asset_key=stations_now.key, metadata=now_metadata(update))
    return dg.SensorResult(asset_events=[event])


def _last_table(lake_store: LakeResource) -> pl.DataFrame:
    """The table as the last update left it, or an empty one when it cannot be read."""
    try:
        table = network_now.read_table(lake_store.root)
    except (OSError, pl.exceptions.PolarsError):
        table = None
    return table if table is not None else pl.DataFrame(schema=network_now.NOW_SCHEMA)


def _alerts(lake_store: LakeResource, table: pl.DataFrame, deadline: float) -> str:
    """Evaluate the alert rules and deliver what waits; whatever fails here is a line in the tick's
    log, never a failed tick (evaluated every tick, so a feed that stops is noticed)."""
    try:
        return alerts.summary(alerts.evaluate_now(lake_store.root, table, datetime.now(UTC), deadline))
    except (ValueError, sqlite3.Error, OSError) as exc:
        return f"alerts not evaluated: {exc}"


@dg.run_failure_sensor(
    name="velib_run_failure_alerts",
    default_status=dg.DefaultSensorStatus.STOPPED,
    description="Sends a failed run (a failed step or a failed blocking check) to the alert channels.",
)
def velib_run_failure_alerts(context: dg.RunFailureSensorContext):
    run = context.dagster_run
    partition = run.tags.get("dagster/partition") or run.tags.get("dagster/asset_partition_range_start")
    where = f" for {partition}" if partition else ""
    steps = [
        f"{event.step_key}: {user_message(error)}"
        for event in context.get_step_failure_events()
        if (error := getattr(event.event_specific_data, "error", None)) is not None
    ]
    reason = " ".join(("; ".join(steps) or context.failure_event.message or "no reason given").split())[:400]
    text = f"Run {run.run_id[:8]} of {run.job_name}{where} failed: {reason}"
    root = settings.data_dir()
    now = datetime.now(UTC)
    try:
        channels = alerts.channels_from_env()
        with alerts.AlertStore(alerts.store_path(root)) as store:
            alert_store.record_event(store, "run_failed", run.run_id, text, now, channels)
            alerts.deliver(store, channels, now, alerts.give_up_after_from_env(), time.monotonic() + 20)
        alerts.export_parquet(root)
    except (ValueError, sqlite3.Error, OSError) as exc:
        context.log.warning(f"run failure not sent: {exc}")


@dg.asset(
    name=HEALTH,
    deps=[velib_landing, RAW],
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="ingestion",
    kinds={"polars", "parquet"},
    owners=OWNERS,
    metadata=spec_metadata(health.HEALTH_SCHEMA),
    description=(
        "The collection's health per UTC hour of the local day: captures landed, polls tried and lost "
        "(by reason, from the capture sensor's poll log), the lag from the feed's own time to landing "
        "(median, p95), frozen spells (the feed answering the same station data under new times) "
        "and gaps longer than MAX_GAP without a capture. `velib health` prints it."
    ),
)
def collection_health(context: dg.AssetExecutionContext, lake_store: LakeResource) -> dg.MaterializeResult:
    now, max_gap = checks.run_now(context), KpiThresholds.from_env().max_gap
    for key in context.partition_keys:
        day = local_day(key)
        found = health.day_health(lake_store.root, day, now, max_gap)
        lake.write_parquet(found.hours, lake.day_dir(lake_store.lake, HEALTH, day))
        context.add_asset_metadata(health_metadata(found, now, day), partition_key=key)
    return dg.MaterializeResult(metadata={"run_days": len(context.partition_keys)})


def health_metadata(found: health.DayHealth, now: datetime, day: date) -> dict[str, object]:
    gaps = [f"- {_local(a)} to {_local(b)} ({(b - a).total_seconds() / 60:.0f} min)" for a, b in found.gaps]
    return {
        **provisional_metadata(day, closed_through(day, now)),
        "dagster/row_count": found.hours.height,
        "captures": found.captures,
        "polls": found.polls,
        "polls_failed": sum(found.failed_by_reason.values()),
        "polls_failed_by_reason": dg.MetadataValue.json(found.failed_by_reason),
        "lag_median_s": found.lag_median_s if found.lag_median_s is not None else "no poll logged",
        "lag_p95_s": found.lag_p95_s if found.lag_p95_s is not None else "no poll logged",
        "frozen_hours": found.frozen_hours,
        "gaps": len(found.gaps),
        "gap_list": dg.MetadataValue.md("\n".join(gaps) if gaps else "none"),
        "preview": dg.MetadataValue.md(markdown_table(found.hours, rows=25)),
    }


def _local(when: datetime) -> str:
    return f"{when.astimezone(PARIS):%H:%M}"
