"""The production shape (docker/) proven natively: PostgreSQL storage, code server, webserver, daemon.

One deployment serves the module: a fresh database on the local PostgreSQL server, the three
Dagster services started as the compose file starts them, and the sensor polling a local replay of
the recorded Vélib' GBFS feed whose clock moves a minute per read; a test closes an hour (and so
makes the sensor request that hour's run) by jumping the clock to the next hour. The tests run in
file order and share it: first the happy path, then a crash mid-run, then a PostgreSQL restart.
"""

import time
from collections.abc import Iterator
from datetime import timedelta
from itertools import pairwise
from pathlib import Path

import psutil
import pytest

from velib_assets.days import hour_label
from velib_assets.defs.partitions import day_key
from velib_assets_tests.deploy_harness import (
    Deployment,
    DeploymentError,
    FeedServer,
    PostgresServer,
    RunRow,
    kill_process_tree,
    recorded_feed,
    utc,
)

pytestmark = pytest.mark.deploy

DEFINITIONS_MODULE = "velib_assets.definitions"
SENSOR = "velib_snapshot_sensor"
CHAIN_JOB = "daily_chain_job"
FEED_START = utc(2025, 10, 18, 9, 20)
FEED_STEP = timedelta(minutes=1)
LINEAGE = ["velib_landing", "raw_station_snapshots", "clean_stations", "station_occupancy",
           "critical_station_rankings"]
CHAIN = {"raw_station_snapshots", "clean_stations", "station_occupancy", "critical_station_rankings"}
INSTANCE_SETTINGS = """
{ instance {
    runLauncher { name }
    runQueueConfig { maxConcurrentRuns }
    poolConfig { defaultPoolLimit poolGranularity }
    concurrencyLimit(concurrencyKey: "duckdb_writer") { limit }
} }
"""
IN_PROGRESS = {"QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING"}


@pytest.fixture(scope="module")
def feed() -> Iterator[FeedServer]:
    with recorded_feed(FEED_START, FEED_STEP) as server:
        yield server


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory, feed: FeedServer) -> Iterator[Deployment]:
    env = {"VELIB_SOURCE": "gbfs", "VELIB_GBFS_URL": feed.discovery_url, "VELIB_POLL_INTERVAL_SECONDS": "5"}
    with Deployment(
        tmp_path_factory.mktemp("deploy"), PostgresServer.from_env(), env, module=DEFINITIONS_MODULE
    ) as running:
        assert running.start_sensor(SENSOR) == "RUNNING"
        yield running


def sensor_runs(deployment: Deployment) -> list[RunRow]:
    """Runs of the day's chain launched by the sensor (retries carry the same tags)."""
    runs = deployment.runs()
    return [r for r in runs if r.job_name == CHAIN_JOB and r.tags.get("dagster/sensor_name") == SENSOR]


def wait_for_new_capture(deployment: Deployment, timeout_s: float) -> None:
    count = len(deployment.landed_feed_times())
    deployment.wait_for(lambda: len(deployment.landed_feed_times()) > count, timeout_s, "a new capture")


def assert_landing_matches_feed(deployment: Deployment, feed: FeedServer) -> list[int]:
    """Every feed time served was landed exactly once, and nothing else was. Compared between two
    ticks: a capture served a moment ago may still be on its way to the landing zone."""
    def matching() -> list[int] | None:
        times = deployment.landed_feed_times()
        return times if times and set(times) == set(feed.served_times()) else None

    landed = deployment.wait_for(matching, 30, "the landing zone to hold exactly the captures served")
    assert len(landed) == len(set(landed)), f"a capture was landed twice: {landed}"
    return landed


def test_sensor_captures_land_and_the_daemon_refreshes_the_day(deployment: Deployment, feed: FeedServer):
    wait_for_new_capture(deployment, 60)
    feed.close_hour()
    first = deployment.wait_for(
        lambda: next((r for r in sensor_runs(deployment) if r.status == "SUCCESS"), None),
        150, "the first sensor-launched run to succeed",
    )
    # The capture at 10:00 UTC closed the 09:00 UTC hour: one run of its day, keyed by day and hour.
    assert first.partition == day_key(FEED_START)
    assert first.tags["dagster/run_key"] == f"{first.partition}@{hour_label(FEED_START)}"

    events = deployment.event_types(first.run_id)  # run events keep their legacy PIPELINE_* names
    assert {"PIPELINE_ENQUEUED", "PIPELINE_START", "PIPELINE_SUCCESS"} <= set(events)
    materialized = deployment.materializations(first.run_id)
    assert {(asset, first.partition) for asset in CHAIN} <= materialized

    landed = assert_landing_matches_feed(deployment, feed)
    assert landed[0] == int(FEED_START.timestamp())
    assert deployment.asset_event_count("velib_landing") > 0
    assert deployment.sensor_cursor(SENSOR)


def test_webserver_serves_the_lineage_from_landing_to_rankings(deployment: Deployment):
    upstream = deployment.asset_graph()
    for parent, child in pairwise(LINEAGE):
        assert parent in upstream.get(child, set()), f"{child} does not depend on {parent}: {upstream}"

    healthy = deployment.daemons_healthy()
    assert {"SENSOR", "QUEUED_RUN_COORDINATOR", "MONITORING", "EVENT_LOG_CONSUMER"} <= set(healthy)


