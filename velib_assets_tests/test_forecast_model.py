"""The model on a synthetic history with a known daily pattern: it beats persistence, it is
deterministic, its backtest never scores a day it trained on, and it needs two past days."""

import shutil
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import pytest

from velib_assets import lake
from velib_assets.forecast import backtest, build, store
from velib_assets.forecast.config import ForecastSettings
from velib_assets.forecast.model import ForecastModel, predict, train
from velib_assets_tests.forecast_history import clean_day, write_clean, write_history

MAX_GAP = timedelta(minutes=15)
FIRST = date(2024, 11, 4)
SETTINGS = ForecastSettings(window_days=28, step_minutes=15, seed=7)


@pytest.fixture(scope="module")
def lake_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six days of history, their features, a model per day, and the backtest's scored days."""
    root = tmp_path_factory.mktemp("forecast") / "lake"
    for day in write_history(root, FIRST, 6):
        build.features_day(root, MAX_GAP, SETTINGS, day)
        build.model_day(root, SETTINGS, day)
    return root


def training_rows(root: Path, days: list[date]):
    return [
        (d, store.read_features(root, d), store.profile_before(root, d, SETTINGS.window_days)) for d in days
    ]


def scores(root: Path) -> pl.DataFrame:
    scored = pl.concat(
        build.scored_day(root, SETTINGS, day) for day in build.backtest_days(root, SETTINGS.window_days)
    )
    return backtest.metrics(scored)


def value(table: pl.DataFrame, model: str, horizon: int, metric: str) -> float:
    return table.filter(
        (pl.col("model") == model) & (pl.col("horizon_minutes") == horizon) & (pl.col("metric") == metric)
    )["value"].item()


def test_the_model_beats_persistence_on_a_daily_pattern(lake_root: Path):
    table = scores(lake_root)
    assert value(table, "model", 60, "mae_bikes") < 0.85 * value(table, "persistence", 60, "mae_bikes")
    for baseline in ("persistence", "profile"):
        assert value(table, "model", 60, "brier_empty") < value(table, baseline, 60, "brier_empty")
        assert value(table, "model", 60, "mae_bikes") < value(table, baseline, 60, "mae_bikes")
    assert value(table, "model", 60, "auc_empty") > 0.9


def test_the_backtest_scores_only_days_after_each_training_window(lake_root: Path):
    days = build.backtest_days(lake_root, SETTINGS.window_days)
    assert days == [FIRST + timedelta(days=d) for d in range(2, 6)]  # the first two days train only
    for day in days:
        meta = store.read_model(lake_root, day).meta  # type: ignore[union-attr]
        trained = [date.fromisoformat(d) for d in meta["trained_on"]]  # type: ignore[union-attr]
        assert trained == [FIRST + timedelta(days=d) for d in range((day - FIRST).days)]
        assert max(trained) < day
    table = scores(lake_root)
    assert table["days"].unique().to_list() == [",".join(d.isoformat() for d in days)]


def test_fewer_than_two_past_days_train_no_model(lake_root: Path):
    assert store.read_model(lake_root, FIRST) is None
    outcome = build.model_day(lake_root, SETTINGS, FIRST + timedelta(days=1))
    assert outcome.status.startswith("no model: 1 past day(s)")
    assert store.read_model(lake_root, FIRST + timedelta(days=1)) is None


def test_same_data_and_seed_give_the_same_model_and_forecasts(lake_root: Path):
    rows = training_rows(lake_root, [FIRST, FIRST + timedelta(days=1), FIRST + timedelta(days=2)])
    first, second = train(rows, SETTINGS), train(rows, SETTINGS)
    assert first.to_json() == second.to_json()
    day = FIRST + timedelta(days=3)
    profile = store.profile_before(lake_root, day, SETTINGS.window_days)
    frame = store.read_features(lake_root, day)
    reloaded = ForecastModel.from_json(first.to_json())
    assert predict(first, frame, profile).equals(predict(reloaded, frame, profile))
    other = train(rows, ForecastSettings(seed=8))
    assert other.version != first.version  # the seed matters (row sampling and bagging aside, ties)


def test_a_stored_model_is_reused_while_its_inputs_hold(lake_root: Path):
    day = FIRST + timedelta(days=5)
    assert build.model_day(lake_root, SETTINGS, day).status == "reused"
    path = store.features_path(lake_root, day - timedelta(days=1))
    saved = path.read_bytes()
    try:
        frame = pl.read_parquet(path)
        frame.head(frame.height - 1).write_parquet(path)
        assert build.model_day(lake_root, SETTINGS, day).status == "trained"
    finally:
        path.write_bytes(saved)
        build.model_day(lake_root, SETTINGS, day)


def test_past_days_without_a_target_that_far_ahead_train_no_model_rather_than_fail(tmp_path: Path):
    root = tmp_path / "lake"
    for day in (FIRST, FIRST + timedelta(days=1)):
        clean = clean_day(day)
        session = clean.filter(pl.col("snapshot_ts") < pl.col("snapshot_ts").min() + timedelta(minutes=40))
        write_clean(root, day, session)  # 40-minute capture sessions: nothing observed 60 min ahead
        build.features_day(root, MAX_GAP, SETTINGS, day)
    outcome = build.model_day(root, SETTINGS, FIRST + timedelta(days=2))
    assert outcome.status == "no model: no observed +60 min target in the 2 past days"
    assert store.read_model(root, FIRST + timedelta(days=2)) is None


def test_forecasts_are_issued_at_the_newest_news_when_the_feed_repeats(lake_root: Path, tmp_path: Path):
    root = tmp_path / "lake"
    shutil.copytree(lake_root, root)
    day = FIRST + timedelta(days=5)
    clean = clean_day(day)
    times = clean["snapshot_ts"].unique().sort()
    news = times[times.len() - 25]  # the feed repeats this capture for its last two hours
    frozen_from = clean.filter(pl.col("snapshot_ts") == news).drop("snapshot_ts")
    frozen = pl.concat(
        [clean.filter(pl.col("snapshot_ts") <= news)]
        + [frozen_from.with_columns(pl.lit(ts).alias("snapshot_ts")) for ts in times.filter(times > news)],
        how="diagonal",
    ).select(clean.columns)
    write_clean(root, day, frozen)
    issued = build.forecast_day(root, MAX_GAP, SETTINGS, day)
    assert issued.issued_at == news and issued.stations == 30
    forecasts = pl.read_parquet(lake.day_dir(root, store.FORECASTS, day) / lake.PART_FILE)
    assert forecasts["issued_at"].unique().to_list() == [news]
