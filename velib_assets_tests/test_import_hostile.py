"""`velib import` against hostile input (issue 10): only station lists land, each capture exactly once,
nothing dated in the future, and no single file, folder or full disk ends the import without a summary."""

import errno
import gzip
import json
import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from velib_assets import cli, landing, quality, snapshots
from velib_assets.defs import ingestion
from velib_assets.defs.resources import LakeResource
from velib_assets.importer import import_paths
from velib_assets.sources import formats, parsers
from velib_assets.sources.formats import CaptureParseError

from .conftest import GBFS_STATUS_2025, PARTITIONS_START, SAMPLE, status_at

EXPORTS = SAMPLE / "opendata-exports-5min"
EXPORT = EXPORTS / "velib_data_20241103_173501.json.gz"  # 16:35:01Z, 1485 stations
OTHER_EXPORT = EXPORTS / "velib_data_20241103_174001.json.gz"
EXPORT_WITHOUT_CODES = EXPORTS / "velib_data_20241101_095501.json.gz"  # real: every stationcode null
MINUTE = SAMPLE / "gbfs-2024-11" / "minute-series" / "velib_station_status_2024-11-05_16-48-41.jsonl"
HOUR = (datetime(2024, 11, 3, 16, tzinfo=UTC), datetime(2024, 11, 3, 17, tzinfo=UTC))
FAR_FUTURE = datetime(2030, 1, 1, 12, tzinfo=UTC)


