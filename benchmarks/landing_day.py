"""A day of real-size captures written as real landing files: today's hourly refresh, the storage a
day takes, and the time to rebuild it from the landing zone.

A landing zone holds one local day of GBFS status captures, one a minute, each the real
1,495-station Vélib' capture of 2025-10-18 with its own feed time and a few counts moved (so no two
are alike), landed as the sensor lands them (gzipped). The day's chain (raw snapshots to report) is
built as the sensor's runs build it, in this process, on Dagster's in-memory instance: at 22:00
(hours 00:00-22:00), at 23:00, when one hour closed (target: under 10 s, the new hour's parsing plus
a recompute of the day), and once the day is over (the final build). Then the lake is deleted and
the day rebuilt from the landing zone alone. Then the day's files are hard-linked under the same
UTC minutes of the next 29 days (the last local day lacks its last hour: the clocks go back on
2025-10-26) and `velib rebuild` rebuilds the 30 days, lake deleted, as an operator would: its whole
time and the time until the rankings are done (the forecasts are built after them in the same run).

Reported: landing bytes and files per day, each lake table's bytes per day, the time to list a day's
captures, the time to read a day from its files against from one zip of them (whether packing closed
days pays), the rebuild of one day and of 30, and projections to a year.

`python -m benchmarks.landing_day [--per-hour N] [--rebuild-days N]` prints one JSON object.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from unittest import mock

RECORDED = Path(__file__).parent.parent / "velib_assets" / "sample" / "gbfs-2025-10"
DAY = date(2025, 10, 18)
CHAIN = (
    "raw_station_snapshots",
    "clean_stations",
    "station_occupancy",
    "district_occupancy",
    "critical_station_rankings",
    "velib_report",
)


def land_day(landing_root: Path, per_hour: int) -> int:
    """Land `per_hour` captures an hour for the whole of DAY; returns the bytes landed."""
    from velib_assets import landing
    from velib_assets.days import day_hours
    from velib_assets.sources import formats

    status = json.loads((RECORDED / "station_status.json").read_bytes())
    stations = status["data"]["stations"]
    landing.write_capture(
        landing_root, datetime(2025, 10, 17, 20, tzinfo=UTC), formats.GBFS_INFO,
        (RECORDED / "station_information.json").read_bytes(),
    )
    landed = 0
    for number, hour in enumerate(h + timedelta(minutes=60 * i / per_hour)
                                  for h in day_hours(DAY) for i in range(per_hour)):
        status["lastUpdatedOther"] = int(hour.timestamp())
        station = stations[number % len(stations)]
        station["num_bikes_available"] = (station["num_bikes_available"] + 1) % 5
        body = json.dumps(status).encode()
        landing.write_capture(landing_root, hour, formats.GBFS_STATUS, body)
        landed += len(body)
    return landed


def build(data_dir: Path, now: datetime) -> tuple[float, dict[str, dict]]:
    """The chain for DAY as a run at `now` builds it: seconds, and each asset's metadata."""
    import dagster as dg

    from velib_assets.definitions import defs
    from velib_assets.defs.resources import KpiResource, LakeResource
    from velib_assets.pipeline import QUIET

    assets = [defs.get_assets_def(name) for name in CHAIN]
    resources = {"lake_store": LakeResource(data_dir=str(data_dir)), "kpi": KpiResource()}
    with mock.patch("velib_assets.defs.checks.now_utc", lambda: now):
        started = time.perf_counter()
        result = dg.materialize(
            assets, partition_key=DAY.isoformat(), resources=resources,
            instance=dg.DagsterInstance.ephemeral(), run_config=QUIET,
        )
        seconds = time.perf_counter() - started
    events = [e.event_specific_data.materialization for e in result.get_asset_materialization_events()]
    return seconds, {
        e.asset_key.to_user_string(): {k: getattr(v, "value", None) for k, v in e.metadata.items()}
        for e in events
    }


