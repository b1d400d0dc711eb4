"""Local (Europe/Paris) days and their UTC hours: 23, 24 or 25 of them on DST days.

Plain datetime arithmetic without Dagster, so the worker processes of a backfill can use it.
"""

from datetime import UTC, date, datetime, timedelta

from velib_assets.kpis.rankings import local_day_bounds
from velib_assets.settings import PARIS

HOUR = timedelta(hours=1)
HOUR_LABEL = "%Y-%m-%dT%HZ"


def day_of(when: datetime) -> date:
    """The local day that contains `when`."""
    return when.astimezone(PARIS).date()


def hour_start(when: datetime) -> datetime:
    """The UTC start of the hour containing `when` (Paris hours are whole UTC hours)."""
    return when.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def hour_label(when: datetime) -> str:
    """`2024-11-01T13Z`: the UTC hour containing `when`, unique across DST changes."""
    return hour_start(when).strftime(HOUR_LABEL)


def day_hours(day: date) -> list[datetime]:
    """UTC starts of the local day's hours."""
    start, end = local_day_bounds(day)
    hours, hour = [], start
    while hour < end:
        hours.append(hour)
        hour += HOUR
    return hours


def closed_through(day: date, now: datetime) -> datetime:
    """The end of the day's part that has elapsed at `now`: the day's end once it is over, else the
    start of the running hour (a partial hour is never built: it would read as an empty one)."""
    start, end = local_day_bounds(day)
    return min(end, max(hour_start(now), start))


def is_provisional(day: date, through: datetime) -> bool:
    return through < local_day_bounds(day)[1]
