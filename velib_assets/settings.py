"""Configuration in one place: every tunable comes from the environment with a documented default.

Dagster resources and asset configs read the same names through `dg.EnvVar`, so the UI shows
where a value came from; plain code (CLI, benchmarks) reads them here.
"""

import math
import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

TIMEZONE = "Europe/Paris"
PARIS = ZoneInfo(TIMEZONE)

DEFAULT_GBFS_URL = "https://velib-metropole-opendata.smovengo.cloud/opendata/Velib_Metropole/gbfs.json"
DEFAULT_OPENDATA_URL = (
    "https://opendata.paris.fr/api/explore/v2.1/catalog/datasets/velib-disponibilite-en-temps-reel"
)
DEFAULT_PARTITIONS_START = "2024-08-01"
USER_AGENT = "velib_assets/0.1 (Dagster open-data pipeline; python-requests)"

# Names of the environment variables, so documentation, resources and code agree.
ENV_DATA_DIR = "VELIB_DATA_DIR"
ENV_SOURCE = "VELIB_SOURCE"
ENV_GBFS_URL = "VELIB_GBFS_URL"
ENV_OPENDATA_URL = "VELIB_OPENDATA_URL"
ENV_POLL_SECONDS = "VELIB_POLL_INTERVAL_SECONDS"
ENV_CONNECT_TIMEOUT = "VELIB_CONNECT_TIMEOUT_SECONDS"
ENV_READ_TIMEOUT = "VELIB_READ_TIMEOUT_SECONDS"
ENV_MAX_RETRIES = "VELIB_MAX_RETRIES"
ENV_MAX_BYTES = "VELIB_MAX_RESPONSE_BYTES"
ENV_PARTITIONS_START = "VELIB_PARTITIONS_START"
ENV_PARTITIONS_END = "VELIB_PARTITIONS_END"
ENV_MAX_GAP_MINUTES = "VELIB_MAX_GAP_MINUTES"
ENV_NEARLY_EMPTY = "VELIB_NEARLY_EMPTY_RATE"
ENV_NEARLY_FULL = "VELIB_NEARLY_FULL_RATE"
ENV_STALE_HOURS = "VELIB_STALE_HOURS"
ENV_CLOCK_TOLERANCE = "VELIB_CLOCK_TOLERANCE_SECONDS"
ENV_TICK_BUDGET = "VELIB_TICK_BUDGET_SECONDS"
ENV_MAX_RETRY_AFTER = "VELIB_MAX_RETRY_AFTER_SECONDS"
ENV_POOL_WAIT = "VELIB_POOL_WAIT_SECONDS"
ENV_MIN_DAY_COVERAGE = "VELIB_MIN_DAY_COVERAGE"
ENV_FEED_DOWN_MINUTES = "VELIB_FEED_DOWN_MINUTES"


def _env(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


def _number(name: str, default: str) -> float:
    """A finite number from the environment; a ValueError that names the variable otherwise."""
    text = _env(name, default)
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ValueError(f"{name}={text!r} is not a number")
    return value


@dataclass(frozen=True)
class KpiThresholds:
    """The knobs of DESIGN §3: how long an observation may count, and what 'nearly' means."""

    max_gap: timedelta = timedelta(minutes=15)
    nearly_empty_rate: float = 0.10
    nearly_full_rate: float = 0.90
    stale_after: timedelta = timedelta(hours=24)

    @classmethod
    def from_env(cls) -> "KpiThresholds":
        return cls(
            max_gap=timedelta(minutes=_number(ENV_MAX_GAP_MINUTES, "15")),
            nearly_empty_rate=_number(ENV_NEARLY_EMPTY, "0.10"),
            nearly_full_rate=_number(ENV_NEARLY_FULL, "0.90"),
            stale_after=timedelta(hours=_number(ENV_STALE_HOURS, "24")),
        )


def data_dir() -> Path:
    """Root of the landing zone, the lake and the DuckDB file (`./data` unless configured)."""
    return Path(_env(ENV_DATA_DIR, "data")).expanduser().resolve()


def partitions_start() -> str:
    return _env(ENV_PARTITIONS_START, DEFAULT_PARTITIONS_START)


def partitions_end() -> str | None:
    """The last local day of the partitions (inclusive), or None: up to the latest closed hour and day."""
    return _env(ENV_PARTITIONS_END, "") or None


def poll_interval_seconds() -> int:
    return max(5, int(_env(ENV_POLL_SECONDS, "60")))


def feed_down_minutes() -> float:
    """No new capture for this long and the feed counts as down: the landing turns red in the UI.
    Read when the definitions load, so a bad value falls back to 10 rather than stop the code
    location (and the capture sensor with it); the alert rules refuse it with a message."""
    try:
        minutes = float(_env(ENV_FEED_DOWN_MINUTES, "10"))
    except ValueError:
        return 10.0
    return minutes if math.isfinite(minutes) and minutes > 0 else 10.0


def clock_tolerance() -> timedelta:
    """How far a capture's own time may run ahead of this machine's clock before it is distrusted."""
    return timedelta(seconds=max(0.0, float(_env(ENV_CLOCK_TOLERANCE, "300"))))


def tick_budget_seconds() -> float:
    """The whole poll of one sensor tick (every request, retry and backoff) ends within this."""
    return min(50.0, max(5.0, float(_env(ENV_TICK_BUDGET, "40"))))


def max_retry_after_seconds() -> float:
    """The longest a feed's `Retry-After` is honoured across ticks (a longer one is cut to this)."""
    return max(0.0, float(_env(ENV_MAX_RETRY_AFTER, "3600")))


def pool_wait_seconds() -> float:
    """How long `velib run` waits for the `duckdb_writer` pool held by another live run."""
    return max(0.0, float(_env(ENV_POOL_WAIT, "600")))


def min_day_coverage() -> float:
    """Below this share of a day observed, the day's rankings carry a coverage warning."""
    return min(1.0, max(0.0, float(_env(ENV_MIN_DAY_COVERAGE, "0.8"))))