def storage(data_dir: Path) -> dict[str, object]:
    """Bytes and files of the day in the landing zone and in each lake table, and the time to list
    the day's captures (what every build of it does first)."""
    from velib_assets import landing
    from velib_assets.kpis.rankings import local_day_bounds

    captures = [p for p in (data_dir / "landing" / "captures").rglob("*") if p.is_file()]
    began = time.perf_counter()
    listed = landing.captures_in_window(data_dir / "landing", *local_day_bounds(DAY))
    list_ms = (time.perf_counter() - began) * 1000
    lake = {
        table.name: sum(p.stat().st_size for p in table.rglob("*") if p.is_file())
        for table in sorted((data_dir / "lake").iterdir())
        if table.is_dir()
    }
    return {
        "landing_files_per_day": len(captures),
        "landing_mb_per_day": round(sum(p.stat().st_size for p in captures) / 1e6, 1),
        "list_day_ms": round(list_ms, 1),
        "listed": len(listed),
        "lake_mb_per_day": {name: round(size / 1e6, 2) for name, size in lake.items()},
    }


def packing(data_dir: Path) -> dict[str, float]:
    """The day's captures read as files, against the same captures packed into one zip (each member
    the landed gzip, stored as is): what packing closed days would buy and cost."""
    from velib_assets import landing
    from velib_assets.kpis.rankings import local_day_bounds

    root = data_dir / "landing"
    began = time.perf_counter()
    captures = landing.captures_in_window(root, *local_day_bounds(DAY))
    files_bytes = sum(len(landing.read_capture(root, c)) for c in captures)
    read_files_ms = (time.perf_counter() - began) * 1000
    pack = data_dir / "day.zip"
    began = time.perf_counter()
    with zipfile.ZipFile(pack, "w", zipfile.ZIP_STORED) as archive:
        for capture in captures:
            archive.write(capture.path, capture.path.name)
    pack_ms = (time.perf_counter() - began) * 1000
    began = time.perf_counter()
    with zipfile.ZipFile(pack) as archive:
        packed_bytes = sum(len(archive.read(name)) for name in sorted(archive.namelist()))
    read_packed_ms = (time.perf_counter() - began) * 1000
    assert packed_bytes == files_bytes
    pack_bytes = pack.stat().st_size
    pack.unlink()
    return {
        "list_and_read_day_files_ms": round(read_files_ms, 1),
        "pack_day_ms": round(pack_ms, 1),
        "list_and_read_day_packed_ms": round(read_packed_ms, 1),
        "packed_mb": round(pack_bytes / 1e6, 1),
    }


def land_more_days(landing_root: Path, days: int) -> int:
    """Days 2..`days` after DAY: each capture of DAY hard-linked under the same UTC minute of a later
    day (the pipeline reads a landed file, it never changes one). Returns the files added."""
    from velib_assets import landing
    from velib_assets.kpis.rankings import local_day_bounds

    added = 0
    for capture in landing.captures_in_window(landing_root, *local_day_bounds(DAY)):
        body = capture.path.read_bytes()[:2]
        for later in range(1, days):
            when = capture.capture_time + timedelta(days=later)
            target = landing.capture_path(landing_root, when, capture.fmt, body)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(capture.path, target)
            added += 1
    return added


def rebuild_days(data_dir: Path, days: int) -> dict[str, object]:
    """`velib rebuild` of `days` days of minute captures, from the landing zone alone, in a child
    process with its own Dagster instance (SQLite), as an operator runs it after an upgrade."""
    last = DAY + timedelta(days=days - 1)
    env = {
        **os.environ,
        "VELIB_DATA_DIR": str(data_dir),
        "DAGSTER_HOME": str(data_dir / "dagster_home"),
        "VELIB_PARTITIONS_START": DAY.isoformat(),
        "VELIB_PARTITIONS_END": (last + timedelta(days=1)).isoformat(),
    }
    (data_dir / "dagster_home").mkdir()
    began, began_at = time.perf_counter(), time.time()
    done = subprocess.run(
        [sys.executable, "-m", "velib_assets.cli", "rebuild"], env=env, capture_output=True, text=True
    )
    seconds = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"velib rebuild failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return {
        "days": days,
        "seconds": round(seconds, 1),
        "seconds_to_rankings": round(_rankings_done_at(data_dir / "dagster_home") - began_at, 1),
        "first": DAY.isoformat(),
        "last": last.isoformat(),
    }


