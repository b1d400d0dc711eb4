"""`velib import`: copy recorded captures into the landing zone, verbatim, dated by `recorded`.

One bad file never stops an import: whatever goes wrong with it (an unreadable file or folder, bytes
that are not a station list, a date in the future, an error in a parser) makes it a rejection with
a one-line reason. Only a full disk stops the import, since every later file would fail the same
way; what landed before it stays landed and a re-run skips it.
"""

import errno
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from velib_assets import landing
from velib_assets.settings import ENV_CLOCK_TOLERANCE, clock_tolerance
from velib_assets.sources.formats import CaptureParseError
from velib_assets.sources.recorded import read_recorded

DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


class Rejected(Exception):
    """One file cannot be imported; the message says why."""


@dataclass
class ImportReport:
    imported: list[Path] = field(default_factory=list)
    landed: list[landing.Capture] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    rejected: list[tuple[Path, str]] = field(default_factory=list)
    stopped: str | None = None  # why the import ended before its last file (a full disk)

    def count(self, source: Path, capture: landing.Capture, created: bool) -> None:
        if created:
            self.imported.append(source)
            self.landed.append(capture)
        else:
            self.skipped.append(source)


def walk_paths(paths: Iterable[Path]) -> Iterator[tuple[Path, str | None]]:
    """Files named directly, and every non-hidden file below directories, in a stable order.

    A path or folder that cannot be looked into comes with the reason instead of silently vanishing.
    """
    for path in paths:
        try:
            is_dir = path.is_dir()
        except OSError as exc:  # a parent folder denies access
            yield path, _one_line(exc)
            continue
        yield from _walk_dir(path) if is_dir else [(path, None)]


def _walk_dir(root: Path) -> list[tuple[Path, str | None]]:
    found: list[tuple[Path, str | None]] = []

    def unreadable(exc: OSError) -> None:
        found.append((Path(exc.filename or root), f"unreadable folder: {exc.strerror or exc}"))

    for folder, dirs, files in os.walk(root, onerror=unreadable):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found.extend((Path(folder, name), None) for name in files if not name.startswith("."))
    return sorted(found, key=lambda item: item[0])


def iter_files(paths: Iterable[Path]) -> Iterator[Path]:
    """The listable files of `walk_paths`, for callers that pass over what they cannot read."""
    return (path for path, problem in walk_paths(paths) if problem is None)


def import_paths(paths: Iterable[Path], landing_root: Path, earliest: datetime) -> ImportReport:
    """Land each recognised capture once; a capture already landed is skipped, anything else rejected."""
    report = ImportReport()
    now = datetime.now(UTC)
    for path, problem in walk_paths(paths):
        if problem is None:
            try:
                report.count(path, *_land(path, landing_root, earliest, now))
            except OSError as exc:
                if exc.errno in DISK_FULL:
                    report.stopped = _disk_full(exc, path, landing_root)
                    break
                problem = _one_line(exc)
            except Exception as exc:  # whatever one file's bytes trigger, the other files still import
                problem = _one_line(exc)
        if problem is not None:
            report.rejected.append((path, problem))
    return report


def _land(path: Path, landing_root: Path, earliest: datetime, now: datetime) -> tuple[landing.Capture, bool]:
    """The landed capture and whether it is new (False: the same capture had landed already)."""
    if not path.is_file():
        raise Rejected("not a regular file" if path.exists() else "no such file")
    recorded = read_recorded(path)
    _check_date(recorded.capture_time, earliest, now)
    target, created = landing.write_capture(landing_root, recorded.capture_time, recorded.fmt, recorded.body)
    return landing.Capture(recorded.capture_time, recorded.fmt, target), created


def _check_date(when: datetime, earliest: datetime, now: datetime) -> None:
    """A capture dated past this machine's clock (beyond the tolerance) would pose as the freshest."""
    if when < earliest:
        raise Rejected(f"captured {when:%Y-%m-%d %H:%M}Z, before the partitions start {earliest:%Y-%m-%d}")
    tolerance = clock_tolerance()
    if when - now > tolerance:
        raise Rejected(
            f"captured {when:%Y-%m-%d %H:%M:%S}Z, {(when - now).total_seconds():,.0f} s ahead of this "
            f"machine's clock (tolerance {tolerance.total_seconds():.0f} s, {ENV_CLOCK_TOLERANCE})"
        )


def _one_line(exc: Exception) -> str:
    """The reason as one line; an error that is not a plain rejection keeps its type name."""
    text = " ".join(str(exc).split())
    if isinstance(exc, CaptureParseError | Rejected | OSError):
        return text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _disk_full(exc: OSError, path: Path, landing_root: Path) -> str:
    return (
        f"disk full ({exc.strerror or exc}) on {_mount_point(landing_root)}, which holds {landing_root}, "
        f"while landing {path}: free space there and run the same import again (landed files are skipped)"
    )


def _mount_point(path: Path) -> Path:
    """The disk to free space on: the mount point holding `path` (or its nearest existing parent)."""
    path = path.absolute()
    while not os.path.ismount(path):
        path = path.parent
    return path
