"""The landing zone: every capture's verbatim bytes, one immutable file each, named by capture time.

Layout under `$VELIB_DATA_DIR/landing/`:
  captures/date=YYYY-MM-DD/hour=HH/<YYYYMMDDTHHMMSS>Z.<format><ext>   station status (UTC hour)
  station_information/<YYYYMMDDTHHMMSS>Z.gbfs-info<ext>                GBFS station_information
A file is written to a temporary name and hard-linked into place, so a crash leaves no half file
and a second write of the same capture is a no-op. The pipeline never modifies or deletes them.
"""

import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from velib_assets.sources import formats

CAPTURES = "captures"
INFORMATION = "station_information"
EXTENSIONS = {
    formats.OPENDATA_JSON: ".json",
    formats.OPENDATA_CSV: ".csv",
    formats.OPENDATA_PARQUET: ".parquet",
    formats.GBFS_STATUS: ".json",
    formats.GBFS_STATUS_LINES: ".jsonl",
    formats.GBFS_INFO: ".json",
}
_NAME = re.compile(r"^(\d{8}T\d{6})Z\.([a-z-]+)\.[a-z.]+$")


@dataclass(frozen=True, order=True)
class Capture:
    """A landed file: when it was captured (UTC), its format and where it lies."""

    capture_time: datetime
    fmt: str
    path: Path


def capture_name(capture_time: datetime, fmt: str, body: bytes) -> str:
    stamp = capture_time.astimezone(UTC).strftime("%Y%m%dT%H%M%S")
    gz = ".gz" if body[:2] == b"\x1f\x8b" else ""
    return f"{stamp}Z.{fmt}{EXTENSIONS[fmt]}{gz}"


def parse_capture_name(path: Path) -> Capture | None:
    match = _NAME.match(path.name)
    if match is None or match.group(2) not in EXTENSIONS:
        return None
    when = datetime.strptime(match.group(1), "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
    return Capture(when, match.group(2), path)


def _hour_dir(root: Path, when: datetime) -> Path:
    utc = when.astimezone(UTC)
    return root / CAPTURES / f"date={utc:%Y-%m-%d}" / f"hour={utc:%H}"


def capture_path(root: Path, capture_time: datetime, fmt: str, body: bytes) -> Path:
    directory = root / INFORMATION if fmt == formats.GBFS_INFO else _hour_dir(root, capture_time)
    return directory / capture_name(capture_time, fmt, body)


def write_capture(root: Path, capture_time: datetime, fmt: str, body: bytes) -> tuple[Path, bool]:
    """Land `body` verbatim; returns the path and whether it was new (False: already landed)."""
    target = capture_path(root, capture_time, fmt, body)
    if target.exists():
        return target, False
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.{uuid.uuid4().hex}.tmp"
    try:
        with open(tmp, "wb") as handle:
            handle.write(body)
            handle.flush()
            os.fsync(handle.fileno())
        os.link(tmp, target)
    except FileExistsError:
        return target, False
    finally:
        tmp.unlink(missing_ok=True)
    return target, True


def _listed(directory: Path) -> Iterator[Capture]:
    if directory.is_dir():
        for path in directory.iterdir():
            capture = parse_capture_name(path)
            if capture is not None:
                yield capture


def captures_in_window(root: Path, start: datetime, end: datetime) -> list[Capture]:
    """Status captures with `start <= capture_time < end`, oldest first."""
    found: list[Capture] = []
    hour = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    while hour < end:
        found.extend(c for c in _listed(_hour_dir(root, hour)) if start <= c.capture_time < end)
        hour += timedelta(hours=1)
    return sorted(found)


def information_captures(root: Path) -> list[Capture]:
    return sorted(_listed(root / INFORMATION))


def information_for(root: Path, when: datetime, known: list[Capture] | None = None) -> Capture | None:
    """The newest `station_information` landed at or before `when`, else the oldest one after it."""
    infos = known if known is not None else information_captures(root)
    before = [c for c in infos if c.capture_time <= when]
    if before:
        return before[-1]
    return infos[0] if infos else None


def newest_capture(root: Path) -> Capture | None:
    """The most recent status capture, found by walking the newest date and hour folders first."""
    base = root / CAPTURES
    if not base.is_dir():
        return None
    for date_dir in sorted(base.iterdir(), reverse=True):
        for hour_dir in sorted(date_dir.iterdir(), reverse=True) if date_dir.is_dir() else []:
            captures = sorted(_listed(hour_dir))
            if captures:
                return captures[-1]
    return None
