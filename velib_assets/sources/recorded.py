"""Recorded captures on disk: recognise each file's format and when it was captured.

The capture time is the feed's own timestamp when the document carries one (GBFS envelopes);
otherwise the time in the file name (`YYYYMMDD_HHMMSS` or `YYYY-MM-DD_HH-MM-SS`, Europe/Paris
unless it carries an offset). Collectors disagree on their clock: a name read as local time that
falls before the newest station report inside the file cannot be local, so it is read as UTC. A
file with no time in its name (the one-off CSV and Parquet exports) is dated by its newest report.
"""

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from velib_assets.settings import PARIS
from velib_assets.sources import formats, parsers
from velib_assets.sources.formats import CaptureParseError

_STAMP = re.compile(
    r"(?P<date>\d{4}-?\d{2}-?\d{2})[_T -](?P<time>\d{2}[-:]?\d{2}[-:]?\d{2})(?P<tz>Z|[+-]\d{2}:?\d{2})?"
)


@dataclass(frozen=True)
class RecordedCapture:
    fmt: str
    capture_time: datetime
    body: bytes
    stations: int


def name_time(name: str) -> tuple[datetime, bool] | None:
    """The time in a file name, and whether the name said its offset."""
    match = _STAMP.search(name)
    if match is None:
        return None
    digits = re.sub(r"\D", "", match.group("date") + match.group("time"))
    try:
        naive = datetime.strptime(digits, "%Y%m%d%H%M%S")
    except ValueError as exc:
        raise CaptureParseError(f"the time in the file name, {match.group(0)!r}, is not a date") from exc
    tz = match.group("tz")
    if tz is None:
        return naive.replace(tzinfo=PARIS).astimezone(UTC), False
    if tz == "Z":
        return naive.replace(tzinfo=UTC), True
    offset = datetime.strptime(tz.replace(":", ""), "%z").tzinfo
    return naive.replace(tzinfo=offset).astimezone(UTC), True


CAPTURE_SUFFIXES = (".json", ".jsonl", ".ndjson", ".csv", ".parquet")


def detect_format(path: Path, body: bytes) -> str:
    return _sniff(path, body)[0]


def _sniff(path: Path, body: bytes) -> tuple[str, Any]:
    """The capture's format, and its decoded JSON document when recognising it needed one (None
    otherwise), so an import decodes each file once, not three times."""
    name = path.name.lower().removesuffix(".gz")
    if not name.endswith(CAPTURE_SUFFIXES):
        raise CaptureParseError(
            f"not a capture file (expected one of {', '.join(CAPTURE_SUFFIXES)}, optionally .gz)"
        )
    if name.endswith(".parquet"):
        return formats.OPENDATA_PARQUET, None
    if name.endswith(".csv"):
        return formats.OPENDATA_CSV, None
    if name.endswith(".jsonl") or name.endswith(".ndjson"):
        return formats.GBFS_STATUS_LINES, None
    document = formats.load_json(body)
    if isinstance(document, list) or (isinstance(document, dict) and "results" in document):
        return formats.OPENDATA_JSON, document
    data = document.get("data") if isinstance(document, dict) else None
    if isinstance(data, dict) and isinstance(data.get("stations"), list):
        return _gbfs_kind(data["stations"]), document
    if isinstance(data, dict):
        raise CaptureParseError("a GBFS document without stations (discovery or system information)")
    raise CaptureParseError("not a recognised Vélib' capture format")


def _gbfs_kind(stations: list[Any]) -> str:
    """Status or information, by the keys of the first entry (the parser then checks every entry)."""
    if not stations:
        raise CaptureParseError("empty station list")
    first = stations[0] if isinstance(stations[0], dict) else {}
    if "num_bikes_available" in first or "numBikesAvailable" in first:
        return formats.GBFS_STATUS
    if "lat" in first or "name" in first:
        return formats.GBFS_INFO
    raise CaptureParseError("not a station list: GBFS stations have neither bike counts nor names")


def read_recorded(path: Path) -> RecordedCapture:
    """Recognise, parse and date one recorded file; `CaptureParseError` says why it cannot be used."""
    body = path.read_bytes()
    fmt, document = _sniff(path, body)
    feed_time = None
    if fmt in (formats.GBFS_STATUS, formats.GBFS_INFO):
        feed_time = formats.gbfs_feed_time(document)
        if fmt == formats.GBFS_INFO:
            stations = formats.gbfs_info_frame(document).height
            when = feed_time or _from_name(path, None)
            return RecordedCapture(fmt, when, body, stations)
    placeholder = datetime(2000, 1, 1, tzinfo=UTC)
    if document is None:
        frame = parsers.parse_capture(body, fmt, placeholder)
    else:
        frame = formats.parse_document(document, fmt, placeholder)
    when = feed_time or _from_name(path, frame)
    return RecordedCapture(fmt, when, body, frame.height)


def _from_name(path: Path, frame: pl.DataFrame | None) -> datetime:
    newest = formats.max_reported_at([frame]) if frame is not None else None
    stamped = name_time(path.name)
    if stamped is None:
        if newest is None:
            raise CaptureParseError("no capture time: none in the file name and no station report time")
        return newest
    when, explicit = stamped
    if not explicit and newest is not None and when < newest:
        naive = when.astimezone(PARIS).replace(tzinfo=None)
        when = naive.replace(tzinfo=UTC)
    return when
