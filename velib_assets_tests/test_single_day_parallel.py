"""A run of one day (today's refresh, one day rebuilt) parses and cleans its hours in worker
processes: the files and figures are those of doing the hours one after another."""

import shutil
from datetime import UTC, date, datetime
from unittest import mock

import dagster as dg

from velib_assets import builds, lake
from velib_assets.days import day_hours
from velib_assets.defs import ingestion, staging
from velib_assets.defs.resources import KpiResource, LakeResource
from velib_assets.pipeline import range_tags
from velib_assets.reference import load_bundled_reference
from velib_assets.settings import KpiThresholds
from velib_assets.workers import map_parallel

DAY, NOW = date(2024, 10, 31), datetime(2024, 11, 5, tzinfo=UTC)


def day_files(folder) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def test_hours_parsed_in_parallel_give_the_files_and_figures_of_hours_parsed_in_order(
    data_dir_with, monkeypatch
):
    data_dir = data_dir_with("date=2024-10-31")  # every hour of the day that holds captures
    folder = lake.day_dir(data_dir / "lake", builds.RAW, DAY)
    in_order = builds.raw_day(data_dir / "lake", data_dir / "landing", NOW, DAY)
    files = day_files(folder)
    shutil.rmtree(folder)
    monkeypatch.setenv("VELIB_WORKERS", "2")

    in_parallel = builds.raw_day(data_dir / "lake", data_dir / "landing", NOW, DAY, map_parallel)

    assert in_parallel.reparsed == in_order.reparsed == 24
    assert in_parallel.hours == in_order.hours
    assert sum(hour.captures > 0 for hour in in_order.hours) == 2  # the sample's first afternoon
    # Byte-identical exports at 15:55 and 16:00 (Paris): a spell that only stitching measures.
    assert any(hour.spells and hour.longest_frozen_s > hour.spells.carry(None)[0] for hour in in_order.hours)
    assert day_files(folder) == files


def test_hours_cleaned_in_parallel_give_the_files_and_figures_of_hours_cleaned_in_order(
    data_dir_with, monkeypatch
):
    data_dir = data_dir_with("date=2024-11-03")
    day = date(2024, 11, 3)
    builds.raw_day(data_dir / "lake", data_dir / "landing", NOW, day)
    clean = (data_dir / "lake", load_bundled_reference(), KpiThresholds(), day)
    in_order = builds.clean_day(*clean)
    written = [lake.day_dir(data_dir / "lake", table, day) for table in (builds.CLEAN, builds.QUARANTINE)]
    files = [day_files(folder) for folder in written]
    for folder in written:
        shutil.rmtree(folder)
    monkeypatch.setenv("VELIB_WORKERS", "2")

    in_parallel = builds.clean_day(*clean, map_parallel)

    assert in_order.rows > 80_000 and in_parallel.rows == in_order.rows
    assert (in_parallel.stations, in_parallel.versions, in_parallel.reasons) == (
        in_order.stations, in_order.versions, in_order.reasons
    )
    assert in_parallel.verdicts == in_order.verdicts
    assert in_parallel.preview.equals(in_order.preview)
    assert [day_files(folder) for folder in written] == files



def test_a_run_of_one_day_hands_its_hours_to_the_workers_and_a_run_of_days_its_days(
    data_dir_with, monkeypatch
):
    data_dir = data_dir_with("date=2024-11-03/hour=16", "date=2024-11-03/hour=17")
    handed: list[list] = []

    def recording(work, items):
        handed.append(list(items))
        return [work(item) for item in items]

    monkeypatch.setattr(ingestion, "map_parallel", recording)
    monkeypatch.setattr(staging, "map_parallel", recording)
    assets = [ingestion.raw_station_snapshots, staging.clean_stations]
    resources = {"lake_store": LakeResource(data_dir=str(data_dir)), "kpi": KpiResource()}
    with mock.patch("velib_assets.defs.checks.now_utc", lambda: NOW):
        dg.materialize(assets, partition_key="2024-11-03", resources=resources)
        [parsed, cleaned] = handed
        assert len(parsed) == 24 and {type(hour) for hour, _ in parsed} == {datetime}
        assert [path.name for path in cleaned] == [
            f"{hour:%Y-%m-%dT%H}Z.parquet" for hour in day_hours(date(2024, 11, 3))
        ]
        handed.clear()
        dg.materialize(assets, resources=resources, tags=range_tags("2024-11-02", "2024-11-03"))
    assert handed == [[date(2024, 11, 2), date(2024, 11, 3)]] * 2
