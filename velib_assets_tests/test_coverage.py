"""How much of a day the collection saw, a frozen feed, and what the report says about both."""

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl

from velib_assets import landing, quality, snapshots
from velib_assets.coverage import DayCoverage, day_coverage, local_label
from velib_assets.kpis.occupancy import DISTRICT_OCCUPANCY_SCHEMA
from velib_assets.kpis.rankings import RANKINGS_SCHEMA
from velib_assets.report import render_report
from velib_assets.schema import REFERENCE_SCHEMA
from velib_assets.sources import formats

from .conftest import OPENDATA_EXPORTS, sample_bytes

AUTUMN_DST = date(2024, 10, 27)  # 25 hours in Paris: 02:00 comes twice
EXPORT = sample_bytes(f"{OPENDATA_EXPORTS.name}/velib_data_20241103_173501.json.gz")
OTHER = sample_bytes(f"{OPENDATA_EXPORTS.name}/velib_data_20241103_174001.json.gz")


def land(root: Path, when: datetime, body: bytes = EXPORT) -> None:
    landing.write_capture(root, when, formats.OPENDATA_JSON, body)


def test_a_dst_day_counts_25_hours_and_names_both_2_am_hours(tmp_path: Path) -> None:
    root = tmp_path / "landing"
    first_two_am = datetime(2024, 10, 27, 0, 10, tzinfo=UTC)  # 02:10+02:00
    for minutes in range(0, 60 * 25, 60):  # one capture an hour, but none at the second 02:00 and 04:00
        when = datetime(2024, 10, 26, 22, 10, tzinfo=UTC) + timedelta(minutes=minutes)
        if when not in (first_two_am + timedelta(hours=1), first_two_am + timedelta(hours=3)):
            land(root, when)
    occupancy = pl.DataFrame({"station_code": ["a", "b"], "observed_minutes": [30.0 * 25, 60.0 * 25]})

    coverage = day_coverage(root, occupancy, AUTUMN_DST, cadence_s=60)

    assert (coverage.hours, coverage.captures, coverage.expected_captures) == (25, 23, 25 * 60)
    assert [local_label(hour) for hour in coverage.missing_hours] == ["02:00+01:00", "04:00+01:00"]
    assert coverage.missing_spans() == "02:00-03:00, 04:00-05:00 (UTC+01:00)"  # the second 02:00
    assert coverage.observed_share == round(90 * 25 / (2 * 25 * 60), 4) == 0.75
    assert coverage.capture_share == round(23 / 1500, 4)


def test_the_day_coverage_check_warns_below_the_share_and_names_the_worst_day() -> None:
    days = [
        DayCoverage(date(2024, 11, 3), 56, 1440, 0.21, 24, ()),
        DayCoverage(date(2024, 11, 4), 1400, 1440, 0.97, 24, ()),
    ]
    verdict = quality.rankings_day_coverage(days, 0.8)
    assert not verdict.passed and verdict.severity is quality.WARN
    assert (verdict.metadata["days_below"], verdict.metadata["worst_day"]) == ("2024-11-03", "2024-11-03")
    assert quality.rankings_day_coverage(days[1:], 0.8).passed


def test_identical_station_data_longer_than_max_gap_is_a_frozen_feed(tmp_path: Path) -> None:
    root = tmp_path / "landing"
    start = datetime(2024, 11, 3, 16, 0, tzinfo=UTC)
    for minutes in (0, 6, 12, 18):  # the same export four times: unchanged for 18 minutes
        land(root, start + timedelta(minutes=minutes))
    land(root, start + timedelta(minutes=24), OTHER)
    land(root, start + timedelta(minutes=30), OTHER)  # a 6-minute repeat: a source's own rhythm

    parsed = snapshots.parse_window(root, start, start + timedelta(hours=1))

    assert parsed.longest_frozen_s == 18 * 60
    frozen = quality.raw_frozen_feed({"2024-11-03-17:00": parsed.longest_frozen_s}, timedelta(minutes=15))
    assert not frozen.passed and frozen.metadata["frozen_hours"] == "2024-11-03-17:00"
    assert quality.raw_frozen_feed({"h": 6 * 60.0}, timedelta(minutes=15)).passed


def test_the_report_says_which_hours_had_no_capture() -> None:
    night = [datetime(2024, 11, 2, 23, tzinfo=UTC) + timedelta(hours=h) for h in (0, 1, 2, 21, 22)]
    coverage = DayCoverage(date(2024, 11, 3), 56, 1440, 0.21, 24, tuple(night))
    empty = [pl.DataFrame(schema=schema) for schema in (RANKINGS_SCHEMA, DISTRICT_OCCUPANCY_SCHEMA)]
    page = render_report(*empty, pl.DataFrame(schema=REFERENCE_SCHEMA), "t", coverage)
    assert "56 captures of 1,440 expected (3.9%)" in page
    assert "stations observed 21% of the day" in page
    assert "No capture in 5 of 24 hours, local time 00:00-03:00, 21:00-23:00 (UTC+01:00)" in page


def test_spans_across_a_dst_change_keep_each_offset() -> None:
    spring = [datetime(2024, 3, 31, h, tzinfo=UTC) for h in (0, 1)]  # 01:00+01:00, then 03:00+02:00
    coverage = DayCoverage(date(2024, 3, 31), 0, 1380, 0.0, 23, tuple(spring))
    assert coverage.missing_spans() == "01:00+01:00-04:00+02:00"


def test_a_frozen_spell_across_an_hour_boundary_is_measured_whole(tmp_path: Path) -> None:
    """Identical every 2 minutes from 16:48 to 17:12: 24 minutes, though each hour holds 10 or 12."""
    root = tmp_path / "landing"
    start = datetime(2024, 11, 3, 16, 48, tzinfo=UTC)
    for minutes in range(0, 25, 2):
        land(root, start + timedelta(minutes=minutes))
    hours = [datetime(2024, 11, 3, h, tzinfo=UTC) for h in (16, 17)]

    first = snapshots.parse_window(root, hours[0], hours[1])
    second = snapshots.parse_window(root, hours[1], hours[1] + timedelta(hours=1), first.tail)

    assert first.longest_frozen_s == 10 * 60
    assert second.longest_frozen_s == 24 * 60
    assert snapshots.parse_window(root, hours[1], hours[1] + timedelta(hours=1)).longest_frozen_s == 12 * 60
