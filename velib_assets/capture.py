"""One poll of the live feed: fetch, validate, date and land the capture when its content changed.

Kept free of Dagster so the sensor, the command line and the benchmarks share it. A broken or
unreachable feed is a skip with its reason; nothing is landed unless it parses. A change is told by
the content's digest, not by the feed's timestamp, and that timestamp is distrusted: a capture dated
in the future or before the partitions start is landed under its fetch time and counted as a clock
anomaly. The cursor's clock, on which hours close, only moves forward and never past this machine's
clock, so no feed content can poison it.
"""

import functools
import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from velib_assets import landing, settings
from velib_assets.sources import formats, parsers
from velib_assets.sources.formats import CaptureParseError
from velib_assets.sources.gbfs import GbfsCapture, GbfsClient
from velib_assets.sources.http import FeedError, FetchedBody
from velib_assets.sources.opendata import OpendataClient

INFORMATION_MAX_AGE = timedelta(hours=1)
INFORMATION_BUDGET_SHARE = 0.5
"""station_information is fetched only while this share of the tick's time budget is left."""


@dataclass(frozen=True)
class PollState:
    """What the sensor cursor remembers between ticks.

    `feed_time` is the newest capture time trusted; `clock` the same, capped by this machine's clock
    at each tick: hours close on it. Both only move forward. `clock_anomalies` counts the captures
    whose own time was unusable (and cursors found out of the present); `retry_not_before` is when
    the feed's `Retry-After` lets polling resume; `late_hours` the closed hours that received a
    capture since, re-run when the next hour closes.
    """

    feed_time: str | None = None
    clock: str | None = None
    digest: str | None = None
    information_time: str | None = None
    ranked_through: str | None = None
    clock_anomalies: int = 0
    retry_not_before: str | None = None
    late_hours: tuple[str, ...] = ()

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> "PollState":
        if not text:
            return cls()
        try:
            values = json.loads(text)
        except json.JSONDecodeError:
            return cls()
        known = {k: v for k, v in values.items() if k in cls.__dataclass_fields__}
        known["late_hours"] = tuple(known.get("late_hours") or ())
        return cls(**known)

    @property
    def clock_time(self) -> datetime | None:
        return _when(self.clock)


@dataclass(frozen=True)
class PollOutcome:
    state: PollState
    capture: landing.Capture | None = None
    created: bool = False
    stations: int = 0
    bytes: int = 0
    skip_reason: str | None = None
    notes: tuple[str, ...] = ()
    clock_anomaly: str | None = None


def _second(when: datetime) -> datetime:
    return when.astimezone(UTC).replace(microsecond=0)


def _when(text: object) -> datetime | None:
    """A time the cursor holds; None if absent or unreadable."""
    if not isinstance(text, str):
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None


def _latest(text: str | None, when: datetime) -> str:
    return max(_when(text) or when, when).isoformat()


def partitions_start_time() -> datetime:
    return datetime.fromisoformat(settings.partitions_start()).replace(tzinfo=settings.PARIS)


def trusted(state: PollState, now: datetime) -> tuple[PollState, str | None]:
    """The cursor with every time out of the present forgotten, and a note naming them.

    An older release let a bad feed clock write such times (2030 stopped capture for good); a cursor
    from before `clock` existed gets one from its feed time.
    """
    earliest, latest = partitions_start_time(), now + settings.clock_tolerance()
    bounds = {
        "feed_time": (earliest, latest),
        "clock": (earliest, latest),
        "information_time": (earliest, latest),
        "retry_not_before": (datetime.min.replace(tzinfo=UTC), now + _max_retry_after()),
    }
    dropped = {}
    for name, (low, high) in bounds.items():
        text, when = getattr(state, name), _when(getattr(state, name))
        if text is not None and (when is None or not low <= when <= high):
            dropped[name] = text
    healed = replace(state, **dict.fromkeys(dropped), clock_anomalies=state.clock_anomalies + bool(dropped))
    feed_time = _when(healed.feed_time)
    if healed.clock is None and feed_time is not None:
        healed = replace(healed, clock=min(feed_time, _second(now)).isoformat())
    return healed, (f"cursor times out of the present forgotten: {dropped}" if dropped else None)


