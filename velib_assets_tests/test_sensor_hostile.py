"""`velib_snapshot_sensor` against a hostile local feed: bad clocks, absurd values, pauses, trickles.

Every tick is resolved as the daemon resolves it (`evaluate_tick` with the repository), so a run
request naming a partition that does not exist raises here as it would error the daemon's tick.
"""

import json
import math
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import dagster as dg
import pytest
from werkzeug import Request, Response

from velib_assets import landing
from velib_assets.capture import PollState
from velib_assets.days import hour_label
from velib_assets.definitions import defs
from velib_assets.defs.jobs import daily_chain_job
from velib_assets.defs.partitions import day_key
from velib_assets.defs.resources import FeedResource, LakeResource
from velib_assets.defs.sensors import closing_requests, velib_snapshot_sensor
from velib_assets.sources import formats
from velib_assets.sources.recorded import read_recorded

from .conftest import GBFS_DISCOVERY_2022, GBFS_INFO_2025, GBFS_STATUS_2025, drain
from .test_http_clients import TRICKLES, raw_server, trickling
from .test_sensor import HTML_PAGE, Feed, Ticks

REPOSITORY = defs.get_repository_def()
TOLERANCE = timedelta(seconds=300)  # VELIB_CLOCK_TOLERANCE_SECONDS' default
SLACK_S = 0.75  # what a tick may take beyond its budget: sensor context, parsing, landing


class ResolvedTicks(Ticks):
    """`Ticks`, each resolved by Dagster as the daemon does; returns the tick's `SensorExecutionData`."""

    def __call__(self):  # type: ignore[override]
        with dg.build_sensor_context(
            instance=self.instance, cursor=self.cursor, resources=self.resources, repository_def=REPOSITORY
        ) as context:
            data = velib_snapshot_sensor.evaluate_tick(context)
        self.cursor = data.cursor
        return data


def status(stamp: object, change: Callable[[dict], None] | None = None) -> bytes:
    """The recorded station_status with `lastUpdatedOther` set to `stamp` (any JSON value), maybe changed."""
    document = json.loads(GBFS_STATUS_2025.read_bytes())
    document["lastUpdatedOther"] = stamp
    if change is not None:
        change(document)
    return json.dumps(document).encode()


def at(when: datetime) -> int:
    return int(when.timestamp())


def one_bike_less(document: dict) -> None:
    document["data"]["stations"][0]["num_bikes_available"] -= 1


def serve(feed: Feed, body: bytes) -> bytes:
    feed.answer = Response(body, content_type="application/json")
    return body


def now_s() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def landed_bodies(ticks: Ticks) -> list[bytes]:
    """What each landed file holds once gunzipped: the bytes the feed sent."""
    return [formats.decompress(p.read_bytes()) for p in ticks.captures()]


def status_requests(httpserver) -> int:
    return sum(request.path == "/station_status.json" for request, _ in httpserver.log)


def chain_requests(data) -> list[dg.RunRequest]:
    return [r for r in data.run_requests if r.job_name == daily_chain_job.name]


def resources(url: str, data_dir: Path, **feed: object) -> dict[str, object]:
    options = {"max_retries": 0, "connect_timeout_s": 1.0, "read_timeout_s": 1.0, **feed}
    return {
        "feed": FeedResource(source="gbfs", gbfs_url=url, **options),
        "lake_store": LakeResource(data_dir=str(data_dir)),
    }


@pytest.fixture
def feed(httpserver, gbfs_discovery) -> Iterator[Feed]:
    feed = Feed()
    httpserver.expect_request("/station_status.json").respond_with_handler(feed.respond)
    httpserver.expect_request("/station_information.json").respond_with_data(
        GBFS_INFO_2025.read_bytes(), content_type="application/json"
    )
    yield feed


@pytest.fixture
def ticks(feed, gbfs_discovery, tmp_path: Path) -> ResolvedTicks:
    return ResolvedTicks(resources(gbfs_discovery, tmp_path), tmp_path)


