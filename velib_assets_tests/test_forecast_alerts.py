"""The optional alert rule "predicted empty within N minutes", read from the latest forecasts."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from velib_assets import lake
from velib_assets.alerts import AlertStore, messages, reconcile, rules
from velib_assets.alerts.rules import AlertRules, conditions
from velib_assets.forecast import store
from velib_assets.network_now import NOW_SCHEMA

THROUGH = datetime(2024, 11, 4, 8, 20, tzinfo=UTC)
ISSUED = datetime(2024, 11, 4, 8, 0, tzinfo=UTC)


def now_row(code: str, state: str, bikes: int) -> dict:
    return {
        "station_code": code,
        "name": f"Station {code}",
        "district": "Paris 16e",
        "capacity": 20,
        "bikes": bikes,
        "mechanical": bikes,
        "ebike": 0,
        "docks": 20 - bikes,
        "state": state,
        "since": THROUGH - timedelta(minutes=5),
        "since_at_least": False,
        "minutes_in_state": 5.0,
        "latest_capture": THROUGH,
        "in_latest_capture": True,
        "through": THROUGH,
    }


def forecast(code: str, horizon: int, p_empty: float, issued: datetime = ISSUED) -> dict:
    return {
        "station_code": code,
        "name": f"Station {code}",
        "district": "Paris 16e",
        "issued_at": issued,
        "horizon_minutes": horizon,
        "target_at": issued + timedelta(minutes=horizon),
        "bikes": 0.5,
        "docks": 19.5,
        "p_empty": p_empty,
        "p_full": 0.0,
        "bikes_now": 2,
        "docks_now": 18,
        "model_version": "v",
    }


@pytest.fixture
def lake_root(tmp_path: Path) -> Path:
    rows = [
        forecast("A", 30, 0.9),  # 08:30: within 30 min of 08:20, likely -> alert
        forecast("A", 60, 0.95),  # 09:00: beyond 30 min
        forecast("B", 15, 0.99),  # 08:15: already past at 08:20
        forecast("B", 60, 0.99),  # beyond
        forecast("C", 30, 0.5),  # within, but not likely enough
        forecast("D", 30, 0.9),  # within and likely, but D is empty already (the station rule's case)
        forecast("A", 30, 0.0, ISSUED - timedelta(days=1)),  # an older issue is never read
    ]
    root = tmp_path / "lake"
    lake.write_parquet(
        pl.DataFrame(rows, schema=store.FORECAST_SCHEMA), lake.day_dir(root, store.FORECASTS, ISSUED.date())
    )
    return root


def table() -> pl.DataFrame:
    rows = [now_row("A", "ok", 2), now_row("B", "ok", 2), now_row("C", "ok", 2), now_row("D", "empty", 0)]
    return pl.DataFrame(rows, schema=NOW_SCHEMA)


def test_the_rule_is_off_by_default_and_configured_by_the_environment(monkeypatch, tmp_path: Path):
    assert AlertRules.from_env().predicted_empty_minutes is None
    monkeypatch.setenv("VELIB_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("VELIB_ALERT_PREDICTED_EMPTY_MINUTES", "30")
    monkeypatch.setenv("VELIB_ALERT_PREDICTED_EMPTY_P", "0.7")
    configured = AlertRules.from_env()
    assert (configured.predicted_empty_minutes, configured.predicted_empty_probability) == (30.0, 0.7)
    assert configured.forecast_lake == tmp_path.resolve() / "lake"
    monkeypatch.setenv("VELIB_ALERT_PREDICTED_EMPTY_P", "80")
    with pytest.raises(ValueError, match="VELIB_ALERT_PREDICTED_EMPTY_P='80' is invalid"):
        AlertRules.from_env()


def test_predicted_empty_within_the_minutes(lake_root: Path):
    rule = AlertRules(predicted_empty_minutes=30, predicted_empty_probability=0.8, forecast_lake=lake_root)
    found = [c for c in conditions(table(), THROUGH, THROUGH, rule) if c.kind == rules.PREDICTED_EMPTY]
    assert [c.subject for c in found] == ["A"]
    assert found[0].since == ISSUED and found[0].details["p_empty"] == 0.9
    wider = AlertRules(predicted_empty_minutes=45, predicted_empty_probability=0.8, forecast_lake=lake_root)
    found = [c for c in conditions(table(), THROUGH, THROUGH, wider) if c.kind == rules.PREDICTED_EMPTY]
    assert [c.subject for c in found] == ["A", "B"] and found[0].details["p_empty"] == 0.95  # 09:00 in reach
    off = AlertRules(forecast_lake=lake_root)
    assert not [c for c in conditions(table(), THROUGH, THROUGH, off) if c.kind == rules.PREDICTED_EMPTY]


def predicted(lake_root: Path, table_now: pl.DataFrame, through: datetime) -> list[str]:
    rule = AlertRules(predicted_empty_minutes=60, predicted_empty_probability=0.8, forecast_lake=lake_root)
    found = conditions(table_now, through, through, rule)
    return [c.subject for c in found if c.kind == rules.PREDICTED_EMPTY]


def test_a_stale_forecast_a_later_one_or_a_refilled_station_is_not_judged(lake_root: Path):
    assert predicted(lake_root, table(), THROUGH) == ["A", "B"]
    # A replay before the issue reads no forecast made after its moment.
    early = THROUGH - timedelta(minutes=30)
    assert predicted(lake_root, table().with_columns(through=pl.lit(early)), early) == []
    # 80 minutes after the issue (no build since): too old to judge.
    late = ISSUED + timedelta(minutes=80)
    assert predicted(lake_root, table().with_columns(through=pl.lit(late)), late) == []
    # A refilled since the forecast (2 bikes then, 12 now).
    refilled = table().with_columns(bikes=pl.when(pl.col("station_code") == "A").then(12).otherwise("bikes"))
    assert predicted(lake_root, refilled, THROUGH) == ["B"]


def test_no_forecasts_yet_is_no_condition(tmp_path: Path):
    rule = AlertRules(predicted_empty_minutes=30, forecast_lake=tmp_path / "lake")
    assert not [c for c in conditions(table(), THROUGH, THROUGH, rule) if c.kind == rules.PREDICTED_EMPTY]


def test_an_episode_opens_once_with_a_message(lake_root: Path, tmp_path: Path):
    rule = AlertRules(predicted_empty_minutes=30, forecast_lake=lake_root)
    found = conditions(table(), THROUGH, THROUGH, rule)
    with AlertStore(tmp_path / "alerts.sqlite") as alert_store:
        assert len(reconcile(alert_store, found, THROUGH, ["json://localhost/hook"]).opened) == 1
        assert reconcile(alert_store, found, THROUGH, ["json://localhost/hook"]).opened == []
    predicted = next(c for c in found if c.kind == rules.PREDICTED_EMPTY)
    text = messages.opened(predicted.kind, predicted.subject, predicted.since, THROUGH, predicted.details)
    assert text == (
        "Vélib' alert: station A Station A (Paris 16e) predicted EMPTY within 30 min (p = 0.90), forecast "
        "since 09:00 CET (20 min): 2 bikes, 18 docks (capacity 20)"
    )


def test_the_newest_issue_is_read_from_the_newest_day_at_or_before_the_moment(tmp_path: Path):
    root = tmp_path / "lake"
    evening = ISSUED - timedelta(hours=12)
    for issued in (evening, ISSUED):
        frame = pl.DataFrame([forecast("A", 30, 0.9, issued)], schema=store.FORECAST_SCHEMA)
        lake.write_parquet(frame, lake.day_dir(root, store.FORECASTS, issued.date()))
    lake.write_parquet(  # a later day without a model: an empty partition
        pl.DataFrame(schema=store.FORECAST_SCHEMA),
        lake.day_dir(root, store.FORECASTS, ISSUED.date() + timedelta(days=1)),
    )
    assert store.latest_forecasts(root)["issued_at"].to_list() == [ISSUED]
    before = store.latest_forecasts(root, issued_by=ISSUED - timedelta(hours=1))
    assert before["issued_at"].to_list() == [evening]
    assert store.latest_forecasts(root, issued_by=evening - timedelta(minutes=1)).is_empty()