def put(folder: Path, name: str, body: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(body)
    return folder / name


def landed_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def stamp(when: datetime) -> str:
    """A file-name time with an explicit offset, so the importer takes it as said."""
    return when.astimezone(UTC).strftime("%Y%m%d_%H%M%SZ")


@pytest.fixture
def velib_env(tmp_path: Path, monkeypatch) -> Path:
    data = tmp_path / "data"
    monkeypatch.setenv("VELIB_DATA_DIR", str(data))
    monkeypatch.setenv("VELIB_PARTITIONS_START", "2024-08-01")
    monkeypatch.delenv("VELIB_CLOCK_TOLERANCE_SECONDS", raising=False)
    return data


# --- only station lists land -----------------------------------------------------------------------------
def test_json_that_is_not_a_station_list_is_rejected(tmp_path: Path):
    inbox = tmp_path / "inbox"
    for second in range(5):
        put(inbox, f"velib_station_status_2024-11-05_16-50-0{second}.jsonl", b'{"a": 1}\n')
    put(inbox, "velib_data_20241103_180001.json", b'[{"a": 1}]')
    put(inbox, "velib_data_20241103_180501.json", json.dumps({"data": {"stations": [{"a": 1}]}}).encode())
    put(
        inbox,
        "station_info_2024-11-03_09-51-54.json",
        json.dumps({"data": {"stations": [{"name": "x"}]}}).encode(),
    )
    shutil.copy(MINUTE, inbox / MINUTE.name)

    report = import_paths([inbox], tmp_path / "landing", PARTITIONS_START)

    assert report.imported == [inbox / MINUTE.name]
    assert len(report.rejected) == 8
    for path, reason in report.rejected:
        assert reason.startswith("not a station list"), (path.name, reason)
    assert [p.name for p in landed_files(tmp_path / "landing")] == [
        "20241105T164841Z.gbfs-status-lines.jsonl.gz"
    ]


@pytest.mark.parametrize(
    ("body", "fmt"),
    [
        (b'{"a": 1}\n{"b": 2}\n', formats.GBFS_STATUS_LINES),
        (b'[{"a": 1}]', formats.OPENDATA_JSON),
        (b'{"results": [{"stationcode": "16107"}]}', formats.OPENDATA_JSON),  # a code but no counts
        (b'{"lastUpdatedOther": 1760778556, "data": {"stations": [{"x": 0}]}}', formats.GBFS_STATUS),
    ],
    ids=["lines", "export", "no-counts", "gbfs"],
)
def test_every_status_parse_applies_the_station_list_rule(body: bytes, fmt: str):
    """`parse_capture` is what the sensor validates with before landing, and what the raw asset reads."""
    with pytest.raises(CaptureParseError, match="not a station list"):
        parsers.parse_capture(body, fmt, HOUR[0])


def test_the_raw_asset_reports_a_landed_non_station_list_as_a_parse_error(tmp_path: Path):
    landing.write_capture(tmp_path, HOUR[0], formats.GBFS_STATUS_LINES, b'{"a": 1}\n')
    landing.write_capture(
        tmp_path, HOUR[0] + timedelta(minutes=5), formats.OPENDATA_JSON, EXPORT.read_bytes()
    )

    parsed = snapshots.parse_window(tmp_path, *HOUR)

    assert (parsed.captures, parsed.parsed, parsed.frame.height) == (2, 1, 1485)
    [(name, reason)] = parsed.errors
    assert name.endswith(".gbfs-status-lines.jsonl.gz") and reason.startswith("not a station list")


def test_a_real_export_whose_station_codes_are_all_null_is_still_a_capture():
    """The Opendatasoft feed really answered this (codes null, counts present): its rows go to quarantine."""
    frame = parsers.parse_capture(EXPORT_WITHOUT_CODES.read_bytes(), formats.OPENDATA_JSON, HOUR[0])
    assert frame.height == 1482 and frame["station_code"].null_count() == 1482


# --- each capture lands once, and every capture lands -------------------------------------------------------
def test_the_same_capture_gzipped_and_plain_lands_once(tmp_path: Path):
    inbox = tmp_path / "inbox"
    put(inbox, EXPORT.name, EXPORT.read_bytes())
    put(inbox, EXPORT.name.removesuffix(".gz"), gzip.decompress(EXPORT.read_bytes()))

    report = import_paths([inbox], tmp_path / "landing", PARTITIONS_START)

    assert (len(report.imported), len(report.skipped), report.rejected) == (1, 1, [])
    assert len(landed_files(tmp_path / "landing")) == 1
    assert snapshots.parse_window(tmp_path / "landing", *HOUR).frame.height == 1485  # raw rows not doubled


def test_two_different_captures_in_the_same_second_both_land(velib_env: Path, tmp_path: Path, capsys):
    name = f"velib_data_{stamp(HOUR[0] + timedelta(minutes=35, seconds=1))}.json.gz"
    first = put(tmp_path / "collector-a", name, EXPORT.read_bytes())
    second = put(tmp_path / "collector-b", name, OTHER_EXPORT.read_bytes())

    assert cli.main(["import", str(first), str(second)]) == 0
    assert "imported 2, skipped 0 (already landed), rejected 0" in capsys.readouterr().out
    landed = landed_files(velib_env / "landing")
    assert sorted(p.read_bytes() for p in landed) == sorted([EXPORT.read_bytes(), OTHER_EXPORT.read_bytes()])
    parsed = snapshots.parse_window(velib_env / "landing", *HOUR)
    assert (parsed.captures, parsed.parsed) == (2, 2)

    assert cli.main(["import", str(first), str(second)]) == 0
    assert "imported 0, skipped 2 (already landed), rejected 0" in capsys.readouterr().out


# --- nothing from the future --------------------------------------------------------------------------------
def test_a_capture_dated_in_the_future_is_rejected(velib_env: Path, tmp_path: Path, capsys):
    named = put(tmp_path / "inbox", f"velib_data_{stamp(FAR_FUTURE)}.json.gz", EXPORT.read_bytes())
    enveloped = put(tmp_path / "inbox", "station_status.json", status_at(int(FAR_FUTURE.timestamp())))

    assert cli.main(["import", str(named), str(enveloped)]) == 1  # nothing could be imported
    out, err = capsys.readouterr()
    assert "imported 0, skipped 0 (already landed), rejected 2" in out
    lines = err.splitlines()
    assert len(lines) == 2
    for line in lines:
        assert "captured 2030-01-01 12:00:00Z" in line and "ahead of this machine's clock" in line
        assert "tolerance 300 s, VELIB_CLOCK_TOLERANCE_SECONDS" in line
    assert not (velib_env / "landing").exists()


def test_the_clock_tolerance_admits_a_collector_slightly_ahead(tmp_path: Path, monkeypatch):
    ahead = put(
        tmp_path / "inbox",
        f"velib_data_{stamp(datetime.now(UTC) + timedelta(minutes=1))}.json.gz",
        EXPORT.read_bytes(),
    )

    assert len(import_paths([ahead], tmp_path / "default", PARTITIONS_START).imported) == 1
    monkeypatch.setenv("VELIB_CLOCK_TOLERANCE_SECONDS", "0")
    [(_, reason)] = import_paths([ahead], tmp_path / "strict", PARTITIONS_START).rejected
    assert "ahead of this machine's clock (tolerance 0 s" in reason


# --- no single file aborts the import -----------------------------------------------------------------------
def test_an_error_inside_a_parser_rejects_that_file_only(tmp_path: Path, monkeypatch):
    def out_of_range(document: object) -> datetime:
        raise ValueError("year 57762 is out of range")

    monkeypatch.setattr(formats, "gbfs_feed_time", out_of_range)
    inbox = tmp_path / "inbox"
    put(inbox, GBFS_STATUS_2025.name, GBFS_STATUS_2025.read_bytes())
    shutil.copy(EXPORT, inbox)

    report = import_paths([inbox], tmp_path / "landing", PARTITIONS_START)

    assert report.imported == [inbox / EXPORT.name]
    assert report.rejected == [(inbox / GBFS_STATUS_2025.name, "ValueError: year 57762 is out of range")]


def test_real_payloads_with_absurd_timestamps_never_abort_the_import(tmp_path: Path):
    """`lastUpdatedOther` in milliseconds, one `last_reported` of 1e13, a name that is not a date."""
    inbox = tmp_path / "inbox"
    put(inbox / "ms", "station_status.json", status_at(1760778556000))
    body = GBFS_STATUS_2025.read_bytes()
    absurd = body.replace(b'"last_reported":1760776294', b'"last_reported":1e13', 1)
    put(inbox / "report", "station_status.json", absurd)
    put(inbox, "velib_data_20241399_120000.json.gz", EXPORT.read_bytes())
    shutil.copy(EXPORT, inbox / EXPORT.name)

    report = import_paths([inbox], tmp_path / "landing", PARTITIONS_START)

    assert inbox / EXPORT.name in report.imported
    assert len(report.imported) + len(report.skipped) + len(report.rejected) == 4
    reasons = dict(report.rejected)
    assert reasons[inbox / "velib_data_20241399_120000.json.gz"] == (
        "the time in the file name, '20241399_120000', is not a date"
    )
    assert all("\n" not in reason for reason in reasons.values())


def test_unreadable_folders_and_files_are_listed(velib_env: Path, tmp_path: Path, monkeypatch, capsys):
    """Run as root, chmod 000 denies nothing: the denial is simulated where the importer meets it."""
    inbox = tmp_path / "inbox"
    locked = inbox / "locked"
    put(locked, EXPORT.name, EXPORT.read_bytes())
    secret = put(inbox / "open", OTHER_EXPORT.name, OTHER_EXPORT.read_bytes())
    good = Path(shutil.copy(EXPORTS / "velib_data_20241103_174501.json.gz", inbox))
    real_scandir, real_read = os.scandir, Path.read_bytes

    def scandir(path: str | os.PathLike = "."):
        if Path(path) == locked:
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return real_scandir(path)

    def read_bytes(self: Path) -> bytes:
        if self == secret:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_read(self)

    monkeypatch.setattr(os, "scandir", scandir)
    monkeypatch.setattr(Path, "read_bytes", read_bytes)

    assert cli.main(["import", str(inbox)]) == 0
    out, err = capsys.readouterr()
    assert "imported 1, skipped 0 (already landed), rejected 2" in out
    assert err.splitlines() == [
        f"rejected {locked}: unreadable folder: Permission denied",
        f"rejected {secret}: [Errno 13] Permission denied: '{secret}'",
    ]
    assert [p.read_bytes() for p in landed_files(velib_env / "landing")] == [real_read(good)]


# --- a full disk ends the import with one line and the summary ----------------------------------------------
@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT], ids=["ENOSPC", "EDQUOT"])
def test_a_full_disk_stops_with_one_line_and_the_summary(velib_env: Path, monkeypatch, capsys, code: int):
    files = [EXPORTS / f"velib_data_20241103_17{minute}.json.gz" for minute in ("3501", "4001", "4501")]
    real_link, calls = os.link, []

    def link(source: str | os.PathLike, target: str | os.PathLike) -> None:
        calls.append(target)
        if len(calls) > 1:
            raise OSError(code, os.strerror(code))
        real_link(source, target)

    monkeypatch.setattr(os, "link", link)

    assert cli.main(["import", *map(str, files)]) == 1
    out, err = capsys.readouterr()
    assert out.strip().startswith("imported 1, skipped 0 (already landed), rejected 0")
    [line] = err.splitlines()
    assert line.startswith(f"velib: import stopped: disk full ({os.strerror(code)}) on /")
    assert f"which holds {velib_env / 'landing'}, while landing {files[1]}" in line
    assert len(calls) == 2  # stopped at the full disk: the third file was not tried
    assert [p.name for p in landed_files(velib_env / "landing")] == ["20241103T163501Z.opendata-json.json.gz"]


