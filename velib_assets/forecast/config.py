"""The forecast knobs, from the environment, so the assets, the CLI and the benchmark agree."""

import os
from dataclasses import dataclass

ENV_WINDOW_DAYS = "VELIB_FORECAST_WINDOW_DAYS"
ENV_STEP_MINUTES = "VELIB_FORECAST_STEP_MINUTES"
ENV_SEED = "VELIB_FORECAST_SEED"

HORIZONS = (15, 30, 60)
"""Minutes ahead a forecast looks."""
MIN_TRAINING_DAYS = 2
"""Fewer past days than this and no model is trained: one day cannot tell a pattern from an accident."""


def _int(name: str, default: int, low: int, high: int) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{name}={text!r} is not a whole number") from None
    if not low <= value <= high:
        raise ValueError(f"{name}={value} is not within {low}..{high}")
    return value


@dataclass(frozen=True)
class ForecastSettings:
    window_days: int = 28
    """Days before a partition that its model trains on (fewer when fewer exist, at least two)."""
    step_minutes: int = 15
    """Training and backtest origins every this many minutes: a month of minute history sampled
    every 15 minutes is 4 M rows, which trains in a minute on two cores; every minute would be 60 M."""
    seed: int = 7
    threads: int = 1
    """Fixed, with `deterministic`, so the same data gives the same trees on any machine. One: on a
    busy two-core machine LightGBM's OpenMP threads spin against the pipeline's other processes
    (two threads measured 4x slower than one there)."""

    @classmethod
    def from_env(cls) -> "ForecastSettings":
        return cls(
            window_days=_int(ENV_WINDOW_DAYS, 28, MIN_TRAINING_DAYS, 366),
            step_minutes=_int(ENV_STEP_MINUTES, 15, 1, 60),
            seed=_int(ENV_SEED, 7, 0, 2**31 - 1),
        )
