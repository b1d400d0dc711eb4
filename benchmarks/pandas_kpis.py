"""The DESIGN §3 KPIs in plain pandas: the baseline an analyst would write, one local day at a time.

Same rules as `velib_assets.kpis`: quarantine rows without a code or with missing, negative or absurd
counts; keep the last row per (station_code, snapshot_ts); metadata from the capture, else from the
station reference; stale, in-service, empty, full and nearly empty/full flags; each observation
weighted within its UTC hour by `min(next, t + MAX_GAP, hour end) - t`. Outputs, like the pipeline's
marts: station occupancy per hour, district occupancy per hour (both written as Parquet) and the
daily rankings with the longest streaks. A day at a time keeps memory bounded.
"""

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl

from benchmarks.generate import load_reference
from benchmarks.workload import RANKING_COLUMNS, Workload, run_child, thresholds
from velib_assets.settings import KpiThresholds

ABSURD_COUNT = 1000
COLUMNS = [
    "snapshot_ts", "station_code", "capacity", "bikes", "mechanical", "ebike", "docks",
    "is_installed", "is_renting", "is_returning", "reported_at", "commune",
]
COUNTS = ["bikes", "docks", "mechanical", "ebike", "capacity"]
FLAGS = {
    "in_service_minutes": "in_service",
    "empty_minutes": "is_empty",
    "full_minutes": "is_full",
    "nearly_empty_minutes": "is_nearly_empty",
    "nearly_full_minutes": "is_nearly_full",
}
US_PER_MINUTE = 60_000_000


def clean(raw: pd.DataFrame, reference: pd.DataFrame, limits: KpiThresholds) -> pd.DataFrame:
    """Usable rows, last per (station_code, snapshot_ts), with the commune filled and the KPI flags."""
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
    rows = rows.merge(reference, on="station_code", how="left")
    rows["commune"] = rows["commune"].fillna(rows["ref_commune"])
    total = rows["bikes"] + rows["docks"]
    stale = (rows["snapshot_ts"] - rows["reported_at"]) > pd.Timedelta(limits.stale_after)
    rows["in_service"] = (
        rows["is_installed"].fillna(False).astype(bool)
        & rows["is_renting"].fillna(False).astype(bool)
        & rows["is_returning"].fillna(False).astype(bool)
        & ~stale
        & (total > 0)
    )
    rows["fill_rate"] = (rows["bikes"] / total).where(total > 0)
    rows["is_empty"] = rows["in_service"] & (rows["bikes"] == 0)
    rows["is_full"] = rows["in_service"] & (rows["docks"] == 0)
    rows["is_nearly_empty"] = rows["in_service"] & (rows["fill_rate"] <= limits.nearly_empty_rate)
    rows["is_nearly_full"] = rows["in_service"] & (rows["fill_rate"] >= limits.nearly_full_rate)
    return rows


def weighted(rows: pd.DataFrame, limits: KpiThresholds) -> pd.DataFrame:
    """Sort by station and time and add how long each observation counts within its UTC hour, `us`.

    Durations stay integer microseconds until the end, so sums are exact and equal totals really tie
    (the rank's tie-breaks then decide, not floating-point noise).
    """
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


def district(codes: pd.Series, communes: pd.Series) -> pd.Series:
    """"Paris 16e" from the code of a Paris station (`16107` -> 16), else the commune, else "Unknown"."""
    prefix = pd.to_numeric(codes.str.extract(r"^(\d{1,2})\d{3}$")[0], errors="coerce")
    paris = (communes == "Paris") & prefix.between(1, 20)
    label = "Paris " + prefix.astype("Int64").astype(str) + np.where(prefix == 1, "er", "e")
    return label.where(paris, communes.fillna("Unknown"))


