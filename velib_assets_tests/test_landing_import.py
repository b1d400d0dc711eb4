"""The landing zone (atomic, immutable, listed by window) and `velib import` of the bundled recordings."""

import gzip
import multiprocessing
import os
import shutil
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from velib_assets import cli, landing
from velib_assets.importer import import_paths
from velib_assets.sources import formats

from .conftest import GBFS_INFO_2025, PARTITIONS_START, SAMPLE, sample_bytes

T = datetime(2024, 11, 3, 16, 35, 1, tzinfo=UTC)
BODY = b'[{"stationcode": "16107", "numbikesavailable": 3}]'
EXPORT = SAMPLE / "opendata-exports-5min" / "velib_data_20241103_173501.json.gz"
STATUS_2024 = SAMPLE / "gbfs-2024-11" / "velib_station_status_2024-10-30_18-12-13.json"
HTML_PAGE = b"<!DOCTYPE html><html><body><h1>504 Gateway Time-out</h1></body></html>"
REJECTED_IN_SAMPLE = {
    "README.md": "not a capture file",
    "gbfs.json": "GBFS document without stations",
    "system_information.json": "GBFS document without stations",
}


def all_files(root: Path) -> dict[Path, bytes]:
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# --- write_capture -------------------------------------------------------------------------------------
def test_write_capture_lands_verbatim_bytes_once(tmp_path: Path):
    path, created = landing.write_capture(tmp_path, T, formats.OPENDATA_JSON, BODY)

    assert created is True
    hour = tmp_path / "captures" / "date=2024-11-03" / "hour=16"
    assert path == hour / "20241103T163501Z.opendata-json.json.gz"
    assert gzip.decompress(path.read_bytes()) == BODY

    assert landing.write_capture(tmp_path, T, formats.OPENDATA_JSON, BODY) == (path, False)
    other, created_other = landing.write_capture(tmp_path, T, formats.OPENDATA_JSON, b"[] different bytes")

    assert created_other is True and other.name.startswith("20241103T163501Z-")  # beside it, not dropped
    assert gzip.decompress(path.read_bytes()) == BODY  # immutable: a second write never replaces it
    assert set(path.parent.iterdir()) == {path, other}  # no temporary file left behind


def test_write_capture_names_gzip_and_information(tmp_path: Path):
    gz, _ = landing.write_capture(tmp_path, T, formats.OPENDATA_JSON, gzip.compress(BODY))
    info, _ = landing.write_capture(tmp_path, T, formats.GBFS_INFO, GBFS_INFO_2025.read_bytes())
    local = T.astimezone(datetime.now().astimezone().tzinfo)
    lines, _ = landing.write_capture(tmp_path, local, formats.GBFS_STATUS_LINES, b"{}\n")

    assert gz.name == "20241103T163501Z.opendata-json.json.gz"
    assert info == tmp_path / "station_information" / "20241103T163501Z.gbfs-info.json.gz"
    assert lines.parent.name == "hour=16" and lines.name.endswith(".gbfs-status-lines.jsonl.gz")
    for path in (gz, info, lines):
        parsed = landing.parse_capture_name(path)
        assert parsed is not None and parsed.capture_time == T and parsed.path == path