# --- the feed's clock ---------------------------------------------------------------------------------
def test_a_feed_time_in_2030_is_landed_under_the_fetch_time_and_capture_goes_on(feed, ticks):
    first = serve(feed, status(at(now_s() - timedelta(minutes=10))))
    ticks()
    future = serve(feed, status(at(datetime(2030, 1, 1, tzinfo=UTC))))

    before = now_s()
    data = ticks()

    [event] = data.asset_events
    landed = Path(event.metadata["path"].value)
    assert formats.decompress(landed.read_bytes()) == future
    when = datetime.fromisoformat(event.metadata["capture_time"].value)
    assert before <= when <= now_s()  # the fetch time, not 2030
    assert "ahead of this machine's clock" in event.metadata["clock_anomaly"].value
    assert ticks.state.clock_anomalies == 1
    assert event.metadata["clock_anomalies"].value == 1
    assert datetime.fromisoformat(ticks.state.clock) <= now_s()

    good = serve(feed, status(at(now_s() - timedelta(minutes=9))))
    assert ticks().asset_events, "the next good capture must land"
    assert set(landed_bodies(ticks)) == {first, future, good}


@pytest.mark.parametrize(
    "poison", ["2030-01-01T00:00:00+00:00", "2020-01-01T00:00:00+00:00", "junk"], ids=["2030", "2020", "junk"]
)
def test_a_cursor_poisoned_by_an_older_release_is_healed(feed, ticks, poison):
    ticks.cursor = PollState(feed_time=poison, information_time=poison).to_json()
    body = serve(feed, status(at(now_s() - timedelta(minutes=2))))

    data = ticks()

    assert data.asset_events and landed_bodies(ticks) == [body]
    assert ticks.state.clock_anomalies == 1
    assert ticks.state.feed_time != poison
    assert data.run_requests == []  # no hour of 2020, nor of 2030


def test_a_first_capture_before_the_partitions_start_does_not_stop_the_runs(feed, ticks):
    serve(feed, status(at(datetime(2020, 1, 1, 12, tzinfo=UTC))))
    first = ticks()
    serve(feed, status(at(now_s() - timedelta(hours=2))))
    second = ticks()
    serve(feed, status(at(now_s() - timedelta(hours=1))))
    third = ticks()

    [event] = first.asset_events
    assert "before the partitions start" in event.metadata["clock_anomaly"].value
    assert event.partition == day_key(now_s())  # landed under the fetch time, never 2020
    assert not any("date=2020" in str(p) for p in ticks.captures())
    assert second.asset_events and third.asset_events
    for data in (first, second, third):
        for request in data.run_requests:
            assert "2020" not in (request.partition_key or "")


def test_a_feed_clock_seconds_ahead_at_an_hour_boundary_names_no_future_partition(monkeypatch, feed, ticks):
    monkeypatch.setenv("VELIB_CLOCK_TOLERANCE_SECONDS", "7200")  # so that the next hour is "seconds" ahead
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    if datetime.now(UTC) - hour < timedelta(seconds=2):
        time.sleep(2)
    serve(feed, status(at(hour + timedelta(seconds=1))))
    ticks()
    ahead = hour + timedelta(hours=1, seconds=3)
    serve(feed, status(at(ahead)))

    data = ticks()  # before: DagsterUnknownPartitionError for the hour still running

    [event] = data.asset_events
    assert event.metadata["capture_time"].value == ahead.isoformat()  # kept under its own time
    assert event.partition == day_key(datetime.now(UTC))  # the day running here, not the next one
    assert "clock_anomaly" not in event.metadata
    assert data.run_requests == []  # the running hour closes when this machine's clock leaves it
    assert datetime.fromisoformat(ticks.state.clock) <= now_s()


@pytest.mark.parametrize(
    ("stamp", "anomaly"),
    [
        (lambda when: at(when) * 1000, None),  # milliseconds
        (lambda when: at(when) * 1000 + 0.5, None),
        (lambda when: 10**20, "unusable"),
        (lambda when: -5, "unusable"),
        (lambda when: "soon", "unusable"),
        (lambda when: [at(when)], "unusable"),
    ],
    ids=["ms", "ms-float", "1e20", "negative", "string", "list"],
)
def test_an_absurd_feed_time_never_errors_a_tick(feed, ticks, stamp, anomaly):
    when = now_s() - timedelta(minutes=3)
    body = serve(feed, status(stamp(when)))

    data = ticks()

    [event] = data.asset_events
    assert formats.decompress(Path(event.metadata["path"].value).read_bytes()) == body
    captured = datetime.fromisoformat(event.metadata["capture_time"].value)
    if anomaly is None:
        assert captured == when
        assert ticks.state.clock_anomalies == 0
    else:
        assert anomaly in event.metadata["clock_anomaly"].value
        assert captured > when
        assert ticks.state.clock_anomalies == 1


