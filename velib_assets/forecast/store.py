"""Where the forecast assets keep their files in the lake, and reading them back.

- `forecast_features/day=D/part.parquet`: the day's feature rows with targets; `profile.parquet`
  beside it: the day's sums for the hour-of-week profile.
- `forecast_model/day=D/model.json`: the model that forecasts day D, trained on days before D.
- `availability_forecast/day=D/part.parquet`: the forecasts issued at D's latest observation.
- `forecast_backtest/part.parquet` and `forecast_calibration/part.parquet`: the backtest;
  `forecast_scores/day=D/part.parquet`: day D's scored rows, reused while its model and features hold.
"""

import hashlib
from datetime import date, datetime, timedelta
from pathlib import Path

import polars as pl

from velib_assets import lake
from velib_assets.forecast.features import FEATURE_SCHEMA, PROFILE_SUMS_SCHEMA, TARGET_SCHEMA, profile_of
from velib_assets.forecast.model import ForecastModel
from velib_assets.schema import UTC_TS

FEATURES = "forecast_features"
MODEL = "forecast_model"
FORECASTS = "availability_forecast"
BACKTEST = "forecast_backtest"
CALIBRATION = "forecast_calibration"
SCORES = "forecast_scores"
PROFILE_FILE = "profile.parquet"
MODEL_FILE = "model.json"

FORECAST_SCHEMA: dict[str, pl.DataType] = {
    "station_code": pl.String(),
    "name": pl.String(),
    "district": pl.String(),
    "issued_at": UTC_TS,
    "horizon_minutes": pl.Int16(),
    "target_at": UTC_TS,
    "bikes": pl.Float64(),
    "docks": pl.Float64(),
    "p_empty": pl.Float64(),
    "p_full": pl.Float64(),
    "bikes_now": pl.Int32(),
    "docks_now": pl.Int32(),
    "model_version": pl.String(),
}
"""One row per station in service at the issue time and horizon."""


def features_path(root: Path, day: date) -> Path:
    return lake.day_dir(root, FEATURES, day) / lake.PART_FILE


def profile_path(root: Path, day: date) -> Path:
    return lake.day_dir(root, FEATURES, day) / PROFILE_FILE


def model_path(root: Path, day: date) -> Path:
    return lake.day_dir(root, MODEL, day) / MODEL_FILE


def read_features(root: Path, day: date, columns: list[str] | None = None) -> pl.DataFrame:
    """The day's feature rows (only `columns`, if given); none when the day has no features."""
    path = features_path(root, day)
    schema = {**FEATURE_SCHEMA, **TARGET_SCHEMA}
    frame = pl.read_parquet(path, columns=columns) if path.is_file() else pl.DataFrame(schema=schema)
    return frame.select(columns) if columns is not None else frame


def feature_rows(root: Path, day: date) -> int:
    """How many feature rows the day has (0 without features), from the file's footer."""
    path = features_path(root, day)
    return pl.scan_parquet(path).select(pl.len()).collect().item() if path.is_file() else 0


def read_sums(root: Path, day: date) -> pl.DataFrame:
    path = profile_path(root, day)
    return pl.read_parquet(path) if path.is_file() else pl.DataFrame(schema=PROFILE_SUMS_SCHEMA)


def window(day: date, days: int) -> list[date]:
    """The `days` local days before `day`, oldest first."""
    return [day - timedelta(days=back) for back in range(days, 0, -1)]


def days_with_features(root: Path, days: list[date]) -> list[date]:
    return [day for day in days if features_path(root, day).is_file()]


def profile_before(root: Path, day: date, days: int) -> dict[str, pl.DataFrame]:
    """The hour-of-week profile of the `days` days before `day` (those that have features)."""
    return profile_of([read_sums(root, past) for past in days_with_features(root, window(day, days))])


def profiles_before(root: Path, days: list[date], window_days: int) -> dict[date, dict[str, pl.DataFrame]]:
    """`profile_before` of each of `days`, reading each day's sums once (a month of training days
    would otherwise read 28 x 28 files)."""
    needed = sorted({past for day in days for past in window(day, window_days)})
    sums = {past: read_sums(root, past) for past in days_with_features(root, needed)}
    return {day: profile_of([sums[p] for p in window(day, window_days) if p in sums]) for day in days}


def inputs_digest(root: Path, days: list[date], settings_key: str) -> str:
    """What a model of these days is a function of: the bytes of their feature and profile files
    (and the profile files of the days before them) and the settings: equal digests, same model."""
    digest = hashlib.sha256(settings_key.encode())
    for day in days:
        for path in (features_path(root, day), profile_path(root, day)):
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes() if path.is_file() else b"-")
    return digest.hexdigest()


def latest_forecasts(lake_root: Path, issued_by: datetime | None = None) -> pl.DataFrame:
    """The forecasts of the newest issue time in the lake, or the newest at or before `issued_by`
    (a replay must not read forecasts made after its moment); empty when none was built."""
    # A day's partition holds the forecasts issued within it: the newest day with an issue at or
    # before `issued_by` holds the answer, so the alert rule's tick reads one file, not the year.
    for path in sorted((lake_root / FORECASTS).glob(f"day=*/{lake.PART_FILE}"), reverse=True):
        frame = pl.read_parquet(path)
        if issued_by is not None:
            frame = frame.filter(pl.col("issued_at") <= issued_by)
        if frame.height:
            return frame.filter(pl.col("issued_at") == pl.col("issued_at").max())
    return pl.DataFrame(schema=FORECAST_SCHEMA)


def read_model(root: Path, day: date) -> ForecastModel | None:
    path = model_path(root, day)
    return ForecastModel.from_json(path.read_text()) if path.is_file() else None
