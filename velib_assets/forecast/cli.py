"""`velib forecast`: a station's latest forecast, or the stations most likely to be empty or full
within the hour, read from the lake's `availability_forecast` partitions."""

import json

import polars as pl

from velib_assets.cli import UsageError
from velib_assets.forecast.store import latest_forecasts
from velib_assets.settings import PARIS, data_dir


def rank_at_risk(forecasts: pl.DataFrame, top: int) -> pl.DataFrame:
    """One row per station, ranked by its highest probability of being empty or full at any horizon
    (each horizon is a point in time, so this is a lower bound of the chance within the hour)."""
    risk = pl.max_horizontal("p_empty", "p_full")
    ranked = forecasts.group_by("station_code").agg(
        pl.col("name", "district", "bikes_now", "docks_now", "issued_at").first(),
        pl.col("p_empty").max().alias("p_empty_max"),
        pl.col("p_full").max().alias("p_full_max"),
        risk.max().alias("risk"),
        pl.col("horizon_minutes")
        .sort_by(risk, descending=True, maintain_order=True)
        .first()
        .alias("horizon_minutes"),
    )
    outcome = (
        pl.when(pl.col("p_empty_max") >= pl.col("p_full_max")).then(pl.lit("empty")).otherwise(pl.lit("full"))
    )
    return (
        ranked.with_columns(outcome.alias("risk_of"))
        .sort(["risk", "station_code"], descending=[True, False])
        .head(top)
    )


def _iso(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(
        pl.col(c).dt.strftime("%Y-%m-%dT%H:%M:%SZ") for c in ("issued_at", "target_at") if c in frame.columns
    )


def _local(frame: pl.DataFrame) -> str:
    issued = frame["issued_at"].max()
    return issued.astimezone(PARIS).strftime("%Y-%m-%d %H:%M %Z")  # type: ignore[union-attr]


def cmd_forecast(station: str | None, at_risk: bool, top: int, as_json: bool) -> int:
    """Print the newest forecasts (`velib_assets.cli` parses the arguments); bad input and a lake
    without forecasts are `UsageError`s, one line each."""
    root = data_dir()
    forecasts = latest_forecasts(root / "lake")
    if forecasts.is_empty():
        raise UsageError(
            f"no forecasts built yet in {root}: `velib run` builds them once two past days have captures"
        )
    if at_risk:
        ranked = rank_at_risk(forecasts, top)
        if as_json:
            print(json.dumps(_iso(ranked).to_dicts(), ensure_ascii=False, indent=1))
            return 0
        print(f"{ranked.height} stations most likely empty or full within the hour, at {_local(forecasts)}")
        print(f"{'code':<8} {'name':<36} {'district':<20} {'bikes':>5} {'docks':>5}  {'risk':<6}{'p':>6}  at")
        for row in ranked.iter_rows(named=True):
            print(
                f"{row['station_code']:<8} {(row['name'] or '')[:36]:<36} {(row['district'] or '')[:20]:<20} "
                f"{row['bikes_now']:>5} {row['docks_now']:>5}  {row['risk_of']:<6}{row['risk']:>6.2f}  "
                f"+{row['horizon_minutes']} min"
            )
        return 0
    code = (station or "").strip()
    if not code:
        raise UsageError("--station needs a station code, e.g. 16107")
    rows = forecasts.filter(pl.col("station_code") == code).sort("horizon_minutes")
    if rows.is_empty():
        raise UsageError(
            f"no forecast for station {code!r} at {_local(forecasts)}: unknown code, or not in service then "
            f"({forecasts['station_code'].n_unique()} stations have one)"
        )
    if as_json:
        print(json.dumps(_iso(rows).to_dicts(), ensure_ascii=False, indent=1))
        return 0
    first = rows.row(0, named=True)
    print(
        f"station {code} {first['name'] or ''} ({first['district']}): {first['bikes_now']} bikes, "
        f"{first['docks_now']} docks at {_local(rows)}; model {first['model_version']}"
    )
    print(f"{'in':>7}  {'at':<10}{'bikes':>7}{'docks':>7}{'p(empty)':>10}{'p(full)':>9}")
    for row in rows.iter_rows(named=True):
        at = row["target_at"].astimezone(PARIS).strftime("%H:%M %Z")
        ahead = f"+{row['horizon_minutes']} min"
        print(
            f"{ahead:>7}  {at:<10}{row['bikes']:>7.1f}{row['docks']:>7.1f}"
            f"{row['p_empty']:>10.2f}{row['p_full']:>9.2f}"
        )
    return 0
