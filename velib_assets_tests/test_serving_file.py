"""The serving file is safe: readers always open it, and analysts' objects are never dropped silently."""

import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl
import pytest

from velib_assets import lake, serving
from velib_assets.kpis.occupancy import STATION_OCCUPANCY_SCHEMA


@pytest.fixture
def lake_root(tmp_path: Path) -> Path:
    root = tmp_path / "lake"
    hour = datetime(2024, 11, 3, 9, tzinfo=UTC)
    frame = pl.DataFrame([{"station_code": "16107", "hour_start": hour}], schema=STATION_OCCUPANCY_SCHEMA)
    lake.write_parquet(frame, lake.day_dir(root, "station_occupancy", hour.date()))
    return root


def publish(database: Path, lake_root: Path) -> tuple[dict[str, int], list[str], list[str]]:
    return serving.publish_views(database, lake_root, duckdb.connect)


def test_analysts_tables_and_views_survive_a_refresh(tmp_path: Path, lake_root: Path) -> None:
    database = tmp_path / "warehouse.duckdb"
    publish(database, lake_root)
    with duckdb.connect(str(database)) as analyst:
        analyst.execute("CREATE SCHEMA scratch")
        analyst.execute("CREATE TABLE scratch.watch (station_code VARCHAR PRIMARY KEY, note VARCHAR)")
        analyst.execute("INSERT INTO scratch.watch VALUES ('16107', 'check the dock')")
        analyst.execute(
            "CREATE VIEW scratch.watched AS SELECT o.* FROM marts.station_occupancy o "
            "JOIN scratch.watch USING (station_code)"
        )
        analyst.execute("CREATE VIEW scratch.watched_count AS SELECT count(*) AS n FROM scratch.watched")
    _, _, carried = publish(database, lake_root)
    assert sorted(carried) == ["table scratch.watch", "view scratch.watched", "view scratch.watched_count"]
    with duckdb.connect(str(database), read_only=True) as reader:
        assert reader.execute("FROM scratch.watch").fetchall() == [("16107", "check the dock")]
        assert reader.execute("FROM scratch.watched_count").fetchall() == [(1,)]
        primary = "SELECT constraint_type FROM duckdb_constraints() WHERE table_name = 'watch'"
        assert ("PRIMARY KEY",) in reader.execute(primary).fetchall()


def test_an_object_that_cannot_be_carried_makes_the_refresh_refuse(tmp_path: Path, lake_root: Path) -> None:
    database = tmp_path / "warehouse.duckdb"
    publish(database, lake_root)
    with duckdb.connect(str(database)) as analyst:
        analyst.execute("CREATE MACRO fill_pct(b, d) AS 100.0 * b / (b + d)")
    before = database.read_bytes()
    with pytest.raises(serving.ServingFileError, match=r"macro main\.fill_pct.*ATTACH"):
        publish(database, lake_root)
    assert database.read_bytes() == before
    assert not list(tmp_path.glob(".warehouse.duckdb.*"))


def _crash_mid_session(database: Path, statement: str) -> None:
    """A read-write session that commits `statement`, then dies by SIGKILL, leaving its log behind."""
    script = (
        "import duckdb, os, signal, sys\n"
        f"c = duckdb.connect({str(database)!r})\n"
        f"c.execute({statement!r})\n"
        "print('committed', flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == -signal.SIGKILL and "committed" in done.stdout


def test_a_crashed_sessions_log_never_leaves_the_file_unreadable(tmp_path: Path, lake_root: Path) -> None:
    database = tmp_path / "warehouse.duckdb"
    publish(database, lake_root)
    _crash_mid_session(database, "CREATE TABLE main.kept AS SELECT 42 AS answer")
    assert Path(f"{database}.wal").exists()
    _, _, carried = publish(database, lake_root)
    assert carried == ["table main.kept"]  # the crashed session's committed table, replayed from its log
    assert not Path(f"{database}.wal").exists()
    with duckdb.connect(str(database), read_only=True) as reader:
        assert reader.execute("FROM main.kept").fetchall() == [(42,)]
        assert reader.execute("SELECT count(*) FROM marts.station_occupancy").fetchone() == (1,)


def test_a_live_writer_makes_the_refresh_wait_for_it_with_a_clear_message(
    tmp_path: Path, lake_root: Path
) -> None:
    database = tmp_path / "warehouse.duckdb"
    publish(database, lake_root)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, time; c = duckdb.connect({str(database)!r}); "
            "c.execute('CREATE TABLE t AS SELECT 1'); print('open', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(serving.ServingFileError, match="open for writing by another process"):
            publish(database, lake_root)
    finally:
        holder.kill()
        holder.wait()


def test_half_built_files_of_dead_rebuilds_are_swept(tmp_path: Path, lake_root: Path) -> None:
    database = tmp_path / "warehouse.duckdb"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    dead_pid = int(dead.stdout)
    leftovers = [
        tmp_path / f".warehouse.duckdb.{dead_pid}-{'a' * 32}.tmp",
        tmp_path / f".warehouse.duckdb.{dead_pid}-{'a' * 32}.tmp.wal",
        tmp_path / f".warehouse.duckdb.{'b' * 32}.tmp",  # named by an earlier release, without a pid
    ]
    live = tmp_path / f".warehouse.duckdb.{os.getpid()}-{'c' * 32}.tmp"
    for path in [*leftovers, live]:
        path.write_bytes(b"half")
    publish(database, lake_root)
    assert not any(path.exists() for path in leftovers)
    assert live.exists()  # a rebuild still running in a live process is left alone


def test_a_session_writing_during_the_rebuild_is_refused_not_lost(tmp_path: Path, lake_root: Path) -> None:
    """Its writes would go into the file about to be replaced: DuckDB's lock refuses it, visibly."""
    database = tmp_path / "warehouse.duckdb"
    publish(database, lake_root)
    writers: list[subprocess.CompletedProcess] = []

    def connect_and_write_meanwhile(path: str):
        write = "execute('CREATE TABLE late AS SELECT 7 AS x')"
        script = f"import duckdb; duckdb.connect({str(database)!r}).{write}"
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
        writers.append(done)
        return duckdb.connect(path)

    serving.publish_views(database, lake_root, connect_and_write_meanwhile)
    [writer] = writers
    assert writer.returncode != 0 and "lock" in writer.stderr
    with duckdb.connect(str(database)) as after:  # the file is writable again once rebuilt
        after.execute("CREATE TABLE late AS SELECT 7 AS x")


def test_a_table_that_cannot_be_recreated_is_refused_by_name(tmp_path: Path, lake_root: Path) -> None:
    database = tmp_path / "warehouse.duckdb"
    publish(database, lake_root)
    with duckdb.connect(str(database)) as analyst:
        analyst.execute("CREATE TABLE g (a INTEGER, b INTEGER GENERATED ALWAYS AS (a * 2))")
        analyst.execute("INSERT INTO g (a) VALUES (1)")
    before = database.read_bytes()
    with pytest.raises(serving.ServingFileError, match=r"table main\.g cannot be carried.*ATTACH"):
        publish(database, lake_root)
    assert database.read_bytes() == before
