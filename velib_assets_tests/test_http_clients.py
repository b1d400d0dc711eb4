"""The real HTTP clients against a local server serving recorded payloads, and the feed's failure modes."""

import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from werkzeug import Request, Response

from velib_assets import capture
from velib_assets.capture import PollState
from velib_assets.settings import USER_AGENT
from velib_assets.sources import formats
from velib_assets.sources.formats import CaptureParseError
from velib_assets.sources.gbfs import GbfsClient
from velib_assets.sources.http import FeedError, HttpClient, HttpSettings
from velib_assets.sources.opendata import RECORDS_PAGE_LIMIT, RECORDS_WINDOW, OpendataClient

from .conftest import GBFS_INFO_2025, GBFS_STATUS_2025, drain, sample_bytes

FAST = HttpSettings(connect_timeout_s=1.0, read_timeout_s=1.0, max_retries=2, backoff_s=0.01)
EXPORT = "opendata-exports-5min/velib_data_20241103_173501.json.gz"
HTML_PAGE = b"<!DOCTYPE html>\n<html><head><title>503 Service Unavailable</title></head><body></body></html>"


def client(**changes: object) -> HttpClient:
    return HttpClient(HttpSettings(**{**FAST.__dict__, **changes}))


def requested_paths(httpserver) -> list[str]:
    return [request.path for request, _ in httpserver.log]


def landed_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


# --- success paths -------------------------------------------------------------------------------------
def test_gbfs_discovery_then_status_and_information(httpserver, gbfs_discovery):
    status_body, info_body = GBFS_STATUS_2025.read_bytes(), GBFS_INFO_2025.read_bytes()
    httpserver.expect_request("/station_status.json").respond_with_data(
        status_body, content_type="application/json"
    )
    httpserver.expect_request("/station_information.json").respond_with_data(
        info_body, content_type="application/json"
    )
    gbfs = GbfsClient(client(), gbfs_discovery)

    status = gbfs.station_status()
    info = gbfs.station_information()

    assert status.fetched.body == status_body
    assert info.fetched.body == info_body
    assert status.fetched.url == httpserver.url_for("/station_status.json")
    assert status.feed_time == datetime(2025, 10, 18, 9, 9, 16, tzinfo=UTC)  # lastUpdatedOther 1760778556
    assert info.feed_time == datetime.fromtimestamp(1760778679, UTC)
    assert formats.parse_gbfs_status(status.fetched.body, status.feed_time).height == 1495
    assert requested_paths(httpserver) == ["/gbfs.json", "/station_status.json", "/station_information.json"]


def test_gbfs_discovery_is_remembered_until_a_feed_fails(httpserver):
    discoveries = iter(
        [
            {
                "data": {
                    "feeds": [{"name": "station_status", "url": httpserver.url_for("/station_status.json")}]
                }
            },
            {"data": {"feeds": []}},
        ]
    )
    statuses = iter(
        [Response(GBFS_STATUS_2025.read_bytes(), content_type="application/json"), Response("gone", 404)]
    )
    httpserver.expect_request("/gbfs.json").respond_with_handler(
        lambda _: Response(json.dumps(next(discoveries)), content_type="application/json")
    )
    httpserver.expect_request("/station_status.json").respond_with_handler(lambda _: next(statuses))
    discovery_url = httpserver.url_for("/gbfs.json")

    GbfsClient(client(), discovery_url).station_status()
    with pytest.raises(FeedError, match="HTTP 404"):
        GbfsClient(client(), discovery_url).station_status()  # a new client: discovery not fetched again
    with pytest.raises(FeedError, match="no station_status feed listed"):
        GbfsClient(client(), discovery_url).station_status()  # the failure made it look again

    assert requested_paths(httpserver) == [
        "/gbfs.json",
        "/station_status.json",
        "/station_status.json",
        "/gbfs.json",
    ]


def test_gbfs_feed_not_listed_in_discovery_is_a_feed_error(httpserver):
    httpserver.expect_request("/gbfs.json").respond_with_json({"data": {"feeds": []}})
    with pytest.raises(FeedError, match="no station_status feed listed"):
        GbfsClient(client(), httpserver.url_for("/gbfs.json")).station_status()


