"""The network now: states from the clean flags, `since` from capture times, incremental updates."""

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from velib_assets import landing, network_now
from velib_assets.kpis.clean import clean_snapshots
from velib_assets.reference import load_bundled_reference
from velib_assets.schema import RAW_SCHEMA, UTC_TS
from velib_assets.settings import KpiThresholds
from velib_assets.sources import formats

from .conftest import GBFS_INFO_2025, GBFS_STATUS_2025

T0 = datetime(2025, 10, 18, 9, 0, 3, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def observations(rows: list[tuple[str, int, str]]) -> pl.DataFrame:
    """(station, minute after T0, state) rows as `_observations` gives them."""
    return pl.DataFrame(
        {
            "station_code": [code for code, _, _ in rows],
            "snapshot_ts": [T0 + minute * MINUTE for _, minute, _ in rows],
            "name": [f"Station {code}" for code, _, _ in rows],
            "district": ["Paris 16e"] * len(rows),
            "capacity": [20] * len(rows),
            "bikes": [0] * len(rows),
            "mechanical": [0] * len(rows),
            "ebike": [0] * len(rows),
            "docks": [20] * len(rows),
            "state": [state for _, _, state in rows],
        },
        schema_overrides={"snapshot_ts": UTC_TS, "state": pl.Enum(network_now.STATES)},
    ).sort("station_code", "snapshot_ts")


def row(table: pl.DataFrame, code: str) -> dict:
    return table.filter(pl.col("station_code") == code).row(0, named=True)


def test_since_is_the_first_capture_of_the_last_run_of_the_state():
    first = network_now.advance(
        None,
        observations(
            [("A", 0, "ok"), ("A", 1, "empty"), ("A", 2, "empty"), ("B", 0, "full"), ("B", 2, "full"),
             ("D", 1, "ok")]
        ),
        T0 + 2 * MINUTE,
        fresh=True,
    )
    a, b = row(first, "A"), row(first, "B")
    assert (a["state"], a["since"], a["minutes_in_state"]) == ("empty", T0 + MINUTE, 1.0)
    assert a["since_at_least"] is False
    # Full through the whole first window: it may have been full before, and says so.
    assert (b["state"], b["since"], b["minutes_in_state"], b["since_at_least"]) == ("full", T0, 2.0, True)

    second = network_now.advance(
        first, observations([("A", 3, "empty"), ("B", 3, "ok"), ("C", 3, "closed")]), T0 + 3 * MINUTE, False
    )
    a, b, c = row(second, "A"), row(second, "B"), row(second, "C")
    assert (a["state"], a["since"], a["minutes_in_state"]) == ("empty", T0 + MINUTE, 2.0)  # it goes on
    assert (b["state"], b["since"], b["since_at_least"]) == ("ok", T0 + 3 * MINUTE, False)
    assert (c["state"], c["minutes_in_state"], c["in_latest_capture"]) == ("closed", 0.0, True)

    # A window of three captures: D was only in the one of minute 1, not in the newest.
    assert first["in_latest_capture"].to_list() == [True, True, False]
    assert row(second, "C")["in_latest_capture"] and not row(second, "D")["in_latest_capture"]
    third = network_now.advance(second, observations([("A", 4, "ok")]), T0 + 4 * MINUTE, False)
    b = row(third, "B")
    assert (b["state"], b["in_latest_capture"], b["latest_capture"]) == ("ok", False, T0 + 3 * MINUTE)
    assert b["minutes_in_state"] == 1.0 and third["through"].unique().to_list() == [T0 + 4 * MINUTE]
    assert row(third, "A")["since"] == T0 + 4 * MINUTE
    # A station gone from the feed for the look-back leaves the table.
    later = T0 + network_now.LOOKBACK + 5 * MINUTE
    gone = network_now.advance(third, observations([("A", int((later - T0) / MINUTE), "ok")]), later, False)
    assert gone["station_code"].to_list() == ["A"]  # B, C and D pruned


def test_a_state_that_flaps_restarts_its_clock_at_each_change():
    table = network_now.advance(
        None,
        observations([("A", m, "empty" if m % 2 == 0 else "nearly_empty") for m in range(7)]),
        T0 + 6 * MINUTE,
        fresh=True,
    )
    assert (row(table, "A")["state"], row(table, "A")["minutes_in_state"]) == ("empty", 0.0)


@pytest.mark.parametrize(
    ("flags", "bikes", "docks", "state"),
    [
        ((False, True, True), 5, 5, "closed"),
        ((True, False, True), 5, 5, "out_of_service"),
        ((True, True, True), 0, 0, "out_of_service"),  # no working dock: broken, not empty and full
        ((True, True, True), 0, 20, "empty"),
        ((True, True, True), 20, 0, "full"),
        ((True, True, True), 1, 19, "nearly_empty"),
        ((True, True, True), 19, 1, "nearly_full"),
        ((True, True, True), 10, 10, "ok"),
    ],
)
def test_the_state_is_the_most_specific_clean_flag(flags, bikes, docks, state):
    installed, renting, returning = flags
    raw = pl.DataFrame(
        [
            {
                "snapshot_ts": T0, "station_code": "16107", "capacity": 20, "bikes": bikes,
                "mechanical": bikes, "ebike": 0, "docks": docks, "is_installed": installed,
                "is_renting": renting, "is_returning": returning, "reported_at": T0, "source": "gbfs",
            }
        ],
        schema=RAW_SCHEMA,
    )
    clean = clean_snapshots(raw, load_bundled_reference(), KpiThresholds()).clean
    assert clean.select(network_now.state_expr()).item() == state


def land(root: Path, minute: int, empty: set[str]) -> None:
    """The real 2025-10-18 capture at T0 + `minute`, with the stations in `empty` emptied."""
    document = json.loads(GBFS_STATUS_2025.read_bytes())
    for station in document["data"]["stations"]:
        if station["stationCode"] in empty:
            station["num_docks_available"] += station["num_bikes_available"]
            station["num_bikes_available"] = station["numBikesAvailable"] = 0
            station["num_bikes_available_types"] = [{"mechanical": 0}, {"ebike": 0}]
    body = json.dumps(document).encode()
    landing.write_capture(root / "landing", T0 + minute * MINUTE, formats.GBFS_STATUS, body)


def test_updates_parse_only_new_captures_and_match_a_rebuild(tmp_path: Path):
    landing.write_capture(tmp_path / "landing", T0 - MINUTE, formats.GBFS_INFO, GBFS_INFO_2025.read_bytes())
    reference, thresholds = load_bundled_reference(), KpiThresholds()
    for minute in range(3):
        land(tmp_path, minute, {"16107"} if minute >= 1 else set())

    first = network_now.update(tmp_path, reference, thresholds)
    assert first.captures == 3 and first.table.height > 1400
    station = row(first.table, "16107")
    assert (station["state"], station["since"], station["minutes_in_state"]) == ("empty", T0 + MINUTE, 1.0)
    assert station["name"] == "Benjamin Godard - Victor Hugo" and station["district"] == "Paris 16e"
    assert network_now.update(tmp_path, reference, thresholds).captures == 0

    land(tmp_path, 3, {"16107", "40001"})
    second = network_now.update(tmp_path, reference, thresholds)
    assert second.captures == 1
    assert row(second.table, "16107")["minutes_in_state"] == 2.0
    other = row(second.table, "40001")
    assert (other["state"], other["minutes_in_state"]) == ("empty", 0.0)

    (tmp_path / "lake" / network_now.NOW / "part.parquet").unlink()
    rebuilt = network_now.update(tmp_path, reference, thresholds)
    assert rebuilt.captures == 4
    # The same table, but what a fresh look cannot know: stations unchanged all along say "at least".
    assert_frame_equal(rebuilt.table.drop("since_at_least"), second.table.drop("since_at_least"))


def test_a_table_older_than_the_lookback_starts_afresh(tmp_path: Path):
    reference, thresholds = load_bundled_reference(), KpiThresholds()
    land(tmp_path, 0, {"16107"})
    network_now.update(tmp_path, reference, thresholds)
    later = int((network_now.LOOKBACK + 2 * timedelta(hours=1)) / MINUTE)
    land(tmp_path, later, {"16107"})
    table = network_now.update(tmp_path, reference, thresholds).table
    station = row(table, "16107")
    # Four hours apart, nothing in between: the old "since" is not carried over a gap it never saw.
    assert (station["since"], station["since_at_least"]) == (T0 + later * MINUTE, True)


def test_the_network_sensor_reports_each_update_and_skips_when_current(tmp_path: Path):
    from velib_assets.defs.operations import velib_network_sensor
    from velib_assets.defs.resources import LakeResource

    land(tmp_path, 0, {"16107"})
    land(tmp_path, 1, {"16107"})
    resources = {"lake_store": LakeResource(data_dir=str(tmp_path))}
    with dg.build_sensor_context(instance=dg.DagsterInstance.ephemeral(), resources=resources) as context:
        first = velib_network_sensor.evaluate_tick(context)
        again = velib_network_sensor.evaluate_tick(context)
    (event,) = first.asset_events
    assert event.asset_key == dg.AssetKey("stations_now")
    assert event.metadata["captures_parsed"].value == 2
    assert event.metadata["stations_empty"].value >= 1
    assert "16107" in event.metadata["longest_empty"].value
    assert not first.run_requests
    assert again.skip_message.startswith("stations_now is at the newest landed capture; alerts: ")


def test_velib_now_prints_the_states_filtered_and_as_json(tmp_path: Path, monkeypatch, capsys):
    from velib_assets import cli

    monkeypatch.setenv("VELIB_DATA_DIR", str(tmp_path))
    assert cli.main(["now"]) == 2
    assert capsys.readouterr().err.startswith("velib: no captures in ")
    for minute in range(3):
        land(tmp_path, minute, {"16107"})

    assert cli.main(["now", "--district", "Paris 16e", "--state", "empty", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["district"] for r in rows} == {"Paris 16e"} and {r["state"] for r in rows} == {"empty"}
    station = next(r for r in rows if r["station_code"] == "16107")
    assert (station["since"], station["minutes_in_state"]) == ("2025-10-18T09:00:03Z", 2.0)
    assert station["bikes"] == 0 and station["since_at_least"] is True

    assert cli.main(["now", "--state", "empty"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("stations at the capture of 2025-10-18 11:02 CEST")
    assert any(line.startswith("empty") and " 16107 " in line and "≥2 min" in line for line in lines[2:])

    assert cli.main(["now", "--district", "Paris 99e"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no station in district 'Paris 99e'" in err and "Paris 16e" in err


def test_the_duckdb_view_reads_the_table_as_it_is_now(tmp_path: Path):
    import duckdb

    from velib_assets import serving

    reference, thresholds = load_bundled_reference(), KpiThresholds()
    land(tmp_path, 0, {"16107"})
    network_now.update(tmp_path, reference, thresholds)
    database = tmp_path / "warehouse.duckdb"
    counts, _, _ = serving.publish_views(database, tmp_path / "lake", duckdb.connect)
    assert counts["marts.stations_now"] > 1400

    land(tmp_path, 5, {"16107"})
    network_now.update(tmp_path, reference, thresholds)  # no view refresh in between
    with duckdb.connect(str(database), read_only=True) as con:
        query = "SELECT minutes_in_state FROM marts.stations_now WHERE station_code = '16107'"
        minutes = con.sql(query).fetchall()
    assert minutes == [(5.0,)]


def test_materializing_stations_now_brings_it_current(tmp_path: Path):
    from velib_assets.defs.operations import stations_now
    from velib_assets.defs.resources import LakeResource

    land(tmp_path, 0, {"16107"})
    result = dg.materialize([stations_now], resources={"lake_store": LakeResource(data_dir=str(tmp_path))})
    (event,) = result.get_asset_materialization_events()
    metadata = event.event_specific_data.materialization.metadata
    assert metadata["stations_empty"].value >= 1 and metadata["through"].value == "2025-10-18T09:00:03+00:00"
    assert network_now.read_table(tmp_path) is not None


def test_as_of_replays_the_table_at_a_past_time_without_writing(tmp_path: Path):
    reference, thresholds = load_bundled_reference(), KpiThresholds()
    for minute in range(4):
        land(tmp_path, minute, {"16107"} if minute >= 1 else set())
    past = network_now.as_of(tmp_path, reference, thresholds, T0 + 2 * MINUTE).table
    station = row(past, "16107")
    assert (station["state"], station["minutes_in_state"]) == ("empty", 1.0)
    assert station["through"] == T0 + 2 * MINUTE
    assert network_now.read_table(tmp_path) is None


def test_the_cli_offers_the_states_the_table_holds():
    from velib_assets import cli

    assert cli.NOW_STATES == network_now.STATES


def test_velib_now_ends_quietly_when_its_reader_leaves(tmp_path: Path):
    """`velib now | head`: 1,500 lines fill the pipe; the reader closing it is no error to print."""
    import os
    import subprocess
    import sys

    land(tmp_path, 0, set())
    env = {**os.environ, "VELIB_DATA_DIR": str(tmp_path)}
    command = [sys.executable, "-m", "velib_assets.cli", "now"]
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as velib:
        assert velib.stdout is not None and velib.stdout.readline().endswith(b"CEST\n")
        velib.stdout.close()
        assert velib.wait(timeout=60) == 1
        assert velib.stderr is not None and velib.stderr.read() == b""
