"""Daily partitions in Europe/Paris: DST days simply hold 23 or 25 hours.

They run from `VELIB_PARTITIONS_START` to `VELIB_PARTITIONS_END` (both local days, inclusive), or, with
no end set, through today: the sensor refreshes today's partitions as its hours close (provisional
until the day ends). Dagster's `end_date` is exclusive: the day after the end.
"""

from datetime import date, datetime, timedelta

import dagster as dg

from velib_assets.days import day_of
from velib_assets.settings import (
    ENV_PARTITIONS_END,
    ENV_PARTITIONS_START,
    TIMEZONE,
    partitions_end,
    partitions_start,
)


def _end_date() -> str | None:
    """Dagster's (exclusive) `end_date`: the day after the configured last day, or None."""
    last = partitions_end()
    if last is None:
        return None
    try:
        first, last_day = date.fromisoformat(partitions_start()), date.fromisoformat(last)
    except ValueError as exc:
        raise ValueError(f"{ENV_PARTITIONS_START}/{ENV_PARTITIONS_END}: {exc} (use YYYY-MM-DD)") from exc
    if last_day < first:
        raise ValueError(
            f"{ENV_PARTITIONS_END}={last_day} is before {ENV_PARTITIONS_START}={first}: "
            "set an end on or after the start, or unset it"
        )
    return (last_day + timedelta(days=1)).isoformat()


END_DATE = _end_date()
daily_partitions = dg.DailyPartitionsDefinition(
    start_date=partitions_start(),
    end_date=END_DATE,
    timezone=TIMEZONE,
    end_offset=0 if END_DATE else 1,  # without an end, today is a partition too
)


def day_key(when: datetime) -> str:
    return day_of(when).isoformat()


def is_partition(day: str) -> bool:
    return daily_partitions.has_partition_key(day)


def started_day_key(when: datetime, now: datetime) -> str | None:
    """The key of `when`'s day, or of today if `when` is later (a feed clock ahead must not name a
    day that has not started); None outside the partitions (before the first day, after the end)."""
    key = day_key(min(when, now))
    return key if is_partition(key) else None


def local_day(key: str) -> date:
    return date.fromisoformat(key)
