"""A real morning replayed: the bundled exports of 2024-11-04, 09:05 to 12:00 Paris time, evaluated
capture by capture as the sensor would, give exactly the station episodes an independent walk over
the same captures finds."""

from datetime import UTC, datetime, timedelta

import polars as pl

from velib_assets import alerts, landing, network_now, snapshots
from velib_assets.kpis.clean import clean_snapshots
from velib_assets.reference import load_bundled_reference
from velib_assets.settings import KpiThresholds

MORNING = ("date=2024-11-04/hour=08", "date=2024-11-04/hour=09", "date=2024-11-04/hour=10")
START, END = datetime(2024, 11, 4, 8, tzinfo=UTC), datetime(2024, 11, 4, 11, tzinfo=UTC)
LIMIT = timedelta(minutes=20)


def expected_episodes(frame: pl.DataFrame, times: list) -> dict[tuple[str, object], object]:
    """(station, start of its empty run) -> when the run ended (None if still on), for every run an
    evaluation at one of `times` saw last at least LIMIT: a plain walk over the captures."""
    clean = clean_snapshots(frame, load_bundled_reference(), KpiThresholds()).clean
    clean = clean.sort("station_code", "snapshot_ts")
    found: dict[tuple[str, object], object] = {}
    for (code,), rows in clean.group_by("station_code", maintain_order=True):
        start = None
        for at, empty in zip(rows["snapshot_ts"], rows["is_empty"], strict=True):
            if empty and start is None:
                start = at
            elif not empty and start is not None:
                if any(start + LIMIT <= t < at for t in times):
                    found[(code, start)] = at
                start = None
        if start is not None and times[-1] - start >= LIMIT:
            found[(code, start)] = None
    return found


def test_a_real_morning_gives_the_episodes_an_independent_walk_finds(data_dir_with, monkeypatch):
    data_dir = data_dir_with(*MORNING)
    monkeypatch.setenv("VELIB_ALERT_MINUTES", "20")
    monkeypatch.setenv("VELIB_FEED_DOWN_MINUTES", "30")
    monkeypatch.delenv("VELIB_ALERT_URLS", raising=False)
    captures = landing.captures_in_window(data_dir / "landing", START, END)
    times = sorted({c.capture_time for c in captures})
    reference, thresholds = load_bundled_reference(), KpiThresholds()
    for at in times:
        alerts.evaluate_now(data_dir, network_now.as_of(data_dir, reference, thresholds, at).table, at)

    episodes = alerts.episodes(data_dir).filter(pl.col("kind") == "station_empty")
    got = {(row["subject"], row["since"]): row["resolved_at"] for row in episodes.iter_rows(named=True)}
    frame = snapshots.parse_window(data_dir / "landing", times[0], times[-1] + timedelta(seconds=1)).frame
    expected = expected_episodes(frame, times)
    assert len(expected) >= 10  # a real morning: stations do run empty
    assert got == expected

