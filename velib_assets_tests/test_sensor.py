"""`velib_snapshot_sensor` ticks against a local feed serving the recorded GBFS status at chosen times."""

import gzip
import json
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from werkzeug import Request, Response

from velib_assets.capture import PollState
from velib_assets.defs.jobs import daily_chain_job, landing_checks_job, serving_job
from velib_assets.defs.resources import FeedResource, LakeResource
from velib_assets.defs.sensors import velib_snapshot_sensor
from velib_assets.settings import PARIS

from .conftest import GBFS_INFO_2025, drain, sample_bytes, status_at

RECORDED = datetime(2025, 10, 18, 9, 9, 16, tzinfo=UTC)  # the status file's own lastUpdatedOther
HTML_PAGE = b"<!DOCTYPE html><html><body><h1>502 Bad Gateway</h1></body></html>"


class Feed:
    """What the local `station_status.json` answers on the next request."""

    def __init__(self) -> None:
        self.answer: Response = Response("not set", status=500)
        self.slow = False
        self.release = threading.Event()

    def at(self, when: datetime) -> bytes:
        body = status_at(int(when.timestamp()))
        self.answer = Response(body, content_type="application/json")
        return body

    def respond(self, _: Request) -> Response:
        if self.slow:  # answers only once the client has given up
            self.release.wait(2.0)
        return self.answer


class Ticks:
    """Evaluates the sensor tick after tick, carrying the cursor like the daemon does."""

    def __init__(self, resources: dict[str, object], data_dir: Path) -> None:
        self.resources = resources
        self.data_dir = data_dir
        self.instance = dg.DagsterInstance.ephemeral()
        self.cursor: str | None = None

    def __call__(self) -> dg.SensorResult | dg.SkipReason:
        with dg.build_sensor_context(
            instance=self.instance, cursor=self.cursor, resources=self.resources
        ) as context:
            result = velib_snapshot_sensor(context)
        if isinstance(result, dg.SensorResult) and result.cursor is not None:
            self.cursor = result.cursor
        return result

    @property
    def state(self) -> PollState:
        return PollState.from_json(self.cursor)

    def captures(self) -> set[Path]:
        root = self.data_dir / "landing" / "captures"
        return {p for p in root.rglob("*") if p.is_file()} if root.exists() else set()


@pytest.fixture
def feed(httpserver, gbfs_discovery) -> Feed:
    feed = Feed()
    httpserver.expect_request("/station_status.json").respond_with_handler(feed.respond)
    httpserver.expect_request("/station_information.json").respond_with_data(
        GBFS_INFO_2025.read_bytes(), content_type="application/json"
    )
    yield feed
    feed.release.set()
    drain(httpserver)


@pytest.fixture
def ticks(httpserver, feed, tmp_path: Path) -> Ticks:
    resources = {
        "feed": FeedResource(
            source="gbfs",
            gbfs_url=httpserver.url_for("/gbfs.json"),
            max_retries=0,
            connect_timeout_s=1.0,
            read_timeout_s=0.3,
        ),
        "lake_store": LakeResource(data_dir=str(tmp_path)),
    }
    return Ticks(resources, tmp_path)


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=PARIS)


def chain(requests) -> list[tuple[str, str]]:
    return [(r.run_key, r.partition_key) for r in requests if r.job_name == daily_chain_job.name]


def test_sensor_definition():
    assert velib_snapshot_sensor.minimum_interval_seconds == 60
    assert velib_snapshot_sensor.default_status == dg.DefaultSensorStatus.STOPPED
    assert {job.name for job in velib_snapshot_sensor.jobs} == {
        daily_chain_job.name,
        serving_job.name,
        landing_checks_job.name,
    }


def test_evaluate_tick_gives_the_same_result_as_calling_the_sensor(feed, ticks):
    feed.at(RECORDED)
    with dg.build_sensor_context(instance=ticks.instance, resources=ticks.resources) as context:
        data = velib_snapshot_sensor.evaluate_tick(context)
    assert data.run_requests == []
    assert [event.partition for event in data.asset_events] == ["2025-10-18"]
    assert PollState.from_json(data.cursor).feed_time == RECORDED.isoformat()


