"""Hourly and daily partitions in Europe/Paris (DST days have 23 or 25 hourly partitions).

They run from `VELIB_PARTITIONS_START` to `VELIB_PARTITIONS_END` (both local days, inclusive), or, with
no end set, to the latest closed hour and day. Dagster's `end_date` is exclusive: the day after the end.
"""

from datetime import UTC, date, datetime, timedelta

import dagster as dg

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
hourly_partitions = dg.HourlyPartitionsDefinition(
    start_date=f"{partitions_start()}-00:00",
    end_date=f"{END_DATE}-00:00" if END_DATE else None,
    timezone=TIMEZONE,
    fmt="%Y-%m-%d-%H:%M",
)
daily_partitions = dg.DailyPartitionsDefinition(
    start_date=partitions_start(), end_date=END_DATE, timezone=TIMEZONE
)


def hour_key(when: datetime) -> str:
    """The hourly partition key of the hour that contains `when`."""
    return hourly_partitions.get_partition_key_for_timestamp(when.timestamp())


def started_hour_key(when: datetime, now: datetime) -> str | None:
    """The key of `when`'s hour, or of the hour running at `now` if `when` is later (a feed clock a few
    seconds ahead must not name an hour that has not started); None outside the partitions (before the
    first one, or after `VELIB_PARTITIONS_END`)."""
    moment = min(when, now)
    if moment < hourly_partitions.start:
        return None
    end = hourly_partitions.end
    return hour_key(moment) if end is None or moment < end else None


def day_key(when: datetime) -> str:
    return daily_partitions.get_partition_key_for_timestamp(when.timestamp())


def utc_window(partitions: dg.TimeWindowPartitionsDefinition, key: str) -> tuple[datetime, datetime]:
    window = partitions.time_window_for_partition_key(key)
    return window.start.astimezone(UTC), window.end.astimezone(UTC)


def local_day(key: str) -> date:
    return date.fromisoformat(key)
