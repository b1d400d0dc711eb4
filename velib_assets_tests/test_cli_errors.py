"""Every bad `velib run` range and bad `--top` is one line on stderr and exit code 2, with nothing run."""

import shutil
import subprocess
import sys
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from velib_assets.cli import UsageError, check_run_range
from velib_assets.settings import PARIS
from velib_assets_tests.analytics_fixtures import PROJECT_ROOT, child_env

VELIB = str(Path(sys.executable).with_name("velib"))
TODAY = datetime.now(PARIS).date()


def velib(*args: str, data: Path, home: Path, **settings: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [VELIB, *args],
        cwd=PROJECT_ROOT,
        env={**child_env(data, home), **settings},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def data(imported_sample, tmp_path: Path) -> Path:
    source, _ = imported_sample
    shutil.copytree(source, tmp_path / "data" / "landing")
    return tmp_path / "data"


@pytest.mark.parametrize(
    ("first", "last", "expected"),
    [
        ("2024-07-01", "2024-11-03", "--from 2024-07-01 is before the partitions start (2024-08-01"),
        (str(TODAY), str(TODAY), f"--to {TODAY} has not closed yet"),
        (str(TODAY + timedelta(days=30)), str(TODAY + timedelta(days=31)), "has not closed yet"),
        (
            "2024-12-01",
            "2024-12-05",
            "no captures landed from 2024-12-01 to 2024-12-05; "
            "captures exist for 2024-08-19, 2024-10-30 .. 2024-11-05",
        ),
        ("2024-11-04", "2024-11-01", "--to 2024-11-01 is before --from 2024-11-04"),
    ],
)
def test_a_bad_range_is_one_line_and_exit_code_2(
    data: Path, tmp_path: Path, first: str, last: str, expected: str
) -> None:
    home = tmp_path / "home"
    done = velib("run", "--from", first, "--to", last, data=data, home=home)
    assert done.returncode == 2
    assert done.stdout == ""
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("velib: ") and expected in line
    assert not home.exists()  # refused before any Dagster instance or run was made


def test_a_range_past_the_partitions_end_is_one_line_and_exit_code_2(data: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    done = velib(
        "run", "--from", "2024-11-03", "--to", "2024-11-05", data=data, home=home,
        VELIB_PARTITIONS_END="2024-11-04",
    )
    assert done.returncode == 2
    assert done.stdout == ""
    [line] = done.stderr.strip().splitlines()
    assert line == "velib: --to 2024-11-05 is after the partitions end (2024-11-04, VELIB_PARTITIONS_END)"
    assert not home.exists()


def test_the_partitions_end_is_the_last_day_a_run_may_build(
    data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VELIB_DATA_DIR", str(data))
    monkeypatch.setenv("VELIB_PARTITIONS_START", "2024-10-31")
    monkeypatch.setenv("VELIB_PARTITIONS_END", "2024-11-04")
    check_run_range(date(2024, 10, 31), date(2024, 11, 4), TODAY)  # the whole range: accepted
    with pytest.raises(UsageError, match="before the partitions start"):
        check_run_range(date(2024, 10, 30), date(2024, 11, 4), TODAY)
    with pytest.raises(UsageError, match="after the partitions end"):
        check_run_range(date(2024, 10, 31), date(2024, 11, 5), TODAY)
    monkeypatch.setenv("VELIB_PARTITIONS_END", "")  # unset: up to the last closed day
    check_run_range(date(2024, 10, 31), date(2024, 11, 5), TODAY)


def test_an_empty_landing_zone_says_how_to_fill_it(tmp_path: Path) -> None:
    done = velib(
        "run", "--from", "2024-11-03", "--to", "2024-11-03", data=tmp_path / "d", home=tmp_path / "h"
    )
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert "the landing zone is empty" in line and "velib import" in line


@pytest.mark.parametrize(
    ("top", "reason"),
    [("-3", "-3 is not a number from 1"), ("0", "0 is not"), ("x", "'x'"), ("9" * 30, "not a number from")],
)
def test_bad_top_is_one_line_and_exit_code_2(tmp_path: Path, top: str, reason: str) -> None:
    done = velib("rankings", "--day", "2024-11-03", "--top", top, data=tmp_path / "d", home=tmp_path / "h")
    assert done.returncode == 2
    assert done.stdout == ""
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("velib rankings: argument --top: ") and reason in line


def test_forecast_on_an_unreadable_forecast_file_is_one_line(tmp_path: Path):
    part = tmp_path / "data" / "lake" / "availability_forecast" / "day=2024-11-04" / "part.parquet"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"not parquet")
    done = velib("forecast", "--at-risk", data=tmp_path / "data", home=tmp_path / "home")
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("velib: ") and len(done.stderr.strip().splitlines()) == 1