def test_opendata_export_json_returns_the_recorded_bytes(httpserver):
    export = sample_bytes(EXPORT)
    httpserver.expect_request(
        "/dataset/exports/json", query_string={"lang": "fr", "timezone": "UTC"}
    ).respond_with_data(export, content_type="application/json; charset=utf-8")

    fetched = OpendataClient(client(), httpserver.url_for("/dataset/")).export_json()

    assert fetched.body == export
    assert fetched.content_type.startswith("application/json")
    assert formats.parse_opendata_json(fetched.body, fetched.fetched_at).height == 1485


def test_gzip_content_encoding_is_decoded(httpserver):
    stored = (Path(__file__).resolve().parents[1] / "velib_assets" / "sample" / EXPORT).read_bytes()
    httpserver.expect_request("/dataset/exports/json").respond_with_data(
        stored, content_type="application/json", headers={"Content-Encoding": "gzip"}
    )
    fetched = OpendataClient(client(), httpserver.url_for("/dataset")).export_json()
    assert fetched.body == sample_bytes(EXPORT)


def test_records_pages_in_a_stable_order_within_the_api_window(httpserver):
    records = json.loads(sample_bytes(EXPORT))
    seen: list[dict[str, str]] = []

    def page(request: Request) -> Response:
        seen.append(dict(request.args))
        offset, limit = int(request.args["offset"]), int(request.args["limit"])
        body = {"total_count": len(records), "results": records[offset : offset + limit]}
        return Response(json.dumps(body), content_type="application/json")

    httpserver.expect_request("/dataset/records").respond_with_handler(page)

    got = OpendataClient(client(), httpserver.url_for("/dataset")).records(page_size=500)

    assert got == records
    assert len(seen) == 15  # 1,485 records in pages of 100
    assert [int(args["offset"]) for args in seen] == list(range(0, 1500, 100))
    for args in seen:
        assert args["order_by"] == "stationcode"
        assert int(args["limit"]) <= RECORDS_PAGE_LIMIT
        assert int(args["offset"]) + int(args["limit"]) <= RECORDS_WINDOW


def test_records_beyond_the_window_are_refused_without_crossing_it(httpserver):
    seen: list[tuple[int, int]] = []

    def page(request: Request) -> Response:
        offset, limit = int(request.args["offset"]), int(request.args["limit"])
        seen.append((offset, limit))
        results = [{"stationcode": str(offset + i)} for i in range(limit)]
        return Response(
            json.dumps({"total_count": 25_000, "results": results}), content_type="application/json"
        )

    httpserver.expect_request("/dataset/records").respond_with_handler(page)

    with pytest.raises(FeedError, match="more than 10000 records; use /exports/json"):
        OpendataClient(client(), httpserver.url_for("/dataset")).records()
    assert max(offset + limit for offset, limit in seen) == RECORDS_WINDOW


def test_user_agent_is_sent(httpserver):
    httpserver.expect_request("/feed.json").respond_with_data("[1]", content_type="application/json")
    client().get(httpserver.url_for("/feed.json"))
    client(user_agent="velib-tests/1.0").get(httpserver.url_for("/feed.json"))
    agents = [request.headers.get("User-Agent") for request, _ in httpserver.log]
    assert agents == [USER_AGENT, "velib-tests/1.0"]
    assert USER_AGENT.startswith("velib_assets/")


# --- retries ---------------------------------------------------------------------------------------------
def test_429_waits_for_retry_after_then_succeeds(httpserver):
    arrivals: list[float] = []

    def stamp(response: Response):
        def handler(_: Request) -> Response:
            arrivals.append(time.monotonic())
            return response

        return handler

    httpserver.expect_ordered_request("/feed.json").respond_with_handler(
        stamp(Response("quota", status=429, headers={"Retry-After": "1", "X-RateLimit-Remaining": "0"}))
    )
    httpserver.expect_ordered_request("/feed.json").respond_with_handler(
        stamp(Response("[1]", content_type="application/json"))
    )

    fetched = client().get(httpserver.url_for("/feed.json"))

    assert fetched.body == b"[1]"
    assert len(arrivals) == 2
    assert 0.9 <= arrivals[1] - arrivals[0] < 2.5  # the 1 s Retry-After, not the 0.01 s backoff


