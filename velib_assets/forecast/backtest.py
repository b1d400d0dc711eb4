"""Rolling-origin backtest: each day is forecast by the model trained on the days before it only,
and scored beside the two baselines on the same rows.

Scored rows: every station in service at an origin of the day's grid whose state at `origin + h`
was observed (within MAX_GAP, by a capture with news: `features.fresh_captures`) inside the same
day. Metrics per model and horizon: MAE and RMSE of bikes, Brier score and ROC AUC of empty and of
full; calibration is the observed frequency of the event against the mean predicted probability in
ten bins of probability (0-0.1, ..., 0.9-1). ROC AUC is the Mann-Whitney U statistic over
(positives x negatives) (scipy), null when a day range saw only one class.
"""

from datetime import date

import numpy as np
import polars as pl
from scipy.stats import mannwhitneyu

from velib_assets.forecast import baselines
from velib_assets.forecast.config import HORIZONS
from velib_assets.forecast.features import with_profile
from velib_assets.forecast.model import ForecastModel, predict

MODELS = ("model", "persistence", "profile")
METRICS = ("mae_bikes", "rmse_bikes", "brier_empty", "brier_full", "auc_empty", "auc_full")

SCORED_SCHEMA: dict[str, pl.DataType] = {
    "day": pl.Date(),
    "model": pl.String(),
    "horizon_minutes": pl.Int16(),
    "bikes_true": pl.Float64(),
    "empty_true": pl.Boolean(),
    "full_true": pl.Boolean(),
    "bikes": pl.Float64(),
    "p_empty": pl.Float64(),
    "p_full": pl.Float64(),
}
BACKTEST_SCHEMA: dict[str, pl.DataType] = {
    "model": pl.String(),
    "horizon_minutes": pl.Int16(),
    "metric": pl.String(),
    "value": pl.Float64(),
    "rows": pl.Int64(),
    "days_evaluated": pl.Int32(),
    "first_day": pl.Date(),
    "last_day": pl.Date(),
    "days": pl.String(),
}
CALIBRATION_SCHEMA: dict[str, pl.DataType] = {
    "model": pl.String(),
    "horizon_minutes": pl.Int16(),
    "event": pl.String(),
    "bin": pl.Int8(),
    "bin_low": pl.Float64(),
    "bin_high": pl.Float64(),
    "rows": pl.Int64(),
    "mean_predicted": pl.Float64(),
    "observed_frequency": pl.Float64(),
}


def score_day(
    day: date, model: ForecastModel, features: pl.DataFrame, profile: dict[str, pl.DataFrame]
) -> pl.DataFrame:
    """The day's scored rows for the model and both baselines (SCORED_SCHEMA).

    The model must have been trained on days before `day`: a model that saw the day is refused."""
    trained = model.meta.get("training_range") or ["", ""]
    if str(trained[1]) >= day.isoformat():
        raise ValueError(
            f"model {model.version} was trained through {trained[1]}: it cannot be scored on {day}"
        )
    live = features.filter(pl.col("in_service_now"))
    if live.is_empty():
        return pl.DataFrame(schema=SCORED_SCHEMA)
    forecasts = predict(model, live, profile)
    keys = ["station_code", "origin"]
    parts = []
    for horizon in HORIZONS:
        rows = with_profile(live.filter(pl.col(f"bikes_{horizon}").is_not_null()), profile, horizon)
        truth = rows.select(
            *keys,
            pl.col(f"bikes_{horizon}").cast(pl.Float64).alias("bikes_true"),
            pl.col(f"empty_{horizon}").alias("empty_true"),
            pl.col(f"full_{horizon}").alias("full_true"),
        )
        answers = {
            name: rows.select(*keys, *expressions()) for name, expressions in baselines.BASELINES.items()
        }
        answers["model"] = forecasts.filter(pl.col("horizon_minutes") == horizon).select(
            *keys, *baselines.PREDICTION_COLUMNS
        )
        for name in MODELS:
            scored = truth.join(answers[name], on=keys, how="inner", maintain_order="left")
            parts.append(
                scored.with_columns(pl.lit(name).alias("model"), pl.lit(horizon).alias("horizon_minutes"))
            )
    return pl.concat(
        p.with_columns(pl.lit(day).alias("day")).select(pl.col(c).cast(t) for c, t in SCORED_SCHEMA.items())
        for p in parts
    )


