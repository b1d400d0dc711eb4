"""The landing zone: every capture's verbatim bytes, gzipped, one immutable file each, named by capture time.

Layout under `$VELIB_DATA_DIR/landing/`:
  captures/date=YYYY-MM-DD/hour=HH/<YYYYMMDDTHHMMSS>Z.<format><ext>.gz   station status (UTC hour)
  station_information/<YYYYMMDDTHHMMSS>Z.gbfs-info<ext>.gz                GBFS station_information
Gunzipping a file gives exactly the bytes the feed sent (gzip, not zstd: every tool reads it and
Python needs no extra library; a GBFS status capture keeps 7.3 % of its size). A recorded file that
came gzipped lands as it came; uncompressed files of earlier releases are read alike, and
`compact_landing` gzips them in place. A file is written to a temporary name and hard-linked into
place, so a crash leaves no half file and a second write of the same capture (the same bytes once
gunzipped) is a no-op. A different capture at the same second lands beside it as
`<stamp>Z-<digest>.<format><ext>.gz`, the digest that of its content: no name ever collides and
nothing is dropped. The pipeline never modifies or deletes them.
"""

import fcntl
import gzip
import hashlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from velib_assets.settings import PARIS
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
_NAME = re.compile(r"^(\d{8}T\d{6})Z(?:-[0-9a-f]{12})?\.([a-z-]+)\.[a-z.]+$")
GZIP_MAGIC = b"\x1f\x8b"
GZIP_LEVEL = 6
"""zlib's default: 7.3 % of a GBFS status capture in 13 ms (level 9: 6.6 % in 37 ms)."""
DIGEST_CHARS = 12
LOCK_SUFFIX = ".write.lock"


@dataclass(frozen=True, order=True)
class Capture:
    """A landed file: when it was captured (UTC), its format and where it lies."""

    capture_time: datetime
    fmt: str
    path: Path


def capture_name(capture_time: datetime, fmt: str, body: bytes, digest: str | None = None) -> str:
    stamp = capture_time.astimezone(UTC).strftime("%Y%m%dT%H%M%S")
    gz = ".gz" if body[:2] == GZIP_MAGIC else ""
    tag = f"-{digest[:DIGEST_CHARS]}" if digest else ""
    return f"{stamp}Z{tag}.{fmt}{EXTENSIONS[fmt]}{gz}"


