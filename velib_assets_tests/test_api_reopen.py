"""The API keeps answering while the pipeline rebuilds the serving file, and then serves the new one.

A real uvicorn server is hammered from threads while another thread republishes the views with
`serving.publish_views`, as the pipeline's `duckdb_views` asset does, alternating between two lakes:
one with rankings and one without, so which file a request read shows in its answer."""

import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import httpx
import polars as pl
import pytest
import uvicorn

from velib_assets import lake, serving
from velib_assets.api.app import create_app
from velib_assets.kpis.occupancy import STATION_OCCUPANCY_SCHEMA
from velib_assets.kpis.rankings import RANKINGS_SCHEMA
from velib_assets.kpis.stations import STATIONS_SCHEMA

DAY = date(2024, 11, 3)
HOUR = datetime(2024, 11, 3, 9, tzinfo=UTC)
REBUILDS = 25  # odd: the last one publishes lake_b, with the rankings
CLIENTS = 6


def lake_with(root: Path, rankings: bool) -> Path:
    minutes = {"observed_minutes": 60.0, "in_service_minutes": 60.0, "empty_minutes": 12.0,
               "full_minutes": 0.0, "nearly_empty_minutes": 20.0, "nearly_full_minutes": 0.0, "snapshots": 60}
    occupancy = pl.DataFrame(
        [{"station_code": "16107", "hour_start": HOUR, **minutes}], schema=STATION_OCCUPANCY_SCHEMA
    )
    lake.write_parquet(occupancy, lake.day_dir(root, "station_occupancy", DAY))
    station = {"station_code": "16107", "version": 1, "name": "Benjamin Godard", "valid_from": HOUR}
    lake.write_parquet(pl.DataFrame([station], schema=STATIONS_SCHEMA), root / "stations")
    if rankings:
        ranking = pl.DataFrame(
            [{"day": DAY, "rank": 1, "station_code": "16107", "in_service_minutes": 60.0,
              "empty_minutes": 12.0, "full_minutes": 0.0, "critical_minutes": 12.0,
              "longest_empty_streak_minutes": 12.0, "longest_full_streak_minutes": 0.0}],
            schema=RANKINGS_SCHEMA,
        )
        lake.write_parquet(ranking, lake.day_dir(root, "critical_station_rankings", DAY))
    return root


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, object]]:
    """The app under uvicorn on a free port of 127.0.0.1, in a thread of this process."""
    data_dir = tmp_path / "data"
    first_lake = lake_with(tmp_path / "lake_a", rankings=False)
    serving.publish_views(data_dir / "warehouse.duckdb", first_lake, duckdb.connect)
    app = create_app(data_dir)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    runner = uvicorn.Server(config)
    thread = threading.Thread(target=runner.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    while not runner.started:
        time.sleep(0.01)
    yield f"http://127.0.0.1:{listener.getsockname()[1]}", app
    runner.should_exit = True
    thread.join(timeout=10)
    listener.close()


def test_no_request_fails_while_the_views_are_republished(tmp_path: Path, server: tuple[str, object]) -> None:
    """A 404 for the day's rankings is right while the file without them is in place; anything else
    but a 200 is a failure."""
    base, app = server
    database = tmp_path / "data" / "warehouse.duckdb"
    lakes = [tmp_path / "lake_a", lake_with(tmp_path / "lake_b", True)]
    outcomes: Counter[str] = Counter()
    failures: list[str] = []
    publishing = threading.Event()
    publishing.set()

    def hammer() -> None:
        with httpx.Client(base_url=base, timeout=30) as client:
            while publishing.is_set():
                for url in ("/api/days", "/api/stations/16107/occupancy", f"/api/rankings/{DAY}"):
                    answer = client.get(url)
                    ranked = url.startswith("/api/rankings")
                    ok = answer.status_code == 200 or (ranked and answer.status_code == 404)
                    if not ok:
                        failures.append(f"{url}: {answer.status_code} {answer.text[:200]}")
                    outcomes[f"{url} {answer.status_code}"] += 1

    def republish() -> None:
        try:
            for n in range(REBUILDS):
                serving.publish_views(database, lakes[(n + 1) % 2], duckdb.connect)
                time.sleep(0.02)
        finally:
            publishing.clear()

    threads = [threading.Thread(target=hammer) for _ in range(CLIENTS)] + [threading.Thread(target=republish)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert not failures, failures[:5]
    assert outcomes[f"/api/rankings/{DAY} 200"] > 0 and outcomes[f"/api/rankings/{DAY} 404"] > 0, outcomes
    assert app.state.serving.reopened >= REBUILDS // 2  # type: ignore[attr-defined]
    # The last file published holds the rankings (lake_b): the API now reads it.
    days = httpx.get(f"{base}/api/days").json()
    assert days["items"] == [{"day": str(DAY), "stations": 1}]
    hours = httpx.get(f"{base}/api/stations/16107/occupancy").json()["items"]
    assert [(h["hour_start"], h["empty_minutes"]) for h in hours] == [("2024-11-03T09:00:00Z", 12.0)]