def test_webserver_reports_the_production_instance_settings(deployment: Deployment):
    instance = deployment.graphql(INSTANCE_SETTINGS)["instance"]
    assert instance["runLauncher"]["name"] == "DefaultRunLauncher"
    assert instance["runQueueConfig"]["maxConcurrentRuns"] == 4
    assert instance["poolConfig"] == {"defaultPoolLimit": 1, "poolGranularity": "op"}
    assert instance["concurrencyLimit"]["limit"] == 1, "one DuckDB writer at a time"


def run_between_ticks(deployment: Deployment, feed: FeedServer, exclude: set[str]) -> RunRow | None:
    """A sensor run executing a step while no tick is in flight (the last capture served has landed)."""
    if feed.idle_seconds() < 1.5 or not set(feed.served_times()) <= set(deployment.landed_feed_times()):
        return None
    for run in sensor_runs(deployment):
        if run.run_id not in exclude and run.status == "STARTED":
            if "STEP_START" in deployment.event_types(run.run_id) and deployment.run_worker_pid(run.run_id):
                return run
    return None


def test_daemon_and_run_worker_killed_mid_run_recover(deployment: Deployment, feed: FeedServer):
    """SIGKILL the daemon and the run worker mid-step, as a crash of their containers would."""
    seen = {r.run_id for r in deployment.runs()}
    feed.close_hour()
    victim = deployment.wait_for(
        lambda: run_between_ticks(deployment, feed, seen), 180, "a sensor run mid-step between two ticks"
    )
    worker = deployment.run_worker_pid(victim.run_id)
    assert worker is not None
    # DefaultRunLauncher: the run worker is a subprocess of the user-code server.
    assert worker in deployment.descendants("user-code")
    cursor_before = deployment.sensor_cursor(SENSOR)

    deployment.crash("daemon")
    assert worker in kill_process_tree(worker)
    captures_at_crash = len(deployment.landed_feed_times())
    time.sleep(2)
    deployment.restart("daemon")

    failed = deployment.wait_for(
        lambda: (run := deployment.run(victim.run_id)).status == "FAILURE" and run, 60,
        "the interrupted run to be marked failed",
    )
    assert failed.partition == victim.partition
    retry = deployment.wait_for(
        lambda: next((r for r in deployment.runs() if r.parent_run_id == victim.run_id), None),
        120, "the daemon to launch a retry of the interrupted run",
    )
    assert retry.tags.get("dagster/retry_number") == "1"
    retried = deployment.wait_for(
        lambda: (run := deployment.run(retry.run_id)).status in {"SUCCESS", "FAILURE"} and run, 180,
        "the retry to finish",
    )
    assert retried.status == "SUCCESS", deployment.diagnostics()
    assert retried.partition == victim.partition

    # The sensor went on from its cursor: new captures, none twice, none missing.
    deployment.wait_for(
        lambda: len(deployment.landed_feed_times()) >= captures_at_crash + 2, 60, "captures after the restart"
    )
    assert deployment.sensor_cursor(SENSOR) != cursor_before
    assert_landing_matches_feed(deployment, feed)
    keys = [r.tags["dagster/run_key"] for r in sensor_runs(deployment) if r.parent_run_id is None]
    assert len(keys) == len(set(keys)), f"an hour closing was launched twice: {keys}"


def test_postgres_restart_under_a_running_daemon(deployment: Deployment, feed: FeedServer):
    deployment.wait_for(
        lambda: not any(r.status in IN_PROGRESS for r in deployment.runs()), 180, "in-progress runs to finish"
    )
    before = {r.run_id for r in deployment.runs()}

    deployment.postgres.restart()

    # Nobody touches the daemon: its sensor lands captures and launches runs again.
    wait_for_new_capture(deployment, 60)
    feed.close_hour()
    run = deployment.wait_for(
        lambda: next(
            (r for r in sensor_runs(deployment) if r.run_id not in before and r.status == "SUCCESS"), None
        ),
        180, "a sensor run launched and succeeded after the restart",
    )
    assert {(asset, run.partition) for asset in CHAIN} <= deployment.materializations(run.run_id)
    assert all(p.alive() for p in deployment.processes.values()), deployment.diagnostics()
    assert {"SENSOR", "QUEUED_RUN_COORDINATOR"} <= set(
        deployment.wait_for(deployment.daemons_healthy, 60, "the daemons to report healthy")
    )
    assert_landing_matches_feed(deployment, feed)


def test_teardown_stops_every_process_and_drops_the_database_on_failure(tmp_path: Path):
    started: set[int] = set()
    database = ""
    with pytest.raises(DeploymentError, match="simulated failure"):
        with Deployment(tmp_path, PostgresServer.from_env(), {}, module=DEFINITIONS_MODULE) as deployment:
            database = deployment.database
            for name, process in deployment.processes.items():
                started |= {process.pid, *deployment.descendants(name)}
            raise DeploymentError("simulated failure")
    assert database and not PostgresServer.from_env().database_exists(database)
    assert not [pid for pid in started if running(pid)], "a process outlived the teardown"


def running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