def test_velib_import_reads_a_millisecond_feed_time(tmp_path: Path):
    when = datetime(2025, 10, 18, 9, 9, 16, tzinfo=UTC)
    path = tmp_path / "station_status.json"
    path.write_bytes(status(at(when) * 1000))
    assert read_recorded(path).capture_time == when


@pytest.mark.parametrize("value", [1e13, math.nan, math.inf, 10**30, -1, "yesterday"])
def test_one_station_absurd_last_reported_only_affects_its_row(feed, ticks, value):
    def spoil(document: dict) -> None:
        document["data"]["stations"][0]["last_reported"] = value

    body = status(at(now_s() - timedelta(minutes=1)), spoil)
    clean = formats.parse_gbfs_status(status(at(now_s() - timedelta(minutes=1))), now_s())
    frame = formats.parse_gbfs_status(body, now_s())

    assert frame["reported_at"][0] is None  # even 1e13 read as milliseconds is the year 2286
    assert frame["reported_at"][1:].to_list() == clean["reported_at"][1:].to_list()
    serve(feed, body)
    assert ticks().asset_events[0].metadata["stations"].value == frame.height


# --- content that changed under an unchanged or earlier time ----------------------------------------------
def test_content_changed_under_an_equal_or_earlier_time_is_landed_with_a_message(feed, ticks, capfd):
    start = now_s().replace(minute=10, second=0) - timedelta(days=1)
    bodies = [serve(feed, status(at(start)))]
    first = ticks()
    bodies.append(serve(feed, status(at(start), one_bike_less)))  # the same time, other content
    same = ticks()
    bodies.append(serve(feed, status(at(start - timedelta(minutes=2)))))  # a cache answering an older copy
    back = ticks()
    repeat = ticks()

    assert "stayed at" in same.asset_events[0].metadata["notes"].value
    assert "went back from" in back.asset_events[0].metadata["notes"].value
    logged = capfd.readouterr().err  # the tick's context.log
    assert "stayed at" in logged and "went back from" in logged
    assert sorted(landed_bodies(ticks)) == sorted(bodies)
    landed = (first, same, back)
    times = [datetime.fromisoformat(d.asset_events[0].metadata["capture_time"].value) for d in landed]
    assert times[0] == start and min(times[1:]) >= now_s() - timedelta(minutes=1)  # under fetch times
    assert len({d.asset_events[0].metadata["path"].value for d in landed}) == 3
    assert "unchanged" in repeat.skip_message  # the same content again is not news


def test_a_feed_clock_stuck_in_the_past_moves_no_run_storm(feed, ticks):
    """New content under an old feed time lands under its fetch time: the clock moves on, no capture
    poses as late, so no tick requests a re-run (keyed by file name, that was a run a tick)."""
    stuck = now_s() - timedelta(days=2)
    serve(feed, status(at(stuck)))
    ticks()
    results = []
    for bikes in range(3):
        change = partial(set_bikes, bikes)
        serve(feed, status(at(stuck), change))
        results.append(ticks())
    assert all(not r.run_requests or all(":late:" not in q.run_key for q in r.run_requests) for r in results)
    assert ticks.state.clock_time >= now_s() - timedelta(minutes=1)
    assert all("clock anomaly" in r.asset_events[0].metadata["clock_anomaly"].value for r in results)


def set_bikes(bikes: int, document: dict) -> None:
    document["data"]["stations"][0]["num_bikes_available"] = bikes