def test_a_retry_after_beyond_the_cap_is_handed_back_at_once(httpserver):
    """Waiting the cap then asking again would only spend the tick (and be refused again): the caller
    pauses polling for the time asked instead."""
    httpserver.expect_request("/feed.json").respond_with_data(
        "quota", status=429, headers={"Retry-After": "120"}
    )
    started = time.monotonic()
    with pytest.raises(FeedError, match="HTTP 429 after 0 retries, Retry-After 120 s") as raised:
        client(max_retries=2, max_retry_after_s=10.0).get(httpserver.url_for("/feed.json"))
    assert time.monotonic() - started < 1.0
    assert raised.value.retry_after_s == 120
    assert len(httpserver.log) == 1


def test_500_is_retried_then_succeeds(httpserver):
    for _ in range(2):
        httpserver.expect_ordered_request("/feed.json").respond_with_data("oops", status=500)
    httpserver.expect_ordered_request("/feed.json").respond_with_data("[1]", content_type="application/json")
    assert client().get(httpserver.url_for("/feed.json")).body == b"[1]"
    assert len(httpserver.log) == 3


def test_500_until_retries_are_exhausted(httpserver):
    httpserver.expect_request("/feed.json").respond_with_data("oops", status=500)
    with pytest.raises(FeedError, match="HTTP 500") as raised:
        client(max_retries=2).get(httpserver.url_for("/feed.json"))
    assert httpserver.url_for("/feed.json") in str(raised.value)
    assert len(httpserver.log) == 3  # the first try and two retries


def test_404_is_not_retried(httpserver):
    httpserver.expect_request("/feed.json").respond_with_data("missing", status=404)
    with pytest.raises(FeedError, match="HTTP 404"):
        client().get(httpserver.url_for("/feed.json"))
    assert len(httpserver.log) == 1


# --- broken answers --------------------------------------------------------------------------------------
def test_slow_answer_times_out(httpserver):
    release = threading.Event()

    def slow(_: Request) -> Response:
        release.wait(2.0)
        return Response("[1]", content_type="application/json")

    httpserver.expect_request("/feed.json").respond_with_handler(slow)
    started = time.monotonic()
    try:
        with pytest.raises(FeedError, match="timed out"):
            client(read_timeout_s=0.2, max_retries=0).get(httpserver.url_for("/feed.json"))
        assert time.monotonic() - started < 1.5
    finally:
        release.set()
        drain(httpserver)


def test_body_that_stalls_times_out(httpserver):
    release = threading.Event()

    def stalling(_: Request) -> Response:
        def chunks():
            yield b'[{"stationcode": "16107"}'
            release.wait(2.0)
            yield b"]"

        return Response(chunks(), content_type="application/json")

    httpserver.expect_request("/feed.json").respond_with_handler(stalling)
    try:
        with pytest.raises(FeedError, match="timed out"):
            client(read_timeout_s=0.2, max_retries=0).get(httpserver.url_for("/feed.json"))
    finally:
        release.set()
        drain(httpserver)


def test_unreachable_host():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(FeedError, match="unreachable"):
        client(max_retries=0).get(f"http://127.0.0.1:{port}/gbfs.json")


