"""The text of alert messages: what an operator needs to act without opening a dashboard.

Times are stored in UTC and shown in Paris local time with the zone's abbreviation, so an episode
across the autumn DST change reads "01:50 CEST" then "02:10 CET", never an ambiguous "02:10";
a time on another day than the message's carries its date. Durations come from UTC instants.
"""

from datetime import datetime
from typing import Any

from velib_assets.alerts import rules
from velib_assets.settings import PARIS

TITLE_OPENED = "Vélib' alert"
TITLE_RESOLVED = "Vélib' resolved"


def local(at: datetime, reference: datetime) -> str:
    """`at` in Paris time: "08:12 CEST", with its date when it is not `reference`'s local day."""
    shown, day = at.astimezone(PARIS), reference.astimezone(PARIS).date()
    return shown.strftime("%H:%M %Z" if shown.date() == day else "%Y-%m-%d %H:%M %Z")


def minutes_between(start: datetime, end: datetime) -> int:
    return int((end - start).total_seconds() // 60)


def _what(kind: str, subject: str, details: dict[str, Any]) -> str:
    if kind == rules.PREDICTED_EMPTY:
        return (
            f"station {subject} {details['name']} ({details['district']}) predicted EMPTY within "
            f"{details['within_minutes']:g} min (p = {details['p_empty']:.2f}), forecast"
        )
    if kind in (rules.STATION_EMPTY, rules.STATION_FULL):
        state = "EMPTY" if kind == rules.STATION_EMPTY else "FULL"
        return f"station {subject} {details['name']} ({details['district']}) {state}"
    if kind in (rules.DISTRICT_EMPTY, rules.DISTRICT_FULL):
        state = "EMPTY" if kind == rules.DISTRICT_EMPTY else "FULL"
        counts = f"{details['stations']} of {details['in_service']} stations in service"
        return f"district {subject}: {counts} {state}"
    return "feed DOWN (no new capture)" if kind == rules.FEED_DOWN else "feed FROZEN (identical content)"


def _numbers(kind: str, details: dict[str, Any]) -> str:
    if kind in (rules.STATION_EMPTY, rules.STATION_FULL, rules.PREDICTED_EMPTY):
        return f": {details['bikes']} bikes, {details['docks']} docks (capacity {details['capacity']})"
    if kind in (rules.DISTRICT_EMPTY, rules.DISTRICT_FULL):
        return f": {details['share']:.0%} of the district"
    return ""


def opened(kind: str, subject: str, since: datetime, at: datetime, details: dict[str, Any]) -> str:
    """E.g. "Vélib' alert: station 16107 Benjamin Godard - Victor Hugo (Paris 16e) EMPTY since
    08:12 CEST (25 min): 0 bikes, 35 docks (capacity 35)"."""
    span = minutes_between(since, at)
    return (
        f"{TITLE_OPENED}: {_what(kind, subject, details)} since {local(since, at)} ({span} min)"
        + _numbers(kind, details)
    )


def resolved(kind: str, subject: str, since: datetime, at: datetime, details: dict[str, Any]) -> str:
    """E.g. "Vélib' resolved after 42 min: station 16107 ... EMPTY since 08:12 CEST, over at 08:54
    CEST"; the duration runs from when the state began, not from the alert."""
    span = minutes_between(since, at)
    return (
        f"{TITLE_RESOLVED} after {span} min: {_what(kind, subject, details)} since {local(since, at)}, "
        f"over at {local(at, at)}"
    )
