"""The alert rules: which conditions hold in the network-now table, and the knobs that define them.

A rule reads `network_now`'s table (states dated by capture times), never the clock of a station:
a station is empty "for N minutes" when its `since` lies N minutes before the table's `through`
(exactly N counts). Only stations in the newest capture are judged (one missing from it has no
current state); in service = neither `closed` nor `out_of_service`.

Service hours only gate *opening*: outside them a condition is still reported, with
`opens=False`, so an episode opened during the day stays open and resolves (with its message) when
its condition ends, even at night; the end of the hours alone resolves nothing. Feed rules ignore
the hours: a collector that dies at night loses data all the same.

Frozen feed: captures keep arriving but no station's state or counts changed for M minutes. The
table cannot tell that alone (it keeps only when each *state* began), so the caller passes
`content_unchanged_since`, the capture time since which `content_fingerprint` of the table has not
changed (the alert store remembers it between evaluations, see `store.observe_content`).
"""

import hashlib
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import TypeVar

import polars as pl

from velib_assets.settings import PARIS, KpiThresholds, data_dir

ENV_MINUTES = "VELIB_ALERT_MINUTES"
ENV_DISTRICT_SHARE = "VELIB_ALERT_DISTRICT_SHARE"
ENV_SERVICE_HOURS = "VELIB_ALERT_SERVICE_HOURS"
ENV_WATCH = "VELIB_ALERT_WATCH"
ENV_FEED_DOWN_MINUTES = "VELIB_FEED_DOWN_MINUTES"
ENV_DISTRICT_MIN_STATIONS = "VELIB_ALERT_DISTRICT_MIN_STATIONS"
ENV_PREDICTED_EMPTY_MINUTES = "VELIB_ALERT_PREDICTED_EMPTY_MINUTES"
ENV_PREDICTED_EMPTY_P = "VELIB_ALERT_PREDICTED_EMPTY_P"

STATION_EMPTY, STATION_FULL = "station_empty", "station_full"
DISTRICT_EMPTY, DISTRICT_FULL = "district_empty", "district_full"
FEED_DOWN, FEED_FROZEN = "feed_down", "feed_frozen"
PREDICTED_EMPTY = "station_predicted_empty"
FORECAST_MAX_AGE = timedelta(minutes=75)
"""The hourly build issues forecasts at the last capture of the hour that closed: up to an hour old,
and a few minutes more until the next build lands. Older forecasts are not judged."""
FEED = "feed"
OUT_OF_SERVICE = ("closed", "out_of_service")
_STATION_KIND = {"empty": STATION_EMPTY, "full": STATION_FULL}
_DISTRICT_KIND = {"empty": DISTRICT_EMPTY, "full": DISTRICT_FULL}
T = TypeVar("T")
_CONTENT = ["station_code", "bikes", "mechanical", "ebike", "docks", "state"]


@dataclass(frozen=True)
class ServiceHours:
    """Local (Europe/Paris) opening hours; `end` before `start` spans midnight ("22:00-06:00")."""

    start: time
    end: time

    def contain(self, at: datetime) -> bool:
        local = at.astimezone(PARIS).time()
        if self.start <= self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    @classmethod
    def parse(cls, text: str) -> "ServiceHours":
        start, sep, end = text.partition("-")
        if not sep:
            raise ValueError("expected HH:MM-HH:MM")
        return cls(time.fromisoformat(start.strip()), time.fromisoformat(end.strip()))


@dataclass(frozen=True)
class AlertRules:
    minutes: float = 20.0
    """A station in service empty, or full, for at least this long; a district over its share too."""
    district_share: float = 0.30
    district_min_stations: int = 5
    """A district with fewer stations in service is left to the station rule (one empty station of
    two is not an area-wide shortage, and would page twice)."""
    service_hours: ServiceHours | None = None
    watch: frozenset[str] = field(default_factory=frozenset)
    """Station codes and/or district names; empty: the whole network."""
    feed_down_minutes: float = 10.0
    """No new capture for this long: down; new captures with unchanged content this long: frozen."""
    missing_after: timedelta = timedelta(minutes=15)
    """A station absent from the captures for longer is no longer judged (its episode resolves). A
    shorter absence keeps its last state, as the KPIs let an observation count up to MAX_GAP: real
    exports drop a dozen stations from one capture and bring them back in the next."""
    predicted_empty_minutes: float | None = None
    """Off (None) by default: a station in service, not empty now, that the latest forecasts give at
    least `predicted_empty_probability` of being empty at a time within this many minutes."""
    predicted_empty_probability: float = 0.8
    forecast_lake: Path | None = None
    """The lake holding `availability_forecast`, read when the rule is on."""

    @classmethod
    def from_env(cls) -> "AlertRules":
        hours = _parsed(ENV_SERVICE_HOURS, ServiceHours.parse, None)
        watch = frozenset(w.strip() for w in os.environ.get(ENV_WATCH, "").split(",") if w.strip())
        return cls(
            minutes=_parsed(ENV_MINUTES, _positive, 20.0),
            district_share=_parsed(ENV_DISTRICT_SHARE, _share, 0.30),
            district_min_stations=_parsed(ENV_DISTRICT_MIN_STATIONS, _count, 5),
            service_hours=hours,
            watch=watch,
            feed_down_minutes=_parsed(ENV_FEED_DOWN_MINUTES, _positive, 10.0),
            missing_after=KpiThresholds.from_env().max_gap,
            **_predicted_empty_from_env(),
        )


