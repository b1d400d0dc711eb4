"""The health endpoint's figures: the newest capture and the collection's health on its day.

They come from the landing zone and the poll log (`velib_assets.health`), as `velib health` reads
them: the serving views say what was built, not whether the feed is still arriving."""

from datetime import UTC, datetime
from pathlib import Path

from velib_assets import landing
from velib_assets.health import day_health
from velib_assets.settings import PARIS, KpiThresholds


def latest_capture(data_dir: Path) -> datetime | None:
    newest = landing.newest_capture(data_dir / "landing")
    return newest.capture_time.astimezone(UTC) if newest else None


def collection(data_dir: Path, latest: datetime, now: datetime) -> dict:
    """The day of the latest capture: today while the feed is arriving, the last day it did otherwise."""
    day = latest.astimezone(PARIS).date()
    found = day_health(data_dir, day, now, KpiThresholds.from_env().max_gap)
    return {
        "day": day,
        **found.figures(),
        "gaps": [{"start": a, "end": b, "minutes": (b - a).total_seconds() / 60} for a, b in found.gaps],
        "hours": found.hours.to_dicts(),
    }
