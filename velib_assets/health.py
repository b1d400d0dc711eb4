"""The collection's health for one local day: captures per hour, polls lost and why, landing lag,
frozen spells and gaps.

Captures come from the landing zone (what was kept), polls from the sensor's poll log (what was
tried: `velib_assets.polls`), frozen spells from the raw hour files' sidecars (the feed answering
with the same station data under new times). A gap is a stretch longer than `MAX_GAP` without a
capture, the day's edges included, up to the end of the part of the day that has elapsed.
"""

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import polars as pl

from velib_assets import lake, landing, polls
from velib_assets.builds import RAW, RawHour
from velib_assets.days import closed_through, day_hours
from velib_assets.kpis.rankings import local_day_bounds
from velib_assets.schema import UTC_TS

HOUR = timedelta(hours=1)
HEALTH_SCHEMA: dict[str, pl.DataType] = {
    "hour_start": UTC_TS,
    "captures": pl.UInt32(),
    "polls": pl.UInt32(),
    "polls_failed": pl.UInt32(),
    "lag_median_s": pl.Float64(),
    "lag_p95_s": pl.Float64(),
    "longest_frozen_s": pl.Float64(),
}
"""One row per UTC hour of the local day (23, 24 or 25 of them)."""


@dataclass(frozen=True)
class DayHealth:
    hours: pl.DataFrame
    failed_by_reason: dict[str, int]
    lag_median_s: float | None
    lag_p95_s: float | None
    gaps: list[tuple[datetime, datetime]]
    frozen_hours: int
    """Hours whose raw file recorded a frozen spell longer than `MAX_GAP`."""

    @property
    def captures(self) -> int:
        return int(self.hours["captures"].sum())

    @property
    def polls(self) -> int:
        return int(self.hours["polls"].sum())

    def figures(self) -> dict[str, object]:
        """The day's figures as plain values (`velib health --json`, the API's health); gaps and
        hours are left to each, which render times their own way."""
        return {
            "captures": self.captures,
            "polls": self.polls,
            "polls_failed_by_reason": self.failed_by_reason,
            "lag_median_s": self.lag_median_s,
            "lag_p95_s": self.lag_p95_s,
            "frozen_hours": self.frozen_hours,
        }


def _gaps(
    times: list[datetime], start: datetime, end: datetime, max_gap: timedelta
) -> list[tuple[datetime, datetime]]:
    edges = [start, *times, end]
    return [(a, b) for a, b in zip(edges, edges[1:], strict=False) if b - a > max_gap]


def day_health(data_dir: Path, day: date, now: datetime, max_gap: timedelta) -> DayHealth:
    start, end = local_day_bounds(day)
    through = closed_through(day, now) if now < end else end
    hours = [hour for hour in day_hours(day) if hour < through]
    captures = landing.captures_in_window(data_dir / "landing", start, through) if hours else []
    polled = polls.read(data_dir, start, through)
    per_hour = []
    for hour in hours:
        in_hour = polled.filter(pl.col("at").is_between(hour, hour + HOUR, closed="left"))
        lags = in_hour.filter(pl.col("outcome") == "landed")["lag_s"].drop_nulls()
        sidecar = RawHour.read(lake.hour_file(data_dir / "lake", RAW, day, hour).with_suffix(".json"))
        per_hour.append(
            {
                "hour_start": hour,
                "captures": sum(1 for c in captures if hour <= c.capture_time < hour + HOUR),
                "polls": in_hour.height,
                "polls_failed": in_hour.filter(pl.col("outcome").is_in(polls.FAILED)).height,
                "lag_median_s": lags.median() if len(lags) else None,
                "lag_p95_s": lags.quantile(0.95, "nearest") if len(lags) else None,
                "longest_frozen_s": sidecar.longest_frozen_s if sidecar else None,
            }
        )
    frame = pl.DataFrame(per_hour, schema=HEALTH_SCHEMA)
    failed = polled.filter(pl.col("outcome").is_in(polls.FAILED))
    lags = polled.filter(pl.col("outcome") == "landed")["lag_s"].drop_nulls()
    return DayHealth(
        hours=frame,
        failed_by_reason=dict(failed.group_by("outcome").len().sort("outcome").iter_rows()),
        lag_median_s=lags.median() if len(lags) else None,  # type: ignore[arg-type]
        lag_p95_s=lags.quantile(0.95, "nearest") if len(lags) else None,  # type: ignore[arg-type]
        gaps=_gaps([c.capture_time for c in captures], start, through, max_gap) if hours else [],
        frozen_hours=frame.filter(pl.col("longest_frozen_s") > max_gap.total_seconds()).height,
    )
