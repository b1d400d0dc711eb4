"""One poll of the live feed: fetch, validate, and land the capture if the feed moved.

Kept free of Dagster so the sensor, the command line and the benchmarks share it. A broken or
unreachable feed is a skip with its reason; nothing is landed unless it parses.
"""

import functools
import hashlib
import json
import time
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from velib_assets import landing
from velib_assets.sources import formats
from velib_assets.sources.formats import CaptureParseError
from velib_assets.sources.gbfs import GbfsClient
from velib_assets.sources.http import FeedError
from velib_assets.sources.opendata import OpendataClient

INFORMATION_MAX_AGE = timedelta(hours=1)
INFORMATION_TIME_BUDGET_S = 20.0
"""Fetch station_information only if the status fetch left this much of the sensor's 60 s timeout."""


@dataclass(frozen=True)
class PollState:
    """What the sensor cursor remembers between ticks."""

    feed_time: str | None = None
    digest: str | None = None
    information_time: str | None = None
    ranked_through: str | None = None
    last_closed_day: str | None = None

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
        return cls(**{k: v for k, v in values.items() if k in cls.__dataclass_fields__})

    @property
    def last_capture(self) -> datetime | None:
        return datetime.fromisoformat(self.feed_time) if self.feed_time else None


@dataclass(frozen=True)
class PollOutcome:
    state: PollState
    capture: landing.Capture | None = None
    created: bool = False
    stations: int = 0
    bytes: int = 0
    skip_reason: str | None = None
    notes: tuple[str, ...] = ()


def _second(when: datetime) -> datetime:
    return when.astimezone(UTC).replace(microsecond=0)


def land_status(
    root: Path, body: bytes, fmt: str, capture_time: datetime
) -> tuple[landing.Capture, bool, int]:
    """Validate a status capture by parsing it, then land it; `CaptureParseError` if it is unusable."""
    stations = formats.parse_capture(body, fmt, capture_time).height
    path, created = landing.write_capture(root, capture_time, fmt, body)
    return landing.Capture(capture_time, fmt, path), created, stations


def poll_opendata(client: OpendataClient, root: Path, state: PollState) -> PollOutcome:
    try:
        fetched = client.export_json()
    except FeedError as exc:
        return PollOutcome(state, skip_reason=f"feed unavailable: {exc}")
    digest = hashlib.sha256(fetched.body).hexdigest()
    if digest == state.digest:
        return PollOutcome(state, skip_reason=f"feed unchanged since {state.feed_time}")
    capture_time = _second(fetched.fetched_at)
    try:
        capture, created, stations = land_status(root, fetched.body, formats.OPENDATA_JSON, capture_time)
    except CaptureParseError as exc:
        return PollOutcome(state, skip_reason=f"broken feed: {fetched.url}: {exc}")
    if not created and capture.path.read_bytes() != fetched.body:
        return PollOutcome(state, skip_reason=f"another capture already landed at {capture_time}; next tick")
    new_state = replace(state, feed_time=capture_time.isoformat(), digest=digest)
    return PollOutcome(new_state, capture, created, stations, len(fetched.body))


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


def poll_gbfs(client: GbfsClient, root: Path, state: PollState) -> PollOutcome:
    started = time.monotonic()
    try:
        status = client.station_status()
    except FeedError as exc:
        return PollOutcome(state, skip_reason=f"feed unavailable: {exc}")
    capture_time = _second(status.feed_time or status.fetched.fetched_at)
    previous = state.last_capture
    if previous is not None and capture_time <= previous:
        return PollOutcome(
            state, skip_reason=f"feed unchanged since {state.feed_time} (feed time {capture_time})"
        )
    try:
        body = status.fetched.body
        frame = formats.parse_capture(body, formats.GBFS_STATUS, capture_time)
    except CaptureParseError as exc:
        return PollOutcome(state, skip_reason=f"broken feed: {status.fetched.url}: {exc}")
    path, created = landing.write_capture(root, capture_time, formats.GBFS_STATUS, body)
    new_state = replace(state, feed_time=capture_time.isoformat())
    notes: list[str] = []
    info_time = datetime.fromisoformat(state.information_time) if state.information_time else None
    known = _known_codes(root)
    unknown = known is not None and not set(frame["station_code"].drop_nulls().to_list()) <= known
    wanted = info_time is None or capture_time - info_time > INFORMATION_MAX_AGE or unknown or known is None
    if wanted and time.monotonic() - started > INFORMATION_TIME_BUDGET_S:
        notes.append("station_information deferred to the next tick: the status fetch was slow")
    elif wanted:
        try:
            info = client.station_information()
            formats.gbfs_info_frame(formats.load_json(info.fetched.body))
            info_capture = _second(info.feed_time or info.fetched.fetched_at)
            landing.write_capture(root, info_capture, formats.GBFS_INFO, info.fetched.body)
            new_state = replace(new_state, information_time=capture_time.isoformat())
        except (FeedError, CaptureParseError) as exc:
            notes.append(f"station_information not refreshed: {exc}")
    capture = landing.Capture(capture_time, formats.GBFS_STATUS, path)
    return PollOutcome(new_state, capture, created, frame.height, len(body), notes=tuple(notes))
