"""The collection's health: the poll log, a day's figures, the daily asset and `velib health`."""

import json
from datetime import date, datetime, timedelta
from pathlib import Path

import dagster as dg

from velib_assets import health, landing, polls
from velib_assets.capture import PollOutcome, PollState
from velib_assets.kpis.rankings import local_day_bounds
from velib_assets.landing import Capture
from velib_assets.sources import formats

from .conftest import status_at

DAY = date(2025, 10, 26)  # the autumn DST change: a 25-hour day
START, END = local_day_bounds(DAY)
MAX_GAP = timedelta(minutes=15)


def tick(data_dir: Path, at: datetime, outcome: PollOutcome) -> None:
    polls.record(data_dir, at, outcome)


def landed(data_dir: Path, when: datetime) -> PollOutcome:
    path, created = landing.write_capture(
        data_dir / "landing", when, formats.GBFS_STATUS, status_at(int(when.timestamp()))
    )
    return PollOutcome(PollState(), Capture(when, formats.GBFS_STATUS, path), created)


def test_a_day_counts_captures_failed_polls_lag_and_gaps_on_its_25_hours(tmp_path: Path):
    # Captures every 5 minutes from 01:00 UTC to 03:00 UTC, landed 4 s after their feed time.
    for n in range(24):
        when = START + timedelta(hours=2, minutes=5 * n)
        tick(tmp_path, when + timedelta(seconds=4), landed(tmp_path, when))
    down = PollOutcome(PollState(), skip_reason="feed unavailable: HTTP 503 from https://feed")
    broken = PollOutcome(PollState(), skip_reason="broken feed: https://feed: empty station list")
    for minutes in (130, 131, 132):
        tick(tmp_path, START + timedelta(minutes=minutes, seconds=30), down)
    tick(tmp_path, START + timedelta(minutes=140, seconds=30), broken)
    unchanged = PollOutcome(PollState(), skip_reason="feed unchanged since x")
    tick(tmp_path, START + timedelta(minutes=141), unchanged)

    found = health.day_health(tmp_path, DAY, END + timedelta(hours=1), MAX_GAP)

    assert found.hours.height == 25 and found.captures == 24 and found.polls == 29
    assert found.failed_by_reason == {"unavailable": 3, "broken": 1}
    assert found.lag_median_s == 4.0 and found.lag_p95_s == 4.0
    third = found.hours.row(2, named=True)
    assert (third["hour_start"], third["captures"], third["polls"], third["polls_failed"]) == (
        START + timedelta(hours=2), 12, 17, 4
    )
    # Before the first capture, and after the last one to the end of the day: two gaps.
    assert found.gaps == [(START, START + timedelta(hours=2)), (START + timedelta(hours=3, minutes=55), END)]


def test_today_is_measured_up_to_its_last_closed_hour(tmp_path: Path):
    for n in range(8):
        when = START + timedelta(minutes=10 * n)
        tick(tmp_path, when, landed(tmp_path, when))
    found = health.day_health(tmp_path, DAY, START + timedelta(hours=1, minutes=20), MAX_GAP)
    # 01:10 and 01:20 UTC landed, but only the closed hour counts: no gap before 01:00 either.
    assert found.hours.height == 1 and found.captures == 6 and found.gaps == []


def test_a_cut_line_in_the_poll_log_is_skipped_and_the_others_count(tmp_path: Path):
    tick(tmp_path, START, PollOutcome(PollState(), skip_reason="feed unavailable: timeout"))
    log = next((tmp_path / polls.POLLS).glob("*.jsonl"))
    with open(log, "a") as handle:
        handle.write('{"at": "2025-10-25T22:0')  # a full disk cut the write
    tick(tmp_path, START + timedelta(minutes=1), PollOutcome(PollState(), skip_reason="feed unavailable: x"))
    assert polls.read(tmp_path, START, END).height == 2


def test_a_poll_log_that_cannot_be_written_never_fails_the_tick(tmp_path: Path, monkeypatch):
    from velib_assets.defs import sensors

    (tmp_path / "ops").mkdir()
    (tmp_path / "ops" / "polls").write_text("a file where the folder should be")
    outcome = PollOutcome(PollState(), skip_reason="feed unavailable: timeout")
    monkeypatch.setattr(sensors, "poll", lambda *args: outcome)
    resources = {"lake_store": sensors.LakeResource(data_dir=str(tmp_path)), "feed": sensors.FeedResource()}
    with dg.build_sensor_context(resources=resources) as context:
        result = sensors.velib_snapshot_sensor(context)
    assert isinstance(result, dg.SkipReason) and result.skip_message == "feed unavailable: timeout"


def test_the_daily_asset_writes_the_hours_and_reports_the_day(tmp_path: Path):
    from velib_assets import lake
    from velib_assets.defs.operations import HEALTH, collection_health
    from velib_assets.defs.resources import LakeResource

    for n in range(3):
        when = START + timedelta(hours=5, minutes=n)
        tick(tmp_path, when + timedelta(seconds=2), landed(tmp_path, when))
    resources = {"lake_store": LakeResource(data_dir=str(tmp_path))}
    result = dg.materialize([collection_health], partition_key=DAY.isoformat(), resources=resources)
    (event,) = result.get_asset_materialization_events()
    metadata = event.event_specific_data.materialization.metadata
    assert metadata["captures"].value == 3 and metadata["lag_median_s"].value == 2.0
    assert metadata["gaps"].value == 2 and metadata["provisional"].value is False
    assert (lake.day_dir(tmp_path / "lake", HEALTH, DAY) / lake.PART_FILE).is_file()


def test_velib_health_prints_the_day_and_says_when_the_feed_is_down(tmp_path: Path, monkeypatch, capsys):
    from velib_assets import cli

    monkeypatch.setenv("VELIB_DATA_DIR", str(tmp_path))
    when = START + timedelta(hours=5)
    tick(tmp_path, when + timedelta(seconds=3), landed(tmp_path, when))
    down = PollOutcome(PollState(), skip_reason="feed unavailable: HTTP 503")
    tick(tmp_path, when + timedelta(minutes=1), down)

    assert cli.main(["health", "--day", DAY.isoformat()]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("min ago (FEED DOWN)")
    assert "1 captures, 2 polls logged, failed: 1 unavailable" in out[1] and "median 3 s" in out[1]
    assert sum(line.startswith(("02:00 CET", "02:00 CEST")) for line in out) == 2  # 02:00 twice on that day

    assert cli.main(["health", "--day", DAY.isoformat(), "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["polls_failed_by_reason"] == {"unavailable": 1} and len(figures["hours"]) == 25

    assert cli.main(["health", "--day", "2999-01-01"]) == 2
