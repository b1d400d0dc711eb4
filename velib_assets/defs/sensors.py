"""`velib_snapshot_sensor`: polls the live feed, lands each new capture, refreshes today as hours close.

Capturing in the sensor keeps minute-level history without minute-level runs; the landing zone keeps
every capture even when runs fail. Hours close on the cursor's clock (the feed's own time, never past
this machine's): the first capture of a new hour requests a refresh of the previous hour's day, raw
to report (run key = day and closed hour, so a tick never launches twice and no key repeats); the
refresh requested once the clock has left a day is that day's final build. Days with hours that
receive captures after they closed are re-run at the next hour closing. Whatever the feed sends, or
fails to send, a tick never errors: it is a skip with its reason, or a capture with warnings in the
tick's log and the landing event.
"""

import re
from dataclasses import replace
from datetime import UTC, datetime

import dagster as dg

from velib_assets import capture, polls, settings
from velib_assets.capture import PollOutcome, PollState
from velib_assets.days import HOUR_LABEL, hour_label
from velib_assets.defs.ingestion import velib_landing
from velib_assets.defs.jobs import daily_chain_job, landing_checks_job, serving_job
from velib_assets.defs.partitions import day_key, is_partition, started_day_key
from velib_assets.defs.resources import FeedResource, LakeResource
from velib_assets.landing import Capture

OLD_HOUR_KEY = re.compile(r"\d{4}-\d{2}-\d{2}-\d{2}:00(\+\d{4})?")


def closing_requests(
    state: PollState, previous: datetime | None, current: datetime
) -> tuple[list[dg.RunRequest], PollState, list[str]]:
    """Run requests for the hour the clock left going from `previous` to `current`: a refresh of that
    hour's day (its last hour's is the day's final build), and re-runs of the other days that
    received late captures since; the state recording them, and a note when that day is no
    partition (this machine's clock is outside the partitions)."""
    if previous is None or hour_label(previous) == hour_label(current):
        return [], state, []
    closed, day = hour_label(previous), day_key(previous)
    if not is_partition(day):
        return [], state, [f"hour {closed} of {day} closed but {day} is not a partition: no run requested"]
    requests = [
        dg.RunRequest(run_key=f"{day}@{closed}", job_name=daily_chain_job.name, partition_key=day),
        dg.RunRequest(run_key=f"landing-check:{closed}", job_name=landing_checks_job.name),
        *_reruns(state, day, closed),
    ]
    if day_key(current) != day and state.ranked_through != day:
        # The clock left the day: the refresh above ran after its end, so it is the day's final build.
        requests.append(dg.RunRequest(run_key=f"views:{day}", job_name=serving_job.name))
        state = replace(state, ranked_through=day)
    return requests, replace(state, late_hours=()), []


def _reruns(state: PollState, refreshed: str, closed: str) -> list[dg.RunRequest]:
    """One re-run of each other day with an hour that received late captures, keyed by the hour now
    closing: every late capture landed until now is in it (the raw build re-parses only the hours
    whose captures changed), and no key repeats."""
    days = sorted({day for hour in state.late_hours if (day := _day_of(hour))})
    return [
        dg.RunRequest(run_key=f"{day}:late:{closed}", job_name=daily_chain_job.name, partition_key=day)
        for day in days
        if day != refreshed
    ]


def _day_of(hour: str) -> str | None:
    """The day of a late hour's label, also of an hourly partition key (`2024-11-01-13:00`, a local
    hour) that a cursor of the hourly release kept; None for anything else."""
    try:
        return day_key(datetime.strptime(hour, HOUR_LABEL).replace(tzinfo=UTC))
    except ValueError:
        return hour[:10] if OLD_HOUR_KEY.fullmatch(hour) else None


def with_late_hour(state: PollState, landed: Capture) -> tuple[PollState, list[str]]:
    """Remember a capture landed in an hour the clock had closed, so the next closing re-runs its day.

    It happens when a lagging feed clock moves on after captures landed under their fetch time
    (which moved the clock), or when this machine's clock stepped back. Batched per closing, a
    feed whose every capture is late costs one re-run an hour, not one a tick."""
    clock, when = state.clock_time, landed.capture_time
    if clock is None or when >= clock or hour_label(when) == hour_label(clock):
        return state, []
    hour, day = hour_label(when), day_key(when)
    if not is_partition(day):
        return state, [f"capture of {when} is in {day}, which is not a partition: no run requested"]
    late = state.late_hours if hour in state.late_hours else (*state.late_hours, hour)
    note = f"capture of {when} landed in the closed hour {hour}: {day} is re-run when the next hour closes"
    return replace(state, late_hours=late), [note]