def test_truncated_status_is_a_parse_error(httpserver, gbfs_discovery):
    body = GBFS_STATUS_2025.read_bytes()
    httpserver.expect_request("/station_status.json").respond_with_data(
        body[: len(body) // 2], content_type="application/json"
    )
    with pytest.raises(FeedError, match="truncated JSON"):
        GbfsClient(client(), gbfs_discovery).station_status()


@pytest.mark.parametrize("content_type", ["text/html; charset=utf-8", "application/json"])
def test_html_page_is_refused(httpserver, content_type):
    httpserver.expect_request("/feed.json").respond_with_data(HTML_PAGE, content_type=content_type)
    with pytest.raises(FeedError, match="HTML"):
        client().get(httpserver.url_for("/feed.json"))


def test_empty_body_is_refused(httpserver):
    httpserver.expect_request("/feed.json").respond_with_data(b"  \n", content_type="application/json")
    with pytest.raises(FeedError, match="empty body"):
        client().get(httpserver.url_for("/feed.json"))


def test_empty_opendata_export_is_not_landed(httpserver, tmp_path):
    httpserver.expect_request("/dataset/exports/json").respond_with_data(
        "[]", content_type="application/json"
    )
    opendata = OpendataClient(client(), httpserver.url_for("/dataset"))
    assert opendata.export_json().body == b"[]"
    with pytest.raises(CaptureParseError, match="empty station list"):
        formats.parse_opendata_json(b"[]", datetime.now(UTC))

    outcome = capture.poll_opendata(opendata, tmp_path, PollState())

    assert "empty station list" in (outcome.skip_reason or "")
    assert outcome.state == PollState()
    assert landed_files(tmp_path) == []


def test_gbfs_status_with_no_stations_is_not_landed(httpserver, gbfs_discovery, tmp_path):
    empty = {"lastUpdatedOther": 1760778556, "ttl": 3600, "data": {"stations": []}}
    httpserver.expect_request("/station_status.json").respond_with_json(empty)

    outcome = capture.poll_gbfs(GbfsClient(client(), gbfs_discovery), tmp_path, PollState())

    assert "empty station list" in (outcome.skip_reason or "")
    assert outcome.state == PollState()
    assert landed_files(tmp_path) == []


@pytest.mark.parametrize("streamed", [False, True], ids=["content-length", "chunked"])
def test_oversized_body_is_refused(httpserver, streamed):
    body = GBFS_STATUS_2025.read_bytes()
    if streamed:  # no Content-Length: the bound must hold while reading
        httpserver.expect_request("/feed.json").respond_with_handler(
            lambda _: Response(iter([body[:40_000], body[40_000:]]), content_type="application/json")
        )
    else:
        httpserver.expect_request("/feed.json").respond_with_data(body, content_type="application/json")
    with pytest.raises(FeedError, match="exceeds the 65536-byte bound"):
        client(max_bytes=65_536).get(httpserver.url_for("/feed.json"))
    declared = httpserver.log[0][1].headers.get("Content-Length")
    assert declared is None if streamed else declared == str(len(body))


# --- the deadline of a client with a budget (one per sensor tick) -------------------------------------
def trickling(stop: threading.Event, status: int = 200) -> Response:
    """An answer of one byte every 0.2 s for 10 s: every read is quick, the whole is not."""

    def body() -> Iterator[bytes]:
        yield b"["
        for _ in range(50):
            if stop.wait(0.2):
                return
            yield b" "
        yield b"]"

    return Response(body(), status=status, content_type="application/json")


@pytest.fixture
def stop(httpserver) -> Iterator[threading.Event]:
    """Ends the trickles at teardown, then waits until the one-request-at-a-time server is free."""
    event = threading.Event()
    yield event
    event.set()
    drain(httpserver)


def test_a_trickled_body_is_cut_off_at_the_deadline(httpserver, stop):
    httpserver.expect_request("/feed.json").respond_with_handler(lambda _: trickling(stop))
    started = time.monotonic()
    with pytest.raises(FeedError, match="gave up after the tick's 1 s budget"):
        HttpClient(FAST, budget_s=1.0).get(httpserver.url_for("/feed.json"))
    assert time.monotonic() - started < 1.3


def test_a_trickled_error_body_does_not_hold_the_retry(httpserver, stop):
    httpserver.expect_request("/feed.json").respond_with_handler(lambda _: trickling(stop, status=503))
    started = time.monotonic()
    with pytest.raises(FeedError, match="HTTP 503"):
        HttpClient(replace(FAST, max_retries=1), budget_s=5.0).get(httpserver.url_for("/feed.json"))
    assert time.monotonic() - started < 1.5  # urllib3 would drain 10 s of body before retrying
    assert len(httpserver.log) == 2


@pytest.mark.parametrize(
    ("answer", "retry_after_s"),
    [(Response("busy", 503, headers={"Retry-After": "1"}), 1.0), (Response("oops", 500), None)],
    ids=["retry-after", "backoff"],
)
def test_retries_give_up_rather_than_wait_past_the_deadline(httpserver, answer, retry_after_s):
    httpserver.expect_request("/feed.json").respond_with_response(answer)
    settings = replace(FAST, max_retries=5, backoff_s=1.0, max_retry_after_s=10.0)
    started = time.monotonic()
    with pytest.raises(FeedError, match=f"HTTP {answer.status_code} after 1 retries") as raised:
        HttpClient(settings, budget_s=1.5).get(httpserver.url_for("/feed.json"))
    assert time.monotonic() - started < 1.5  # a wait of 1 s (or 2 s of backoff) more would pass it
    assert raised.value.retry_after_s == retry_after_s
    assert len(httpserver.log) == 2


# A throwaway self-signed certificate for 127.0.0.1 (valid 2025-2125), so that no test needs a CA tool.
TEST_CERT = """-----BEGIN CERTIFICATE-----
MIIBTzCB9qADAgECAhQe8N/2UHBtC4naNWLhkgYILzeWWDAKBggqhkjOPQQDAjAU
MRIwEAYDVQQDDAkxMjcuMC4wLjEwIBcNMjUwMTAxMDAwMDAwWhgPMjEyNTAxMDEw
MDAwMDBaMBQxEjAQBgNVBAMMCTEyNy4wLjAuMTBZMBMGByqGSM49AgEGCCqGSM49
AwEHA0IABO8121b/G9YlEScHwkWq5yz/3Mm5dKcxITn5eo+ZsCMPIeMDu5abuYnq
ii2b8oW5zHoxdQhrLJ0CnH25KA5Kr1yjJDAiMA8GA1UdEQQIMAaHBH8AAAEwDwYD
VR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNIADBFAiASKAliF+SF+lIBzbMO76I8
OiIdTJBbDfEYl7kIRXmbCQIhAO9Pjw9fbbFcVK0OjQr4qR6j6OzJmrcMW4vzSBE1
XwOh
-----END CERTIFICATE-----
"""
TEST_KEY = """-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgmcohNKA7RQQANpVZ
DAyT+3SiyOhOJ0Pta92ZrVijNBqhRANCAATvNdtW/xvWJREnB8JFqucs/9zJuXSn
MSE5+XqPmbAjDyHjA7uWm7mJ6ootm/KFucx6MXUIayydApx9uSgOSq9c
-----END PRIVATE KEY-----
"""
JSON_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
TRICKLES = {  # what the server sends at once, then what it trickles one byte per 0.2 s (about 20 s)
    "headers": (b"", JSON_HEAD + b"X-Pad: " + b"." * 60 + b"\r\nContent-Length: 2\r\n\r\n[]"),
    "chunk-size": (
        JSON_HEAD + b"Transfer-Encoding: chunked\r\n\r\n1\r\n[\r\n",
        b"0" * 100 + b"1\r\n]\r\n0\r\n\r\n",
    ),
    "tls-handshake": (b"\x16\x03\x03\x40\x00", b"\x00" * 100),  # a 16 kB TLS record, byte by byte
    "https-headers": (b"", JSON_HEAD + b"X-Pad: " + b"." * 60 + b"\r\nContent-Length: 2\r\n\r\n[]"),
}


@contextmanager
def raw_server(
    at_once: bytes, trickled: bytes, tls: ssl.SSLContext | None = None, every_s: float = 0.2
) -> Iterator[str]:
    """A bare TCP (or TLS) server below HTTP: to each connection it sends `at_once` after the first bytes
    from the client, then `trickled` one byte every `every_s`; every read is quick, the whole is not.
    Yields its base URL; on leaving, the trickles stop and the server closes."""
    stop = threading.Event()
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)

    def answer(conn: socket.socket) -> None:
        try:
            with tls.wrap_socket(conn, server_side=True) if tls else conn as peer:
                peer.recv(65536)  # the request, or a TLS ClientHello
                peer.sendall(at_once)
                for byte in trickled:
                    if stop.wait(every_s):
                        return
                    peer.sendall(bytes([byte]))
        except OSError:  # the client hung up: what a cut-off client does
            pass

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(30)
            threading.Thread(target=answer, args=(conn,), daemon=True).start()

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        acceptor.join()
        listener.close()


