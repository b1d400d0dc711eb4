"""The two baselines a model must beat, as point counts and probabilities of empty and full.

- persistence: the count stays as it is; the probability of empty (full) is 1 when the station is
  empty (full) now, else 0 (a sure forecast: a Brier score punishes it fully when it is wrong).
- profile: the station's past mean bikes, and frequency of empty and full, at the target's local
  weekday and hour (falling back to that hour of any weekday, then to the station's mean; with no
  past at all, to persistence). The frame must carry `PROFILE_COLUMNS` for the horizon
  (`features.with_profile`).
"""

import polars as pl

from velib_assets.forecast.features import EMPTY, FULL

PREDICTION_COLUMNS = ("bikes", "p_empty", "p_full")


def persistence() -> list[pl.Expr]:
    return [
        pl.col("bikes_now").cast(pl.Float64).alias("bikes"),
        (pl.col("state_now") == EMPTY).cast(pl.Float64).alias("p_empty"),
        (pl.col("state_now") == FULL).cast(pl.Float64).alias("p_full"),
    ]


def profile() -> list[pl.Expr]:
    bikes, p_empty, p_full = persistence()
    return [
        pl.coalesce(pl.col("profile_bikes"), bikes).alias("bikes"),
        pl.coalesce(pl.col("profile_p_empty"), p_empty).alias("p_empty"),
        pl.coalesce(pl.col("profile_p_full"), p_full).alias("p_full"),
    ]


BASELINES = {"persistence": persistence, "profile": profile}
