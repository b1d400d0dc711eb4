"""The HTTP API on the demo's data: every endpoint against the lake read independently with Polars,
the bad parameters, views not published yet, and a property-based run over the OpenAPI document."""

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from velib_assets import serving
from velib_assets.api.app import create_app
from velib_assets.api.params import time_range
from velib_assets.api.queries import local_days
from velib_assets_tests.analytics_fixtures import PROJECT_ROOT, child_env, make_dagster_home

DAY = date(2024, 11, 3)
LATEST_DAY = date(2024, 11, 4)
DEMO_ENV = {"VELIB_PARTITIONS_START": "2024-10-31", "VELIB_PARTITIONS_END": "2024-11-04"}


def velib(data_dir: Path, home: Path, *args: str) -> None:
    env = child_env(data_dir, home) | DEMO_ENV
    done = subprocess.run(
        [str(Path(sys.executable).parent / "velib"), *args],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, f"velib {' '.join(args)}: {done.stderr[-3000:]}"


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`velib demo`, then the network's state now and an alert evaluation, published as the next
    hourly run publishes them: every view the API reads, except the forecasts."""
    root = tmp_path_factory.mktemp("api")
    data_dir, home = root / "data", make_dagster_home(root / "home")
    velib(data_dir, home, "demo")
    velib(data_dir, home, "now", "--json")
    velib(data_dir, home, "alerts", "check")
    serving.publish_views(data_dir / "warehouse.duckdb", data_dir / "lake", duckdb.connect)
    return data_dir


@pytest.fixture(scope="session")
def client(demo_dir: Path) -> Iterator[TestClient]:
    with TestClient(create_app(demo_dir)) as opened:
        yield opened


def lake(data_dir: Path, asset: str) -> pl.DataFrame:
    return pl.read_parquet(data_dir / "lake" / asset / "**" / "*.parquet")


def get(client: TestClient, url: str, status: int = 200) -> dict:
    response = client.get(url)
    assert response.status_code == status, response.text
    return response.json()


def utc(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    assert moment.utcoffset() == timedelta(0), f"{text} is not UTC with an offset"
    return moment


def paris_day(column: str, day: date) -> pl.Expr:
    return pl.col(column).dt.convert_time_zone("Europe/Paris").dt.date() == day


def test_health_names_the_newest_capture_and_that_days_collection(client: TestClient, demo_dir: Path) -> None:
    raw = lake(demo_dir, "raw_station_snapshots")
    newest = raw["snapshot_ts"].max()
    body = get(client, "/api/health")
    assert utc(body["latest_capture_at"]) == newest
    assert body["feed_down_after_seconds"] == 600 and body["note"] is None
    assert body["latest_capture_age_seconds"] == pytest.approx(
        (datetime.now(UTC) - newest).total_seconds(), abs=60
    )
    assert body["stations"] == lake(demo_dir, "stations_now").height
    collection = body["collection"]
    assert collection["day"] == str(LATEST_DAY)
    captures = raw.filter(paris_day("snapshot_ts", LATEST_DAY))["snapshot_ts"].n_unique()
    assert collection["captures"] == captures == sum(hour["captures"] for hour in collection["hours"])
    assert all(utc(gap["end"]) > utc(gap["start"]) for gap in collection["gaps"])


def test_stations_list_the_dimension_with_the_state_now(client: TestClient, demo_dir: Path) -> None:
    now = lake(demo_dir, "stations_now")
    dimension = lake(demo_dir, "stations").sort("version").group_by("station_code").last()
    pages = [get(client, f"/api/stations?limit=1000&offset={offset}") for offset in (0, 1000)]
    items = pages[0]["items"] + pages[1]["items"]
    assert pages[0]["total"] == len(items) == dimension.height
    assert [i["station_code"] for i in items] == sorted(dimension["station_code"])
    by_code = {row["station_code"]: row for row in now.iter_rows(named=True)}
    for item in items[::50]:
        expected = by_code[item["station_code"]]
        assert (item["state"], item["bikes"], item["docks"], item["district"]) == (
            expected["state"], expected["bikes"], expected["docks"], expected["district"]
        )
        assert utc(item["since"]) == expected["since"]
        assert utc(item["captured_at"]) == expected["latest_capture"]
        assert item["minutes_in_state"] == pytest.approx(expected["minutes_in_state"])


def test_stations_filter_by_district_state_and_accent_blind_q(client: TestClient, demo_dir: Path) -> None:
    now = lake(demo_dir, "stations_now")
    body = get(client, "/api/stations?district=Paris%2016e&state=empty")
    expected = now.filter((pl.col("district") == "Paris 16e") & (pl.col("state") == "empty"))
    assert body["total"] == expected.height > 0
    assert {i["station_code"] for i in body["items"]} == set(expected["station_code"])
    found = get(client, "/api/stations?q=ARSENE%20houssaye%20-%20FRIEDLAND")["items"]
    assert [(i["station_code"], i["name"]) for i in found] == [("8201", "Arsène Houssaye - Friedland")]
    assert [i["station_code"] for i in get(client, "/api/stations?q=16107")["items"]] == ["16107"]


def test_one_station_carries_its_dimension_version(client: TestClient, demo_dir: Path) -> None:
    expected = lake(demo_dir, "stations").filter(pl.col("station_code") == "16107").sort("version").row(
        -1, named=True
    )
    body = get(client, "/api/stations/16107")
    assert (body["name"], body["district"], body["arrondissement"], body["capacity"]) == (
        expected["name"], "Paris 16e", 16, expected["capacity"]
    )
    assert body["version"] == expected["version"]
    assert utc(body["valid_from"]) == expected["valid_from"]
    assert body["state"] in {"closed", "out_of_service", "empty", "full", "nearly_empty", "nearly_full", "ok"}


def test_station_occupancy_over_a_day_and_by_default_the_last(client: TestClient, demo_dir: Path) -> None:
    occupancy = lake(demo_dir, "station_occupancy").filter(pl.col("station_code") == "16107")
    occupancy = occupancy.sort("hour_start")
    expected = occupancy.filter(paris_day("hour_start", DAY))
    body = get(client, f"/api/stations/16107/occupancy?start={DAY}&end={DAY}")
    assert body["total"] == expected.height == len(body["items"]) > 0
    assert [utc(i["hour_start"]) for i in body["items"]] == expected["hour_start"].to_list()
    for item, row in zip(body["items"], expected.iter_rows(named=True), strict=True):
        for name in ("empty_minutes", "full_minutes", "in_service_minutes", "mean_fill_rate"):
            assert item[name] == pytest.approx(row[name]), name
        assert (item["min_bikes"], item["max_bikes"]) == (row["min_bikes"], row["max_bikes"])
    latest = get(client, "/api/stations/16107/occupancy")
    assert latest["total"] == occupancy.filter(paris_day("hour_start", LATEST_DAY)).height > 0
    span = "start=2024-11-03T10:00:00Z&end=2024-11-03T13:00:00%2B01:00"
    hours = get(client, f"/api/stations/16107/occupancy?{span}")
    assert [utc(i["hour_start"]).hour for i in hours["items"]] == [10, 11]
    paged = get(client, f"/api/stations/16107/occupancy?start={DAY}&limit=5&offset=5")
    assert [i["hour_start"] for i in paged["items"]] == [i["hour_start"] for i in body["items"][5:10]]


def test_districts_all_of_them_and_their_occupancy(client: TestClient, demo_dir: Path) -> None:
    now = lake(demo_dir, "stations_now")
    body = get(client, "/api/districts")
    expected = dict(now.group_by("district").len().iter_rows())
    assert body["total"] == len(expected) == 84
    assert {i["district"]: i["stations"] for i in body["items"]} == expected
    occupancy = lake(demo_dir, "district_occupancy").filter(paris_day("hour_start", DAY))
    pages = [get(client, f"/api/districts/occupancy?start={DAY}&limit=250&offset={n}") for n in (0, 250, 500)]
    assert pages[0]["total"] == occupancy.height == sum(len(p["items"]) for p in pages) > 500
    keys = [(i["district"], utc(i["hour_start"])) for p in pages for i in p["items"]]
    assert keys == sorted(occupancy.select("district", "hour_start").iter_rows(), key=lambda k: (k[1], k[0]))
    one = get(client, f"/api/districts/occupancy?start={DAY}&district=Paris%2016e")
    rows = occupancy.filter(pl.col("district") == "Paris 16e").sort("hour_start")
    assert [i["mean_fill_rate"] for i in one["items"]] == pytest.approx(rows["mean_fill_rate"].to_list())
    assert [i["stations"] for i in one["items"]] == rows["stations"].to_list()


def test_days_and_a_days_ranking(client: TestClient, demo_dir: Path) -> None:
    rankings = lake(demo_dir, "critical_station_rankings")
    days = get(client, "/api/days")["items"]
    assert days == [
        {"day": str(day), "stations": n} for day, n in rankings.group_by("day").len().sort("day").iter_rows()
    ]
    expected = rankings.filter(pl.col("day") == DAY).sort("rank")
    body = get(client, f"/api/rankings/{DAY}?top=10")
    assert body["total"] == expected.height
    assert [(i["rank"], i["station_code"]) for i in body["items"]] == list(
        expected.head(10).select("rank", "station_code").iter_rows()
    )
    assert body["items"][0] | {"day": DAY.isoformat()} == body["items"][0]
    assert body["items"][0]["critical_minutes"] == pytest.approx(expected["critical_minutes"][0])
    assert len(get(client, f"/api/rankings/{DAY}")["items"]) == 20


def test_rolling_two_hours_rank_the_newest_two_hours(client: TestClient, demo_dir: Path) -> None:
    occupancy = lake(demo_dir, "station_occupancy")
    last = occupancy["hour_start"].max()
    expected = (
        occupancy.filter(pl.col("hour_start") > last - timedelta(hours=2))
        .group_by("station_code")
        .agg(pl.col("empty_minutes", "full_minutes", "in_service_minutes").sum())
        .filter(pl.col("in_service_minutes") > 0)
        .with_columns(critical=(pl.col("empty_minutes") + pl.col("full_minutes")).round(6))
        .sort(["critical", "empty_minutes", "station_code"], descending=[True, True, False])
        .head(10)
    )
    body = get(client, "/api/rankings/rolling-2h")
    assert [i["station_code"] for i in body["items"]] == expected["station_code"].to_list()
    assert utc(body["items"][0]["window_end"]) == last + timedelta(hours=1)
    assert all(i["name"] for i in body["items"])


def test_alerts_all_open_and_resolved(client: TestClient, demo_dir: Path) -> None:
    episodes = lake(demo_dir, "alerts")
    every = get(client, "/api/alerts")
    assert every["total"] == episodes.height > 0
    open_ = get(client, "/api/alerts?open=true")
    assert open_["total"] == episodes.filter(pl.col("resolved_at").is_null()).height
    assert all(i["resolved_at"] is None for i in open_["items"])
    assert get(client, "/api/alerts?open=false")["total"] == episodes.filter(
        pl.col("resolved_at").is_not_null()
    ).height


def test_forecasts_of_the_demo_are_the_newest_issue(client: TestClient, demo_dir: Path) -> None:
    forecasts = lake(demo_dir, "availability_forecast")
    newest = forecasts.filter(pl.col("issued_at") == pl.col("issued_at").max())
    expected = newest.filter(pl.col("station_code") == "16107").sort("target_at")
    body = get(client, "/api/forecasts?station=16107")
    assert body["total"] == expected.height > 0 and body["note"] is None
    assert [(utc(i["target_at"]), i["horizon_minutes"]) for i in body["items"]] == list(
        expected.select("target_at", "horizon_minutes").iter_rows()
    )
    assert [i["p_empty"] for i in body["items"]] == pytest.approx(expected["p_empty"].to_list())
    risk = pl.max_horizontal(pl.col("p_empty").fill_null(0), pl.col("p_full").fill_null(0))
    riskiest = (
        newest.filter(pl.col("horizon_minutes") <= 60)
        .with_columns(risk=risk)
        .sort(["risk", "target_at"], descending=[True, False])
        .group_by("station_code", maintain_order=True)
        .first()
        .sort(["risk", "station_code"], descending=[True, False])
    )
    at_risk = get(client, "/api/forecasts/at-risk?limit=10")
    assert at_risk["total"] == riskiest.height
    assert [i["station_code"] for i in at_risk["items"]] == riskiest["station_code"].head(10).to_list()


def test_forecasts_once_published(demo_dir: Path, tmp_path: Path) -> None:
    """`marts.availability_forecast` with known rows: only the newest issue counts, riskiest first; a
    station left out of it (10001, last forecast an hour before) has no current forecast."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    shutil.copy(demo_dir / "warehouse.duckdb", data_dir / "warehouse.duckdb")
    issued, earlier = datetime(2024, 11, 4, 19, tzinfo=UTC), datetime(2024, 11, 4, 18, tzinfo=UTC)
    rows = [  # station, issued, horizon, bikes, docks, p_empty, p_full
        ("16107", earlier, 30, 9.0, 26.0, 0.9, 0.0),
        ("16107", issued, 30, 4.0, 31.0, 0.2, 0.0),
        ("16107", issued, 60, 3.0, 32.0, 0.3, 0.0),
        ("8201", issued, 30, 0.5, 20.0, 0.7, 0.0),
        ("8201", issued, 120, 0.0, 21.0, 0.95, 0.0),
        ("10003", issued, 15, 16.0, 1.0, 0.0, 0.6),
        ("10001", earlier, 15, 0.0, 30.0, 0.99, 0.0),  # stale: its target is past by the newest issue
    ]
    with duckdb.connect(str(data_dir / "warehouse.duckdb")) as db:
        db.execute("DROP VIEW IF EXISTS marts.availability_forecast")
        db.execute(
            "CREATE TABLE marts.availability_forecast (station_code VARCHAR, issued_at TIMESTAMPTZ, "
            "horizon_minutes INTEGER, target_at TIMESTAMPTZ, bikes DOUBLE, docks DOUBLE, p_empty DOUBLE, "
            "p_full DOUBLE)"
        )
        db.executemany(
            "INSERT INTO marts.availability_forecast VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(c, i, h, i + timedelta(minutes=h), b, d, e, f) for c, i, h, b, d, e, f in rows],
        )
    with TestClient(create_app(data_dir)) as client:
        check_forecasts(client, issued)


def check_forecasts(client: TestClient, issued: datetime) -> None:
    station = get(client, "/api/forecasts?station=16107")
    assert [(i["horizon_minutes"], i["p_empty"]) for i in station["items"]] == [(30, 0.2), (60, 0.3)]
    assert station["note"] is None and utc(station["items"][0]["issued_at"]) == issued
    risky = get(client, "/api/forecasts/at-risk?limit=2")
    riskiest = [(i["station_code"], i["horizon_minutes"]) for i in risky["items"]]
    assert riskiest == [("8201", 30), ("10003", 15)]
    assert risky["total"] == 3
    assert all(utc(i["issued_at"]) == issued for i in get(client, "/api/forecasts/at-risk")["items"])
    left_out = get(client, "/api/forecasts?station=10001")
    assert (left_out["items"], left_out["total"]) == ([], 0)
    assert left_out["note"] == f"station '10001' is not in the newest forecast (issued {issued.isoformat()})"
    get(client, "/api/forecasts?station=99999", 404)


@pytest.mark.parametrize(
    ("url", "status", "says"),
    [
        ("/api/stations/99999", 404, "unknown station '99999'"),
        ("/api/stations/99999/occupancy", 404, "unknown station '99999'"),
        ("/api/rankings/2024-12-25", 404, "no rankings for 2024-12-25"),
        ("/api/stations?district=Atlantis", 404, "unknown district 'Atlantis'"),
        ("/api/districts/occupancy?district=Atlantis", 404, "unknown district 'Atlantis'"),
        ("/api/stations/16107/occupancy?start=2024-11-04&end=2024-11-02", 422, "reversed range"),
        ("/api/districts/occupancy?start=2024-11-03T12:00Z&end=2024-11-03T12:00Z", 422, "reversed range"),
        ("/api/stations/16107/occupancy?start=2024-09-01&end=2024-11-04", 422, "range too long"),
        ("/api/districts/occupancy?start=2024-10-01&end=2024-11-04", 422, "range too long"),
        ("/api/stations/16107/occupancy?start=2024-13-01", 422, "start='2024-13-01' is not a day"),
        ("/api/districts/occupancy?end=yesterday", 422, "end='yesterday' is not"),
        ("/api/stations/16107/occupancy?start=2024-11-03T10:00", 422, "has no offset"),
        ("/api/stations/16107/occupancy?end=9999-12-31", 422, "out of range"),
        ("/api/rankings/03-11-2024", 422, "day='03-11-2024' is not a day"),
        ("/api/rankings/2024-11-03?top=0", 422, "top: Input should be greater than or equal to 1"),
        ("/api/rankings/2024-11-03?top=2001", 422, "top: Input should be less than or equal to 2000"),
        ("/api/stations?limit=1001", 422, "limit: Input should be less than or equal to 1000"),
        ("/api/stations?offset=-1", 422, "offset: Input should be greater than or equal to 0"),
        ("/api/stations?state=broken", 422, "state: Input should be 'closed'"),
        ("/api/alerts?open=perhaps", 422, "open: Input should be a valid boolean"),
    ],
)
def test_bad_parameters_are_clear_4xx(client: TestClient, url: str, status: int, says: str) -> None:
    detail = get(client, url, status)["detail"]
    assert isinstance(detail, str) and says in detail, detail


def test_views_not_published_yet_read_as_empty_lists_with_a_note(tmp_path: Path, demo_dir: Path) -> None:
    """A serving file built from a lake holding only the occupancy (a first run, no capture sensor)."""
    lake_root = tmp_path / "data" / "lake"
    shutil.copytree(demo_dir / "lake" / "station_occupancy", lake_root / "station_occupancy")
    serving.publish_views(tmp_path / "data" / "warehouse.duckdb", lake_root, duckdb.connect)
    with TestClient(create_app(tmp_path / "data")) as client:
        check_not_published(client)


def check_not_published(client: TestClient) -> None:
    for url in ("/api/stations", "/api/districts", "/api/days", "/api/alerts", "/api/forecasts",
                "/api/forecasts/at-risk", "/api/districts/occupancy"):
        body = get(client, url)
        assert (body["items"], body["total"]) == ([], 0), url
    assert get(client, "/api/alerts")["note"] == "no alerts recorded yet"
    for url in ("/api/forecasts", "/api/forecasts/at-risk"):
        assert get(client, url)["note"] == "no forecasts built yet"
    assert "marts.district_occupancy is not published" in get(client, "/api/districts/occupancy")["note"]
    assert "staging.stations is not published" in get(client, "/api/stations")["note"]
    assert "staging.stations is not published" in get(client, "/api/districts")["note"]
    assert "marts.critical_station_rankings is not published" in get(client, "/api/days")["note"]
    assert get(client, "/api/rankings/rolling-2h")["total"] == 10
    get(client, "/api/stations/16107", 404)
    assert get(client, "/api/health")["stations"] == 0


def test_without_a_serving_file_the_answer_says_what_to_run(tmp_path: Path) -> None:
    with TestClient(create_app(tmp_path)) as client:
        detail = get(client, "/api/stations", 503)["detail"]
        health = get(client, "/api/health")
    assert "no serving file" in detail and "velib demo" in detail
    # The capture figures come from the landing zone: health answers before the first build.
    assert health["stations"] is None and "no serving file" in health["note"]
    assert (health["latest_capture_at"], health["collection"]) == (None, None)


def test_health_says_when_the_feed_counts_as_down(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VELIB_FEED_DOWN_MINUTES", "5")
    assert get(client, "/api/health")["feed_down_after_seconds"] == 300


def test_a_stations_default_range_is_its_own_last_day(tmp_path: Path, demo_dir: Path) -> None:
    """16107 has no hour on the lake's newest day: its default is its own last day, not an empty one."""
    lake_root = tmp_path / "data" / "lake"
    shutil.copytree(demo_dir / "lake" / "stations", lake_root / "stations")
    for day in (DAY, LATEST_DAY):
        folder = lake_root / "station_occupancy" / f"day={day}"
        folder.mkdir(parents=True)
        hours = pl.read_parquet(demo_dir / "lake" / "station_occupancy" / f"day={day}" / "part.parquet")
        if day == LATEST_DAY:
            hours = hours.filter(pl.col("station_code") != "16107")
        hours.write_parquet(folder / "part.parquet")
    serving.publish_views(tmp_path / "data" / "warehouse.duckdb", lake_root, duckdb.connect)
    expected = lake(demo_dir, "station_occupancy").filter(
        (pl.col("station_code") == "16107") & paris_day("hour_start", DAY)
    )
    with TestClient(create_app(tmp_path / "data")) as client:
        body = get(client, "/api/stations/16107/occupancy")
        assert get(client, "/api/stations/10003/occupancy")["total"] > 0  # on the newest day
        get(client, "/api/stations/99999/occupancy", 404)
    assert body["total"] == expected.height > 0 and body["note"] is None
    assert [utc(i["hour_start"]) for i in body["items"]] == expected["hour_start"].sort().to_list()


def test_a_missing_rankings_day_names_the_newest_days_of_a_long_history(
    tmp_path: Path, demo_dir: Path
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    shutil.copy(demo_dir / "warehouse.duckdb", data_dir / "warehouse.duckdb")
    with duckdb.connect(str(data_dir / "warehouse.duckdb")) as db:
        db.execute("DROP VIEW marts.top_critical_stations")
        db.execute("DROP VIEW marts.critical_station_rankings")
        db.execute(
            "CREATE TABLE marts.critical_station_rankings AS SELECT DATE '2021-01-01' + n::INTEGER AS day, "
            "1::UINTEGER AS rank, '16107' AS station_code FROM range(1200) t(n)"
        )
    with TestClient(create_app(data_dir)) as client:
        detail = get(client, "/api/rankings/2030-01-01", 404)["detail"]
    newest = [date(2021, 1, 1) + timedelta(days=n) for n in range(1195, 1200)]
    assert detail.endswith("latest days with rankings: " + ", ".join(map(str, newest))), detail


@pytest.fixture
def stripped(tmp_path: Path, demo_dir: Path) -> Path:
    """A serving file whose views' lake folders are then removed (a rebuild of the lake under way)."""
    lake_root = tmp_path / "data" / "lake"
    for asset in ("stations", "stations_now", "station_occupancy", "district_occupancy",
                  "critical_station_rankings"):
        shutil.copytree(demo_dir / "lake" / asset, lake_root / asset)
    serving.publish_views(tmp_path / "data" / "warehouse.duckdb", lake_root, duckdb.connect)
    return tmp_path / "data"


def test_a_views_removed_lake_folder_reads_as_not_published(stripped: Path) -> None:
    for asset in ("stations_now", "station_occupancy", "district_occupancy", "critical_station_rankings"):
        shutil.rmtree(stripped / "lake" / asset)
    with TestClient(create_app(stripped)) as client:
        for url, asset in (
            ("/api/stations?limit=5", "stations_now"),
            ("/api/days", "critical_station_rankings"),
            ("/api/districts/occupancy?start=2024-11-03", "district_occupancy"),
            ("/api/stations/16107/occupancy", "station_occupancy"),
            ("/api/rankings/rolling-2h", "station_occupancy"),
        ):
            body = get(client, url)
            assert (body["items"], body["total"]) == ([], 0), url
            assert body["note"] == f"{asset} is not published yet: the lake holds none of its files", url
        assert get(client, "/api/rankings/2024-11-03?top=3")["note"].startswith("critical_station_rankings")
        assert get(client, "/api/rankings/rolling-2h")["limit"] == 10
        answer = client.get("/api/stations/16107")  # one station, not a list: the serving layer is not whole
    assert answer.status_code == 503 and answer.headers["retry-after"] == "1"
    assert answer.json() == {"detail": "stations_now is not published yet: the lake holds none of its files"}


def test_an_unreadable_lake_file_is_a_one_line_503(stripped: Path) -> None:
    """A file that stays unreadable after the tries: JSON the client may retry, never a text/plain 500."""
    (stripped / "lake" / "stations_now" / "part.parquet").write_bytes(b"PAR1 not parquet at all PAR1")
    with TestClient(create_app(stripped), raise_server_exceptions=False) as client:
        answer = client.get("/api/stations?limit=5")
    assert answer.status_code == 503 and answer.headers["retry-after"] == "1"
    detail = answer.json()["detail"]
    assert detail.startswith("the serving layer could not be read: ") and "\n" not in detail, detail


def test_openapi_documents_units_and_response_models(client: TestClient) -> None:
    document = get(client, "/openapi.json")
    schemas = document["components"]["schemas"]
    hour = schemas["StationHour"]["properties"]
    assert "fraction 0..1" in hour["mean_fill_rate"]["description"]
    assert "minutes" in hour["empty_minutes"]["description"]
    assert "bikes" in schemas["Station"]["properties"]["bikes"]["description"]
    occupancy = document["paths"]["/api/stations/{code}/occupancy"]["get"]["responses"]
    assert set(occupancy) >= {"200", "404", "422"}
    assert occupancy["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/Problem")


@pytest.fixture(scope="session")
def api_schema(client: TestClient):
    return schemathesis.openapi.from_asgi("/openapi.json", client.app)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=int(os.environ.get("VELIB_API_FUZZ_EXAMPLES", "15")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_no_server_error_on_any_documented_request(case) -> None:
    case.call_and_validate(checks=[not_a_server_error])


@pytest.mark.parametrize(
    ("start", "end", "accepted"),
    [
        ("2024-10-01", "2024-10-31", True),  # 31 local days, 745 hours: the clocks went back on the 27th
        ("2024-10-01", "2024-11-01", False),
        ("2024-10-01T00:00:00%2B02:00", "2024-11-01T00:00:00%2B01:00", True),  # the same 31 days as times
        ("2024-10-01T00:00:00%2B02:00", "2024-11-01T00:01:00%2B01:00", False),
        ("2024-03-01", "2024-03-31", True),  # 31 days of which one had 23 hours
    ],
)
def test_a_range_of_31_local_days_is_accepted_across_a_clock_change(
    client: TestClient, start: str, end: str, accepted: bool
) -> None:
    answer = client.get(f"/api/stations/16107/occupancy?start={start}&end={end}")
    assert answer.status_code == (200 if accepted else 422), answer.text
    if not accepted:
        assert answer.json()["detail"].startswith("range too long: ")


def test_ranges_read_the_paris_day_partitions_they_touch() -> None:
    """Days are Paris days (the lake's partitions): 2024-10-27 had 25 hours (the clocks went back)."""
    dst = time_range("2024-10-27", None, None)
    assert dst is not None
    assert dst.start == datetime(2024, 10, 26, 22, tzinfo=UTC)
    assert dst.end == datetime(2024, 10, 27, 23, tzinfo=UTC)
    assert local_days(dst) == [date(2024, 10, 27)]
    straddle = time_range("2024-11-03T22:30:00Z", "2024-11-03T23:30:00Z", None)
    assert local_days(straddle) == [date(2024, 11, 3), date(2024, 11, 4)]
    assert local_days(time_range("2024-11-01", "2024-11-03", None)) == [date(2024, 11, d) for d in (1, 2, 3)]
