"""Alerts where they run: the network sensor, the run-failure sensor, `velib alerts`, the DuckDB view."""

import json
from datetime import timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from velib_assets import alerts, cli, serving
from velib_assets.defs.operations import velib_network_sensor, velib_run_failure_alerts
from velib_assets.defs.resources import LakeResource

from .alert_receivers import webhook
from .test_network_now import MINUTE, T0, land


def ticks(tmp_path: Path, count: int) -> list[dg.SensorResult | dg.SkipReason]:
    """`count` ticks of the network sensor, each in a context of its own, as a restarted daemon has."""
    resources = {"lake_store": LakeResource(data_dir=str(tmp_path))}
    results = []
    for _ in range(count):
        with dg.build_sensor_context(instance=dg.DagsterInstance.ephemeral(), resources=resources) as context:
            results.append(velib_network_sensor.evaluate_tick(context))
    return results


def test_the_network_sensor_alerts_once_per_episode_and_a_broken_channel_never_fails_it(
    tmp_path: Path, monkeypatch
):
    monkeypatch.setenv("VELIB_ALERT_MINUTES", "20")
    monkeypatch.setenv("VELIB_ALERT_WATCH", "16107")  # the real capture has other stations empty too
    monkeypatch.setenv("VELIB_FEED_DOWN_MINUTES", "10000000")  # these captures are years old
    for minute in range(0, 30, 5):
        land(tmp_path, minute, {"16107"})
    with webhook(statuses=[500]) as hook:
        monkeypatch.setenv("VELIB_ALERT_URLS", hook.url)
        first, second, third = ticks(tmp_path, 3)
        # The first tick opened the episode but the channel answered 500: the message waited for
        # the next tick, which delivered it; the third found nothing new to send.
        assert first.asset_events and not first.run_requests
        titles = [json.loads(body)["message"] for body in hook.received]
        assert [json.loads(body)["title"] for body in hook.received] == ["Vélib' alert"], titles
        message = json.loads(hook.received[0])["message"]
        assert "16107" in message and "Benjamin Godard - Victor Hugo" in message and "Paris 16e" in message
        assert "alerts: 0 opened" in third.skip_message and "0 waiting" in third.skip_message

        land(tmp_path, 31, set())  # refilled
        ticks(tmp_path, 2)
        assert [json.loads(body)["title"] for body in hook.received] == ["Vélib' alert", "Vélib' resolved"]
        assert "after 31 min" in json.loads(hook.received[1])["message"]
    listed = alerts.episodes(tmp_path)
    assert listed.filter(listed["subject"] == "16107").height == 2  # the opened and the resolved message