def auc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """ROC AUC: the probability that a positive outranks a negative (ties count half)."""
    positives, negatives = scores[labels], scores[~labels]
    if positives.size == 0 or negatives.size == 0:
        return None
    return float(mannwhitneyu(positives, negatives).statistic / (positives.size * negatives.size))


def metrics(scored: pl.DataFrame) -> pl.DataFrame:
    """One row per model, horizon and metric (BACKTEST_SCHEMA) over all scored days."""
    days = sorted(scored["day"].unique().to_list())
    rows = []
    for (name, horizon), group in scored.sort("model", "horizon_minutes", maintain_order=True).group_by(
        "model", "horizon_minutes", maintain_order=True
    ):
        error = group["bikes"].to_numpy() - group["bikes_true"].to_numpy()
        empty, full = group["empty_true"].to_numpy(), group["full_true"].to_numpy()
        p_empty, p_full = group["p_empty"].to_numpy(), group["p_full"].to_numpy()
        values = {
            "mae_bikes": float(np.mean(np.abs(error))),
            "rmse_bikes": float(np.sqrt(np.mean(error**2))),
            "brier_empty": float(np.mean((p_empty - empty) ** 2)),
            "brier_full": float(np.mean((p_full - full) ** 2)),
            "auc_empty": auc(p_empty, empty),
            "auc_full": auc(p_full, full),
        }
        for metric in METRICS:
            rows.append((name, horizon, metric, values[metric], group.height))
    frame = pl.DataFrame(rows, schema=["model", "horizon_minutes", "metric", "value", "rows"], orient="row")
    return frame.with_columns(
        pl.lit(len(days)).alias("days_evaluated"),
        pl.lit(days[0] if days else None, pl.Date).alias("first_day"),
        pl.lit(days[-1] if days else None, pl.Date).alias("last_day"),
        pl.lit(",".join(d.isoformat() for d in days)).alias("days"),
    ).select(pl.col(c).cast(t) for c, t in BACKTEST_SCHEMA.items())


def calibration(scored: pl.DataFrame) -> pl.DataFrame:
    """Observed frequency against mean predicted probability in ten bins, per model, horizon, event."""
    parts = []
    for event in ("empty", "full"):
        binned = scored.with_columns(
            (pl.col(f"p_{event}") * 10).floor().clip(0, 9).cast(pl.Int8).alias("bin")
        )
        parts.append(
            binned.group_by("model", "horizon_minutes", "bin")
            .agg(
                pl.len().alias("rows"),
                pl.col(f"p_{event}").mean().alias("mean_predicted"),
                pl.col(f"{event}_true").cast(pl.Float64).mean().alias("observed_frequency"),
            )
            .with_columns(
                pl.lit(event).alias("event"),
                (pl.col("bin").cast(pl.Float64) / 10).alias("bin_low"),
                ((pl.col("bin").cast(pl.Float64) + 1) / 10).alias("bin_high"),
            )
        )
    frame = pl.concat(parts) if parts else pl.DataFrame(schema=CALIBRATION_SCHEMA)
    return frame.select(pl.col(c).cast(t) for c, t in CALIBRATION_SCHEMA.items()).sort(
        "model", "horizon_minutes", "event", "bin"
    )


def beats_baselines(table: pl.DataFrame) -> tuple[bool, list[str]]:
    """Whether the model beats both baselines on MAE of bikes and the Brier scores of empty and full
    at every horizon, and the comparisons it loses (lower is better for all three)."""
    lost = []
    for horizon in HORIZONS:
        at = table.filter(pl.col("horizon_minutes") == horizon)
        for metric in ("mae_bikes", "brier_empty", "brier_full"):
            values = dict(at.filter(pl.col("metric") == metric).select("model", "value").iter_rows())
            if values.get("model") is None:
                lost.append(f"+{horizon} min {metric}: no model score")
                continue
            for baseline in ("persistence", "profile"):
                if values.get(baseline) is None:
                    lost.append(f"+{horizon} min {metric}: no {baseline} score")
                elif not values["model"] < values[baseline]:
                    versus = f"model {values['model']:.4f} vs {baseline} {values[baseline]:.4f}"
                    lost.append(f"+{horizon} min {metric}: {versus}")
    return not lost, lost