def test_concurrent_writes_of_one_capture_create_it_once(tmp_path: Path):
    results: list[bool] = []
    barrier = threading.Barrier(8)

    def write() -> None:
        barrier.wait()
        results.append(landing.write_capture(tmp_path, T, formats.OPENDATA_JSON, BODY)[1])

    threads = [threading.Thread(target=write) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(results) == [False] * 7 + [True]
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == ["20241103T163501Z.opendata-json.json.gz"]


def test_a_failed_write_leaves_neither_capture_nor_temporary_file(tmp_path: Path, monkeypatch):
    def crash(*_: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "link", crash)
    with pytest.raises(OSError, match="disk full"):
        landing.write_capture(tmp_path, T, formats.OPENDATA_JSON, BODY)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


# --- listing ----------------------------------------------------------------------------------------------
def test_captures_in_window_includes_start_and_excludes_end(tmp_path: Path):
    hour = datetime(2024, 11, 3, 16, tzinfo=UTC)
    times = [
        hour - timedelta(seconds=1),
        hour,
        hour + timedelta(minutes=59, seconds=59),
        hour + timedelta(hours=1),
    ]
    for when in reversed(times):
        landing.write_capture(tmp_path, when, formats.OPENDATA_JSON, BODY)
    (tmp_path / "captures" / "date=2024-11-03" / "hour=16" / ".partial.tmp").write_bytes(b"[")
    (tmp_path / "captures" / "date=2024-11-03" / "hour=16" / "notes.txt").write_text("not a capture")

    inside = landing.captures_in_window(tmp_path, hour, hour + timedelta(hours=1))

    assert [c.capture_time for c in inside] == times[1:3]
    assert all(c.fmt == formats.OPENDATA_JSON for c in inside)
    half_past = hour + timedelta(minutes=30)
    spanning = landing.captures_in_window(tmp_path, half_past, half_past + timedelta(hours=1))
    assert [c.capture_time for c in spanning] == times[2:4]
    assert landing.captures_in_window(tmp_path, hour + timedelta(hours=2), hour + timedelta(hours=3)) == []


def test_captures_in_window_reads_utc_folders_for_a_local_window(tmp_path: Path):
    """The second 02:00 of 2024-10-27 in Paris is 01:00 UTC: its captures sit under hour=01."""
    landing.write_capture(tmp_path, datetime(2024, 10, 27, 0, 30, tzinfo=UTC), formats.OPENDATA_JSON, BODY)
    landing.write_capture(tmp_path, datetime(2024, 10, 27, 1, 30, tzinfo=UTC), formats.OPENDATA_JSON, BODY)
    start = datetime.fromisoformat("2024-10-27T02:00:00+01:00")

    found = landing.captures_in_window(tmp_path, start, start + timedelta(hours=1))

    assert [c.capture_time for c in found] == [datetime(2024, 10, 27, 1, 30, tzinfo=UTC)]
    assert found[0].path.parent.name == "hour=01"


def test_information_for_prefers_the_newest_before(tmp_path: Path):
    body = GBFS_INFO_2025.read_bytes()
    early, late = datetime(2024, 11, 3, 8, tzinfo=UTC), datetime(2024, 11, 3, 12, tzinfo=UTC)
    for when in (late, early):
        landing.write_capture(tmp_path, when, formats.GBFS_INFO, body)

    def chosen(when: datetime) -> datetime:
        capture = landing.information_for(tmp_path, when)
        assert capture is not None
        return capture.capture_time

    assert chosen(datetime(2024, 11, 3, 7, tzinfo=UTC)) == early  # nothing before: the oldest after
    assert chosen(early) == early
    assert chosen(datetime(2024, 11, 3, 11, 59, tzinfo=UTC)) == early
    assert chosen(datetime(2024, 11, 4, tzinfo=UTC)) == late
    assert landing.information_for(tmp_path / "empty", early) is None


def test_newest_capture(tmp_path: Path):
    assert landing.newest_capture(tmp_path) is None
    for when in (T, T + timedelta(days=1, hours=3), T + timedelta(minutes=1)):
        landing.write_capture(tmp_path, when, formats.OPENDATA_JSON, BODY)
    (tmp_path / "captures" / "date=2024-11-05").mkdir()  # a newer, empty day is passed over
    newest = landing.newest_capture(tmp_path)
    assert newest is not None and newest.capture_time == T + timedelta(days=1, hours=3)


# --- import ----------------------------------------------------------------------------------------------
def test_import_of_the_bundled_sample(imported_sample):
    landing_root, report = imported_sample
    sample_files = [p for p in SAMPLE.rglob("*") if p.is_file()]

    assert len(report.imported) == 213 and report.skipped == []
    assert {path.name: reason for path, reason in report.rejected}.keys() == REJECTED_IN_SAMPLE.keys()
    for path, reason in report.rejected:
        assert REJECTED_IN_SAMPLE[path.name] in reason
    assert len(report.imported) + len(report.rejected) == len(sample_files)

    captures = [p for p in (landing_root / "captures").rglob("*") if p.is_file()]
    infos = [p for p in (landing_root / "station_information").iterdir()]
    assert len(captures) == 211 and len(infos) == 2
    assert sum(".opendata-json.json.gz" in p.name for p in captures) == 198
    assert sum(".gbfs-status-lines.jsonl" in p.name for p in captures) == 9


def test_imported_files_hold_their_sources_bytes(imported_sample):
    """A gzipped recording lands as it came; a plain one gzipped, giving back its very bytes."""
    _, report = imported_sample
    assert len(report.landed) == len(report.imported)
    for source, landed in zip(report.imported, report.landed, strict=True):
        stored, original = landed.path.read_bytes(), source.read_bytes()
        if original[:2] == landing.GZIP_MAGIC or landed.fmt == formats.OPENDATA_PARQUET:
            assert stored == original, source
        else:
            assert gzip.decompress(stored) == original, source


def test_import_dates_captures_in_utc_folders(imported_sample):
    landing_root, _ = imported_sample
    hour = landing_root / "captures" / "date=2024-11-03" / "hour=16"  # 17:xx in Paris
    names = sorted(p.name for p in hour.iterdir())
    assert len(names) == 11
    assert "20241103T163501Z.opendata-json.json.gz" in names
    minute = landing_root / "captures" / "date=2024-11-05" / "hour=16"
    assert "20241105T164841Z.gbfs-status-lines.jsonl.gz" in {p.name for p in minute.iterdir()}


def test_reimport_skips_everything_and_changes_nothing(imported_sample, tmp_path: Path):
    source_root, _ = imported_sample
    landing_root = tmp_path / "landing"
    shutil.copytree(source_root, landing_root)
    before = all_files(landing_root)

    report = import_paths([SAMPLE], landing_root, PARTITIONS_START)

    assert report.imported == [] and report.landed == []
    assert len(report.skipped) == 213
    assert len(report.rejected) == 3
    assert all_files(landing_root) == before


def test_broken_files_are_rejected_with_their_reason(tmp_path: Path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    stored = EXPORT.read_bytes()
    (inbox / "velib_data_20241103_180001.json.gz").write_bytes(stored[: len(stored) // 2])
    status = STATUS_2024.read_bytes()
    (inbox / "velib_station_status_2024-10-30_18-13-13.json").write_bytes(status[: len(status) // 2])
    (inbox / "velib_data_20241103_180501.json").write_bytes(HTML_PAGE)
    (inbox / "velib_data_20241103_181001.html").write_bytes(HTML_PAGE)
    (inbox / "velib_data_20241103_181501.json").write_bytes(b"[]")
    shutil.copy(EXPORT, inbox / EXPORT.name)
    (inbox / ".hidden").mkdir()
    shutil.copy(EXPORT, inbox / ".hidden" / "velib_data_20241103_182001.json.gz")

    report = import_paths([inbox, tmp_path / "missing.json"], tmp_path / "landing", PARTITIONS_START)

    assert [p.name for p in report.imported] == [EXPORT.name]
    reasons = {path.name: reason for path, reason in report.rejected}
    assert reasons == {
        "velib_data_20241103_180001.json.gz": reasons["velib_data_20241103_180001.json.gz"],
        "velib_station_status_2024-10-30_18-13-13.json": reasons[
            "velib_station_status_2024-10-30_18-13-13.json"
        ],
        "velib_data_20241103_180501.json": "HTML page, not JSON",
        "velib_data_20241103_181001.html": reasons["velib_data_20241103_181001.html"],
        "velib_data_20241103_181501.json": "empty station list",
        "missing.json": "no such file",
    }
    assert reasons["velib_data_20241103_180001.json.gz"].startswith("truncated or corrupt gzip")
    assert reasons["velib_data_20241103_181001.html"].startswith("not a capture file")
    landed = [p.name for p in (tmp_path / "landing").rglob("*") if p.is_file()]
    assert landed == ["20241103T163501Z.opendata-json.json.gz"]
    assert reasons["velib_station_status_2024-10-30_18-13-13.json"].startswith("truncated JSON at byte")


def test_captures_before_the_partitions_start_are_rejected(tmp_path: Path):
    report = import_paths([EXPORT], tmp_path / "landing", datetime(2025, 1, 1, tzinfo=UTC))
    assert report.imported == []
    assert report.rejected == [(EXPORT, "captured 2024-11-03 16:35Z, before the partitions start 2025-01-01")]
    assert not (tmp_path / "landing").exists()


# --- the `velib import` command ---------------------------------------------------------------------------
@pytest.fixture
def velib_env(tmp_path: Path, monkeypatch) -> Path:
    data = tmp_path / "data"
    monkeypatch.setenv("VELIB_DATA_DIR", str(data))
    monkeypatch.setenv("VELIB_PARTITIONS_START", "2024-08-01")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    (tmp_path / "dagster_home").mkdir()
    monkeypatch.chdir(tmp_path)
    return data


def test_cli_import_exit_codes(velib_env: Path, tmp_path: Path, capsys):
    good = [EXPORT, SAMPLE / "opendata-exports-5min" / "velib_data_20241103_174001.json.gz"]
    bad = tmp_path / "velib_data_20241103_180501.json"
    bad.write_bytes(HTML_PAGE)

    assert cli.main(["import", *map(str, good), str(bad)]) == 0
    out, err = capsys.readouterr()
    assert "imported 2, skipped 0 (already landed), rejected 1" in out
    assert f"rejected {bad}: HTML page, not JSON" in err
    assert len([p for p in (velib_env / "landing").rglob("*") if p.is_file()]) == 2

    assert cli.main(["import", *map(str, good)]) == 0  # already landed: nothing lost, nothing to do
    assert "imported 0, skipped 2" in capsys.readouterr().out

    assert cli.main(["import", str(bad), str(tmp_path / "missing.json")]) != 0
    out, err = capsys.readouterr()
    assert "imported 0, skipped 0 (already landed), rejected 2" in out
    assert "no such file" in err


def _land_after(barrier, root: str, when: datetime, body: bytes) -> None:
    barrier.wait(timeout=30)
    landing.write_capture(Path(root), when, formats.GBFS_STATUS, body)


def test_two_processes_landing_one_capture_in_two_encodings_land_it_once(tmp_path: Path) -> None:
    """The sensor and an import racing on the same second: plain and gzipped, one file lands."""
    context = multiprocessing.get_context("spawn")
    body = sample_bytes("gbfs-2025-10/station_status.json")
    for round_ in range(8):
        when = datetime(2025, 10, 18, 9, 0, round_, tzinfo=UTC)
        barrier = context.Barrier(2)
        writers = [
            context.Process(target=_land_after, args=(barrier, str(tmp_path), when, encoded))
            for encoded in (body, gzip.compress(body))
        ]
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join(timeout=60)
            assert writer.exitcode == 0
    landed = [p for p in (tmp_path / "captures").rglob("*") if p.is_file()]
    assert len(landed) == 8