def poll(feed: FeedResource, store: LakeResource, state: PollState, now: datetime) -> PollOutcome:
    pause = capture.waiting(state, now)
    if pause:
        return PollOutcome(state, skip_reason=pause)
    if feed.source == "opendata":
        return capture.poll_opendata(feed.opendata(feed.tick_budget_s), store.landing, state)
    if feed.source == "gbfs":
        return capture.poll_gbfs(feed.gbfs(feed.tick_budget_s), store.landing, state)
    return PollOutcome(
        state, skip_reason=f"unknown source {feed.source!r}: set VELIB_SOURCE to gbfs or opendata"
    )


def _skipped(outcome: PollOutcome, cursor_state: PollState) -> dg.SkipReason | dg.SensorResult:
    """A skip; one that changed the cursor (a `Retry-After`, a forgotten bad time) also carries it."""
    reason = outcome.skip_reason or "nothing captured"
    if outcome.state == cursor_state:
        return dg.SkipReason(reason)
    return dg.SensorResult(skip_reason=reason, cursor=outcome.state.to_json())


def landing_event(
    landed: Capture, outcome: PollOutcome, partition: str | None, notes: list[str]
) -> dg.AssetMaterialization:
    metadata: dict[str, object] = {
        "path": dg.MetadataValue.path(str(landed.path)),
        "capture_time": landed.capture_time.isoformat(),
        "stations": outcome.stations,
        "bytes": outcome.bytes,
        "new_file": outcome.created,
        "clock_anomalies": outcome.state.clock_anomalies,
    }
    if outcome.clock_anomaly:
        metadata["clock_anomaly"] = outcome.clock_anomaly
    if notes:
        metadata["notes"] = dg.MetadataValue.md("\n".join(f"- {note}" for note in notes))
    return dg.AssetMaterialization(asset_key=velib_landing.key, partition=partition, metadata=metadata)


@dg.sensor(
    name="velib_snapshot_sensor",
    minimum_interval_seconds=settings.poll_interval_seconds(),
    default_status=dg.DefaultSensorStatus.STOPPED,
    jobs=[daily_chain_job, serving_job, landing_checks_job],
    description="Polls the Vélib' feed, lands new captures verbatim, and requests runs as hours close.",
)
def velib_snapshot_sensor(context: dg.SensorEvaluationContext, feed: FeedResource, lake_store: LakeResource):
    cursor_state = PollState.from_json(context.cursor)
    state, healed = capture.trusted(cursor_state, datetime.now(UTC))
    outcome = poll(feed, lake_store, state, datetime.now(UTC))
    notes = [note for note in (healed, *outcome.notes) if note]
    try:
        polls.record(lake_store.root, datetime.now(UTC), outcome)
    except OSError as exc:
        notes.append(f"poll log not written (the collection's health will miss this tick): {exc}")
    if outcome.capture is None:
        _warn(context, notes)
        return _skipped(outcome, cursor_state)
    return _captured(context, state, outcome, outcome.capture, notes)


def _captured(
    context: dg.SensorEvaluationContext,
    before: PollState,
    outcome: PollOutcome,
    landed: Capture,
    notes: list[str],
) -> dg.SensorResult:
    """The landing event of a capture and the runs it calls for: the hour the clock left, or a late hour."""
    partition = started_day_key(landed.capture_time, datetime.now(UTC))
    if partition is None:
        notes = [*notes, f"capture time {landed.capture_time} is outside the partitions: no partition"]
    clock = outcome.state.clock_time or landed.capture_time
    state, late_notes = with_late_hour(outcome.state, landed) if outcome.created else (outcome.state, [])
    requests, state, closing_notes = closing_requests(state, before.clock_time, clock)
    notes = [*notes, *late_notes, *closing_notes]
    _warn(context, notes)
    event = landing_event(landed, outcome, partition, notes)
    return dg.SensorResult(run_requests=requests, asset_events=[event], cursor=state.to_json())


def _warn(context: dg.SensorEvaluationContext, notes: list[str]) -> None:
    for note in notes:
        context.log.warning(note)