def test_a_bad_alert_setting_is_a_line_in_the_tick_not_a_failed_tick(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("VELIB_ALERT_MINUTES", "soon")
    land(tmp_path, 0, {"16107"})
    (result,) = ticks(tmp_path, 1)
    assert result.asset_events  # stations_now still updated
    assert not (tmp_path / "ops" / "alerts.sqlite").exists()


@pytest.mark.parametrize(
    ("error", "said"),
    [(dg.Failure("the lake is not mounted"), "breaks: the lake is not mounted"),
     (ValueError("bad value"), "breaks: ValueError: bad value")],
)
def test_a_failed_run_is_sent_to_the_channels_once(tmp_path: Path, monkeypatch, error, said):
    monkeypatch.setenv("VELIB_DATA_DIR", str(tmp_path))

    @dg.asset
    def breaks() -> None:
        raise error

    instance = dg.DagsterInstance.ephemeral()
    tags = {"dagster/partition": "2025-10-18"}
    dg.materialize([breaks], instance=instance, raise_on_error=False, tags=tags)
    with webhook() as hook:
        monkeypatch.setenv("VELIB_ALERT_URLS", hook.url)
        for _ in range(2):
            with dg.build_run_status_sensor_context(
                sensor_name=velib_run_failure_alerts.name,
                dagster_instance=instance,
                dagster_event=next(
                    e for e in instance.all_logs(instance.get_runs()[0].run_id)
                    if e.dagster_event and e.dagster_event.event_type_value == "PIPELINE_FAILURE"
                ).dagster_event,
                dagster_run=instance.get_runs()[0],
            ).for_run_failure() as context:
                velib_run_failure_alerts(context)
        assert len(hook.received) == 1
        message = json.loads(hook.received[0])["message"]
        assert "__ephemeral_asset_job__ for 2025-10-18 failed" in message
        assert message.endswith(f"failed: {said}")


def test_velib_alerts_check_replays_a_past_time_and_list_shows_the_episodes(
    tmp_path: Path, monkeypatch, capsys
):
    monkeypatch.setenv("VELIB_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("VELIB_FEED_DOWN_MINUTES", "10000000")
    monkeypatch.setenv("VELIB_ALERT_WATCH", "16107")
    monkeypatch.delenv("VELIB_ALERT_URLS", raising=False)
    for minute in range(0, 45, 5):
        land(tmp_path, minute, {"16107"} if minute < 30 else set())

    at = (T0 + 25 * MINUTE).astimezone(cli.PARIS).strftime("%Y-%m-%dT%H:%M:%S")
    assert cli.main(["alerts", "check", "--at", at]) == 0
    out = capsys.readouterr().out
    assert "1 opened" in out and "station_empty   16107" in out
    assert cli.main(["alerts", "check", "--at", (T0 + 30 * MINUTE).isoformat()]) == 0
    assert "1 resolved" in capsys.readouterr().out

    assert cli.main(["alerts", "list", "--json", "--replay"]) == 0
    (episode,) = [e for e in json.loads(capsys.readouterr().out) if e["subject"] == "16107"]
    assert episode["kind"] == "station_empty" and episode["duration_minutes"] == 30.0
    # The replay left the live episodes alone, and the live check serves them in marts.alerts.
    assert cli.main(["alerts", "list"]) == 2
    capsys.readouterr()
    assert cli.main(["alerts", "check"]) == 0
    assert "station_empty   16107" not in capsys.readouterr().out  # refilled by the newest capture
    database = tmp_path / "warehouse.duckdb"
    counts, _, _ = serving.publish_views(database, tmp_path / "lake", duckdb.connect)
    assert counts["marts.alerts"] == 0  # the replay's episodes are not the network's

    with pytest.raises(SystemExit, match="2"):
        cli.main(["alerts", "check", "--at", "yesterday"])
    assert cli.main(["alerts", "check", "--at", (T0 - timedelta(days=2)).isoformat()]) == 2
    assert "no capture in the 3:00:00 before" in capsys.readouterr().err


def test_a_corrupt_stations_now_table_still_lets_the_feed_alert_go(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("VELIB_ALERT_WATCH", "none")
    land(tmp_path, 0, set())
    table = tmp_path / "lake" / "stations_now" / "part.parquet"
    table.parent.mkdir(parents=True)
    table.write_bytes(b"not parquet")
    with webhook() as hook:
        monkeypatch.setenv("VELIB_ALERT_URLS", hook.url)
        (result,) = ticks(tmp_path, 1)
        assert "alerts: 1 opened" in result.skip_message  # the feed: its captures are a year old
        assert "feed DOWN" in json.loads(hook.received[0])["message"]


@pytest.mark.parametrize(
    ("command", "variable"),
    [(["now"], "VELIB_MAX_GAP_MINUTES"), (["health"], "VELIB_MAX_GAP_MINUTES"),
     (["alerts", "check"], "VELIB_ALERT_MINUTES")],
)
def test_a_bad_setting_is_one_line_naming_it(tmp_path: Path, monkeypatch, capsys, command, variable):
    monkeypatch.setenv("VELIB_DATA_DIR", str(tmp_path))
    monkeypatch.setenv(variable, "ten")
    land(tmp_path, 0, set())
    assert cli.main(command) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and variable in err


def test_listing_alerts_of_a_data_dir_without_any_creates_nothing(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setenv("VELIB_DATA_DIR", str(tmp_path / "typo"))
    assert cli.main(["alerts", "list"]) == 2
    assert "no alerts yet in" in capsys.readouterr().err and not (tmp_path / "typo").exists()


def test_the_rules_of_a_run_launched_from_the_ui_override_the_environment(tmp_path: Path, monkeypatch):
    from velib_assets.defs.operations import stations_now

    monkeypatch.setenv("VELIB_ALERT_MINUTES", "60")  # the environment would open nothing
    monkeypatch.delenv("VELIB_ALERT_URLS", raising=False)
    for minute in range(0, 30, 5):
        land(tmp_path, minute, {"16107"})
    config = {"minutes": 20, "watch": ["16107"], "feed_down_minutes": 1e7}
    result = dg.materialize(
        [stations_now],
        resources={"lake_store": LakeResource(data_dir=str(tmp_path))},
        run_config={"ops": {"stations_now": {"config": config}}},
    )
    (event,) = result.get_asset_materialization_events()
    assert "alerts: 1 opened" in event.event_specific_data.materialization.metadata["alerts"].value
    assert alerts.episodes(tmp_path)["subject"].to_list() == ["16107"]