def trusted_tls(monkeypatch, tmp_path: Path) -> ssl.SSLContext:
    """A TLS server context with `TEST_CERT`, which the client trusts (requests reads REQUESTS_CA_BUNDLE)."""
    (tmp_path / "cert.pem").write_text(TEST_CERT)
    (tmp_path / "key.pem").write_text(TEST_KEY)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "cert.pem"))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    return context


def test_the_test_tls_server_is_trusted(monkeypatch, tmp_path):
    """So that the https case below is cut off by the deadline, not refused for its certificate."""
    answer = JSON_HEAD + b"Content-Length: 2\r\n\r\n[]"
    with raw_server(answer, b"", trusted_tls(monkeypatch, tmp_path)) as base:
        assert HttpClient(FAST, budget_s=5.0).get(f"{base}/feed.json").body == b"[]"


@pytest.mark.parametrize("trickle", list(TRICKLES))
def test_a_trickle_below_the_body_is_cut_off_at_the_deadline(monkeypatch, tmp_path, trickle):
    """Socket timeouts bound each read, not their sum: status line and headers, a chunk-size line or
    a TLS handshake trickled a byte at a time must still end at the tick's deadline."""
    tls = trusted_tls(monkeypatch, tmp_path) if trickle == "https-headers" else None
    with raw_server(*TRICKLES[trickle], tls=tls) as base:
        scheme_base = base.replace("http://", "https://") if trickle == "tls-handshake" else base
        started = time.monotonic()
        with pytest.raises(FeedError, match="gave up after the tick's 2 s budget"):
            HttpClient(FAST, budget_s=2.0).get(f"{scheme_base}/feed.json")
        assert time.monotonic() - started < 2.0 + 0.75


