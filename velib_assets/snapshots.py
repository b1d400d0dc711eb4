"""Raw snapshots of one time window: parse every landed capture, keep going past bad ones.

A capture that does not parse is reported with its reason and the rest of the window still counts;
GBFS status captures take names, positions and capacities from the nearest `station_information`.
Captures whose station data repeat the previous capture's exactly, under new times, form a frozen
spell. Short spells are normal (the Opendatasoft dataset refreshes about every ten minutes, so two
or three 5-minute exports in a row can be identical); a spell longer than MAX_GAP means the feed
stopped moving while it kept answering.
"""

import hashlib
import itertools
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import polars as pl

from velib_assets import landing
from velib_assets.schema import RAW_SCHEMA, empty_raw_frame
from velib_assets.sources import formats, parsers
from velib_assets.sources.formats import CaptureParseError


@dataclass(frozen=True)
class Unchanged:
    """A digest of the station data of the last capture parsed, and since when they have not changed
    (small enough to keep beside an hour's file, so the next hour can be parsed alone)."""

    content: str
    since: datetime


def content_digest(frame: pl.DataFrame) -> str:
    """A digest of a capture's station rows (without its time), equal for equal rows in equal order."""
    return hashlib.sha256(frame.hash_rows(seed=0).to_numpy().tobytes()).hexdigest()


@dataclass(frozen=True)
class Spells:
    """A window's runs of unchanged station data, as measured with the window parsed alone.

    Only the first run can continue a spell from the window before, so these few figures let
    windows be parsed apart (in parallel) and stitched in order afterwards (`carry`), with the same
    figures as parsing them one after another."""

    first: str
    """The content digest of the window's first parsed capture."""
    first_at: datetime
    first_until: datetime
    """The last capture of the first run (the captures equal to the first one, from the start)."""
    longest_after_first_s: float
    """The longest spell of the runs after the first."""
    last: Unchanged
    """The last run, as measured in the window alone."""
    one_run: bool

    def carry(self, carried: Unchanged | None) -> tuple[float, Unchanged]:
        """The longest spell and the tail, given the tail of the window before."""
        start = carried.since if carried and carried.content == self.first else self.first_at
        longest = max((self.first_until - start).total_seconds(), self.longest_after_first_s)
        return longest, Unchanged(self.first, start) if self.one_run else self.last


@dataclass
class WindowSnapshots:
    frame: pl.DataFrame
    captures: int = 0
    bytes_read: int = 0
    """Bytes landed (gzipped since captures are stored compressed)."""
    bytes_parsed: int = 0
    """Bytes the feed sent: the captures decompressed, which is what a parser's rate is measured on."""
    longest_frozen_s: float = 0.0
    tail: Unchanged | None = None
    spells: Spells | None = None
    """None when no capture of the window parsed."""
    errors: list[tuple[str, str]] = field(default_factory=list)

    @property
    def parsed(self) -> int:
        return self.captures - len(self.errors)


def _information(
    root: Path, capture: landing.Capture, infos: list[landing.Capture], cache: dict
) -> pl.DataFrame | None:
    chosen = landing.information_for(root, capture.capture_time, infos)
    if chosen is None:
        return None
    if chosen.path not in cache:
        try:
            document = formats.load_json(landing.read_capture(root, chosen))
            cache[chosen.path] = formats.gbfs_info_frame(document)
        except CaptureParseError:
            cache[chosen.path] = None
    return cache[chosen.path]


def _with_information(parts: list[tuple[pl.DataFrame, pl.DataFrame | None]]) -> pl.DataFrame:
    """The captures in order, GBFS ones joined to their station_information: one join per run of
    captures sharing it (an hour's 60 captures share one), not one per capture."""
    joined = []
    for _, run in itertools.groupby(parts, key=lambda part: id(part[1])):
        frames = list(run)
        status = pl.concat([frame for frame, _ in frames], how="vertical")
        joined.append(formats.with_station_information(status, frames[0][1]))
    return pl.concat(joined, how="vertical")


def spells_of(contents: list[tuple[datetime, str]]) -> Spells | None:
    """The runs of equal content among the window's parsed captures, in capture order."""
    if not contents:
        return None
    first_at, first = contents[0]
    first_until, longest_after, one_run = first_at, 0.0, True
    previous, spell_start = first, first_at
    for at, content in contents[1:]:
        if content != previous:
            one_run, spell_start = False, at
        elif one_run:
            first_until = at
        else:
            longest_after = max(longest_after, (at - spell_start).total_seconds())
        previous = content
    return Spells(first, first_at, first_until, longest_after, Unchanged(previous, spell_start), one_run)


def parse_window(
    root: Path, start: datetime, end: datetime, carried: Unchanged | None = None
) -> WindowSnapshots:
    """All status captures landed in `[start, end)`, as one raw frame sorted by capture time.

    `carried` is the previous window's `tail`: a frozen spell that began before this window is
    measured from its true start, not cut at the window's edge."""
    captures = landing.captures_in_window(root, start, end)
    infos = landing.information_captures(root)
    cache: dict[Path, pl.DataFrame | None] = {}
    parts: list[tuple[pl.DataFrame, pl.DataFrame | None]] = []
    contents: list[tuple[datetime, str]] = []
    result = WindowSnapshots(empty_raw_frame(), captures=len(captures))
    for capture in captures:
        body = landing.read_capture(root, capture)
        result.bytes_read += len(body)
        try:
            text = formats.decompress(body)
            result.bytes_parsed += len(text)
            frame = parsers.parse_capture(text, capture.fmt, capture.capture_time)
        except CaptureParseError as exc:
            result.errors.append((capture.path.name, str(exc)))
            continue
        info = _information(root, capture, infos, cache) if frame["source"][0] == "gbfs" else None
        contents.append((capture.capture_time, content_digest(frame.drop("snapshot_ts"))))
        parts.append((frame, info))
    if parts:
        result.frame = _with_information(parts).select(list(RAW_SCHEMA))
    result.spells = spells_of(contents)
    if result.spells:
        result.longest_frozen_s, result.tail = result.spells.carry(carried)
    else:
        result.tail = carried
    return result