def parse_capture_name(path: Path) -> Capture | None:
    match = _NAME.match(path.name)
    if match is None or match.group(2) not in EXTENSIONS:
        return None
    when = datetime.strptime(match.group(1), "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
    return Capture(when, match.group(2), path)


def _hour_dir(root: Path, when: datetime) -> Path:
    utc = when.astimezone(UTC)
    return root / CAPTURES / f"date={utc:%Y-%m-%d}" / f"hour={utc:%H}"


def stored_form(fmt: str, body: bytes) -> bytes:
    """The bytes a capture is stored as: gzipped (deterministically: no time in the header, so the
    same capture always gives the same file), unless it came gzipped or is Parquet, compressed
    inside already."""
    if body[:2] == GZIP_MAGIC or fmt == formats.OPENDATA_PARQUET:
        return body
    return gzip.compress(body, compresslevel=GZIP_LEVEL, mtime=0)


def capture_path(root: Path, capture_time: datetime, fmt: str, body: bytes) -> Path:
    directory = root / INFORMATION if fmt == formats.GBFS_INFO else _hour_dir(root, capture_time)
    return directory / capture_name(capture_time, fmt, body)


def content_of(body: bytes) -> bytes:
    """What the feed sent: a gzipped capture compares by its gunzipped bytes."""
    return formats.decompress(body)


def _same_second(target: Path) -> list[Path]:
    """Files already landed for the same second and format as `target`, whatever their encoding."""
    if not target.parent.is_dir():
        return []
    stamp, fmt = target.name[:16], target.name.split(".")[1]
    return sorted(
        p for p in target.parent.iterdir() if p.name[:16] == stamp and p.name.split(".")[1:2] == [fmt]
    )


def _link_new(target: Path, body: bytes) -> bool:
    """Write `body` to a temporary file, fsync it, hard-link it to `target`; False if `target` exists."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.{uuid.uuid4().hex}.tmp"
    try:
        with open(tmp, "wb") as handle:
            handle.write(body)
            handle.flush()
            os.fsync(handle.fileno())
        os.link(tmp, target)
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)
    return True


def write_capture(root: Path, capture_time: datetime, fmt: str, body: bytes) -> tuple[Path, bool]:
    """Land `body` verbatim; returns the path and whether it was new.

    False means the same capture (same format, same bytes once gunzipped) had landed at that second
    already. A different capture at the same second is landed under a digest-tagged name.
    """
    body = stored_form(fmt, body)
    canonical = capture_path(root, capture_time, fmt, body)
    content = content_of(body)
    digest = hashlib.sha256(content).hexdigest()
    tagged = canonical.with_name(capture_name(capture_time, fmt, body, digest))
    with _exclusive(root):  # the sensor and an import may land the same second, in two encodings
        archived_copy = _archived_twin(root, canonical)
        twins = _same_second(canonical) + (_same_second(archived_copy) if archived_copy else [])
        for landed in twins:
            if content_of(landed.read_bytes()) == content:
                return landed, False
        # Another capture of that second, in any encoding or in the archive, keeps its name: this one
        # takes the digest-tagged name, so the listing (which takes a name once) never hides either.
        for target in (canonical, tagged) if not twins else (tagged,):
            if _link_new(target, body):
                return target, True
    raise FileExistsError(f"{tagged}: a different capture holds the digest-tagged name")


@contextmanager
def _exclusive(root: Path) -> Iterator[None]:
    """Writers of the landing zone take turns (a write takes milliseconds) on a lock file beside it,
    not in it: the landing zone holds captures and nothing else."""
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f".{root.name}{LOCK_SUFFIX}", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _listed(*directories: Path) -> Iterator[Capture]:
    """The captures in `directories`, each once: a capture found both plain and gzipped (a compaction
    stopped between writing the gzipped copy and removing the plain one), or both here and in the
    archive (an archiving stopped before removing the original), is listed once."""
    found: dict[str, Capture] = {}
    for directory in directories:
        for path in sorted(directory.iterdir()) if directory.is_dir() else ():
            capture = parse_capture_name(path)
            if capture is not None:
                found[path.name.removesuffix(".gz")] = capture  # sorted: `x.gz` comes after `x`
    yield from found.values()


def _archived_twin(root: Path, path: Path) -> Path | None:
    """Where `path` of the landing zone lies in the archive its day was moved to; None if not archived."""
    relative = path.relative_to(root)
    if relative.parts[0] != CAPTURES:
        return None
    archive = archived(root).get(relative.parts[1].removeprefix("date="))
    return archive / relative if archive is not None else None


def _hour_dirs(root: Path, hour: datetime) -> list[Path]:
    """The folder of an hour's captures, and its copy in the archive if its day was archived."""
    here = _hour_dir(root, hour)
    archive = archived(root).get(here.parent.name.removeprefix("date="))
    if archive is None:
        return [here]
    moved = archive / here.relative_to(root)
    if not (archive / CAPTURES).is_dir():
        raise LandingError(
            f"the captures of {here.parent.name} (UTC) were archived to {archive}, which is not reachable: "
            "mount it again to rebuild those days"
        )
    return [here, moved]


def captures_in_window(root: Path, start: datetime, end: datetime) -> list[Capture]:
    """Status captures with `start <= capture_time < end`, oldest first."""
    found: list[Capture] = []
    hour = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    while hour < end:
        found.extend(c for c in _listed(*_hour_dirs(root, hour)) if start <= c.capture_time < end)
        hour += timedelta(hours=1)
    return sorted(found)


def read_capture(root: Path, capture: Capture) -> bytes:
    """A listed capture's bytes, also when `velib compact-landing` or `velib archive-landing` moved
    it after it was listed (a build running meanwhile must not fail on a file that moved)."""
    try:
        return capture.path.read_bytes()
    except FileNotFoundError:
        plain = capture.path.name.removesuffix(".gz")
        archived_copy = _archived_twin(root, capture.path)
        for folder in (capture.path.parent, *([archived_copy.parent] if archived_copy else [])):
            for name in (f"{plain}.gz", plain):
                if (folder / name).is_file():
                    return (folder / name).read_bytes()
        raise


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


def capture_days(root: Path) -> list[date]:
    """The local (Europe/Paris) days on which status captures landed, from the folder names alone
    (archived days included)."""
    days: set[date] = set()
    bases = [root / CAPTURES, *{archive / CAPTURES for archive in archived(root).values()}]
    for day in archived(root):  # listed even while the archive is not mounted
        for hour in (0, 23):
            when = datetime.fromisoformat(f"{day}T{hour:02d}:00").replace(tzinfo=UTC)
            days.add(when.astimezone(PARIS).date())
    for date_dir in [d for base in bases if base.is_dir() for d in base.glob("date=*")]:
        for hour_dir in date_dir.glob("hour=*"):
            if any(parse_capture_name(p) for p in hour_dir.iterdir()):
                utc = datetime.strptime(f"{date_dir.name[5:]} {hour_dir.name[5:]}", "%Y-%m-%d %H")
                days.add(utc.replace(tzinfo=UTC).astimezone(PARIS).date())
    return sorted(days)


@dataclass
class Compaction:
    """What `compact_landing` did: captures gzipped, plain copies dropped beside a gzip that an
    interrupted run had written, and the bytes before and after."""

    gzipped: int = 0
    finished: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    conflicts: list[Path] = field(default_factory=list)


class LandingError(Exception):
    """The landing zone is not as it must be; the message names the file."""


def _capture_dirs(root: Path) -> list[Path]:
    return [root / INFORMATION, *sorted((root / CAPTURES).glob("date=*/hour=*"))]


def compact_landing(root: Path) -> Compaction:
    """Gzip in place the plain captures earlier releases wrote, without losing or changing one.

    Each plain file's gzip is written aside, linked into place, read back and checked to gunzip to
    the very same bytes, and only then is the plain file removed. Killed at any moment, every
    capture stays readable exactly once (the listing takes a capture found in both forms once) and
    the next run finishes the work. A folder at a time holds the writers' lock, so the sensor waits
    at most a second for it; temporary files left by a killed writer are removed then.
    """
    report = Compaction()
    for directory in _capture_dirs(root):
        if not directory.is_dir():
            continue
        with _exclusive(root):
            for stale in directory.glob(".*.tmp"):
                stale.unlink(missing_ok=True)
            for path in sorted(directory.iterdir()):
                capture = parse_capture_name(path)
                if capture is None or path.suffix == ".gz" or capture.fmt == formats.OPENDATA_PARQUET:
                    continue
                body = path.read_bytes()
                if body[:2] == GZIP_MAGIC:
                    continue  # gzipped already under a plain name: left as it is
                target = path.with_name(path.name + ".gz")
                existed = target.exists()
                if not existed:
                    _link_new(target, stored_form(capture.fmt, body))
                if formats.decompress(target.read_bytes()) != body:
                    if existed:
                        report.conflicts.append(path)
                        continue
                    raise LandingError(f"{target} does not gunzip to {path.name}: both left in place")
                report.bytes_before += len(body)
                report.bytes_after += target.stat().st_size
                report.finished += existed
                report.gzipped += not existed
                path.unlink()
    return report


def archive_manifest(root: Path) -> Path:
    """Which UTC date folders were moved, and where: beside the landing zone, which holds captures only."""
    return root.parent / f"{root.name}.archived.json"


def archived(root: Path) -> dict[str, Path]:
    """UTC date (`YYYY-MM-DD`) -> the archive root its captures were moved to."""
    manifest = archive_manifest(root)
    if not manifest.is_file():
        return {}
    return {day: Path(where) for day, where in json.loads(manifest.read_text()).items()}


def archive_days(root: Path, before: date, destination: Path) -> list[str]:
    """Move the capture folders of the UTC dates before `before` to `destination` (same layout), for
    an operator who has backed them up; the pipeline then reads them there. Each date folder is
    copied aside and synced to disk, renamed into place, then, under the writers' lock, completed
    with any capture landed meanwhile, checked file for file and recorded before the original goes:
    killed at any moment, every capture is readable exactly once, here or there."""
    moved = []
    destination = destination.resolve()
    for date_dir in sorted((root / CAPTURES).glob("date=*")):
        day = date_dir.name.removeprefix("date=")
        if date.fromisoformat(day) >= before:
            continue
        target = destination / CAPTURES / date_dir.name
        if not target.is_dir():
            staging = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
            shutil.copytree(date_dir, staging, ignore=shutil.ignore_patterns(".*"))
            _sync(staging)
            staging.rename(target)
        with _exclusive(root):
            _complete_copy(date_dir, target)
            recorded = {d: str(p) for d, p in archived(root).items()} | {day: str(destination)}
            _write_atomic(archive_manifest(root), json.dumps(recorded, indent=1, sort_keys=True))
            shutil.rmtree(date_dir)
        moved.append(day)
    return moved


def _sync(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())


def _complete_copy(source: Path, copy: Path) -> None:
    """Copy into `copy` what `source` holds and it lacks (a capture landed since), then check that
    every capture of `source` is there, byte for byte; nothing is removed if one differs."""
    for path in source.rglob("*"):
        if not path.is_file() or path.name.startswith("."):
            continue
        twin = copy / path.relative_to(source)
        if not twin.exists():
            _link_new(twin, path.read_bytes())
        if twin.read_bytes() != path.read_bytes():
            raise LandingError(f"{twin} is not an exact copy of {path}: nothing of {source.name} removed")


def _write_atomic(target: Path, text: str) -> None:
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(text)
    os.replace(tmp, target)
