"""`velib archive-landing`: closed days' captures move to another directory, opt-in; the pipeline
reads them there, says clearly when that directory is gone, and no crash point loses or doubles one."""

import json
import shutil
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from velib_assets import landing, snapshots
from velib_assets.sources import formats
from velib_assets_tests.analytics_fixtures import PROJECT_ROOT, child_env

from .conftest import SAMPLE

STATUS = (SAMPLE / "gbfs-2025-10" / "station_status.json").read_bytes()
START = datetime(2025, 10, 16, 20, 0, tzinfo=UTC)
END = START + timedelta(days=3)


def land(root: Path) -> dict[datetime, bytes]:
    """Captures every two hours over three UTC days, each with its own content."""
    written = {}
    when = START
    while when < END:
        marked = f'"at":"{when:%H}","num_bikes_available":'.encode()
        body = STATUS.replace(b'"num_bikes_available":', marked, 1)
        landing.write_capture(root, when, formats.GBFS_STATUS, body)
        written[when] = body
        when += timedelta(hours=2)
    return written


def readable(root: Path) -> dict[datetime, bytes]:
    captures = landing.captures_in_window(root, START, END)
    times = [c.capture_time for c in captures]
    assert len(times) == len(set(times)), "a capture is listed twice"
    return {c.capture_time: formats.decompress(c.path.read_bytes()) for c in captures}


@pytest.fixture
def zone(tmp_path: Path) -> tuple[Path, Path, dict[datetime, bytes]]:
    root, archive = tmp_path / "data" / "landing", tmp_path / "backup"
    return root, archive, land(root)


def test_archived_days_are_read_from_the_archive(zone) -> None:
    root, archive, written = zone
    days, frame = landing.capture_days(root), snapshots.parse_window(root, START, END).frame

    moved = landing.archive_days(root, date(2025, 10, 18), archive)

    assert moved == ["2025-10-16", "2025-10-17"]
    assert sorted(p.name for p in (root / "captures").iterdir()) == ["date=2025-10-18", "date=2025-10-19"]
    assert sorted(p.name for p in (archive / "captures").iterdir()) == ["date=2025-10-16", "date=2025-10-17"]
    assert readable(root) == written
    assert landing.capture_days(root) == days
    assert snapshots.parse_window(root, START, END).frame.equals(frame)
    assert json.loads(landing.archive_manifest(root).read_text()) == {
        "2025-10-16": str(archive.resolve()), "2025-10-17": str(archive.resolve())
    }


def test_an_unreachable_archive_is_named_not_read_as_missing_data(zone) -> None:
    root, archive, _ = zone
    landing.archive_days(root, date(2025, 10, 18), archive)
    shutil.rmtree(archive)  # unmounted

    unreachable = r"date=2025-10-16 \(UTC\) were archived to .*not reachable"
    with pytest.raises(landing.LandingError, match=unreachable):
        landing.captures_in_window(root, START, END)
    assert date(2025, 10, 17) in landing.capture_days(root)  # still known as a day with captures


def test_a_late_capture_of_an_archived_day_is_read_with_the_others(zone) -> None:
    root, archive, written = zone
    landing.archive_days(root, date(2025, 10, 18), archive)
    late = datetime(2025, 10, 17, 5, 30, tzinfo=UTC)
    landing.write_capture(root, late, formats.GBFS_STATUS, STATUS)
    assert readable(root) == {**written, late: STATUS}


def test_every_crash_point_leaves_each_capture_readable_once_and_a_rerun_finishes(zone) -> None:
    root, archive, written = zone
    day = root / "captures" / "date=2025-10-16"
    # Killed while copying: a half copy under a hidden staging name.
    staging = archive / "captures" / f".{day.name}.0.tmp"
    shutil.copytree(day, staging)
    next(staging.rglob("*.gz")).unlink()
    assert readable(root) == written
    # Killed after the copy was renamed into place, before the manifest recorded it.
    shutil.copytree(day, archive / "captures" / day.name)
    assert readable(root) == written
    # Killed after the manifest, before the original was removed: both copies exist.
    landing.archive_manifest(root).write_text(json.dumps({"2025-10-16": str(archive.resolve())}))
    assert readable(root) == written

    assert landing.archive_days(root, date(2025, 10, 18), archive) == ["2025-10-16", "2025-10-17"]
    assert not day.exists() and readable(root) == written


def test_a_copy_that_differs_stops_before_anything_is_removed(zone) -> None:
    root, archive, written = zone
    target = archive / "captures" / "date=2025-10-16"
    shutil.copytree(root / "captures" / "date=2025-10-16", target)
    next(target.rglob("*.gz")).write_bytes(b"not the capture")

    with pytest.raises(landing.LandingError, match="is not an exact copy"):
        landing.archive_days(root, date(2025, 10, 18), archive)
    assert (root / "captures" / "date=2025-10-16").is_dir() and readable(root) == written


def velib(data: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "velib_assets.cli", *args],
        cwd=PROJECT_ROOT, env=child_env(data), capture_output=True, text=True, timeout=60,
    )


def test_the_cli_refuses_open_days_and_a_destination_inside_the_landing_zone(zone) -> None:
    root, archive, _ = zone
    data = root.parent
    today = datetime.now(UTC).date()

    open_days = velib(data, "archive-landing", "--before", str(today), "--to", str(archive))
    inside = velib(data, "archive-landing", "--before", "2025-10-18", "--to", str(root / "old"))
    done = velib(data, "archive-landing", "--before", "2025-10-18", "--to", str(archive))

    assert open_days.returncode == 2 and "not closed yet" in open_days.stderr
    assert inside.returncode == 2 and "inside the landing zone" in inside.stderr
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"archived 2 UTC days of captures before 2025-10-18 to {archive.resolve()}")


def test_a_capture_landed_between_copy_and_removal_is_archived_too(zone) -> None:
    root, archive, written = zone
    day = root / "captures" / "date=2025-10-16"
    shutil.copytree(day, archive / "captures" / day.name)  # copied and renamed by an earlier run
    late = datetime(2025, 10, 16, 21, 30, tzinfo=UTC)
    landing.write_capture(root, late, formats.GBFS_STATUS, STATUS)

    landing.archive_days(root, date(2025, 10, 17), archive)

    assert not day.exists() and readable(root) == {**written, late: STATUS}


def test_another_capture_of_an_archived_second_lands_beside_it(zone) -> None:
    root, archive, written = zone
    landing.archive_days(root, date(2025, 10, 18), archive)
    second = START + timedelta(hours=2)
    other = STATUS.replace(b'"num_bikes_available":', b'"other":1,"num_bikes_available":', 1)

    path, created = landing.write_capture(root, second, formats.GBFS_STATUS, other)
    again, created_again = landing.write_capture(root, second, formats.GBFS_STATUS, written[second])

    assert created and "-" in path.name.split(".")[0]  # digest-tagged: the archived one keeps its name
    assert not created_again and archive.resolve() in again.parents  # the archived copy is that capture
    captures = landing.captures_in_window(root, second, second + timedelta(seconds=1))
    bodies = sorted(formats.decompress(c.path.read_bytes()) for c in captures)
    assert bodies == sorted([written[second], other])
