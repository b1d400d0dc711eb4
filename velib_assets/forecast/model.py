"""The forecaster: per horizon, a LightGBM regressor of the change in bikes and two classifiers,
empty and full.

LightGBM rather than scikit-learn's HistGradientBoosting: the same histogram algorithm, but native
categorical features (the station's state), a text model format that is diffable and loads without
pickle, a `deterministic` mode, and no extra dependency (scikit-learn is not installed; LightGBM is
pinned). The regressor learns the change from now, not the count: persistence is then its zero, and
trees need not relearn each station's level. Predicted bikes are clipped to [0, bikes + docks now]
and docks are the rest, so a forecast never exceeds the station's working docks.

Deterministic: rows sorted by (origin, station), `deterministic` and `force_row_wise` on, threads
and seed fixed: the same rows and seed give the same trees, byte for byte.
"""

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date

import lightgbm as lgb
import numpy as np
import polars as pl

from velib_assets.forecast.config import HORIZONS, ForecastSettings
from velib_assets.forecast.features import PROFILE_COLUMNS, with_profile

FORMAT_VERSION = 3
"""Bumped when features or targets change: a stored model of another format is retrained."""

BASE_FEATURES = (
    "bikes_now",
    "docks_now",
    "total_now",
    "capacity",
    "fill_now",
    "state_now",
    "age_minutes",
    "minutes_in_state",
    "delta_5",
    "delta_15",
    "delta_60",
    "local_hour",
    "weekday",
    "district_code",
)
FEATURES = (*BASE_FEATURES, *PROFILE_COLUMNS, "profile_gap")
"""`profile_gap`: the profile's bikes minus bikes now, what the station usually moves towards."""
CATEGORICAL = ("state_now",)
ROUNDS = 100
MAX_TRAINING_ROWS = 500_000
"""Per horizon: a month of 15-minute origins is 4 M rows; a seeded sample of this many trains the
nine boosters in under a minute of one core (benchmarks/forecast.py)."""
PARAMS: dict[str, object] = {
    "learning_rate": 0.1,
    "num_leaves": 31,
    "min_data_in_leaf": 200,
    "feature_fraction": 0.9,
    "max_bin": 127,
    "deterministic": True,
    "force_row_wise": True,
    "verbosity": -1,
}
TARGETS = ("bikes", "empty", "full")


def booster_name(target: str, horizon: int) -> str:
    return f"{target}_{horizon}"


def design(frame: pl.DataFrame) -> np.ndarray:
    """The feature matrix of `frame` (which carries the profile at its horizon), float32."""
    with_gap = frame.with_columns((pl.col("profile_bikes") - pl.col("bikes_now")).alias("profile_gap"))
    return with_gap.select(pl.col(name).cast(pl.Float32) for name in FEATURES).to_numpy()


def training_rows(frame: pl.DataFrame, horizon: int) -> pl.DataFrame:
    """Rows in service at the origin whose target was observed."""
    return frame.filter(pl.col("in_service_now") & pl.col(f"bikes_{horizon}").is_not_null())


@dataclass
class ForecastModel:
    boosters: dict[str, lgb.Booster]
    meta: dict[str, object] = field(default_factory=dict)

    @property
    def version(self) -> str:
        return str(self.meta["version"])

    def to_json(self) -> str:
        texts = {name: booster.model_to_string() for name, booster in sorted(self.boosters.items())}
        return json.dumps({"meta": self.meta, "boosters": texts})

    @classmethod
    def from_json(cls, text: str) -> "ForecastModel":
        stored = json.loads(text)
        boosters = {name: lgb.Booster(model_str=body) for name, body in stored["boosters"].items()}
        return cls(boosters, stored["meta"])


def _fit(x: np.ndarray, y: np.ndarray, objective: str, settings: ForecastSettings) -> lgb.Booster:
    params = {**PARAMS, "objective": objective, "seed": settings.seed, "num_threads": settings.threads}
    categorical = [FEATURES.index(name) for name in CATEGORICAL]
    data = lgb.Dataset(x, y, feature_name=list(FEATURES), categorical_feature=categorical, free_raw_data=True)
    return lgb.train(params, data, num_boost_round=ROUNDS)


def training_columns(horizon: int) -> list[str]:
    """What training at `horizon` reads of a day's features: no names, no other horizon."""
    keys = ["station_code", "origin", "in_service_now"]
    targets = [f"bikes_{horizon}", f"empty_{horizon}", f"full_{horizon}"]
    return [*keys, *BASE_FEATURES, *targets]