def _predicted_empty_from_env() -> dict[str, object]:
    minutes = _parsed(ENV_PREDICTED_EMPTY_MINUTES, _positive, None)
    if minutes is None:
        return {}
    return {
        "predicted_empty_minutes": minutes,
        "predicted_empty_probability": _parsed(ENV_PREDICTED_EMPTY_P, _probability, 0.8),
        "forecast_lake": data_dir() / "lake",
    }


def _positive(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value <= 0:
        raise ValueError("expected a number of minutes > 0")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError("expected a whole number >= 1")
    return value


def _probability(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1:
        raise ValueError("expected a probability in (0, 1], e.g. 0.8")
    return value


def _share(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1:
        raise ValueError("expected a share in (0, 1], e.g. 0.30")
    return value


def _parsed(name: str, parse: Callable[[str], T], default: T) -> T:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        return parse(text)
    except ValueError as error:
        raise ValueError(f"{name}={text!r} is invalid: {error}") from None


@dataclass(frozen=True)
class Condition:
    """One rule that holds now. `since`: when its underlying state began (a station's `since`)."""

    kind: str
    subject: str
    since: datetime
    minutes: float
    details: dict[str, object]
    """What a message needs: name, district, bikes, docks, capacity; share and counts; captures."""
    opens: bool = True
    """False outside service hours: keeps an open episode open, never opens one."""
    since_known: bool = True
    """False when `since` is only a lower bound (a table started afresh, or replayed, sees only its
    look-back): a later such `since` under an open episode is the window moving, not a new run."""


def content_fingerprint(table: pl.DataFrame) -> str:
    """A digest of every station's state and counts in the newest capture: equal digests under
    newer `through` times mean a feed repeating itself."""
    content = _current(table, timedelta(0)).select(_CONTENT).sort("station_code")
    return hashlib.sha256(content.write_csv().encode()).hexdigest()


def _current(table: pl.DataFrame, missing_after: timedelta) -> pl.DataFrame:
    """The stations seen within `missing_after` of the newest capture."""
    return table.filter(pl.col("latest_capture") >= pl.col("through") - missing_after)


def conditions(
    table: pl.DataFrame,
    now: datetime,
    newest_capture_time: datetime | None,
    rules: AlertRules,
    content_unchanged_since: datetime | None = None,
) -> list[Condition]:
    """Every condition that holds in `table` (from `network_now`) at `now`."""
    found = _feed(table, now, newest_capture_time, rules, content_unchanged_since)
    if table.is_empty():
        return found
    opens = rules.service_hours is None or rules.service_hours.contain(now)
    current = _current(table, rules.missing_after)
    if rules.watch:
        current = current.filter(
            pl.col("station_code").is_in(list(rules.watch)) | pl.col("district").is_in(list(rules.watch))
        )
    found += _stations(current, rules, opens)
    found += _predicted_empty(current, rules, opens)
    districts = current if not rules.watch else current.filter(pl.col("district").is_in(list(rules.watch)))
    found += _districts(districts, rules, opens)
    return found


def _feed(
    table: pl.DataFrame,
    now: datetime,
    newest: datetime | None,
    rules: AlertRules,
    unchanged_since: datetime | None,
) -> list[Condition]:
    limit = timedelta(minutes=rules.feed_down_minutes)
    found = []
    if newest is None or now - newest >= limit:
        since = newest if newest is not None else now
        details = {"newest_capture": newest.isoformat() if newest else None}
        # With no capture at all, `since` is only this evaluation's time: not a new run each tick.
        known = newest is not None
        found.append(Condition(FEED_DOWN, FEED, since, _minutes(now - since), details, since_known=known))
    through: datetime | None = table["through"].max() if not table.is_empty() else None  # type: ignore[assignment]
    if unchanged_since is not None and through is not None and through - unchanged_since >= limit:
        span = _minutes(through - unchanged_since)
        found.append(Condition(FEED_FROZEN, FEED, unchanged_since, span, {"through": through.isoformat()}))
    return found


def _stations(current: pl.DataFrame, rules: AlertRules, opens: bool) -> list[Condition]:
    state = pl.col("state").cast(pl.String)
    held = current.filter(state.is_in(list(_STATION_KIND)) & (pl.col("minutes_in_state") >= rules.minutes))
    return [
        Condition(
            _STATION_KIND[str(row["state"])],
            row["station_code"],
            row["since"],
            row["minutes_in_state"],
            {key: row[key] for key in ("station_code", "name", "district", "capacity", "bikes", "docks")},
            opens,
            since_known=not row["since_at_least"],
        )
        for row in held.iter_rows(named=True)
    ]


def _predicted_empty(current: pl.DataFrame, rules: AlertRules, opens: bool) -> list[Condition]:
    """Stations in service and not empty now whose latest forecast says empty, with at least the
    rule's probability, at a target time within its minutes of the newest capture. Forecasts refresh
    with the hourly build, so the horizons still ahead of the newest capture are the ones judged."""
    if rules.predicted_empty_minutes is None or rules.forecast_lake is None or current.is_empty():
        return []
    from velib_assets.forecast.store import latest_forecasts

    through = current["through"].max()
    horizon = through + timedelta(minutes=rules.predicted_empty_minutes)  # type: ignore[operator]
    likely = (
        latest_forecasts(rules.forecast_lake, issued_by=through)  # type: ignore[arg-type]
        .filter(
            (pl.col("issued_at") >= through - FORECAST_MAX_AGE)  # type: ignore[operator]
            & (pl.col("target_at") > through)
            & (pl.col("target_at") <= horizon)
            & (pl.col("p_empty") >= rules.predicted_empty_probability)
        )
        .sort("p_empty", "target_at", descending=[True, False])
        .unique("station_code", keep="first", maintain_order=True)
    )
    state = pl.col("state").cast(pl.String)
    live = current.filter(~state.is_in([*OUT_OF_SERVICE, "empty"]))
    columns = ("station_code", "issued_at", "target_at", "p_empty", "bikes_now")
    # A station refilled since the forecast was issued is no longer the station it judged.
    joined = live.join(likely.select(columns), on="station_code").filter(
        pl.col("bikes") <= pl.col("bikes_now")
    )
    shown = ("station_code", "name", "district", "capacity", "bikes", "docks")
    return [
        Condition(
            PREDICTED_EMPTY,
            row["station_code"],
            row["issued_at"],
            _minutes(row["target_at"] - row["issued_at"]),
            {
                **{key: row[key] for key in shown},
                "p_empty": round(row["p_empty"], 2),
                "within_minutes": rules.predicted_empty_minutes,
                "target_at": row["target_at"].isoformat(),
            },
            opens,
        )
        for row in joined.sort("station_code").iter_rows(named=True)
    ]


def _districts(current: pl.DataFrame, rules: AlertRules, opens: bool) -> list[Condition]:
    """A district holds when at least `share` of its in-service stations are in the state, and have
    been for `minutes`: dated by the moment the k-th of them (k = the count the share needs) entered
    it, so a share that flaps around the threshold does not page every minute."""
    in_service = current.filter(~pl.col("state").cast(pl.String).is_in(OUT_OF_SERVICE))
    found = []
    for state, kind in _DISTRICT_KIND.items():
        per_district = in_service.group_by("district").agg(
            pl.len().alias("in_service"),
            pl.col("since").filter(pl.col("state") == state).sort().alias("sinces"),
            pl.col("through").first(),
        )
        for row in per_district.sort("district").iter_rows(named=True):
            needed = max(1, math.ceil(rules.district_share * row["in_service"] - 1e-9))
            if row["in_service"] < rules.district_min_stations or len(row["sinces"]) < needed:
                continue
            since = row["sinces"][needed - 1]
            minutes = _minutes(row["through"] - since)
            if minutes < rules.minutes:
                continue
            count = len(row["sinces"])
            details = {
                "district": row["district"],
                "stations": count,
                "in_service": row["in_service"],
                "share": count / row["in_service"],
            }
            found.append(Condition(kind, row["district"], since, minutes, details, opens))
    return found


def _minutes(span: timedelta) -> float:
    return span.total_seconds() / 60