def _rankings_done_at(home: Path) -> float:
    """When the rebuild's run finished `critical_station_rankings` (the forecasts come after it in
    the same run): the time from landing to rankings, which the target is about."""
    import dagster as dg
    from dagster._core.instance.ref import InstanceRef

    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        for run in instance.get_runs():
            for entry in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_SUCCESS):
                if entry.step_key == "critical_station_rankings":
                    return entry.timestamp
    raise SystemExit("velib rebuild recorded no critical_station_rankings step")


def projections(rebuild_s: float, storage_figures: dict) -> dict[str, object]:
    """A day rebuilt from the landing zone, measured; 30 days and a year projected from it, days
    running one per core as a backfill runs them."""
    cores = os.cpu_count() or 1
    lake_mb = sum(storage_figures["lake_mb_per_day"].values())
    return {
        "day_s": round(rebuild_s, 1),
        "days_30_s_projected": round(rebuild_s * 30 / cores),
        "year_s_projected": round(rebuild_s * 365 / cores),
        "year_landing_gb": round(storage_figures["landing_mb_per_day"] * 365 / 1000, 1),
        "year_landing_files": storage_figures["landing_files_per_day"] * 365,
        "year_lake_gb": round(lake_mb * 365 / 1000, 1),
        "cores": cores,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="benchmarks.landing_day")
    parser.add_argument("--per-hour", type=int, default=60, help="captures an hour (60: one a minute)")
    parser.add_argument("--rebuild-days", type=int, default=30, help="days then rebuilt with `velib rebuild`")
    args = parser.parse_args(argv)
    from velib_assets.settings import PARIS

    with tempfile.TemporaryDirectory() as folder:
        data_dir = Path(folder)
        began = time.perf_counter()
        landed = land_day(data_dir / "landing", args.per_hour)
        landing_s = time.perf_counter() - began
        figures: dict[str, object] = {
            "captures": 24 * args.per_hour,
            "landed_mb": round(landed / 1e6, 1),
            "landing_s": round(landing_s, 1),
        }
        for label, now in (
            ("at_22h", datetime.combine(DAY, clock(22, 0, 30), PARIS)),
            ("at_23h", datetime.combine(DAY, clock(23, 0, 30), PARIS)),
            ("final", datetime.combine(DAY + timedelta(days=1), clock(0, 0, 30), PARIS)),
        ):
            seconds, metadata = build(data_dir, now.astimezone(UTC))
            raw = metadata["raw_station_snapshots"]
            figures[label] = {
                "seconds": round(seconds, 2),
                "hours_parsed": raw["hours_parsed_this_run"],
                "hours_built": raw["hours_built"],
                "rows": raw["dagster/row_count"],
                "provisional": metadata["critical_station_rankings"]["provisional"],
            }
        figures["storage"] = storage(data_dir)
        figures["packing"] = packing(data_dir)
        shutil.rmtree(data_dir / "lake")
        after_the_day = datetime.combine(DAY + timedelta(days=1), clock(0, 0, 30), PARIS).astimezone(UTC)
        rebuild_s, _ = build(data_dir, after_the_day)
        figures["rebuild"] = projections(rebuild_s, figures["storage"])
        if args.rebuild_days > 1:
            shutil.rmtree(data_dir / "lake")
            land_more_days(data_dir / "landing", args.rebuild_days)
            figures["rebuild_many"] = rebuild_days(data_dir, args.rebuild_days)
    figures["target_at_23h_under_10_s"] = figures["at_23h"]["seconds"] < 10  # type: ignore[index]
    print(json.dumps(figures), file=sys.stdout)


if __name__ == "__main__":
    main()