def test_a_connection_close_body_is_cut_off_at_the_deadline():
    """http.client closes the connection of a `Connection: close` answer before its body is read: the
    body's socket must still be cut at the deadline, not after a whole read timeout (here 10 s)."""
    patient = HttpSettings(connect_timeout_s=1.0, read_timeout_s=10.0, max_retries=0)
    with raw_server(JSON_HEAD + b"Connection: close\r\n\r\n[", b"   ]", every_s=1.5) as base:
        started = time.monotonic()
        with pytest.raises(FeedError, match="gave up after the tick's 2 s budget"):
            HttpClient(patient, budget_s=2.0).get(f"{base}/feed.json")
        assert time.monotonic() - started < 2.0 + 0.75


def test_a_client_with_a_budget_still_fetches_after_its_first_request(httpserver):
    """The watchdog is per request: one that ended in time leaves the connection usable for the next."""
    httpserver.expect_request("/feed.json").respond_with_data("[1]", content_type="application/json")
    http = HttpClient(FAST, budget_s=1.0)
    assert http.get(httpserver.url_for("/feed.json")).body == b"[1]"
    time.sleep(0.3)
    assert http.get(httpserver.url_for("/feed.json")).body == b"[1]"


def in_an_hour() -> str:
    return format_datetime(datetime.now(UTC) + timedelta(hours=1), usegmt=True)


@pytest.mark.parametrize(
    ("header", "expected"),
    [(lambda: "120", 120.0), (in_an_hour, 3600.0), (lambda: "soon", None)],
    ids=["seconds", "http-date", "unreadable"],
)
def test_a_final_429_hands_its_retry_after_to_the_caller(httpserver, header, expected):
    answer = Response("quota", status=429, headers={"Retry-After": header()})
    httpserver.expect_request("/feed.json").respond_with_response(answer)
    with pytest.raises(FeedError, match="HTTP 429") as raised:
        client(max_retries=2, max_retry_after_s=0.05).get(httpserver.url_for("/feed.json"))
    assert raised.value.retry_after_s == (None if expected is None else pytest.approx(expected, abs=2))
    # a readable one beyond the cap ends the retries; an unreadable one is plain backoff, not a crash
    assert len(httpserver.log) == (3 if expected is None else 1)
