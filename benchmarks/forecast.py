"""The forecasts on a month of minute history: training time and memory, forecasting all stations
for one time, and the model against the baselines on the day after the month.

`python -m benchmarks.forecast [--days 30] [--data-dir D]` generates `days + 1` days of synthetic
history at 1-minute cadence (`benchmarks.generate`, shared with the other benchmarks), cleans them
as `clean_stations` does, builds the forecast features a day at a time, then trains the model that
forecasts day `days + 1` on the `days` days before it (the default 28-day window sees the last 28)
in a child process, whose wall time and peak memory (its whole process tree, `benchmarks.rss`) are
the figures of the training target (under 2 minutes and 2 GiB). It then forecasts every station at
the newest capture of that day (features from the day's clean rows in memory, then the model),
timed in this process (the median of five), and scores the model and both baselines on
that day (`velib_assets.forecast.backtest`). Results go to `benchmarks/results/forecast.json`.
"""

import argparse
import json
import os
import statistics
import sys
import time
from datetime import date, timedelta
from functools import partial
from pathlib import Path

import polars as pl

from benchmarks.generate import DEFAULT_DATA_DIR, DEFAULT_START, generate
from benchmarks.rss import measure
from velib_assets import builds, lake, workers
from velib_assets.forecast import backtest, build, store
from velib_assets.forecast.config import ForecastSettings
from velib_assets.reference import load_bundled_reference
from velib_assets.settings import KpiThresholds

RESULTS = Path(__file__).parent / "results" / "forecast.json"
FORECAST_REPEATS = 5
TARGETS = {"train_wall_s": 120.0, "train_peak_rss_mib": 2048.0, "forecast_one_time_s": 1.0}


def _clean_missing(lake_root: Path, days: list[date]) -> float:
    """Clean the days not cleaned yet, as `clean_stations` does; the seconds it took."""
    todo = [d for d in days if not lake.day_dir(lake_root, builds.CLEAN, d).is_dir()]
    began = time.perf_counter()
    work = partial(builds.clean_day, lake_root, load_bundled_reference(), KpiThresholds.from_env())
    workers.map_parallel(work, todo)
    return time.perf_counter() - began


def _train(lake_root: Path, day: date) -> None:
    """The child: train the model of `day` and print what it trained on."""
    began = time.perf_counter()
    outcome = build.model_day(lake_root, ForecastSettings.from_env(), day)
    meta = outcome.meta
    print(
        json.dumps(
            {
                "status": outcome.status,
                "wall_s": round(time.perf_counter() - began, 2),
                "version": meta.get("version"),
                "training_range": meta.get("training_range"),
                "training_days": len(meta.get("trained_on", [])),  # type: ignore[arg-type]
                "training_rows": meta.get("training_rows"),
            }
        )
    )


def run(data_dir: Path, start: date, days: int) -> dict[str, object]:
    lake_root = data_dir / "lake"
    generated = generate(data_dir, start, days + 1, cadence_s=60)
    every_day = [start + timedelta(days=d) for d in range(days + 1)]
    clean_s = _clean_missing(lake_root, every_day)
    settings = ForecastSettings.from_env()
    max_gap = KpiThresholds.from_env().max_gap

    began = time.perf_counter()
    featured = workers.map_parallel(partial(build.features_day, lake_root, max_gap, settings), every_day)
    features_s = time.perf_counter() - began

    target_day = every_day[-1]
    store.model_path(lake_root, target_day).unlink(missing_ok=True)  # measure a training, not a reuse
    command = [
        sys.executable,
        "-m",
        "benchmarks.forecast",
        "--train",
        target_day.isoformat(),
        "--data-dir",
        str(data_dir),
    ]
    trained = measure(command, env={**os.environ, "POLARS_MAX_THREADS": "2"})
    if trained.returncode != 0:
        raise RuntimeError(f"training failed: {trained.stderr[-2000:]}")
    child = json.loads(trained.stdout.strip().splitlines()[-1])

    model = store.read_model(lake_root, target_day)
    assert model is not None
    profile = store.profile_before(lake_root, target_day, settings.window_days)
    began = time.perf_counter()
    clean, context = build.series_input(lake_root, target_day)
    read_s = time.perf_counter() - began
    at = clean["snapshot_ts"].max()
    timings = []
    for _ in range(FORECAST_REPEATS):  # a shared machine is noisy: the median of a few
        began = time.perf_counter()
        forecasts = build.forecasts_at(model, clean, context, at, profile, max_gap)  # type: ignore[arg-type]
        timings.append(time.perf_counter() - began)
    forecast_s = statistics.median(timings)

    scored = backtest.score_day(target_day, model, store.read_features(lake_root, target_day), profile)
    table = backtest.metrics(scored)
    wide = table.pivot("model", index=["horizon_minutes", "metric"], values="value").sort(
        "horizon_minutes", "metric"
    )
    result: dict[str, object] = {
        "days": days,
        "cadence_s": 60,
        "stations": generated.stations,
        "raw_rows": generated.rows,
        "clean_s": round(clean_s, 1),
        "features_s": round(features_s, 1),
        "feature_rows": sum(f.rows for f in featured),
        "step_minutes": settings.step_minutes,
        "train_wall_s": round(trained.process_wall_s, 1),
        "train_cpu_s": round(trained.cpu_s, 1),
        "train_peak_rss_mib": round(trained.peak_rss_mib, 1),
        "train": child,
        "forecast_day": target_day.isoformat(),
        "forecast_read_clean_s": round(read_s, 3),
        "forecast_one_time_s": round(forecast_s, 3),
        "forecast_one_time_runs_s": [round(t, 3) for t in timings],
        "forecast_rows": forecasts.height,
        "forecast_stations": forecasts["station_code"].n_unique(),
        "backtest_day": wide.with_columns(pl.selectors.float().round(4)).to_dicts(),
    }
    result["targets_met"] = {name: float(result[name]) < limit for name, limit in TARGETS.items()}  # type: ignore[arg-type]
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--start", type=date.fromisoformat, default=DEFAULT_START)
    parser.add_argument(
        "--data-dir", type=Path, default=Path(os.environ.get("VELIB_BENCH_DIR", DEFAULT_DATA_DIR))
    )
    parser.add_argument("--train", type=date.fromisoformat, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.train:
        _train(args.data_dir / "lake", args.train)
        return
    result = run(args.data_dir, args.start, args.days)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