def train(
    days: Sequence[tuple[date, pl.DataFrame, dict[str, pl.DataFrame]]], settings: ForecastSettings
) -> ForecastModel:
    """Fit the boosters on the feature rows of `days` (each with the profile of the days before it).

    Past `MAX_TRAINING_ROWS` rows per horizon, each day keeps the same seeded share of its rows, so a
    month never sits in memory whole. Raises ValueError when there is nothing to learn from."""
    boosters: dict[str, lgb.Booster] = {}
    fit: dict[str, float] = {}
    rows: dict[str, int] = {}
    for horizon in HORIZONS:
        usable = [training_rows(frame.select(training_columns(horizon)), horizon) for _, frame, _ in days]
        total = sum(part.height for part in usable)
        if total == 0:
            raise ValueError(f"no feature row with an observed +{horizon} min target to train on")
        share = min(1.0, MAX_TRAINING_ROWS / total)
        parts = []
        for (day, _, profile), part in zip(days, usable, strict=True):
            part = part.sort("origin", "station_code")
            if share < 1.0:
                keep = (
                    np.random.default_rng([settings.seed, day.toordinal(), horizon]).random(part.height)
                    < share
                )
                part = part.filter(pl.Series(keep))
            parts.append(with_profile(part, profile, horizon))
        table = pl.concat(parts)
        del usable, parts
        x = design(table)
        bikes_now = table["bikes_now"].to_numpy().astype(np.float64)
        change = table[f"bikes_{horizon}"].to_numpy().astype(np.float64) - bikes_now
        targets = {
            "bikes": (change, "regression_l1"),
            "empty": (table[f"empty_{horizon}"].fill_null(False).to_numpy().astype(np.float64), "binary"),
            "full": (table[f"full_{horizon}"].fill_null(False).to_numpy().astype(np.float64), "binary"),
        }
        for target, (y, objective) in targets.items():
            name = booster_name(target, horizon)
            boosters[name] = _fit(x, y, objective, settings)
            predicted = boosters[name].predict(x, num_threads=settings.threads)
            error = np.mean(np.abs(predicted - y)) if target == "bikes" else np.mean((predicted - y) ** 2)
            fit[f"training_{'mae_bikes' if target == 'bikes' else 'brier_' + target}_{horizon}"] = round(
                float(error), 4
            )
        rows[str(horizon)] = table.height
        del x, table
    trained_on = [day.isoformat() for day, frame, _ in days if frame.height]
    texts = "".join(boosters[name].model_to_string() for name in sorted(boosters))
    digest = hashlib.sha256(texts.encode()).hexdigest()[:12]
    meta: dict[str, object] = {
        "version": f"lgbm-{trained_on[-1]}-{digest}",
        "format": FORMAT_VERSION,
        "library": f"lightgbm {lgb.__version__}",
        "trained_on": trained_on,
        "training_range": [trained_on[0], trained_on[-1]],
        "training_rows": rows,
        "training_fit": fit,
        "seed": settings.seed,
        "threads": settings.threads,
        "step_minutes": settings.step_minutes,
        "rounds": ROUNDS,
        "params": PARAMS,
        "features": list(FEATURES),
    }
    return ForecastModel(boosters, meta)


def predict(model: ForecastModel, frame: pl.DataFrame, profile: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """Forecasts of the in-service rows of `frame` at every horizon: one row per station, origin and
    horizon, with bikes and docks predicted and the probabilities of empty and full."""
    live = frame.filter(pl.col("in_service_now")).sort("origin", "station_code")
    parts = []
    for horizon in HORIZONS:
        rows = with_profile(live, profile, horizon)
        x = design(rows)
        threads = int(model.meta.get("threads", 2))
        change = model.boosters[booster_name("bikes", horizon)].predict(x, num_threads=threads)
        bikes = np.clip(rows["bikes_now"].to_numpy() + change, 0, rows["total_now"].to_numpy())
        parts.append(
            rows.select(
                "station_code",
                "origin",
                pl.lit(horizon, pl.Int16).alias("horizon_minutes"),
                pl.Series("bikes", bikes, pl.Float64),
                (pl.col("total_now") - pl.Series(bikes)).cast(pl.Float64).alias("docks"),
                pl.Series(
                    "p_empty", model.boosters[booster_name("empty", horizon)].predict(x, num_threads=threads)
                ),
                pl.Series(
                    "p_full", model.boosters[booster_name("full", horizon)].predict(x, num_threads=threads)
                ),
            )
        )
    return pl.concat(parts).sort("station_code", "origin", "horizon_minutes")
