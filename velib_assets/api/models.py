"""Response models: stable field names, units in the descriptions, so `/openapi.json` is precise.

Times are UTC with an offset; minutes are minutes of the hour or day; fill rates are fractions 0..1."""

from datetime import date
from typing import Generic, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, Field

from velib_assets.network_now import STATES

Item = TypeVar("Item")
State = Literal[STATES]  # type: ignore[valid-type]


def minutes(what: str) -> object:
    return Field(description=f"{what}, in minutes")


class Page(BaseModel, Generic[Item]):
    items: list[Item]
    total: int = Field(description="items matching the query, over all pages")
    limit: int = Field(description="the most items on one page")
    offset: int = Field(description="items skipped before this page")
    note: str | None = Field(None, description="why the list is empty when that is not a plain 'no match'")


class Problem(BaseModel):
    detail: str = Field(description="what was wrong, in one line")


class Station(BaseModel):
    station_code: str = Field(description="the station's code, as published (e.g. 16107)")
    name: str | None
    district: str = Field(description='"Paris 16e" for an arrondissement of Paris, else the commune')
    lat: float | None = Field(description="latitude, degrees (WGS 84)")
    lon: float | None = Field(description="longitude, degrees (WGS 84)")
    capacity: int | None = Field(description="docks the station has, in bikes")
    state: State | None = Field(  # type: ignore[valid-type]
        description="state at the latest capture (null when the network's state is not published yet)"
    )
    since: AwareDatetime | None = Field(description="first capture of the station's run in its current state")
    since_at_least: bool | None = Field(
        description="true when the state held over the whole look-back window: it may have started earlier"
    )
    minutes_in_state: float | None = minutes("time from `since` to the network's latest capture")
    bikes: int | None = Field(description="bikes available at the latest capture, in bikes")
    mechanical: int | None = Field(description="mechanical bikes available, in bikes")
    ebike: int | None = Field(description="electric bikes available, in bikes")
    docks: int | None = Field(description="free docks, in docks")
    captured_at: AwareDatetime | None = Field(description="the station's own newest capture")


class StationDetail(Station):
    version: int = Field(description="version of the station in the station dimension (SCD2), from 1")
    station_id: int | None = Field(description="GBFS station id (null for Opendatasoft captures)")
    commune: str | None
    code_insee: str | None = Field(description="INSEE code of the commune")
    arrondissement: int | None = Field(description="arrondissement of Paris, 1..20; null elsewhere")
    valid_from: AwareDatetime = Field(description="first capture of this version")
    valid_to: AwareDatetime | None = Field(description="when this version was superseded (null: current)")
    last_seen: AwareDatetime | None = Field(description="the station's last capture in the lake")
    changed: str | None = Field(description="what changed from the previous version, if any")


class _Minutes(BaseModel):
    hour_start: AwareDatetime = Field(description="start of the UTC hour the row sums")
    observed_minutes: float = minutes("time observed in the hour (0..60)")
    in_service_minutes: float = minutes("time in service")
    empty_minutes: float = minutes("time in service with no bike")
    full_minutes: float = minutes("time in service with no free dock")
    nearly_empty_minutes: float = minutes("time in service at or below the nearly-empty fill rate")
    nearly_full_minutes: float = minutes("time in service at or above the nearly-full fill rate")
    mean_fill_rate: float | None = Field(
        description="time-weighted mean of bikes / (bikes + docks), fraction 0..1"
    )
    mean_ebike: float | None = Field(description="time-weighted mean of electric bikes available, in bikes")
    snapshots: int = Field(description="captures of the hour")


class StationHour(_Minutes):
    station_code: str
    min_bikes: int | None = Field(description="fewest bikes available in the hour, in bikes")
    max_bikes: int | None = Field(description="most bikes available in the hour, in bikes")
    min_docks: int | None = Field(description="fewest free docks in the hour, in docks")
    max_docks: int | None = Field(description="most free docks in the hour, in docks")
    longest_empty_streak_minutes: float | None = minutes("longest empty spell inside the hour")
    longest_full_streak_minutes: float | None = minutes("longest full spell inside the hour")


class DistrictHour(_Minutes):
    district: str
    stations: int = Field(description="stations of the district observed in the hour")


class District(BaseModel):
    district: str
    stations: int = Field(description="stations in the district now")


