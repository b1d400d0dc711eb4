"""The dashboard in a real browser: `velib dashboard` on the demo's data, opened in headless Chromium.

Each page is loaded once with `--dump-dom` (the DOM after the scripts ran) and a network log, and its
figures are compared with what DuckDB says of the same serving file: the station count and states on
the map, every district in the heat map, a station's name and bikes, the day's ranking, the rolling
two hours, the newest capture. Chromium is Debian's package (`.ci/run` installs it).
"""

import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import httpx
import polars as pl
import pytest
import uvicorn

from velib_assets import lake, serving
from velib_assets.dashboard.app import PLOTLY_JS, create_dashboard_app
from velib_assets.kpis.occupancy import DISTRICT_OCCUPANCY_SCHEMA, STATION_OCCUPANCY_SCHEMA
from velib_assets.kpis.rankings import RANKINGS_SCHEMA
from velib_assets.kpis.stations import STATIONS_SCHEMA
from velib_assets.settings import PARIS
from velib_assets_tests.analytics_fixtures import PROJECT_ROOT, child_env, make_dagster_home

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DEMO_ENV = {"VELIB_PARTITIONS_START": "2024-10-31", "VELIB_PARTITIONS_END": "2024-11-04"}
SERVER_START_S = 60
BROWSER_TIMEOUT_S = 90


