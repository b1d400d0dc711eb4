"""How much of a local day the collection saw: captures against the cadence, the share observed.

A ranking on four captures and one on 1,440 look alike in the lake; these figures tell them apart.
The share observed weighs each station's observations as the KPIs do (each lasts until the next
one, at most MAX_GAP), so it does not depend on the cadence; the capture count does.
"""

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import polars as pl

from velib_assets import landing
from velib_assets.days import day_hours, hour_start
from velib_assets.kpis.rankings import local_day_bounds
from velib_assets.settings import PARIS

HOUR = timedelta(hours=1)


@dataclass(frozen=True)
class DayCoverage:
    day: date
    captures: int
    expected_captures: int
    observed_share: float
    hours: int
    missing_hours: tuple[datetime, ...]
    """UTC starts of the day's hours in which no capture landed."""

    @property
    def capture_share(self) -> float:
        return round(self.captures / self.expected_captures, 4) if self.expected_captures else 0.0

    def metadata(self) -> dict[str, object]:
        return {
            "captures": self.captures,
            "expected_captures": self.expected_captures,
            "capture_share": self.capture_share,
            "observed_share": self.observed_share,
            "hours_without_capture": self.missing_spans() or "none",
        }

    def missing_spans(self) -> str:
        """`00:00-11:00, 20:00-24:00 (UTC+01:00)`: the hours without a capture in local time, runs
        folded; on a DST day each time keeps its own offset, as one offset would mislead."""
        runs: list[list[datetime]] = []
        for hour in self.missing_hours:
            if runs and hour - runs[-1][1] == HOUR:
                runs[-1][1] = hour
            else:
                runs.append([hour, hour])
        spans = [(local_label(first), local_label(last + HOUR)) for first, last in runs]
        offsets = {label[5:] for span in spans for label in span}
        if len(offsets) != 1:
            return ", ".join(f"{start}-{end}" for start, end in spans)
        ends = [("24:00" if end[:5] == "00:00" else end[:5]) for _, end in spans]
        folded = ", ".join(f"{start[:5]}-{end}" for (start, _), end in zip(spans, ends, strict=True))
        return f"{folded} (UTC{offsets.pop()})"


def local_label(hour_start_utc: datetime) -> str:
    """`02:00+02:00`: the local hour with its offset, so the two 02:00 of an autumn DST day differ."""
    return hour_start_utc.astimezone(PARIS).isoformat(timespec="minutes")[11:]


def day_coverage(
    landing_root: Path, occupancy: pl.DataFrame, day: date, cadence_s: float, through: datetime | None = None
) -> DayCoverage:
    """Coverage of `day` (up to `through`, the end of its elapsed part, for today) from the captures
    landed in it and the day's station occupancy rows."""
    start, end = local_day_bounds(day)
    end = min(end, through) if through else end
    captures = landing.captures_in_window(landing_root, start, end)
    seen_hours = {hour_start(c.capture_time) for c in captures}
    hours = [hour for hour in day_hours(day) if hour < end]
    stations = occupancy["station_code"].n_unique() if occupancy.height else 0
    day_minutes = len(hours) * 60
    observed = float(occupancy["observed_minutes"].sum() or 0.0) if occupancy.height else 0.0
    return DayCoverage(
        day=day,
        captures=len(captures),
        expected_captures=round(len(hours) * 3600 / cadence_s),
        observed_share=round(observed / (stations * day_minutes), 4) if stations and hours else 0.0,
        hours=len(hours),
        missing_hours=tuple(h for h in hours if h not in seen_hours),
    )
