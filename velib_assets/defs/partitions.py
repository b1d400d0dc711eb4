"""Hourly and daily partitions in Europe/Paris (DST days have 23 or 25 hourly partitions)."""

from datetime import UTC, date, datetime

import dagster as dg

from velib_assets.settings import TIMEZONE, partitions_start

hourly_partitions = dg.HourlyPartitionsDefinition(
    start_date=f"{partitions_start()}-00:00", timezone=TIMEZONE, fmt="%Y-%m-%d-%H:%M"
)
daily_partitions = dg.DailyPartitionsDefinition(start_date=partitions_start(), timezone=TIMEZONE)


def hour_key(when: datetime) -> str:
    """The hourly partition key of the hour that contains `when`."""
    return hourly_partitions.get_partition_key_for_timestamp(when.timestamp())


def started_hour_key(when: datetime, now: datetime) -> str | None:
    """The key of `when`'s hour, or of the hour running at `now` if `when` is later (a feed clock a few
    seconds ahead must not name an hour that has not started); None before the first partition."""
    moment = min(when, now)
    return hour_key(moment) if moment >= hourly_partitions.start else None


def day_key(when: datetime) -> str:
    return daily_partitions.get_partition_key_for_timestamp(when.timestamp())


def utc_window(partitions: dg.TimeWindowPartitionsDefinition, key: str) -> tuple[datetime, datetime]:
    window = partitions.time_window_for_partition_key(key)
    return window.start.astimezone(UTC), window.end.astimezone(UTC)


def local_day(key: str) -> date:
    return date.fromisoformat(key)
