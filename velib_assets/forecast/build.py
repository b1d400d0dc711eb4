"""Building one day of each forecast asset, and the backtest, from the lake: plain functions of
paths, without Dagster, so the worker processes of a backfill can run them (`velib_assets.workers`).
"""

import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import polars as pl

from velib_assets import lake
from velib_assets.builds import read_clean_day
from velib_assets.forecast import backtest, features, store
from velib_assets.forecast.config import HORIZONS, MIN_TRAINING_DAYS, ForecastSettings
from velib_assets.forecast.model import (
    FORMAT_VERSION,
    MAX_TRAINING_ROWS,
    PARAMS,
    ROUNDS,
    ForecastModel,
    predict,
    train,
    training_columns,
    training_rows,
)
from velib_assets.forecast.store import FORECAST_SCHEMA


def series_input(lake_root: Path, day: date) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The day's clean rows and the day before's (empty when it was never built)."""
    clean = read_clean_day(lake_root, day, features.SERIES_INPUT)
    before = day - timedelta(days=1)
    has_before = lake.day_dir(lake_root, "clean_stations", before).is_dir()
    context = read_clean_day(lake_root, before, features.SERIES_INPUT) if has_before else clean.clear()
    return clean, context


@dataclass(frozen=True)
class FeaturedDay:
    rows: int
    stations: int
    origins: int
    with_targets: dict[str, int]


def features_day(lake_root: Path, max_gap: timedelta, settings: ForecastSettings, day: date) -> FeaturedDay:
    clean, context = series_input(lake_root, day)
    frame = features.day_features(clean, context, day, settings.step_minutes, max_gap)
    folder = lake.day_dir(lake_root, store.FEATURES, day)
    lake.write_parquet_file(features.profile_sums(frame), folder / store.PROFILE_FILE)
    lake.write_parquet(frame, folder)
    return FeaturedDay(
        rows=frame.height,
        stations=frame["station_code"].n_unique(),
        origins=frame["origin"].n_unique(),
        with_targets={f"+{h}": int(frame[f"bikes_{h}"].is_not_null().sum()) for h in HORIZONS},
    )


def _settings_key(settings: ForecastSettings) -> str:
    return json.dumps(
        [
            FORMAT_VERSION,
            PARAMS,
            ROUNDS,
            MAX_TRAINING_ROWS,
            settings.seed,
            settings.window_days,
            settings.threads,
        ],
        sort_keys=True,
    )


@dataclass(frozen=True)
class ModelledDay:
    status: str
    """`trained`, `reused` (same inputs as the stored model), or why there is no model."""
    meta: dict[str, object]


def model_day(lake_root: Path, settings: ForecastSettings, day: date) -> ModelledDay:
    """The model that forecasts `day`: trained on the feature rows of up to `window_days` days
    before it (at least `MIN_TRAINING_DAYS`), each with the profile of the days before that one.
    A stored model of the same inputs is reused, so today's hourly refreshes train once."""
    target = store.model_path(lake_root, day)
    days = [
        d
        for d in store.days_with_features(lake_root, store.window(day, settings.window_days))
        if store.feature_rows(lake_root, d)
    ]
    if len(days) < MIN_TRAINING_DAYS:
        target.unlink(missing_ok=True)
        return ModelledDay(
            f"no model: {len(days)} past day(s) with features, at least {MIN_TRAINING_DAYS} needed", {}
        )
    digest = store.inputs_digest(
        lake_root, store.window(day, 2 * settings.window_days), _settings_key(settings)
    )
    stored = store.read_model(lake_root, day)
    if stored is not None and stored.meta.get("inputs") == digest:
        return ModelledDay("reused", stored.meta)
    wanted = list(dict.fromkeys(c for h in HORIZONS for c in training_columns(h)))
    profiles = store.profiles_before(lake_root, days, settings.window_days)
    rows = [(d, store.read_features(lake_root, d, wanted), profiles[d]) for d in days]
    missing = [h for h in HORIZONS if not any(training_rows(frame, h).height for _, frame, _ in rows)]
    if missing:  # short capture sessions: nothing observed that far ahead yet
        target.unlink(missing_ok=True)
        horizons = ", ".join(f"+{h}" for h in missing)
        return ModelledDay(f"no model: no observed {horizons} min target in the {len(days)} past days", {})
    model = train(rows, settings)
    model.meta["inputs"] = digest
    model.meta["forecasts_day"] = day.isoformat()
    lake.write_text(model.to_json(), target)
    return ModelledDay("trained", model.meta)