def test_first_capture_lands_and_reports_the_landing_without_a_run(feed, ticks):
    body = feed.at(RECORDED)

    result = ticks()

    assert isinstance(result, dg.SensorResult)
    assert result.run_requests == []
    [event] = result.asset_events
    assert event.asset_key == dg.AssetKey("velib_landing")
    assert event.partition == "2025-10-18"
    path = Path(event.metadata["path"].value)
    hour = ticks.data_dir / "landing/captures/date=2025-10-18/hour=09"
    assert path == hour / "20251018T090916Z.gbfs-status.json.gz"
    assert gzip.decompress(path.read_bytes()) == body  # verbatim once gunzipped
    assert event.metadata["stations"].value == 1495
    assert event.metadata["new_file"].value is True
    assert event.metadata["capture_time"].value == RECORDED.isoformat()
    info = ticks.data_dir / "landing" / "station_information" / "20251018T091119Z.gbfs-info.json.gz"
    assert gzip.decompress(info.read_bytes()) == GBFS_INFO_2025.read_bytes()
    assert ticks.state.feed_time == RECORDED.isoformat()
    assert ticks.state.information_time == RECORDED.isoformat()


def test_unchanged_feed_is_skipped(feed, ticks):
    """Unchanged means the same content (by digest); an older copy is different content and lands
    (see test_sensor_hostile.py)."""
    feed.at(RECORDED)
    ticks()
    landed, cursor = ticks.captures(), ticks.cursor

    result = ticks()

    assert isinstance(result, dg.SkipReason)
    assert "unchanged" in result.skip_message
    assert ticks.captures() == landed
    assert ticks.cursor == cursor


def test_feed_time_in_a_later_hour_refreshes_the_day_of_the_closed_hour(feed, ticks):
    feed.at(RECORDED)
    ticks()
    feed.at(RECORDED + timedelta(minutes=1))
    same_hour = ticks()
    feed.at(RECORDED.replace(hour=10, minute=0, second=30))

    result = ticks()

    assert same_hour.run_requests == []
    assert isinstance(result, dg.SensorResult)
    assert chain(result.run_requests) == [("2025-10-18@2025-10-18T09Z", "2025-10-18")]
    [check] = [r for r in result.run_requests if r.job_name == landing_checks_job.name]
    assert check.run_key == "landing-check:2025-10-18T09Z"
    assert len(result.run_requests) == 2
    assert [e.partition for e in result.asset_events] == ["2025-10-18"]
    assert len(ticks.captures()) == 3


def test_ticks_across_midnight_and_the_autumn_dst_change(feed, ticks):
    """2024-10-26 21:10 to 2024-10-27 04:40 in Paris, every 30 minutes: 02:00 happens twice that night."""
    start = local("2024-10-26T21:10:00")
    requests: list[dg.RunRequest] = []
    for step in range(17):
        feed.at(start.astimezone(UTC) + timedelta(minutes=30 * step))
        result = ticks()
        assert isinstance(result, dg.SensorResult), result
        requests += result.run_requests

    run_keys = [r.run_key for r in requests]
    assert len(run_keys) == len(set(run_keys))
    # One refresh per closed hour, of the hour's day; local 21:00 is 19:00 UTC, 02:00 comes twice.
    assert chain(requests) == [
        ("2024-10-26@2024-10-26T19Z", "2024-10-26"),
        ("2024-10-26@2024-10-26T20Z", "2024-10-26"),
        ("2024-10-26@2024-10-26T21Z", "2024-10-26"),  # requested once the day is over: its final build
        ("2024-10-27@2024-10-26T22Z", "2024-10-27"),
        ("2024-10-27@2024-10-26T23Z", "2024-10-27"),
        ("2024-10-27@2024-10-27T00Z", "2024-10-27"),
        ("2024-10-27@2024-10-27T01Z", "2024-10-27"),
        ("2024-10-27@2024-10-27T02Z", "2024-10-27"),
    ]
    assert run_keys.index("views:2024-10-26") > run_keys.index("2024-10-26@2024-10-26T21Z")
    assert [r.run_key for r in requests if r.job_name == serving_job.name] == ["views:2024-10-26"]
    assert ticks.state.ranked_through == "2024-10-26"
    assert len(ticks.captures()) == 17


def test_a_feed_gap_over_midnight_still_builds_the_finished_day(feed, ticks):
    """No capture in the 00:00 hour (feed down, sensor stopped): the day must still be ranked."""
    requests: list[dg.RunRequest] = []
    for when in ("2024-11-03T23:50:00", "2024-11-04T01:10:00", "2024-11-04T02:10:00", "2024-11-04T03:10:00"):
        feed.at(local(when))
        requests += ticks().run_requests

    assert chain(requests) == [
        ("2024-11-03@2024-11-03T22Z", "2024-11-03"),
        ("2024-11-04@2024-11-04T00Z", "2024-11-04"),
        ("2024-11-04@2024-11-04T01Z", "2024-11-04"),
    ]
    assert [r.run_key for r in requests if r.job_name == serving_job.name] == ["views:2024-11-03"]


