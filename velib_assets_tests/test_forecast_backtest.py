"""Baselines and backtest metrics computed by hand on small frames; the backtest's splits."""

from datetime import date

import numpy as np
import polars as pl
import pytest

from velib_assets.forecast import backtest, baselines
from velib_assets.forecast.features import EMPTY, FULL, OK
from velib_assets.forecast.model import ForecastModel


def rows() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "bikes_now": [0, 7, 12, 5],
            "state_now": [EMPTY, OK, FULL, OK],
            "profile_bikes": [3.5, None, 10.0, 1.0],
            "profile_p_empty": [0.25, None, 0.0, 0.6],
            "profile_p_full": [0.0, None, 0.5, 0.0],
        },
        schema_overrides={"state_now": pl.Int8},
    )


def test_persistence_by_hand():
    got = rows().select(baselines.persistence())
    assert got["bikes"].to_list() == [0, 7, 12, 5]
    assert got["p_empty"].to_list() == [1, 0, 0, 0]
    assert got["p_full"].to_list() == [0, 0, 1, 0]


def test_profile_by_hand_falls_back_to_persistence_without_a_past():
    got = rows().select(baselines.profile())
    assert got["bikes"].to_list() == [3.5, 7, 10, 1]
    assert got["p_empty"].to_list() == [0.25, 0, 0, 0.6]
    assert got["p_full"].to_list() == [0, 0, 0.5, 0]


def scored(
    model: str, bikes: list[float], truth: list[float], p: list[float], events: list[bool]
) -> pl.DataFrame:
    n = len(bikes)
    return pl.DataFrame(
        {
            "day": [date(2024, 11, 4)] * n,
            "model": [model] * n,
            "horizon_minutes": [60] * n,
            "bikes_true": truth,
            "empty_true": events,
            "full_true": [False] * (n - 1) + [True],
            "bikes": bikes,
            "p_empty": p,
            "p_full": [0.5] * n,
        },
        schema=backtest.SCORED_SCHEMA,
    )


def test_metrics_by_hand():
    frame = scored("model", [1, 2, 4, 4], [1, 4, 1, 4], [0.9, 0.2, 0.6, 0.1], [True, False, False, True])
    table = backtest.metrics(frame)
    value = dict(table.select("metric", "value").iter_rows())
    assert value["mae_bikes"] == pytest.approx((0 + 2 + 3 + 0) / 4)
    assert value["rmse_bikes"] == pytest.approx(np.sqrt((4 + 9) / 4))
    assert value["brier_empty"] == pytest.approx((0.01 + 0.04 + 0.36 + 0.81) / 4)
    assert value["brier_full"] == pytest.approx(0.25)
    # Positives score 0.9 and 0.1, negatives 0.2 and 0.6: 2 of the 4 pairs ranked right.
    assert value["auc_empty"] == pytest.approx(0.5)
    assert value["auc_full"] == pytest.approx(0.5)  # all scores tie: half
    assert table["rows"].unique().to_list() == [4]
    assert table["days"].unique().to_list() == ["2024-11-04"] and table[
        "days_evaluated"
    ].unique().to_list() == [1]


def test_auc_is_null_with_one_class():
    assert backtest.auc(np.array([0.1, 0.9]), np.array([False, False])) is None


def test_calibration_bins_by_hand():
    frame = scored("model", [0] * 4, [0] * 4, [0.05, 0.07, 0.93, 0.95], [False, True, True, True])
    empty = backtest.calibration(frame).filter(pl.col("event") == "empty")
    assert empty["bin"].to_list() == [0, 9]
    assert empty["mean_predicted"].to_list() == pytest.approx([0.06, 0.94])
    assert empty["observed_frequency"].to_list() == [0.5, 1.0]


def test_the_warning_names_what_the_model_loses():
    table = pl.concat(
        [
            backtest.metrics(scored("model", [1, 2], [1, 2], [0.1, 0.9], [False, True])),
            backtest.metrics(scored("persistence", [1, 3], [1, 2], [0.0, 1.0], [False, True])),
            backtest.metrics(scored("profile", [2, 2], [1, 2], [0.5, 0.5], [False, True])),
        ]
    )
    passed, lost = backtest.beats_baselines(table)
    assert not passed  # persistence is exact on empty (Brier 0), and a tie is no win
    metrics = ("mae_bikes", "brier_empty", "brier_full")
    unscored = [f"+{h} min {m}: no model score" for h in (15, 30) for m in metrics]
    assert lost[:6] == unscored  # a horizon nothing was scored at is never a win
    assert lost[6:] == [
        "+60 min brier_empty: model 0.0100 vs persistence 0.0000",
        "+60 min brier_full: model 0.2500 vs persistence 0.2500",
        "+60 min brier_full: model 0.2500 vs profile 0.2500",
    ]
    better = table.with_columns(
        pl.when(pl.col("model") == "persistence")
        .then(pl.col("value") + 1)
        .otherwise(pl.col("value"))
        .alias("value")
    )
    assert backtest.beats_baselines(better) == (
        False, [*unscored, "+60 min brier_full: model 0.2500 vs profile 0.2500"]
    )


def test_nothing_scored_or_a_missing_baseline_is_no_win():
    assert backtest.beats_baselines(backtest.metrics(pl.DataFrame(schema=backtest.SCORED_SCHEMA)))[0] is False
    model_only = backtest.metrics(scored("model", [1, 2], [1, 2], [0.1, 0.9], [False, True]))
    passed, lost = backtest.beats_baselines(model_only)
    assert not passed and "+60 min mae_bikes: no persistence score" in lost


def test_a_model_is_never_scored_on_a_day_it_trained_on():
    model = ForecastModel({}, {"version": "v", "training_range": ["2024-11-01", "2024-11-04"]})
    with pytest.raises(ValueError, match="trained through 2024-11-04"):
        backtest.score_day(date(2024, 11, 4), model, pl.DataFrame(), {})