@dataclass(frozen=True)
class ForecastDay:
    rows: int
    stations: int
    issued_at: datetime | None
    model_version: str | None
    preview: pl.DataFrame


def forecasts_at(
    model: ForecastModel,
    clean: pl.DataFrame,
    context: pl.DataFrame,
    at: datetime,
    profile: dict[str, pl.DataFrame],
    max_gap: timedelta,
) -> pl.DataFrame:
    """Every station in service at `at`: its forecasts at each horizon (FORECAST_SCHEMA)."""
    since = at - features.CONTEXT  # all a feature looks back at: the series is built on that alone
    recent = [frame.filter(pl.col("snapshot_ts").is_between(since, at)) for frame in (context, clean)]
    series = features.station_series(pl.concat(recent), max_gap)
    now = features.features_at(series, [at], max_gap)
    predicted = predict(model, now, profile)
    return (
        predicted.join(
            now.select("station_code", "name", "district", "bikes_now", "docks_now"), on="station_code"
        )
        .with_columns(
            pl.col("origin").alias("issued_at"),
            (pl.col("origin") + pl.duration(minutes=pl.col("horizon_minutes"))).alias("target_at"),
            pl.lit(model.version).alias("model_version"),
        )
        .select(pl.col(c).cast(t) for c, t in FORECAST_SCHEMA.items())
        .sort("station_code", "horizon_minutes")
    )


def forecast_day(lake_root: Path, max_gap: timedelta, settings: ForecastSettings, day: date) -> ForecastDay:
    """The forecasts issued at the day's latest news (its newest capture that does not repeat the
    one before) by the day's model; none (an empty partition) when the day has no model yet.

    Issued at the news, not at the newest capture: when the feed has repeated itself for longer than
    MAX_GAP, no station is observed at the newest capture, and the forecasts' `issued_at` says how
    old the news they start from is."""
    model = store.read_model(lake_root, day)
    clean, context = series_input(lake_root, day)
    folder = lake.day_dir(lake_root, store.FORECASTS, day)
    if model is None or clean.is_empty():
        lake.write_parquet(pl.DataFrame(schema=FORECAST_SCHEMA), folder)
        return ForecastDay(0, 0, None, None, pl.DataFrame())
    at: datetime = features.fresh_captures(clean)["snapshot_ts"].max()  # type: ignore[assignment]
    profile = store.profile_before(lake_root, day, settings.window_days)
    frame = forecasts_at(model, clean, context, at, profile, max_gap)
    lake.write_parquet(frame, folder)
    risk = pl.max_horizontal("p_empty", "p_full")
    preview = frame.filter(pl.col("horizon_minutes") == max(HORIZONS)).sort(risk, descending=True).head(10)
    return ForecastDay(frame.height, frame["station_code"].n_unique(), at, model.version, preview)


def _score_key(lake_root: Path, day: date, model: ForecastModel) -> str:
    """The model's own inputs digest (its training days' features and profile sums, which also make
    the day's profile) and the day's feature file: equal keys, equal scores."""
    digest = hashlib.sha256(f"{model.version} {model.meta.get('inputs')}".encode())
    path = store.features_path(lake_root, day)
    digest.update(path.read_bytes() if path.is_file() else b"-")
    return digest.hexdigest()


def scored_day(lake_root: Path, settings: ForecastSettings, day: date) -> pl.DataFrame:
    """The day's backtest rows (`backtest.SCORED_SCHEMA`), kept beside the backtest and reused while
    the day's model and features are unchanged."""
    model = store.read_model(lake_root, day)
    if model is None:
        return pl.DataFrame(schema=backtest.SCORED_SCHEMA)
    cache = lake.day_dir(lake_root, store.SCORES, day) / lake.PART_FILE
    sidecar = cache.with_suffix(".key")
    key = _score_key(lake_root, day, model)
    if cache.is_file() and sidecar.is_file() and sidecar.read_text() == key:
        return pl.read_parquet(cache)
    profile = store.profile_before(lake_root, day, settings.window_days)
    scored = backtest.score_day(day, model, store.read_features(lake_root, day), profile)
    lake.write_parquet_file(scored, cache)
    lake.write_text(key, sidecar)
    return scored


def backtest_days(lake_root: Path, last: int) -> list[date]:
    """The `last` most recent days that have both a model (trained on the days before them) and
    features: the backtest follows the model as the data grows, at a bounded cost per refresh."""
    folder = lake_root / store.MODEL
    days = sorted(
        date.fromisoformat(p.parent.name.removeprefix("day=")) for p in folder.glob("day=*/model.json")
    )
    return [day for day in days if store.features_path(lake_root, day).is_file()][-last:]
