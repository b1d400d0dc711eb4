"""Query parameters as the API accepts them: local days, time ranges, pages. Errors are 422s whose
message names the parameter and what is wrong with it."""

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Annotated

from fastapi import HTTPException, Query

from velib_assets.settings import PARIS

MAX_DAYS = 31
# A range of times may hold 31 days and the hour the clocks go back: what 31 local days can span.
MAX_SPAN = timedelta(days=MAX_DAYS, hours=1)
MAX_LIMIT = 1000
DAY_HELP = "a local day (Europe/Paris), YYYY-MM-DD"
BOUND_HELP = (
    "a local day (YYYY-MM-DD, Europe/Paris; `start` from its first hour, `end` through its last) or a "
    "time with an offset (YYYY-MM-DDTHH:MM:SSZ or +01:00)"
)


def bad(message: str) -> HTTPException:
    return HTTPException(status_code=422, detail=message)


def day_start(day: date) -> datetime:
    """The first instant of a Paris day, in UTC (DST days hold 23 or 25 hours)."""
    return datetime(day.year, day.month, day.day, tzinfo=PARIS).astimezone(UTC)


def parse_day(text: str, name: str = "day") -> date:
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise bad(f"{name}={text!r} is not a day (YYYY-MM-DD)") from None
    if not date.min < day < date.max:
        raise bad(f"{name}={text!r} is out of range")
    return day


def _bound(text: str, name: str, is_end: bool) -> tuple[datetime, bool]:
    """The instant a bound stands for, and whether it was given as a whole day."""
    try:
        if len(text) <= 10:
            day = parse_day(text, name)
            return day_start(day + timedelta(days=1) if is_end else day), True
        moment = datetime.fromisoformat(text)
    except (ValueError, OverflowError):
        raise bad(f"{name}={text!r} is not {BOUND_HELP}") from None
    if moment.tzinfo is None:
        raise bad(f"{name}={text!r} has no offset: add Z (UTC) or +01:00")
    try:
        return moment.astimezone(UTC), False
    except OverflowError:
        raise bad(f"{name}={text!r} is out of range") from None


@dataclass(frozen=True)
class TimeRange:
    """`[start, end)` in UTC."""

    start: datetime
    end: datetime


def time_range(start: str | None, end: str | None, latest: datetime | None) -> TimeRange | None:
    """The range asked for; without bounds, the Paris day of `latest` (None: no data at all).

    One bound alone spans a day from it: a whole local day when given as a day, 24 hours otherwise.
    Days given as days are counted (at most 31, whatever their length); a range given with a time
    spans at most 31 days and an hour, so 31 local days across the autumn clock change fit in it."""
    try:
        if start is None and end is None:
            if latest is None:
                return None
            day = latest.astimezone(PARIS).date()
            return TimeRange(day_start(day), day_start(day + timedelta(days=1)))
        if start is not None:
            low, whole = _bound(start, "start", is_end=False)
            if end is not None:
                high, whole_end = _bound(end, "end", is_end=True)
                whole = whole and whole_end
            else:
                high = _bound(start, "start", is_end=True)[0] if whole else low + timedelta(days=1)
        else:
            high, whole = _bound(end, "end", is_end=True)  # type: ignore[arg-type]
            low = _bound(end, "end", is_end=False)[0] if whole else high - timedelta(days=1)  # type: ignore[arg-type]
    except OverflowError:
        raise bad("the range runs past the calendar's limits") from None
    if high <= low:
        raise bad(f"reversed range: end ({high.isoformat()}) is not after start ({low.isoformat()})")
    if whole:
        days = (high.astimezone(PARIS).date() - low.astimezone(PARIS).date()).days
        if days > MAX_DAYS:
            raise bad(f"range too long: {days} days from start to end, at most {MAX_DAYS}")
    elif high - low > MAX_SPAN:
        days = (high - low) / timedelta(days=1)
        raise bad(f"range too long: {days:.2f} days from start to end, at most {MAX_DAYS} (and an hour)")
    return TimeRange(low, high)


@dataclass(frozen=True)
class Page:
    limit: int
    offset: int


def page(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="items per page")] = 100,
    offset: Annotated[int, Query(ge=0, le=10**9, description="items skipped before this page")] = 0,
) -> Page:
    return Page(limit, offset)


StartParam = Annotated[str | None, Query(description=f"start of the range: {BOUND_HELP}")]
EndParam = Annotated[str | None, Query(description=f"end of the range, exclusive: {BOUND_HELP}")]