def velib(data_dir: Path, home: Path, *args: str) -> None:
    done = subprocess.run(
        [str(Path(sys.executable).parent / "velib"), *args],
        cwd=PROJECT_ROOT,
        env=child_env(data_dir, home) | DEMO_ENV,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"velib {' '.join(args)}: {done.stderr[-3000:]}"


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`velib demo`, then the network's state now (the sensor builds it after each capture), published."""
    root = tmp_path_factory.mktemp("dashboard")
    data_dir, home = root / "data", make_dagster_home(root / "home")
    velib(data_dir, home, "demo")
    velib(data_dir, home, "now", "--json")
    serving.publish_views(data_dir / "warehouse.duckdb", data_dir / "lake", duckdb.connect)
    return data_dir


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_up(base: str, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the dashboard exited {process.returncode}: {process.stderr.read()}")
        try:
            if httpx.get(f"{base}/dashboard.js", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"the dashboard did not answer at {base} within {SERVER_START_S} s")


def start_dashboard(data_dir: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "velib"), "dashboard", "--port", str(port)],
        cwd=PROJECT_ROOT,
        env=child_env(data_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    wait_until_up(base, process)
    return process, base


@pytest.fixture(scope="session")
def dashboard(demo_data: Path) -> Iterator[str]:
    """`velib dashboard` itself, in its own process, as a user starts it."""
    process, base = start_dashboard(demo_data)
    yield base
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=30)


@pytest.fixture(scope="session")
def db(demo_data: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect(str(demo_data / "warehouse.duckdb"), read_only=True)
    yield connection
    connection.close()


@dataclass
class Page:
    dom: str
    requests: list[tuple[str, str]]
    """(initiator, url) of every request the page made; the browser's own traffic left out."""

    def section(self, name: str) -> str:
        match = re.search(rf'<section id="{name}".*?</section>', self.dom, flags=re.DOTALL)
        assert match, f"no section {name}"
        return match.group(0)

    def element(self, element_id: str) -> str:
        """The opening tag and text of an element without children of the same tag."""
        match = re.search(rf'<(\w+) id="{element_id}"[^>]*>.*?</\1>', self.dom, flags=re.DOTALL)
        assert match, f"no element {element_id}"
        return match.group(0)


def text_of(markup: str) -> str:
    return re.sub(r"<[^>]*>", "", markup).replace("&amp;", "&").replace("&#39;", "'").strip()


def page_requests(net_log: Path) -> list[tuple[str, str]]:
    log = json.loads(net_log.read_text(encoding="utf-8"))
    kinds = {code: name for name, code in log["constants"]["logEventTypes"].items()}
    found = []
    for event in log["events"]:
        params = event.get("params", {})
        if kinds.get(event["type"]) != "URL_REQUEST_START_JOB" or "url" not in params:
            continue  # another event, or the end of one (without parameters)
        # The page's own requests name it as their initiator (the first one is the page itself); the
        # browser's background traffic (component updates, autofill) says "not an origin".
        if params.get("initiator") != "not an origin" or params.get("request_type") == "main frame":
            found.append((params.get("initiator"), params["url"]))
    return found


def browse(url: str, workdir: Path) -> Page:
    workdir.mkdir(parents=True, exist_ok=True)
    net_log = workdir / "net-log.json"
    done = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={workdir / 'profile'}",
            "--disable-background-networking",
            "--no-first-run",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1400,1000",
            "--virtual-time-budget=20000",
            f"--log-net-log={net_log}",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=BROWSER_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0 and "</html>" in done.stdout, done.stderr[-3000:]
    page = Page(done.stdout, page_requests(net_log))
    assert 'data-ready="true"' in page.dom, "the page did not finish loading"
    return page


@pytest.fixture(scope="session")
def front(dashboard: str, tmp_path_factory: pytest.TempPathFactory) -> Page:
    return browse(f"{dashboard}/", tmp_path_factory.mktemp("front"))


def one(db: duckdb.DuckDBPyConnection, sql: str, *params: object) -> tuple:
    row = db.execute(sql, list(params)).fetchone()
    assert row is not None, sql
    return row


def between(text: str, start: str, end: str) -> str:
    return text.split(start, 1)[1].split(end, 1)[0]


def fold(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c)).lower()


def test_every_request_of_the_page_stays_on_the_dashboards_host(front: Page, dashboard: str) -> None:
    urls = [url for _, url in front.requests]
    assert f"{dashboard}/vendor/plotly.min.js" in urls
    assert any(url.startswith(f"{dashboard}/api/stations?") for url in urls)
    assert f"{dashboard}/districts.geojson" in urls
    outside = [url for url in urls if not url.startswith(f"{dashboard}/")]
    assert outside == []
    # Plotly's "share chart" button would upload the data: it is not offered.
    assert "Share chart" not in front.dom


def test_map_draws_every_station_coloured_by_its_state_over_the_outlines(
    front: Page, db: duckdb.DuckDBPyConnection
) -> None:
    network = front.section("network")
    (stations,) = one(db, "SELECT count(*) FROM marts.stations_now")
    (located,) = one(
        db,
        "SELECT count(*) FROM marts.stations_now n JOIN staging.stations s "
        "ON s.station_code = n.station_code AND s.valid_to IS NULL "
        "WHERE s.lat IS NOT NULL AND s.lon IS NOT NULL",
    )
    assert stations > 1400
    assert f"{stations:,} stations" in text_of(front.element("network-count"))
    assert f'data-stations="{located}"' in network
    # One plotly marker per station, drawn in SVG, each carrying its station code for the click.
    assert network.count('class="point plotly-customdata"') == located
    by_state = dict(
        db.execute("SELECT state::VARCHAR, count(*) FROM marts.stations_now GROUP BY 1").fetchall()
    )
    legend = re.findall(r'class="legendtext"[^>]*>([^<]*)<', network)
    assert {f"{state.replace('_', ' ')} ({count})" for state, count in by_state.items()} <= set(legend)
    assert network.count('class="js-line"') >= 2  # the district outlines
    assert "16e" in re.findall(r'class="textpoint"[^>]*><text[^>]*>([^<]*)<', network)
    assert "Ville de Paris" in front.element("attribution") and "IGN" in front.element("attribution")


def test_heat_map_shows_every_district_by_hour(front: Page, db: duckdb.DuckDBPyConnection) -> None:
    section = front.section("districts")
    districts = {
        row[0] for row in db.execute("SELECT DISTINCT district FROM marts.district_occupancy").fetchall()
    }
    assert len(districts) > 80
    assert f'data-districts="{len(districts)}"' in section
    labels = re.findall(r'class="ytick"[^>]*><text[^>]*>([^<]*)<', section)
    assert {label.replace("&#39;", "'") for label in labels} == districts
    first, last = one(db, "SELECT min(hour_start), max(hour_start) FROM marts.district_occupancy")
    assert f'data-hours="{int((last - first).total_seconds() // 3600) + 1}"' in section
    assert re.search(r'<g class="hm"><image [^>]*href="data:image/png', section)  # plotly's drawn cells
    assert "hidden" in front.element("district-message")


def test_rankings_of_the_last_day_and_of_the_rolling_two_hours(
    front: Page, db: duckdb.DuckDBPyConnection
) -> None:
    (last_day,) = one(db, "SELECT max(day) FROM marts.critical_station_rankings")
    expected = [
        row[0]
        for row in db.execute(
            "SELECT station_code FROM marts.critical_station_rankings "
            "WHERE day = ? AND rank <= 20 ORDER BY rank",
            [last_day],
        ).fetchall()
    ]
    table = front.element("ranking-table")
    assert f'data-day="{last_day}"' in table
    assert re.findall(r'<tr data-code="([^"]+)"', table) == expected
    rolling = [
        row[0]
        for row in db.execute("SELECT station_code FROM marts.critical_stations_2h ORDER BY rank").fetchall()
    ]
    assert len(rolling) == 10
    assert re.findall(r'<tr data-code="([^"]+)"', front.element("rolling-table")) == rolling


def test_health_shows_the_newest_capture_in_paris_time(front: Page, db: duckdb.DuckDBPyConnection) -> None:
    (captured,) = one(db, "SELECT max(snapshot_ts) FROM raw.raw_station_snapshots")
    local = captured.astimezone(PARIS)
    strip = text_of(front.element("health-strip"))
    assert f"{local:%a %d/%m/%Y %H:%M}" in strip
    assert re.search(r"— \d+ days \d+ h ago", strip)  # the sample is old: its age is shown in days
    (day_captures,) = one(
        db,
        "SELECT count(DISTINCT snapshot_ts) FROM raw.raw_station_snapshots "
        "WHERE CAST(timezone('Europe/Paris', snapshot_ts) AS DATE) = ?",
        local.date(),
    )
    assert f"<dt>captures</dt><dd>{day_captures}</dd>" in front.element("health-figures")


def test_a_stations_page_shows_its_name_bikes_history_and_forecast(
    dashboard: str, db: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    (last_day,) = one(db, "SELECT max(day) FROM marts.critical_station_rankings")
    (code,) = one(
        db, "SELECT station_code FROM marts.critical_station_rankings WHERE day = ? AND rank = 1", last_day
    )
    name, bikes, docks = one(
        db, "SELECT name, bikes, docks FROM marts.stations_now WHERE station_code = ?", code
    )
    hours, empty, full = one(
        db,
        "SELECT count(*), sum(empty_minutes), sum(full_minutes) FROM marts.station_occupancy "
        "WHERE station_code = ?",
        code,
    )
    (empties,) = one(db, "SELECT count(*) FROM marts.stations_now WHERE state = 'empty'")

    page = browse(f"{dashboard}/#station={code}&state=empty", tmp_path)

    section = page.section("station")
    assert 'hidden=""' not in section.split(">", 1)[0]
    assert text_of(page.element("station-title")) == f"{name} ({code})"
    assert re.search(rf'<b class="bikes">{bikes}</b>', section)
    assert re.search(rf'<b class="docks">{docks}</b>', section)
    summary = text_of(page.element("station-summary"))
    assert summary.startswith(f"{hours} hours with data from ")
    assert f"{int(empty + 0.5):,} minutes empty, {int(full + 0.5):,} minutes full" in summary
    assert 'class="js-line"' in between(section, 'id="station-fill"', 'id="station-critical"')
    assert between(section, 'id="station-critical"', "<h3>Forecast").count('class="trace bars"') == 2
    forecasts_built = one(
        db,
        "SELECT count(*) FROM duckdb_views() "
        "WHERE schema_name = 'marts' AND view_name = 'availability_forecast'",
    )[0]
    if forecasts_built:
        assert 'class="js-line"' in section.split('id="station-forecast"', 1)[1]
    else:
        assert text_of(page.element("forecast-message")) == "No forecast: no forecasts built yet."
    # The state filter from the address: only the empty stations stay coloured on the map.
    assert f'data-shown="{empties}"' in page.section("network")
    assert f"{empties} stations match" in text_of(page.element("search-count"))


def test_search_ignores_case_and_accents_and_unknown_stations_are_said(
    dashboard: str, db: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    stations = db.execute("SELECT station_code, name FROM marts.stations_now").fetchall()
    expected = {
        code for code, name in stations if "republique" in fold(code) or "republique" in fold(name or "")
    }
    assert 5 < len(expected) < 100

    page = browse(f"{dashboard}/#q=REPUBLIQUE&station=nope", tmp_path)

    assert (
        set(re.findall(r'<li tabindex="0" data-code="([^"]+)"', page.element("search-results"))) == expected
    )
    assert f'data-shown="{len(expected)}"' in page.section("network")
    message = page.element("station-message")
    assert 'class="message error"' in message
    assert "unknown station 'nope'" in text_of(message)


@contextmanager
def serve_in_thread(app: object) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base)
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_without_data_the_page_says_why_in_every_section(tmp_path: Path) -> None:
    empty_dir = tmp_path / "data"
    empty_dir.mkdir()
    with serve_in_thread(create_dashboard_app(empty_dir)) as base:
        page = browse(f"{base}/", tmp_path / "browser")
        for element in ("map-message", "ranking-message", "rolling-message", "health-message"):
            message = page.element(element)
            assert 'class="message error"' in message, element
            assert "no serving file" in text_of(message), element
        # Health still answers (its figures come from the landing zone, empty here).
        assert text_of(page.element("health-strip")).startswith("Latest capture — — unknown ago")


def test_reports_and_their_index_are_served_beside_the_page(dashboard: str, demo_data: Path) -> None:
    index = httpx.get(f"{dashboard}/reports/")
    assert index.status_code == 200
    days = re.findall(r'<tr data-day="([^"]+)">', index.text)
    assert days == ["2024-11-04", "2024-11-03", "2024-11-02", "2024-11-01", "2024-10-31"]
    report = httpx.get(f"{dashboard}/reports/velib-report-2024-11-03.html")
    assert (
        report.status_code == 200
        and "<title>Vélib&#x27; critical stations, 2024-11-03</title>" in report.text
    )
    assert httpx.get(f"{dashboard}/reports/%2e%2e/warehouse.duckdb").status_code == 404


def test_the_command_prints_its_address_and_stops_on_sigterm(demo_data: Path) -> None:
    process, base = start_dashboard(demo_data)
    assert httpx.get(f"{base}/api/health").status_code == 200
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert out.startswith(f"dashboard on {base}/ ")
    assert err == "dashboard stopped\n"


def test_plotly_comes_from_the_wheel_compressed_and_is_not_resent(dashboard: str) -> None:
    first = httpx.get(f"{dashboard}/vendor/plotly.min.js", headers={"Accept-Encoding": "gzip"})
    assert first.status_code == 200 and first.headers["content-encoding"] == "gzip"
    assert first.content == PLOTLY_JS.read_bytes()  # httpx undoes the gzip
    assert first.num_bytes_downloaded < PLOTLY_JS.stat().st_size / 2
    assert first.headers["cache-control"] == "no-cache"  # revalidated: an upgrade is seen at once
    again = httpx.get(f"{dashboard}/vendor/plotly.min.js", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""


def table(rows: dict[str, list], schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """`rows`' columns in `schema`'s types, the other columns of the schema null."""
    height = len(next(iter(rows.values())))
    return pl.DataFrame(
        {name: rows.get(name, [None] * height) for name in schema}, schema=schema, strict=False
    )


def test_the_day_the_clocks_go_back_keeps_its_25_hours_in_every_chart(tmp_path: Path) -> None:
    """2024-10-27 has 02:00 twice in Paris (CEST, then CET): both hours get a column of their own."""
    day, lake_root = date(2024, 10, 27), tmp_path / "data" / "lake"
    hours = [datetime(2024, 10, 26, 22, tzinfo=UTC) + timedelta(hours=h) for h in range(25)]
    minutes = {"observed_minutes": [60.0] * 25, "in_service_minutes": [60.0] * 25,
               "empty_minutes": [float(h) for h in range(25)], "full_minutes": [0.0] * 25,
               "nearly_empty_minutes": [0.0] * 25, "nearly_full_minutes": [0.0] * 25, "snapshots": [60] * 25,
               "mean_fill_rate": [h / 25 for h in range(25)]}
    districts = table(
        {"district": ["Paris 16e"] * 25 + ["Paris 1er"] * 25, "hour_start": hours * 2, "stations": [3] * 50,
         **{name: values * 2 for name, values in minutes.items()}},
        DISTRICT_OCCUPANCY_SCHEMA,
    )
    lake.write_parquet(districts, lake.day_dir(lake_root, "district_occupancy", day))
    station = table(
        {"station_code": ["16107"] * 25, "hour_start": hours, **minutes}, STATION_OCCUPANCY_SCHEMA
    )
    lake.write_parquet(station, lake.day_dir(lake_root, "station_occupancy", day))
    ranking = table({"day": [day], "rank": [1], "station_code": ["16107"], "critical_minutes": [300.0]},
                    RANKINGS_SCHEMA)
    lake.write_parquet(ranking, lake.day_dir(lake_root, "critical_station_rankings", day))
    dimension = table({"station_code": ["16107"], "version": [1], "name": ["Benjamin Godard"],
                       "arrondissement": [16], "valid_from": [hours[0]]}, STATIONS_SCHEMA)
    lake.write_parquet(dimension, lake_root / "stations")
    serving.publish_views(tmp_path / "data" / "warehouse.duckdb", lake_root, duckdb.connect)

    with serve_in_thread(create_dashboard_app(tmp_path / "data")) as base:
        page = browse(f"{base}/#station=16107", tmp_path / "browser")

    heat_map = page.element("district-heatmap")
    assert 'data-districts="2"' in heat_map and 'data-hours="25"' in heat_map
    assert 'data-columns="25"' in heat_map
    assert 'data-columns="25"' in page.element("station-fill")
    summary = text_of(page.element("station-summary"))
    assert summary.startswith("25 hours with data from 2024-10-21 to 2024-10-27"), summary


def test_the_capture_age_turns_red_past_the_configured_feed_down_delay(
    demo_data: Path, front: Page, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sample's newest capture is years old: red at the default 10 minutes, not when the feed
    counts as down only after 10 million minutes (`VELIB_FEED_DOWN_MINUTES`, read by /api/health)."""
    assert capture_age(front) == ("bad", "years")
    monkeypatch.setenv("VELIB_FEED_DOWN_MINUTES", "1e7")
    with serve_in_thread(create_dashboard_app(demo_data)) as base:
        page = browse(f"{base}/", tmp_path)
    assert capture_age(page) == ("", "years")


def capture_age(page: Page) -> tuple[str, str]:
    """The class of the capture's age in the health strip, and "years" when it reads in days."""
    found = re.search(r'<span class="([^"]*)" id="capture-age"[^>]*>([^<]*)<', page.dom)
    assert found, "no capture age"
    years = re.fullmatch(r"\d{3,} days \d+ h ago", found.group(2))
    return found.group(1), "years" if years else found.group(2)
