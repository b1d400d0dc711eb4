"""`velib import`: copy recorded captures into the landing zone, verbatim, dated by `recorded`."""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from velib_assets import landing
from velib_assets.sources.formats import CaptureParseError
from velib_assets.sources.recorded import read_recorded


@dataclass
class ImportReport:
    imported: list[Path] = field(default_factory=list)
    landed: list[landing.Capture] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    rejected: list[tuple[Path, str]] = field(default_factory=list)


def iter_files(paths: Iterable[Path]) -> Iterator[Path]:
    """Files named directly, and every non-hidden file below directories, in a stable order."""
    for path in paths:
        if path.is_dir():
            yield from sorted(
                p
                for p in path.rglob("*")
                if p.is_file() and not any(part.startswith(".") for part in p.parts)
            )
        else:
            yield path


def import_paths(paths: Iterable[Path], landing_root: Path, earliest: datetime) -> ImportReport:
    """Land each recognised capture once; a file already landed is skipped, a bad one rejected."""
    report = ImportReport()
    for path in iter_files(paths):
        if not path.is_file():
            report.rejected.append((path, "no such file"))
            continue
        try:
            recorded = read_recorded(path)
        except (CaptureParseError, OSError, UnicodeDecodeError) as exc:
            report.rejected.append((path, str(exc)))
            continue
        if recorded.capture_time < earliest:
            report.rejected.append(
                (
                    path,
                    f"captured {recorded.capture_time:%Y-%m-%d %H:%M}Z, "
                    f"before the partitions start {earliest:%Y-%m-%d}",
                )
            )
            continue
        target, created = landing.write_capture(
            landing_root, recorded.capture_time, recorded.fmt, recorded.body
        )
        (report.imported if created else report.skipped).append(path)
        if created:
            report.landed.append(landing.Capture(recorded.capture_time, recorded.fmt, target))
    return report
