"""The API keeps answering while the pipeline rebuilds the serving file or replaces lake files, and
then serves the new ones.

A real uvicorn server is hammered from threads while another thread republishes the views with
`serving.publish_views`, as the pipeline's `duckdb_views` asset does, alternating between two lakes:
one with rankings and one without, so which file a request read shows in its answer. Another test
renames new lake partitions into place under the views, as the hourly build and the network sensor do."""

import logging
import os
import shutil
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import httpx
import polars as pl
import pytest
import uvicorn

from velib_assets import lake, serving
from velib_assets.api.app import create_app
from velib_assets.api.connection import NoServingFile, Reader, ServingFile
from velib_assets.kpis.occupancy import STATION_OCCUPANCY_SCHEMA
from velib_assets.kpis.rankings import RANKINGS_SCHEMA
from velib_assets.kpis.stations import STATIONS_SCHEMA
from velib_assets.network_now import NOW_SCHEMA

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
    data_dir = tmp_path / "data"
    first_lake = lake_with(tmp_path / "lake_a", rankings=False)
    serving.publish_views(data_dir / "warehouse.duckdb", first_lake, duckdb.connect)
    with serve(data_dir) as running:
        yield running


@contextmanager
def serve(data_dir: Path) -> Iterator[tuple[str, object]]:
    """The app under uvicorn on a free port of 127.0.0.1, in a thread of this process."""
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


STATIONS = 1500
HOURS = (20, 21)  # the day's file before and after the next hourly build
URLS = (f"/api/stations/16107/occupancy?start={DAY}", f"/api/stations/00042/occupancy?start={DAY}",
        "/api/stations?limit=1000", "/api/health")
SWAP_EVERY_S = 0.2  # far more often than the pipeline (hourly and once a minute), to meet the race


def network(root: Path, hours: int) -> tuple[Path, Path]:
    """Two lake files written aside as the pipeline writes them: a day of occupancy of every station
    (sorted by station, in row groups with statistics) and the network's state now."""
    codes = ["16107", *(f"{n:05d}" for n in range(1, STATIONS))]
    start = datetime(2024, 11, 3, tzinfo=UTC) - timedelta(hours=1)  # the Paris day's first hour
    occupancy = pl.DataFrame(
        {
            "station_code": [code for code in codes for _ in range(hours)],
            "hour_start": [start + timedelta(hours=h) for _ in codes for h in range(hours)],
            "observed_minutes": 60.0, "in_service_minutes": 60.0, "empty_minutes": float(hours),
            "full_minutes": 0.0, "nearly_empty_minutes": 0.0, "nearly_full_minutes": 0.0, "snapshots": 60,
        },
    ).select(pl.col(name).cast(kind) if name in ("observed_minutes", "hour_start", "station_code",
             "in_service_minutes", "empty_minutes", "full_minutes", "nearly_empty_minutes",
             "nearly_full_minutes", "snapshots") else pl.lit(None, kind).alias(name)
             for name, kind in STATION_OCCUPANCY_SCHEMA.items()).sort("station_code", "hour_start")
    state = "empty" if hours % 2 else "ok"
    now = pl.DataFrame(
        {"station_code": codes, "bikes": 0 if state == "empty" else 5, "docks": 20, "state": state,
         "since": start, "latest_capture": start, "through": start},
    ).select(pl.col(name).cast(kind) if name in ("station_code", "bikes", "docks", "state", "since",
             "latest_capture", "through") else pl.lit(None, kind).alias(name)
             for name, kind in NOW_SCHEMA.items())
    return (
        lake.write_parquet(occupancy, root / f"occupancy-{hours}", lookup_rows=2048),
        lake.write_parquet(now, root / f"now-{hours}"),
    )