def test_captures_in_an_hour_already_closed_rerun_its_day_once_at_the_next_closing(feed, ticks):
    """A lagging feed clock that sticks once (landed under the fetch time, which closes its hour) and
    then moves on lands later captures in the closed hour: the next hour closing re-runs its day,
    once, with all of them in it (a re-run per capture would be a run a minute)."""
    hour = now_s().replace(minute=0, second=0) - timedelta(days=2)
    serve(feed, status(at(hour + timedelta(minutes=50))))
    ticks()
    serve(feed, status(at(hour + timedelta(minutes=50)), one_bike_less))  # stuck: lands now, closes it
    assert day_key(hour) in {r.partition_key for r in chain_requests(ticks())}
    for minute in (55, 56):
        serve(feed, status(at(hour + timedelta(minutes=minute))))
        late = ticks()
        assert not late.run_requests
        assert "re-run when the next hour closes" in late.asset_events[0].metadata["notes"].value
    assert ticks.state.late_hours == (hour_label(hour),)

    closed = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    requests, state, _ = closing_requests(ticks.state, closed + timedelta(minutes=30), datetime.now(UTC))
    reruns = [r for r in requests if ":late:" in r.run_key]
    assert [(r.partition_key, r.run_key) for r in reruns] == [
        (day_key(hour), f"{day_key(hour)}:late:{hour_label(closed)}")
    ]
    assert state.late_hours == ()


# --- failures of the feed or the disk ----------------------------------------------------------------------
def test_json_nested_deeper_than_the_stack_is_a_skip_with_its_reason(feed, ticks):
    serve(feed, b"[" * 100_000)
    assert ticks().skip_message.startswith("feed unavailable")


def test_an_infinite_count_only_affects_its_station(feed, ticks):
    body = status(at(now_s()), lambda d: d["data"]["stations"][0].update(num_bikes_available=math.inf))
    frame = formats.parse_gbfs_status(body, now_s())
    assert frame["bikes"][0] is None and frame["bikes"][1:].null_count() == 0
    serve(feed, body)
    assert ticks().asset_events[0].metadata["stations"].value == frame.height


def test_a_hostile_discovery_is_a_skip_with_its_reason(httpserver, tmp_path: Path):
    odd = {"data": {"feeds": [{"name": ["station_status"], "url": 5}, {"name": "station_status", "url": {}}]}}
    httpserver.expect_request("/gbfs.json").respond_with_json(odd)
    ticks = ResolvedTicks(resources(httpserver.url_for("/gbfs.json"), tmp_path), tmp_path)
    assert "no station_status feed listed" in ticks().skip_message


