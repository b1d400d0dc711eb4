"""The landing zone stores captures gzipped and still verbatim, reads the plain files of earlier
releases, and `velib compact-landing` gzips those in place without losing or changing a capture,
even when it is killed midway."""

import gzip
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from velib_assets import landing, snapshots
from velib_assets.sources import formats
from velib_assets.sources.recorded import read_recorded
from velib_assets_tests.analytics_fixtures import PROJECT_ROOT, child_env

from .conftest import SAMPLE

GBFS_STATUS_2025 = SAMPLE / "gbfs-2025-10" / "station_status.json"


def recorded_files() -> list[Path]:
    """One file of every recorded format and encoding the project reads."""
    chosen: dict[tuple[str, bool], Path] = {}
    for path in sorted(SAMPLE.rglob("*")):
        try:
            recorded = read_recorded(path)
        except (formats.CaptureParseError, ValueError, OSError):
            continue
        chosen.setdefault((recorded.fmt, path.suffix == ".gz"), path)
    return list(chosen.values())


def test_the_sample_covers_every_format() -> None:
    found = {read_recorded(path).fmt for path in recorded_files()}
    assert found == set(landing.EXTENSIONS)


@pytest.mark.parametrize("path", recorded_files(), ids=lambda p: p.name)
def test_every_recorded_format_lands_gzipped_and_gunzips_to_the_bytes_sent(tmp_path: Path, path: Path):
    recorded = read_recorded(path)
    sent = formats.decompress(recorded.body)

    landed, created = landing.write_capture(tmp_path, recorded.capture_time, recorded.fmt, recorded.body)

    assert created
    stored = landed.read_bytes()
    if recorded.fmt == formats.OPENDATA_PARQUET:
        assert stored == recorded.body and landed.suffix == ".parquet"  # compressed inside already
    else:
        assert landed.name.endswith(".gz") and stored[:2] == landing.GZIP_MAGIC
        assert gzip.decompress(stored) == sent
    again, created_again = landing.write_capture(tmp_path, recorded.capture_time, recorded.fmt, sent)
    assert (again, created_again) == (landed, False)  # the same capture, plain or gzipped: landed once


def test_a_gbfs_status_capture_takes_under_a_tenth_of_its_size(tmp_path: Path) -> None:
    body = GBFS_STATUS_2025.read_bytes()
    when = datetime(2025, 10, 18, 9, tzinfo=UTC)
    landed, _ = landing.write_capture(tmp_path, when, formats.GBFS_STATUS, body)
    assert landed.stat().st_size < 0.10 * len(body)
    again, _ = landing.write_capture(tmp_path / "again", when, formats.GBFS_STATUS, body)
    assert again.read_bytes() == landed.read_bytes()  # deterministic: a re-write is the same file


def plain_landing(root: Path, count: int, start: datetime) -> dict[datetime, bytes]:
    """A landing zone as earlier releases wrote it: plain JSON files named by capture time."""
    body = GBFS_STATUS_2025.read_bytes()
    written = {}
    for minute in range(count):
        when = start + timedelta(minutes=minute)
        marked = f'"minute":{minute},"num_bikes_available":'.encode()
        content = body.replace(b'"num_bikes_available":', marked, 1)
        target = landing.capture_path(root, when, formats.GBFS_STATUS, content)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        written[when] = content
    return written


def readable(root: Path, start: datetime, end: datetime) -> dict[datetime, bytes]:
    """Every capture the pipeline would read, by time; a capture listed twice fails."""
    captures = landing.captures_in_window(root, start, end)
    times = [c.capture_time for c in captures]
    assert len(times) == len(set(times)), "a capture is listed twice"
    return {c.capture_time: formats.decompress(c.path.read_bytes()) for c in captures}


def test_a_plain_landing_is_read_and_compacted_without_changing_a_capture(tmp_path: Path) -> None:
    start = datetime(2025, 10, 18, 8, 30, tzinfo=UTC)
    written = plain_landing(tmp_path, 90, start)
    end = start + timedelta(hours=2)
    before = snapshots.parse_window(tmp_path, start, end).frame
    assert readable(tmp_path, start, end) == written

    report = landing.compact_landing(tmp_path)

    assert (report.gzipped, report.finished, report.conflicts) == (90, 0, [])
    assert report.bytes_after < 0.10 * report.bytes_before
    files = [p for p in (tmp_path / "captures").rglob("*") if p.is_file()]
    assert len(files) == 90 and all(p.suffix == ".gz" for p in files)
    assert readable(tmp_path, start, end) == written
    assert snapshots.parse_window(tmp_path, start, end).frame.equals(before)
    assert landing.compact_landing(tmp_path).gzipped == 0  # a second run has nothing to do