def _max_retry_after() -> timedelta:
    return timedelta(seconds=settings.max_retry_after_seconds())


def waiting(state: PollState, now: datetime) -> str | None:
    """Why not to poll at all now: the feed's `Retry-After` has not run out."""
    resume = _when(state.retry_not_before)
    if resume is None or now >= resume:
        return None
    return f"the feed asked for a pause (Retry-After): polling resumes at {resume.isoformat()}"


def unavailable(state: PollState, exc: FeedError) -> PollOutcome:
    """A failed fetch is a skip; a server's `Retry-After` (capped) holds the next polls off."""
    if exc.retry_after_s is None:
        return PollOutcome(state, skip_reason=f"feed unavailable: {exc}")
    wait = min(timedelta(seconds=exc.retry_after_s), _max_retry_after())
    resume = _second(datetime.now(UTC) + wait)
    return PollOutcome(
        replace(state, retry_not_before=resume.isoformat()),
        skip_reason=f"feed unavailable: {exc}; polling resumes at {resume.isoformat()}",
    )


def _parsed(parse: Callable[[], pl.DataFrame]) -> pl.DataFrame:
    """Run a parser on fetched bytes. Hostile content may break it in any way (deep nesting, values
    polars refuses): that is a broken feed, `CaptureParseError`, never a failed tick."""
    try:
        return parse()
    except CaptureParseError:
        raise
    except Exception as exc:
        raise CaptureParseError(f"unparseable ({exc.__class__.__name__}: {str(exc)[:200]})") from exc


def landing_time(
    fetched: GbfsCapture, now: datetime, previous: datetime | None = None
) -> tuple[datetime, str | None]:
    """When to land a GBFS capture: its own time if plausible, else its fetch time and why not.

    `previous` is the last trusted feed time: new content under a time that did not move past it
    (a stuck or backward feed clock) is landed under its fetch time too, so the clock hours close on
    keeps moving and no capture poses as belonging to an hour already closed.
    """
    fetched_at = _second(fetched.fetched.fetched_at)
    stated = fetched.feed_time
    if stated is None:
        if fetched.stated_time is None:
            return fetched_at, None
        problem = f"feed time {repr(fetched.stated_time)[:60]} is unusable"
    elif stated > now + settings.clock_tolerance():
        tolerance = settings.clock_tolerance().total_seconds()
        problem = f"feed time {_second(stated)} is more than {tolerance:g} s ahead of this machine's clock"
    elif stated < partitions_start_time():
        problem = f"feed time {_second(stated)} is before the partitions start {settings.partitions_start()}"
    elif previous is not None and _second(stated) <= previous:
        moved = "stayed at" if _second(stated) == previous else f"went back from {previous} to"
        problem = f"the content changed but the feed time {moved} {_second(stated)}"
    else:
        return _second(stated), None
    return fetched_at, f"clock anomaly: {problem}; landed under its fetch time {fetched_at}"


def _order_notes(state: PollState, when: datetime, path: Path, created: bool) -> list[str]:
    """Say so when the content changed but the feed's time did not move forward."""
    previous = _when(state.feed_time)
    if not created:
        return [f"the capture of {when} had landed already, as {path.name}"]
    if previous is None or when > previous:
        return []
    if when == previous:
        return [f"feed time stayed at {when} but the content changed: landed anyway"]
    return [f"feed time went back from {previous} to {when}: landed anyway"]