def test_a_full_disk_is_a_skip_with_its_reason(monkeypatch, feed, ticks):
    def full(*_: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(landing, "write_capture", full)
    serve(feed, status(at(now_s())))

    data = ticks()

    assert data.skip_message == "could not land the capture: [Errno 28] No space left on device"
    assert ticks.cursor is None


def test_retry_after_is_honoured_across_ticks(monkeypatch, httpserver, feed, ticks):
    monkeypatch.setenv("VELIB_MAX_RETRY_AFTER_SECONDS", "600")
    feed.answer = Response("quota", status=429, headers={"Retry-After": "3600"})

    first = ticks()
    asked = status_requests(httpserver)
    second = ticks()

    assert "HTTP 429" in first.skip_message and "polling resumes at" in first.skip_message
    resume = datetime.fromisoformat(ticks.state.retry_not_before)
    assert timedelta(seconds=590) < resume - datetime.now(UTC) <= timedelta(seconds=600)  # capped
    assert f"polling resumes at {resume.isoformat()}" in second.skip_message
    assert status_requests(httpserver) == asked  # no request at all while paused


def test_polling_resumes_once_the_pause_is_over(monkeypatch, feed, ticks):
    monkeypatch.setenv("VELIB_MAX_RETRY_AFTER_SECONDS", "1")
    feed.answer = Response("busy", status=503, headers={"Retry-After": "3600"})
    ticks()
    resume = datetime.fromisoformat(ticks.state.retry_not_before)
    time.sleep(max(0.0, (resume - datetime.now(UTC)).total_seconds()) + 0.05)
    serve(feed, status(at(now_s())))

    data = ticks()

    assert data.asset_events
    assert ticks.state.retry_not_before is None


# --- the tick's deadline -----------------------------------------------------------------------------------
@pytest.fixture
def trickle(httpserver) -> Iterator[Callable[[Request], Response]]:
    stop = threading.Event()
    yield lambda _: trickling(stop)
    stop.set()
    drain(httpserver)


@pytest.mark.parametrize("slow", ["/slow/gbfs.json", "/station_status.json", "/station_information.json"])
def test_a_tick_ends_within_its_budget_against_a_trickling_server(
    httpserver, gbfs_discovery, tmp_path, trickle, slow
):
    httpserver.expect_request(slow).respond_with_handler(trickle)
    if slow != "/station_status.json":
        httpserver.expect_request("/station_status.json").respond_with_data(
            status(at(now_s())), content_type="application/json"
        )
    url = httpserver.url_for(slow) if slow.endswith("gbfs.json") else gbfs_discovery
    ticks = ResolvedTicks(resources(url, tmp_path, tick_budget_s=2.0), tmp_path)

    started = time.monotonic()
    data = ticks()
    elapsed = time.monotonic() - started

    assert elapsed < 2.0 + SLACK_S
    budget = "gave up after the tick's 2 s budget"
    if slow == "/station_information.json":  # the status still lands; the information waits
        assert budget in data.asset_events[0].metadata["notes"].value
    else:
        assert budget in data.skip_message


def test_a_tick_ends_within_its_budget_against_trickled_headers(tmp_path):
    """Status line and headers one byte per 0.2 s: no socket read ever times out, the deadline must."""
    with raw_server(*TRICKLES["headers"]) as base:
        ticks = ResolvedTicks(resources(f"{base}/gbfs.json", tmp_path, tick_budget_s=2.0), tmp_path)
        started = time.monotonic()
        data = ticks()
        assert time.monotonic() - started < 2.0 + SLACK_S
    assert "gave up after the tick's 2 s budget" in data.skip_message


# --- numbers Python refuses to read ------------------------------------------------------------------------
PLACEHOLDER = 987654321987
TOO_LONG = b"9" * 5000  # past Python's 4,300-digit bound on int(str): json.loads raises a bare ValueError


def too_long(body: bytes) -> bytes:
    """`body` with its one `PLACEHOLDER` written as a 5,000-digit integer (json.dumps cannot write it)."""
    assert body.count(str(PLACEHOLDER).encode()) == 1
    return body.replace(str(PLACEHOLDER).encode(), TOO_LONG)


def one_line_reason(message: str | None) -> str:
    assert message is not None and "\n" not in message and len(message) < 500
    assert "4300 digits" in message
    return message


def test_a_count_too_long_to_read_is_a_skip_with_its_reason(feed, ticks):
    def bikes(document: dict) -> None:
        document["data"]["stations"][0]["num_bikes_available"] = PLACEHOLDER

    serve(feed, too_long(status(at(now_s()), bikes)))
    data = ticks()  # before: ValueError "Exceeds the limit (4300 digits)" errored the tick
    assert one_line_reason(data.skip_message).startswith("feed unavailable")
    assert not data.asset_events


def test_information_too_long_to_read_leaves_the_status_to_land(httpserver, gbfs_discovery, tmp_path):
    information = json.loads(GBFS_INFO_2025.read_bytes())
    information["data"]["stations"][0]["capacity"] = PLACEHOLDER
    httpserver.expect_request("/station_information.json").respond_with_data(
        too_long(json.dumps(information).encode()), content_type="application/json"
    )
    body = status(at(now_s()))
    httpserver.expect_request("/station_status.json").respond_with_data(body, content_type="application/json")

    data = ResolvedTicks(resources(gbfs_discovery, tmp_path), tmp_path)()

    [event] = data.asset_events
    assert formats.decompress(Path(event.metadata["path"].value).read_bytes()) == body
    assert "4300 digits" in event.metadata["notes"].value


def test_a_discovery_too_long_to_read_is_a_skip_with_its_reason(httpserver, tmp_path):
    discovery = json.loads(GBFS_DISCOVERY_2022.read_bytes())
    discovery["ttl"] = PLACEHOLDER
    httpserver.expect_request("/gbfs.json").respond_with_data(
        too_long(json.dumps(discovery).encode()), content_type="application/json"
    )
    data = ResolvedTicks(resources(httpserver.url_for("/gbfs.json"), tmp_path), tmp_path)()
    assert "unusable discovery" in one_line_reason(data.skip_message)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b'{"station_id": 1, "num_bikes_available": ' + TOO_LONG + b"}", "4300 digits"),
        (b"[" * 100_000, "too deep"),
    ],
    ids=["long-integer", "deep"],
)
def test_status_lines_python_refuses_to_read_are_a_parse_error(line, reason):
    with pytest.raises(formats.CaptureParseError, match=reason) as raised:
        formats.parse_gbfs_status_lines(b'{"station_id": 2}\n' + line + b"\n", now_s())
    assert str(raised.value).startswith("line 2: ")