def test_no_request_fails_while_lake_files_are_replaced_under_the_views(tmp_path: Path) -> None:
    """Today's occupancy is rewritten every hour and the network's state after every capture, each
    renamed into place while requests read them: every answer is a 200 with one file's rows, whole."""
    root, data_dir = tmp_path / "lake", tmp_path / "data"
    versions = [network(tmp_path / "versions", hours) for hours in HOURS]
    day_file = lake.day_dir(root, "station_occupancy", DAY) / "part.parquet"
    now_file = root / "stations_now" / "part.parquet"
    codes = ["16107", *(f"{n:05d}" for n in range(1, STATIONS))]
    dimension = pl.DataFrame(
        {"station_code": codes, "version": 1, "name": "a station", "valid_from": HOUR}
    ).select(pl.col(name).cast(kind) if name in ("station_code", "version", "name", "valid_from")
             else pl.lit(None, kind).alias(name) for name, kind in STATIONS_SCHEMA.items())
    lake.write_parquet(dimension, root / "stations")
    for source, target in zip(versions[0], (day_file, now_file), strict=True):
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, target)
    serving.publish_views(data_dir / "warehouse.duckdb", root, duckdb.connect)
    outcomes: Counter[str] = Counter()
    failures: list[str] = []
    replacing = threading.Event()
    replacing.set()

    def check(client: httpx.Client, url: str) -> None:
        answer = client.get(url)
        outcomes[url] += 1
        if answer.status_code != 200:
            failures.append(f"{url}: {answer.status_code} {answer.text[:200]}")
            return
        body = answer.json()
        if url.startswith("/api/health"):
            ok = body["stations"] == STATIONS
        elif url.startswith("/api/stations?"):
            states = {item["state"] for item in body["items"]}
            ok = body["total"] == STATIONS and len(body["items"]) == 1000 and states in ({"ok"}, {"empty"})
        else:
            ok = body["total"] in HOURS and len(body["items"]) == body["total"]
        if not ok:
            failures.append(f"{url}: wrong answer {str(body)[:200]}")

    def hammer() -> None:
        with httpx.Client(base_url=base, timeout=30) as client:
            while replacing.is_set():
                for url in URLS:
                    check(client, url)

    def replace() -> None:
        try:
            deadline, n = time.monotonic() + 4, 0
            while time.monotonic() < deadline:
                n += 1
                for source, target in zip(versions[n % 2], (day_file, now_file), strict=True):
                    shutil.copy(source, target.with_name(".part.parquet.tmp"))
                    os.replace(target.with_name(".part.parquet.tmp"), target)
                time.sleep(SWAP_EVERY_S)
            outcomes["replacements"] = n
        finally:
            replacing.clear()

    with serve(data_dir) as (base, _app):
        threads = [threading.Thread(target=hammer) for _ in range(CLIENTS)]
        threads.append(threading.Thread(target=replace))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)

    assert not failures, (len(failures), failures[:5], outcomes)
    assert outcomes["replacements"] > 10 and outcomes["/api/health"] > 20, outcomes


def test_a_replacement_that_will_not_open_is_tried_once_per_file_and_closed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Requests keep the previous file without trying the broken one again (under the lock, with a
    warning each time) until another file is put in its place; the failed open leaves no connection."""
    database = tmp_path / "data" / "warehouse.duckdb"
    serving.publish_views(database, lake_with(tmp_path / "lake", rankings=False), duckdb.connect)
    opened: list[duckdb.DuckDBPyConnection] = []
    real_connect = duckdb.connect

    def connect(*args: object, **kwargs: object) -> duckdb.DuckDBPyConnection:
        opened.append(real_connect(*args, **kwargs))
        return opened[-1]

    monkeypatch.setattr(duckdb, "connect", connect)
    serving_file = ServingFile(database)

    def stations() -> int:
        with serving_file.reader() as reader:
            assert reader is not None
            return reader.query("SELECT count(*) AS n FROM staging.stations")[0]["n"]

    assert stations() == 1
    broken = tmp_path / "broken"
    for n in range(2):  # two different broken files, each renamed into place
        broken.write_bytes(b"not a database" * (100 + n))
        os.replace(broken, database)
        with caplog.at_level(logging.WARNING, logger="velib_assets.api.connection"):
            assert [stations() for _ in range(5)] == [1] * 5
        assert serving_file.failed_opens == n + 1 and len(opened) == n + 2
        with pytest.raises(duckdb.ConnectionException):
            opened[-1].execute("SELECT 1")  # the half-opened instance was closed
    warnings = [r for r in caplog.records if "keeping the previous serving file" in r.getMessage()]
    assert len(warnings) == 2
    repaired = tmp_path / "repaired" / "warehouse.duckdb"
    serving.publish_views(repaired, tmp_path / "lake", real_connect)
    os.replace(repaired, database)
    assert stations() == 1 and serving_file.reopened == 1 and serving_file.failed_opens == 2

    fresh = ServingFile(tmp_path / "garbage.duckdb")
    (tmp_path / "garbage.duckdb").write_bytes(b"not a database" * 100)
    for _ in range(3):
        with pytest.raises(NoServingFile, match="cannot be opened"), fresh.reader():
            pass
    assert fresh.failed_opens == 1
    serving_file.close()


def test_an_answer_read_while_its_file_was_replaced_is_read_again(tmp_path: Path) -> None:
    """No error, but the answer came from the file the pipeline just replaced: read from the new one.
    The swap happens inside the query (a function the query calls), as it would between DuckDB's reads."""
    path = tmp_path / "stations_now" / "part.parquet"
    lake.write_parquet(pl.DataFrame({"station_code": ["1", "2"]}), path.parent)
    lake.write_parquet(pl.DataFrame({"station_code": ["1", "2", "3"]}), tmp_path / "next")
    connection = duckdb.connect()
    connection.execute("CREATE SCHEMA marts")
    view = f"CREATE VIEW marts.stations_now AS SELECT * FROM read_parquet('{path}')"
    connection.execute(view)
    swapped: list[bool] = []

    def replace_once(_code: str) -> bool:
        if not swapped:
            os.replace(tmp_path / "next" / "part.parquet", path)
            swapped.append(True)
        return True

    connection.create_function("replace_once", replace_once, ["VARCHAR"], "BOOLEAN")
    reader = Reader(connection, {"marts.stations_now": view})
    sql = "SELECT count(*) AS n FROM marts.stations_now WHERE replace_once(station_code)"
    assert reader.query(sql) == [{"n": 3}] and swapped