def test_a_capture_found_plain_and_gzipped_is_listed_once(tmp_path: Path) -> None:
    start = datetime(2025, 10, 18, 8, 0, tzinfo=UTC)
    written = plain_landing(tmp_path, 1, start)
    [plain] = [p for p in (tmp_path / "captures").rglob("*.json")]
    plain.with_name(plain.name + ".gz").write_bytes(gzip.compress(plain.read_bytes(), mtime=0))

    assert readable(tmp_path, start, start + timedelta(hours=1)) == written
    report = landing.compact_landing(tmp_path)
    assert (report.gzipped, report.finished) == (0, 1) and not plain.exists()


def test_compaction_killed_midway_leaves_every_capture_readable_exactly_once(tmp_path: Path) -> None:
    start = datetime(2025, 10, 18, 6, 0, tzinfo=UTC)
    written = plain_landing(tmp_path, 400, start)
    end = start + timedelta(hours=8)
    script = "import sys; from pathlib import Path; from velib_assets import landing; " \
             "landing.compact_landing(Path(sys.argv[1]))"
    child = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], cwd=PROJECT_ROOT)
    try:
        deadline = time.monotonic() + 60
        while not list((tmp_path / "captures").rglob("*.gz")) and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(0.05)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=30)
    plain_left = list((tmp_path / "captures").rglob("*.json"))
    assert 0 < len(plain_left) < 400, "killed before it started or after it finished: no midway state"

    assert readable(tmp_path, start, end) == written

    report = landing.compact_landing(tmp_path)
    assert report.gzipped + report.finished == len(plain_left)
    assert not list((tmp_path / "captures").rglob("*.json")) and not list(tmp_path.rglob(".*.tmp"))
    assert readable(tmp_path, start, end) == written


def test_the_cli_compacts_and_reports_the_saving(tmp_path: Path) -> None:
    data = tmp_path / "data"
    plain_landing(data / "landing", 5, datetime(2025, 10, 18, 8, 0, tzinfo=UTC))
    done = subprocess.run(
        [sys.executable, "-m", "velib_assets.cli", "compact-landing"],
        cwd=PROJECT_ROOT, env=child_env(data), capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    [line] = done.stdout.strip().splitlines()
    assert line.startswith("gzipped 5 captures, finished 0 an earlier run had started: 2.3 MB -> 0.2 MB (7.")

    missing = subprocess.run(
        [sys.executable, "-m", "velib_assets.cli", "compact-landing"],
        cwd=PROJECT_ROOT, env=child_env(tmp_path / "nowhere"), capture_output=True, text=True, timeout=60,
    )
    assert missing.returncode == 2 and missing.stderr.startswith("velib: no landing zone at")


def test_another_capture_of_a_second_held_by_a_plain_file_lands_beside_it(tmp_path: Path) -> None:
    """An older release's plain file keeps its name; a different capture of that second is tagged,
    so the listing (which takes a name once, plain or gzipped) never hides either."""
    start = datetime(2025, 10, 18, 8, 0, tzinfo=UTC)
    written = plain_landing(tmp_path, 1, start)
    other = GBFS_STATUS_2025.read_bytes()

    path, created = landing.write_capture(tmp_path, start, formats.GBFS_STATUS, other)

    assert created and path.name.startswith("20251018T080000Z-")
    captures = landing.captures_in_window(tmp_path, start, start + timedelta(seconds=1))
    bodies = sorted(formats.decompress(c.path.read_bytes()) for c in captures)
    assert bodies == sorted([written[start], other])


def test_a_capture_compacted_after_it_was_listed_is_still_read(tmp_path: Path) -> None:
    """A build lists an hour, then `velib compact-landing` swaps a plain file for its gzip: the
    build reads the gzip instead of failing on the file that went."""
    start = datetime(2025, 10, 18, 8, 0, tzinfo=UTC)
    written = plain_landing(tmp_path, 3, start)
    listed = landing.captures_in_window(tmp_path, start, start + timedelta(hours=1))

    landing.compact_landing(tmp_path)

    assert not any(c.path.exists() for c in listed)
    assert [landing.read_capture(tmp_path, c) for c in listed] != list(written.values())  # gzipped now
    assert [formats.decompress(landing.read_capture(tmp_path, c)) for c in listed] == list(written.values())