# --- landing freshness is not fooled by a future capture ----------------------------------------------------
def test_landing_freshness_fails_on_a_capture_dated_in_the_future(monkeypatch):
    monkeypatch.delenv("VELIB_CLOCK_TOLERANCE_SECONDS", raising=False)
    now = datetime(2026, 11, 1, 12, tzinfo=UTC)

    verdict = quality.landing_freshness(FAR_FUTURE, now)

    assert not verdict.passed
    age = (now - FAR_FUTURE).total_seconds()
    assert verdict.metadata["newest_capture"] == str(FAR_FUTURE)
    assert verdict.metadata["age_seconds"] == age < 0  # honest, not clamped
    assert verdict.metadata["ahead_of_clock_seconds"] == -age
    assert "dated in the future" in str(verdict.metadata["problem"])


def test_landing_freshness_tolerates_a_clock_slightly_behind(monkeypatch):
    now = datetime(2024, 11, 1, 12, tzinfo=UTC)
    monkeypatch.delenv("VELIB_CLOCK_TOLERANCE_SECONDS", raising=False)
    assert quality.landing_freshness(now + timedelta(minutes=1), now).passed
    monkeypatch.setenv("VELIB_CLOCK_TOLERANCE_SECONDS", "30")
    assert not quality.landing_freshness(now + timedelta(minutes=1), now).passed


def test_the_landing_freshness_check_fails_on_a_future_capture(tmp_path: Path):
    landing.write_capture(
        tmp_path / "landing",
        datetime.now(UTC) - timedelta(minutes=1),
        formats.OPENDATA_JSON,
        EXPORT.read_bytes(),
    )
    resource = LakeResource(data_dir=str(tmp_path))
    assert ingestion.landing_freshness(lake_store=resource).passed

    landing.write_capture(tmp_path / "landing", FAR_FUTURE, formats.OPENDATA_JSON, OTHER_EXPORT.read_bytes())
    result = ingestion.landing_freshness(lake_store=resource)

    assert not result.passed
    assert result.metadata["newest_capture"].value == str(FAR_FUTURE)
    assert result.metadata["age_seconds"].value < -9e7
