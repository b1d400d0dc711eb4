"""The DESIGN §3 tables in plain pandas: the baseline an analyst would write, one local day at a time.

Same rules as `velib_assets.kpis`: quarantine rows without a code or with missing, negative or absurd
counts; keep the last row per (station_code, snapshot_ts); metadata from the capture, else from the
station reference; arrondissement, stale, in-service, status, empty, full, nearly empty/full and
capacity-mismatch flags; each observation weighted within its UTC hour by
`min(next, t + MAX_GAP, hour end) - t`. Writes what the project's derived assets write, a file per
table and local day: the clean rows (every CLEAN_SCHEMA column), station and district occupancy per
hour, and the day's rankings with the longest streaks. A day at a time keeps memory bounded.

Every station of the benchmark's history is in the reference, so the project's fallback for unknown
stations (the nearest known station's commune) never applies and is not reimplemented here.
"""

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl

from benchmarks.generate import load_reference
from benchmarks.workload import (
    CLEAN,
    DISTRICT_OCCUPANCY,
    RANKINGS,
    STATION_OCCUPANCY,
    TABLES,
    Workload,
    run_child,
    table_file,
    thresholds,
)
from velib_assets.kpis.clean import ABSURD_COUNT, CLEAN_SCHEMA
from velib_assets.settings import KpiThresholds

COUNTS = ["bikes", "docks", "mechanical", "ebike", "capacity"]
METADATA = ["name", "lat", "lon", "capacity", "commune", "code_insee"]
FLAGS = {
    "in_service_minutes": "in_service",
    "empty_minutes": "is_empty",
    "full_minutes": "is_full",
    "nearly_empty_minutes": "is_nearly_empty",
    "nearly_full_minutes": "is_nearly_full",
}
US_PER_MINUTE = 60_000_000
PANDAS_TYPES = {pl.Int8: "Int8", pl.Int32: "Int32", pl.Int64: "Int64", pl.Boolean: "boolean"}
"""Nullable pandas types for the clean table's integer and boolean columns, so the file holds the
project's types (NumPy would turn an integer column with a null into floats)."""


def arrondissement(codes: pd.Series, communes: pd.Series) -> pd.Series:
    """The code without its last three digits (`16107` -> 16) for a Paris station, when 1..20."""
    prefix = pd.to_numeric(codes.where(codes.str.fullmatch(r"-?\d+")), errors="coerce") // 1000
    return prefix.where((communes == "Paris") & prefix.between(1, 20)).astype("Int8")


def clean(raw: pd.DataFrame, reference: pd.DataFrame, limits: KpiThresholds) -> pd.DataFrame:
    """Usable rows, last per (station_code, snapshot_ts), with metadata filled and the KPI flags."""
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
    for column in METADATA:
        rows[column] = rows[column].fillna(rows.pop(f"ref_{column}"))
    rows["arrondissement"] = arrondissement(rows["station_code"], rows["commune"])
    total = rows["bikes"] + rows["docks"]
    rows["is_stale"] = (rows["snapshot_ts"] - rows["reported_at"]) > pd.Timedelta(limits.stale_after)
    installed = rows["is_installed"].fillna(False).astype(bool)
    rows["in_service"] = (
        installed
        & rows["is_renting"].fillna(False).astype(bool)
        & rows["is_returning"].fillna(False).astype(bool)
        & ~rows["is_stale"]
        & (total > 0)
    )
    serving = np.where(rows["in_service"], "in_service", "out_of_service")
    rows["status"] = np.where(~installed, "closed", serving)
    rows["fill_rate"] = (rows["bikes"] / total).where(total > 0)
    rows["is_empty"] = rows["in_service"] & (rows["bikes"] == 0)
    rows["is_full"] = rows["in_service"] & (rows["docks"] == 0)
    rows["is_nearly_empty"] = rows["in_service"] & (rows["fill_rate"] <= limits.nearly_empty_rate)
    rows["is_nearly_full"] = rows["in_service"] & (rows["fill_rate"] >= limits.nearly_full_rate)
    rows["capacity_mismatch"] = total > rows["capacity"]
    return rows


def clean_table(rows: pd.DataFrame) -> pd.DataFrame:
    """The clean rows as the project's table: CLEAN_SCHEMA's columns, order and types."""
    types = {name: PANDAS_TYPES.get(type(dtype)) for name, dtype in CLEAN_SCHEMA.items()}
    return rows[list(CLEAN_SCHEMA)].astype({name: kind for name, kind in types.items() if kind})


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


def district(arrondissements: pd.Series, communes: pd.Series) -> pd.Series:
    """"Paris 16e" for an arrondissement, else the commune, else "Unknown"."""
    suffix = np.where(arrondissements.eq(1).fillna(False), "er", "e")
    label = "Paris " + arrondissements.astype(str) + suffix
    return label.where(arrondissements.notna(), communes.fillna("Unknown"))


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
            "name": rows["name"],
            "arrondissement": rows["arrondissement"],
            "commune": rows["commune"],
        }
    )
    grouped = frame.groupby(["station_code", "hour_start"], sort=True)
    sums = grouped[["observed_minutes", *FLAGS, "rate_us", "rate_weighted"]].sum()
    hourly = sums.join(
        grouped.agg(
            min_bikes=("bikes", "min"), max_bikes=("bikes", "max"), min_docks=("docks", "min"),
            max_docks=("docks", "max"), mean_ebike=("ebike", "mean"), snapshots=("bikes", "size"),
            name=("name", "last"), arrondissement=("arrondissement", "last"), commune=("commune", "last"),
        )
    ).reset_index()
    hourly["mean_fill_rate"] = (hourly["rate_weighted"] / hourly["rate_us"]).where(hourly["rate_us"] > 0)
    hourly["district"] = district(hourly["arrondissement"], hourly["commune"])
    return hourly.drop(columns=["rate_us", "rate_weighted", "arrondissement", "commune"])


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
    by_station = hourly.groupby("station_code")
    totals = by_station[["in_service_minutes", "empty_minutes", "full_minutes"]].sum()
    totals = totals.join(by_station[["name", "district"]].last())
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
    table = TABLES[RANKINGS]
    return ranked[[*table.keys, *table.columns]]


def to_minutes(frame: pd.DataFrame) -> pd.DataFrame:
    columns = [c for c in frame.columns if c.endswith("_minutes")]
    frame[columns] = frame[columns] / US_PER_MINUTE
    return frame


def write(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, compression="zstd", index=False)


def tables(workload: Workload, out: Path) -> None:
    limits = thresholds()
    reference = load_reference().select(
        "station_code", *(pl.col(c).alias(f"ref_{c}") for c in METADATA)
    ).to_pandas()
    for day in workload.day_list:
        files = workload.raw_files(day)
        if not files:
            continue
        raw = pd.concat([pd.read_parquet(path) for path in files], ignore_index=True)
        rows = clean(raw, reference, limits)
        write(clean_table(rows), table_file(out, CLEAN, day))
        rows = weighted(rows, limits)
        hourly = hourly_occupancy(rows)
        ranking = to_minutes(day_rankings(rows, hourly, day, limits))
        hourly = to_minutes(hourly)
        write(hourly, table_file(out, STATION_OCCUPANCY, day))
        write(district_occupancy(hourly), table_file(out, DISTRICT_OCCUPANCY, day))
        write(ranking, table_file(out, RANKINGS, day))


if __name__ == "__main__":
    run_child(tables)
