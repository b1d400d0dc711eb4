"""The DESIGN §3 rankings in plain pandas: the baseline an analyst would write, one local day at a time.

Same rules as `velib_assets.kpis`: quarantine rows without a code or with missing, negative or absurd
counts; keep the last row per (station_code, snapshot_ts); stale, in-service, empty and full flags;
each observation weighted within its UTC hour by `min(next, t + MAX_GAP, hour end) - t`; daily sums,
longest streaks and the rank. A day at a time keeps memory bounded (pandas holds strings as objects).
"""

from datetime import date

import numpy as np
import pandas as pd
import polars as pl

from benchmarks.workload import RANKING_COLUMNS, Workload, run_child, thresholds
from velib_assets.settings import KpiThresholds

ABSURD_COUNT = 1000
COLUMNS = [
    "snapshot_ts", "station_code", "capacity", "bikes", "mechanical", "ebike", "docks",
    "is_installed", "is_renting", "is_returning", "reported_at",
]
COUNTS = ["bikes", "docks", "mechanical", "ebike", "capacity"]
US_PER_MINUTE = 60_000_000


def clean(raw: pd.DataFrame, limits: KpiThresholds) -> pd.DataFrame:
    """Usable rows, last per (station_code, snapshot_ts), with in_service / is_empty / is_full."""
    code = raw["station_code"]
    counts = raw[COUNTS]
    usable = (
        code.notna()
        & (code.str.strip() != "")
        & raw["snapshot_ts"].notna()
        & raw["bikes"].notna()
        & raw["docks"].notna()
        & ~(counts < 0).any(axis=1)
        & ~(counts > ABSURD_COUNT).any(axis=1)
    )
    rows = raw.loc[usable].drop_duplicates(["station_code", "snapshot_ts"], keep="last")
    stale = (rows["snapshot_ts"] - rows["reported_at"]) > pd.Timedelta(limits.stale_after)
    in_service = (
        rows["is_installed"].fillna(False).astype(bool)
        & rows["is_renting"].fillna(False).astype(bool)
        & rows["is_returning"].fillna(False).astype(bool)
        & ~stale
        & ((rows["bikes"] + rows["docks"]) > 0)
    )
    return pd.DataFrame(
        {
            "station_code": rows["station_code"],
            "snapshot_ts": rows["snapshot_ts"],
            "in_service": in_service,
            "is_empty": in_service & (rows["bikes"] == 0),
            "is_full": in_service & (rows["docks"] == 0),
        }
    )


def weighted(rows: pd.DataFrame, limits: KpiThresholds) -> pd.DataFrame:
    """Sort by station and time and add how long each observation counts within its UTC hour, `us`.

Durations stay integer microseconds until the end, so sums are exact and equal totals really tie
(the rank's tie-breaks then decide, not floating-point noise)."""
    rows = rows.sort_values(["station_code", "snapshot_ts"], kind="stable").reset_index(drop=True)
    ts = rows["snapshot_ts"]
    rows["hour_start"] = ts.dt.floor("h")
    hour_end = rows["hour_start"] + pd.Timedelta(hours=1)
    following = rows.groupby(["station_code", "hour_start"], sort=False)["snapshot_ts"].shift(-1)
    cap = ts + pd.Timedelta(limits.max_gap)
    cap = cap.where(cap < hour_end, hour_end)
    end = following.fillna(cap)
    end = end.where(end < cap, cap)
    rows["us"] = (end - ts).dt.as_unit("us").astype("int64")
    return rows


def longest_streak(rows: pd.DataFrame, flag: str, limits: KpiThresholds) -> pd.Series:
    """Per station, the longest run of consecutive `flag` observations no more than MAX_GAP apart."""
    by_station = rows.groupby("station_code", sort=False)
    gap_break = (rows["snapshot_ts"] - by_station["snapshot_ts"].shift(1)) > pd.Timedelta(limits.max_gap)
    first = by_station.cumcount() == 0
    changed = rows[flag] != by_station[flag].shift(1)
    run = (first | gap_break | changed).cumsum()
    flagged = rows.loc[rows[flag]]
    return flagged.groupby([flagged["station_code"], run[rows[flag]]])["us"].sum().groupby(level=0).max()


def day_rankings(raw: pd.DataFrame, day: date, limits: KpiThresholds) -> pd.DataFrame:
    rows = weighted(clean(raw, limits), limits)
    us = rows["us"]
    per_hour = (
        pd.DataFrame(
            {
                "station_code": rows["station_code"],
                "hour_start": rows["hour_start"],
                "in_service_minutes": us * rows["in_service"],
                "empty_minutes": us * rows["is_empty"],
                "full_minutes": us * rows["is_full"],
            }
        )
        .groupby(["station_code", "hour_start"], sort=False)
        .sum()
    )
    totals = per_hour.groupby(level="station_code").sum()
    totals = totals[totals["in_service_minutes"] > 0].copy()
    totals["critical_minutes"] = totals["empty_minutes"] + totals["full_minutes"]
    for flag, name in (("is_empty", "longest_empty_streak_minutes"), ("is_full", "longest_full_streak_minutes")):
        totals[name] = longest_streak(rows, flag, limits).reindex(totals.index).fillna(0)
    ranked = (
        totals.reset_index()
        .sort_values(["critical_minutes", "empty_minutes", "station_code"], ascending=[False, False, True])
        .reset_index(drop=True)
    )
    minute_columns = [c for c in RANKING_COLUMNS if c.endswith("_minutes")]
    ranked[minute_columns] = ranked[minute_columns] / US_PER_MINUTE
    ranked["rank"] = np.arange(1, len(ranked) + 1, dtype=np.uint32)
    ranked["day"] = day
    return ranked[list(RANKING_COLUMNS)]


def rankings(workload: Workload) -> pl.DataFrame:
    limits = thresholds()
    days = []
    for day in workload.day_list:
        files = workload.raw_files(day)
        if not files:
            continue
        raw = pd.concat([pd.read_parquet(path, columns=COLUMNS) for path in files], ignore_index=True)
        days.append(day_rankings(raw, day, limits))
    frame = pd.concat(days, ignore_index=True) if days else pd.DataFrame(columns=list(RANKING_COLUMNS))
    return pl.from_pandas(frame).with_columns(pl.col("day").cast(pl.Date), pl.col("rank").cast(pl.UInt32))


if __name__ == "__main__":
    run_child(rankings)