def _land(
    root: Path, state: PollState, fetched: FetchedBody, fmt: str, when: datetime, anomaly: str | None
) -> tuple[PollOutcome, pl.DataFrame | None]:
    """Parse and land a status capture unless its content is the last one's; the state moves on."""
    digest = hashlib.sha256(fetched.body).hexdigest()
    if digest == state.digest:
        return PollOutcome(state, skip_reason=f"feed unchanged since {state.feed_time or state.clock}"), None
    try:
        frame = _parsed(lambda: parsers.parse_capture(fetched.body, fmt, when))
        path, created = landing.write_capture(root, when, fmt, fetched.body)
    except CaptureParseError as exc:
        return PollOutcome(state, skip_reason=f"broken feed: {fetched.url}: {exc}"), None
    except OSError as exc:
        return PollOutcome(state, skip_reason=f"could not land the capture: {exc}"), None
    now = _second(datetime.now(UTC))
    new_state = replace(
        state,
        feed_time=state.feed_time if anomaly else _latest(state.feed_time, when),
        clock=_latest(state.clock, min(when, now)),
        digest=digest,
        clock_anomalies=state.clock_anomalies + bool(anomaly),
        retry_not_before=None,
    )
    notes = [anomaly] if anomaly else _order_notes(state, when, path, created)
    outcome = PollOutcome(
        new_state,
        landing.Capture(when, fmt, path),
        created,
        stations=frame.height,
        bytes=len(fetched.body),
        notes=tuple(notes),
        clock_anomaly=anomaly,
    )
    return outcome, frame


def poll_opendata(client: OpendataClient, root: Path, state: PollState) -> PollOutcome:
    """Opendatasoft exports carry no feed time: a capture is dated by its fetch."""
    try:
        fetched = client.export_json()
    except FeedError as exc:
        return unavailable(state, exc)
    outcome, _ = _land(root, state, fetched, formats.OPENDATA_JSON, _second(fetched.fetched_at), None)
    return outcome


def _known_codes(root: Path) -> frozenset[str] | None:
    infos = landing.information_captures(root)
    return _codes_in(infos[-1].path) if infos else None


@functools.lru_cache(maxsize=4)
def _codes_in(information: Path) -> frozenset[str] | None:
    """Station codes of a landed station_information; landed files never change, so ticks reuse it."""
    try:
        frame = formats.gbfs_info_frame(formats.load_json(information.read_bytes()))
    except CaptureParseError:
        return None
    return frozenset(frame["station_code"].drop_nulls().to_list())


def _information_wanted(root: Path, state: PollState, when: datetime, frame: pl.DataFrame) -> bool:
    """station_information is refreshed when stale, missing, or when unknown stations appear."""
    info_time, known = _when(state.information_time), _known_codes(root)
    if info_time is None or known is None or when - info_time > INFORMATION_MAX_AGE:
        return True
    return not set(frame["station_code"].drop_nulls().to_list()) <= known


def _with_information(
    client: GbfsClient, root: Path, outcome: PollOutcome, when: datetime, frame: pl.DataFrame
) -> PollOutcome:
    """Land station_information when wanted and the tick's budget allows; a failure is only a note."""
    http = client.http
    try:
        if not _information_wanted(root, outcome.state, when, frame):
            return outcome
        if http.budget_s is not None and http.time_left() < INFORMATION_BUDGET_SHARE * http.budget_s:
            note = "station_information deferred to the next tick: the status fetch used most of the budget"
            return replace(outcome, notes=(*outcome.notes, note))
        info = client.station_information()
        _parsed(lambda: formats.gbfs_info_frame(formats.load_json(info.fetched.body)))
        info_time, anomaly = landing_time(info, datetime.now(UTC))
        landing.write_capture(root, info_time, formats.GBFS_INFO, info.fetched.body)
    except (FeedError, CaptureParseError, OSError) as exc:
        return replace(outcome, notes=(*outcome.notes, f"station_information not refreshed: {exc}"))
    notes = (*outcome.notes, f"station_information: {anomaly}") if anomaly else outcome.notes
    return replace(outcome, state=replace(outcome.state, information_time=when.isoformat()), notes=notes)


def poll_gbfs(client: GbfsClient, root: Path, state: PollState) -> PollOutcome:
    try:
        status = client.station_status()
    except FeedError as exc:
        return unavailable(state, exc)
    when, anomaly = landing_time(status, datetime.now(UTC), _when(state.feed_time))
    outcome, frame = _land(root, state, status.fetched, formats.GBFS_STATUS, when, anomaly)
    return outcome if frame is None else _with_information(client, root, outcome, when, frame)