def test_information_failure_still_lands_the_status(httpserver, gbfs_discovery, tmp_path: Path):
    feed = Feed()
    feed.at(RECORDED)
    httpserver.expect_request("/station_status.json").respond_with_handler(feed.respond)
    httpserver.expect_request("/station_information.json").respond_with_data("down", status=503)
    resources = {
        "feed": FeedResource(source="gbfs", gbfs_url=gbfs_discovery, max_retries=0),
        "lake_store": LakeResource(data_dir=str(tmp_path)),
    }
    ticks = Ticks(resources, tmp_path)

    result = ticks()

    assert isinstance(result, dg.SensorResult)
    assert len(ticks.captures()) == 1
    assert ticks.state.information_time is None  # asked again on the next tick
    assert not (tmp_path / "landing" / "station_information").exists()


@pytest.mark.parametrize(
    ("broken", "reason"),
    [
        ("html", "HTML"),
        ("truncated", "truncated JSON"),
        ("http-500", "HTTP 500"),
        ("timeout", "timed out"),
        ("empty", "empty station list"),
    ],
)
def test_broken_feed_is_a_skip_that_lands_nothing(httpserver, feed, ticks, broken, reason):
    feed.at(RECORDED)
    ticks()
    landed, cursor = ticks.captures(), ticks.cursor
    later = status_at(int((RECORDED + timedelta(hours=1)).timestamp()))
    if broken == "html":
        feed.answer = Response(HTML_PAGE, content_type="text/html")
    elif broken == "truncated":
        feed.answer = Response(later[: len(later) // 2], content_type="application/json")
    elif broken == "http-500":
        feed.answer = Response("Internal Server Error", status=500)
    elif broken == "empty":
        empty = {"lastUpdatedOther": int(RECORDED.timestamp()) + 3600, "data": {"stations": []}}
        feed.answer = Response(json.dumps(empty), content_type="application/json")
    else:
        feed.answer = Response(later, content_type="application/json")
        feed.slow = True

    started = time.monotonic()
    result = ticks()

    assert isinstance(result, dg.SkipReason)
    assert reason in result.skip_message
    assert time.monotonic() - started < 2.0
    assert ticks.captures() == landed
    assert ticks.cursor == cursor


def test_opendata_source_detects_unchanged_exports_by_digest(httpserver, tmp_path: Path):
    exports = [
        sample_bytes("opendata-exports-5min/velib_data_20241103_173501.json.gz"),
        sample_bytes("opendata-exports-5min/velib_data_20241103_174001.json.gz"),
    ]
    answer = {"body": exports[0]}
    httpserver.expect_request("/dataset/exports/json").respond_with_handler(
        lambda _: Response(answer["body"], content_type="application/json")
    )
    resources = {
        "feed": FeedResource(source="opendata", opendata_url=httpserver.url_for("/dataset"), max_retries=0),
        "lake_store": LakeResource(data_dir=str(tmp_path)),
    }
    ticks = Ticks(resources, tmp_path)

    first = ticks()
    unchanged = ticks()
    time.sleep(1.01 - time.time() % 1)  # captures are named to the second
    answer["body"] = exports[1]
    second = ticks()

    assert isinstance(first, dg.SensorResult) and isinstance(second, dg.SensorResult)
    assert isinstance(unchanged, dg.SkipReason) and "unchanged" in unchanged.skip_message
    landed = sorted(ticks.captures())
    assert [gzip.decompress(p.read_bytes()) for p in landed] == exports
    assert all(p.name.endswith(".opendata-json.json.gz") for p in landed)
    assert first.asset_events[0].metadata["stations"].value == 1485
    assert ticks.state.digest is not None and ticks.state.feed_time is not None


def test_every_tick_writes_one_line_of_the_poll_log(feed, ticks):
    from velib_assets import polls

    now = datetime.now(UTC).replace(microsecond=0)
    feed.at(now - timedelta(seconds=20))
    ticks()  # landed
    ticks()  # the same content again: unchanged
    feed.answer = Response("<html>502 Bad Gateway</html>", status=502)
    ticks()  # unavailable
    feed.answer = Response('{"data": {"stations": []}}', status=200, content_type="application/json")
    ticks()  # broken

    logged = polls.read(ticks.data_dir, now - timedelta(hours=1), now + timedelta(hours=1))
    assert logged["outcome"].cast(pl.String).to_list() == ["landed", "unchanged", "unavailable", "broken"]
    landed = logged.row(0, named=True)
    assert landed["capture_time"] == now - timedelta(seconds=20) and 19 <= landed["lag_s"] < 60
    assert "502" in logged["reason"][2] and "empty station list" in logged["reason"][3]
    assert logged["reason"][0] is None
