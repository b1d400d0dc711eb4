"""`velib_snapshot_sensor`: polls the live feed, lands each new capture, launches runs as hours close.

Capturing in the sensor keeps minute-level history without minute-level runs; the landing zone keeps
every capture even when runs fail. Hours close on the feed's own clock: the first capture of a new
hour requests the previous hour's run (run key = partition key, so a tick never launches twice),
and the first hour closed on a new local day requests the previous day's rankings and report.
"""

from dataclasses import replace
from datetime import datetime

import dagster as dg

from velib_assets import capture, settings
from velib_assets.capture import PollOutcome, PollState
from velib_assets.defs.ingestion import velib_landing
from velib_assets.defs.jobs import daily_rankings_job, hourly_snapshots_job, landing_checks_job, serving_job
from velib_assets.defs.partitions import day_key, hour_key
from velib_assets.defs.resources import FeedResource, LakeResource


def closing_requests(
    state: PollState, previous: datetime | None, current: datetime
) -> tuple[list[dg.RunRequest], PollState]:
    """Run requests for the hour (and day) that `current` closes, and the state recording them."""
    if previous is None or hour_key(previous) == hour_key(current):
        return [], state
    closed_hour = hour_key(previous)
    requests = [
        dg.RunRequest(run_key=closed_hour, job_name=hourly_snapshots_job.name, partition_key=closed_hour),
        dg.RunRequest(run_key=f"landing-check:{closed_hour}", job_name=landing_checks_job.name),
    ]
    closed_day, finished = day_key(previous), state.last_closed_day
    if finished and finished != closed_day and state.ranked_through != finished:
        # An hour of a later day closed: every hourly run of `finished` has been requested.
        requests += [
            dg.RunRequest(run_key=finished, job_name=daily_rankings_job.name, partition_key=finished),
            dg.RunRequest(run_key=f"views:{finished}", job_name=serving_job.name),
        ]
        state = replace(state, ranked_through=finished)
    state = replace(state, last_closed_day=closed_day)
    return requests, state


def poll(feed: FeedResource, store: LakeResource, state: PollState) -> PollOutcome:
    if feed.source == "opendata":
        return capture.poll_opendata(feed.opendata(), store.landing, state)
    if feed.source == "gbfs":
        return capture.poll_gbfs(feed.gbfs(), store.landing, state)
    return PollOutcome(
        state, skip_reason=f"unknown source {feed.source!r}: set VELIB_SOURCE to gbfs or opendata"
    )


@dg.sensor(
    name="velib_snapshot_sensor",
    minimum_interval_seconds=settings.poll_interval_seconds(),
    default_status=dg.DefaultSensorStatus.STOPPED,
    jobs=[hourly_snapshots_job, daily_rankings_job, serving_job, landing_checks_job],
    description="Polls the Vélib' feed, lands new captures verbatim, and requests runs as hours close.",
)
def velib_snapshot_sensor(context: dg.SensorEvaluationContext, feed: FeedResource, lake_store: LakeResource):
    state = PollState.from_json(context.cursor)
    outcome = poll(feed, lake_store, state)
    for note in outcome.notes:
        context.log.warning(note)
    if outcome.skip_reason or outcome.capture is None:
        return dg.SkipReason(outcome.skip_reason or "nothing captured")
    when = outcome.capture.capture_time
    event = dg.AssetMaterialization(
        asset_key=velib_landing.key,
        partition=hour_key(when),
        metadata={
            "path": dg.MetadataValue.path(str(outcome.capture.path)),
            "capture_time": when.isoformat(),
            "stations": outcome.stations,
            "bytes": outcome.bytes,
            "new_file": outcome.created,
        },
    )
    requests, new_state = closing_requests(outcome.state, state.last_capture, when)
    return dg.SensorResult(run_requests=requests, asset_events=[event], cursor=new_state.to_json())