# --- a long run of faults ----------------------------------------------------------------------------------
def test_a_hostile_feed_over_many_ticks(monkeypatch, httpserver, feed, ticks):
    """good, 2030, good, ms epoch, good, backwards, same time other content, 429, (paused), HTML, good."""
    monkeypatch.setenv("VELIB_MAX_RETRY_AFTER_SECONDS", "1")
    base = now_s().replace(minute=50, second=0) - timedelta(days=1)

    def good(minutes: int, stamp: Callable[[int], object] = int, change=None) -> bytes:
        return status(stamp(at(base + timedelta(minutes=minutes))), change)

    json_answers = [
        good(0),
        status(at(datetime(2030, 6, 1, tzinfo=UTC))),
        good(20),
        good(25, lambda seconds: seconds * 1000),
        good(40),
        good(5),  # backwards
        good(5, change=one_bike_less),  # the same time, other content
    ]
    answers = [Response(body, content_type="application/json") for body in json_answers] + [
        Response("slow down", status=429, headers={"Retry-After": "3600"}),
        Response("never asked", status=500),  # the pause: no request reaches it
        Response(HTML_PAGE, content_type="text/html"),
        Response(good(70), content_type="application/json"),
    ]
    results = []
    for answer in answers:
        feed.answer = answer
        asked = status_requests(httpserver)
        results.append(ticks())  # never raises: resolved as the daemon resolves it
        limit = datetime.now(UTC) + TOLERANCE
        for clock in (ticks.state.clock, ticks.state.feed_time):
            assert clock is None or datetime.fromisoformat(clock) <= limit
        if (results[-1].skip_message or "").startswith("the feed asked for a pause"):
            assert status_requests(httpserver) == asked
            resume = datetime.fromisoformat(ticks.state.retry_not_before)
            time.sleep(max(0.0, (resume - datetime.now(UTC)).total_seconds()) + 0.05)

    goods = [json_answers[0], *json_answers[2:], answers[-1].get_data()]  # all but the 2030 one
    assert set(landed_bodies(ticks)) >= set(goods), "every good capture landed"
    assert len(landed_bodies(ticks)) == len(goods) + 1  # and the 2030 one, under its fetch time
    assert ticks.state.clock_anomalies == 3  # 2030, backwards, the same time with other content
    skips = [r.skip_message.split(":")[0] for r in results if not r.asset_events]
    assert skips == ["feed unavailable", "the feed asked for a pause (Retry-After)", "feed unavailable"]
    requested = {r.partition_key for data in results for r in chain_requests(data)}
    assert requested == {day_key(base)}  # closed by the first fetch-time capture
    # Captured later under their feed times, behind that clock: re-run at the next hour closing.
    assert set(ticks.state.late_hours) == {hour_label(base + timedelta(minutes=m)) for m in (20, 70)}
    run_keys = [r.run_key for data in results for r in data.run_requests]
    on_time = [key for key in run_keys if ":late:" not in key]
    assert len(on_time) == len(set(on_time))  # a closing hour is requested once


def test_a_millisecond_last_reported_is_read_as_such():
    def in_ms(document: dict) -> None:
        document["data"]["stations"][0]["last_reported"] *= 1000

    plain = formats.parse_gbfs_status(status(at(now_s())), now_s())
    frame = formats.parse_gbfs_status(status(at(now_s()), in_ms), now_s())
    assert frame["reported_at"][0] == plain["reported_at"][0] is not None


def test_late_hours_kept_by_an_hourly_cursor_rerun_their_days_after_the_upgrade():
    """The hourly release kept late hours as partition keys (local hours): their days are re-run."""
    state = PollState(late_hours=("2024-11-01-13:00", "2024-10-27-02:00+0100", "junk"))
    closed = datetime(2024, 11, 4, 10, tzinfo=UTC)
    requests, state, _ = closing_requests(state, closed + timedelta(minutes=30), closed + timedelta(hours=1))
    reruns = [(r.partition_key, r.run_key) for r in requests if ":late:" in r.run_key]
    assert reruns == [
        ("2024-10-27", "2024-10-27:late:2024-11-04T10Z"),
        ("2024-11-01", "2024-11-01:late:2024-11-04T10Z"),
    ]
    assert state.late_hours == ()