class Day(BaseModel):
    day: date = Field(description="a local day (Europe/Paris)")
    stations: int = Field(description="stations ranked that day (those in service at some point)")


class _Ranked(BaseModel):
    rank: int = Field(description="1 = most critical: most minutes empty or full, then most empty")
    station_code: str
    name: str | None
    district: str | None
    in_service_minutes: float = minutes("time in service")
    empty_minutes: float = minutes("time in service with no bike")
    full_minutes: float = minutes("time in service with no free dock")
    critical_minutes: float = minutes("empty_minutes + full_minutes")


class Ranking(_Ranked):
    day: date = Field(description="the local day (Europe/Paris) ranked")
    longest_empty_streak_minutes: float = minutes("longest empty spell of the day")
    longest_full_streak_minutes: float = minutes("longest full spell of the day")


class RollingRanking(_Ranked):
    window_start: AwareDatetime = Field(description="start of the two newest hours in the lake")
    window_end: AwareDatetime = Field(description="end of that window")


class Alert(BaseModel):
    episode_id: int
    kind: str = Field(
        description="the rule that opened it: station_empty, station_full, station_predicted_empty, "
        "district_empty, district_full, feed_down or feed_frozen"
    )
    subject: str = Field(description="the station code, district or feed the episode is about")
    since: AwareDatetime = Field(description="when the condition began")
    opened_at: AwareDatetime = Field(description="when the episode was opened")
    resolved_at: AwareDatetime | None = Field(description="when it ended (null: still open)")
    duration_minutes: float | None = minutes("time from `since` to `resolved_at` (null while open)")
    event: str | None = Field(description="the message of this row (opened, resolved); null: no channel")
    channel: str | None
    status: str | None = Field(description="delivery status of the message")
    attempts: int | None
    last_error: str | None
    delivered_at: AwareDatetime | None


class Forecast(BaseModel):
    station_code: str
    issued_at: AwareDatetime = Field(description="when the forecast was made")
    horizon_minutes: int = minutes("time from issued_at to target_at")
    target_at: AwareDatetime = Field(description="the time forecast")
    bikes: float | None = Field(description="expected bikes available, in bikes")
    docks: float | None = Field(description="expected free docks, in docks")
    p_empty: float | None = Field(description="probability the station is empty, fraction 0..1")
    p_full: float | None = Field(description="probability the station is full, fraction 0..1")


class HourHealth(BaseModel):
    hour_start: AwareDatetime = Field(description="start of the UTC hour")
    captures: int = Field(description="captures landed in the hour")
    polls: int = Field(description="polls of the feed logged in the hour")
    polls_failed: int
    lag_median_s: float | None = Field(description="median delay from the feed's time to landing, seconds")
    lag_p95_s: float | None = Field(description="95th percentile of that delay, seconds")
    longest_frozen_s: float | None = Field(description="longest spell the feed repeated itself, seconds")


class Gap(BaseModel):
    start: AwareDatetime
    end: AwareDatetime
    minutes: float = minutes("length of the stretch without a capture")


class Collection(BaseModel):
    day: date = Field(description="the local day (Europe/Paris) of the latest capture")
    captures: int
    polls: int
    polls_failed_by_reason: dict[str, int]
    lag_median_s: float | None = Field(description="median landing delay of the day, seconds")
    lag_p95_s: float | None = Field(description="95th percentile landing delay of the day, seconds")
    frozen_hours: int = Field(description="hours with a frozen spell longer than MAX_GAP")
    gaps: list[Gap] = Field(description="stretches longer than MAX_GAP without a capture")
    hours: list[HourHealth]


class Health(BaseModel):
    latest_capture_at: AwareDatetime | None = Field(description="the newest capture in the landing zone")
    latest_capture_age_seconds: float | None = Field(description="its age now, in seconds")
    feed_down_after_seconds: float = Field(
        description="the capture age past which the feed counts as down (VELIB_FEED_DOWN_MINUTES), in seconds"
    )
    stations: int | None = Field(
        description="stations in the network's current state (0 before it is published, null without a "
        "serving file)"
    )
    serving_file: str = Field(description="the DuckDB file the API reads")
    collection: Collection | None = Field(description="the collection's health on the latest capture's day")
    note: str | None = Field(None, description="why `stations` is null: no serving file yet")