def hourly_occupancy(rows: pd.DataFrame) -> pd.DataFrame:
    us = rows["us"]
    frame = pd.DataFrame(
        {
            "station_code": rows["station_code"],
            "hour_start": rows["hour_start"],
            "observed_minutes": us,
            **{name: us * rows[flag] for name, flag in FLAGS.items()},
            "rate_us": us.where(rows["fill_rate"].notna(), 0),
            "rate_weighted": us * rows["fill_rate"].fillna(0.0),
            "bikes": rows["bikes"],
            "docks": rows["docks"],
            "ebike": rows["ebike"],
            "commune": rows["commune"],
        }
    )
    grouped = frame.groupby(["station_code", "hour_start"], sort=True)
    sums = grouped[["observed_minutes", *FLAGS, "rate_us", "rate_weighted"]].sum()
    hourly = sums.join(
        grouped.agg(
            min_bikes=("bikes", "min"), max_bikes=("bikes", "max"), min_docks=("docks", "min"),
            max_docks=("docks", "max"), mean_ebike=("ebike", "mean"), snapshots=("bikes", "size"),
            commune=("commune", "last"),
        )
    ).reset_index()
    hourly["mean_fill_rate"] = (hourly["rate_weighted"] / hourly["rate_us"]).where(hourly["rate_us"] > 0)
    hourly["district"] = district(hourly["station_code"], hourly["commune"])
    return hourly.drop(columns=["rate_us", "rate_weighted", "commune"])


def district_occupancy(hourly: pd.DataFrame) -> pd.DataFrame:
    minutes = ["observed_minutes", *FLAGS]
    return (
        hourly.groupby(["district", "hour_start"])
        .agg(
            stations=("station_code", "size"),
            **{name: (name, "sum") for name in minutes},
            mean_fill_rate=("mean_fill_rate", "mean"),
            mean_ebike=("mean_ebike", "mean"),
            snapshots=("snapshots", "sum"),
        )
        .reset_index()
    )


def longest_streak(rows: pd.DataFrame, flag: str, limits: KpiThresholds) -> pd.Series:
    """Per station, the longest run of consecutive `flag` observations no more than MAX_GAP apart."""
    by_station = rows.groupby("station_code", sort=False)
    gap_break = (rows["snapshot_ts"] - by_station["snapshot_ts"].shift(1)) > pd.Timedelta(limits.max_gap)
    first = by_station.cumcount() == 0
    changed = rows[flag] != by_station[flag].shift(1)
    run = (first | gap_break | changed).cumsum()
    flagged = rows.loc[rows[flag]]
    return flagged.groupby([flagged["station_code"], run[rows[flag]]])["us"].sum().groupby(level=0).max()


def day_rankings(rows: pd.DataFrame, hourly: pd.DataFrame, day: date, limits: KpiThresholds) -> pd.DataFrame:
    totals = hourly.groupby("station_code")[["in_service_minutes", "empty_minutes", "full_minutes"]].sum()
    totals = totals[totals["in_service_minutes"] > 0].copy()
    totals["critical_minutes"] = totals["empty_minutes"] + totals["full_minutes"]
    for flag, kind in (("is_empty", "empty"), ("is_full", "full")):
        longest = longest_streak(rows, flag, limits)
        totals[f"longest_{kind}_streak_minutes"] = longest.reindex(totals.index).fillna(0)
    ranked = (
        totals.reset_index()
        .sort_values(["critical_minutes", "empty_minutes", "station_code"], ascending=[False, False, True])
        .reset_index(drop=True)
    )
    ranked["rank"] = np.arange(1, len(ranked) + 1, dtype=np.uint32)
    ranked["day"] = day
    return ranked[list(RANKING_COLUMNS)]


def to_minutes(frame: pd.DataFrame) -> pd.DataFrame:
    columns = [c for c in frame.columns if c.endswith("_minutes")]
    frame[columns] = frame[columns] / US_PER_MINUTE
    return frame


def rankings(workload: Workload) -> pl.DataFrame:
    limits = thresholds()
    reference = load_reference().select(
        "station_code", pl.col("commune").alias("ref_commune")
    ).to_pandas()
    out = workload.data_dir / "baselines" / "pandas"
    days = []
    for day in workload.day_list:
        files = workload.raw_files(day)
        if not files:
            continue
        raw = pd.concat([pd.read_parquet(path, columns=COLUMNS) for path in files], ignore_index=True)
        rows = weighted(clean(raw, reference, limits), limits)
        hourly = hourly_occupancy(rows)
        districts = district_occupancy(hourly)
        days.append(to_minutes(day_rankings(rows, hourly, day, limits)))
        write(to_minutes(hourly), out / "station_occupancy" / f"{day}.parquet")
        write(to_minutes(districts), out / "district_occupancy" / f"{day}.parquet")
    frame = pd.concat(days, ignore_index=True) if days else pd.DataFrame(columns=list(RANKING_COLUMNS))
    return pl.from_pandas(frame).with_columns(pl.col("day").cast(pl.Date), pl.col("rank").cast(pl.UInt32))


def write(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, compression="zstd", index=False)


if __name__ == "__main__":
    run_child(rankings)
