"""`python -m benchmarks.run --days N`: generate, run the implementations, compare, check the targets.

Each implementation runs in its own child process (see `benchmarks.rss`), one after the other, on
the same raw hour files, and writes the same four tables (clean rows, station and district
occupancy, rankings); every table must agree with the project's. Figures, agreement and targets are
printed and written to `benchmarks/results/latest.json` (and `results/days-N.json`).
"""

import argparse
import json
import os
import platform
import shutil
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import polars as pl
import psutil

from benchmarks import generate
from benchmarks.compare import compare
from benchmarks.project import DERIVED_ASSETS, QUARANTINE
from benchmarks.rss import measure
from velib_assets.settings import partitions_start

IMPLEMENTATIONS = {
    "project": "benchmarks.project",
    "project_sqlite": "benchmarks.project",
    "pandas": "benchmarks.pandas_kpis",
    "duckdb": "benchmarks.duckdb_kpis",
}
RESULTS_DIR = Path(__file__).parent / "results"
GIB = 1024


def machine() -> dict[str, object]:
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        models = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                  if line.startswith("model name")]
        cpu = models[0] if models else cpu
    import dagster
    import duckdb
    import pandas

    return {
        "cpu": cpu,
        "cores": psutil.cpu_count(logical=True),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "polars": pl.__version__,
        "pandas": pandas.__version__,
        "duckdb": duckdb.__version__,
        "dagster": dagster.__version__,
    }


def _outputs(data_dir: Path, name: str) -> Path:
    return data_dir / "outputs" / name


def _clear_outputs(data_dir: Path, name: str) -> None:
    """Remove what an earlier run left: the implementation's tables, and derived assets in the lake."""
    shutil.rmtree(_outputs(data_dir, name), ignore_errors=True)
    for asset in (*DERIVED_ASSETS, QUARANTINE):
        shutil.rmtree(data_dir / "lake" / asset, ignore_errors=True)


def _rounded(share: float | None) -> float | None:
    return None if share is None else round(share, 4)


def run_implementation(name: str, data_dir: Path, start: date, days: int, rows: int) -> dict:
    _clear_outputs(data_dir, name)
    home = data_dir / "dagster_home"
    if name == "project_sqlite":  # a fresh SQLite instance per run, as on a new machine
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir(parents=True)
        (home / "dagster.yaml").write_text("")
    env = {**os.environ, "VELIB_DATA_DIR": str(data_dir), "DAGSTER_HOME": str(home),
           "VELIB_BENCH_INSTANCE": "sqlite" if name == "project_sqlite" else "memory",
           "VELIB_PARTITIONS_START": min(start, date.fromisoformat(partitions_start())).isoformat()}
    command = [sys.executable, "-m", IMPLEMENTATIONS[name], "--data-dir", str(data_dir),
               "--start", start.isoformat(), "--days", str(days), "--out", str(_outputs(data_dir, name))]
    result = measure(command, env=env, cwd=Path(__file__).parent.parent)
    if result.returncode != 0:
        raise SystemExit(f"{name} failed (exit {result.returncode}):\n{result.stderr[-4000:]}")
    reported = json.loads(result.stdout.strip().splitlines()[-1])
    return {
        "wall_s": round(reported["wall_s"], 3),
        "peak_rss_mib": round(result.peak_rss_mib, 1),
        "rows_per_s": round(rows / reported["wall_s"]),
        "process_wall_s": round(result.process_wall_s, 3),
        "cpu_s": round(result.cpu_s, 2),
        "cpu_steal_share": _rounded(result.steal_share),
        "sampled_tree_peak_mib": round(result.sampled_tree_peak_mib, 1),
        "ru_maxrss_mib": round(result.ru_maxrss_mib, 1),
    }


FLOOR_INSTANCES = ("memory", "sqlite", "postgres")


def dagster_floor(start: date, days: int) -> dict:
    """The same backfill with no-op asset bodies on each kind of instance: Dagster's own cost under
    the project's figure. PostgreSQL is optional: without a server its figure is skipped."""
    first = min(start, date.fromisoformat(partitions_start())).isoformat()
    env = {**os.environ, "VELIB_PARTITIONS_START": first}
    floors: dict[str, dict] = {}
    for instance in FLOOR_INSTANCES:
        print(f"running dagster_floor on {instance} ...", file=sys.stderr, flush=True)
        command = [sys.executable, "-m", "benchmarks.dagster_floor", "--instance", instance,
                   "--start", start.isoformat(), "--days", str(days)]
        result = measure(command, env=env, cwd=Path(__file__).parent.parent)
        if result.returncode != 0:
            if instance == "postgres":
                floors[instance] = {"skipped": result.stderr.strip().splitlines()[-1][:300]}
                continue
            raise SystemExit(f"dagster_floor on {instance} failed:\n{result.stderr[-4000:]}")
        floors[instance] = {
            "wall_s": json.loads(result.stdout.strip().splitlines()[-1])["wall_s"],
            "peak_rss_mib": round(result.peak_rss_mib, 1),
            "cpu_steal_share": _rounded(result.steal_share),
        }
    return floors


def run(args: argparse.Namespace) -> dict:
    data_dir: Path = args.data_dir.resolve()
    began = time.perf_counter()
    generated = generate.generate(data_dir, args.start, args.days, args.cadence, args.seed, args.stations)
    generation_s = time.perf_counter() - began
    report: dict = {
        "days": args.days,
        "cadence_s": args.cadence,
        "rows": generated.rows,
        "stations": generated.stations,
        "start": args.start.isoformat(),
        "seed": args.seed,
        "raw_bytes": generated.bytes,
        "generation_s": round(generation_s, 2),
        "machine": machine(),
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
    }
    for name in args.only:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        report[name] = run_implementation(name, data_dir, args.start, args.days, generated.rows)
    others = [name for name in args.only if name != "project"]
    if "project" in args.only and others:
        print("comparing every table with the project's ...", file=sys.stderr, flush=True)
        began = time.perf_counter()
        agreements = compare(
            _outputs(data_dir, "project"),
            {name: _outputs(data_dir, name) for name in others},
            [args.start + timedelta(days=d) for d in range(args.days)],
        )
        report["compare_s"] = round(time.perf_counter() - began, 2)
        report["agreement"] = {
            name: {table: agreement.report() for table, agreement in tables.items()}
            for name, tables in agreements.items()
        }
        report["agree"] = all(a.agree for tables in agreements.values() for a in tables.values())
        report["ratios"] = {
            f"{name}_over_project_wall": round(report[name]["wall_s"] / report["project"]["wall_s"], 2)
            for name in others
        } | {
            f"{name}_over_project_peak_rss": round(
                report[name]["peak_rss_mib"] / report["project"]["peak_rss_mib"], 2)
            for name in others
        }
    if "project" in args.only:
        report["dagster_floor"] = dagster_floor(args.start, args.days)
    if not args.skip_micro:
        report["micro"] = _module_figures("micro", "sensor tick, parse rate, definitions load")
    if not args.skip_landing_day:
        report["landing_day"] = _module_figures("landing_day", "refresh, storage, rebuild from landing")
    if "project" in args.only:
        report["targets"] = targets(report)
    return report


def _module_figures(module: str, what: str) -> dict:
    """The JSON object `benchmarks.<module>` prints as its last line, run in its own measured child."""
    print(f"running {module} ({what}) ...", file=sys.stderr, flush=True)
    done = measure([sys.executable, "-m", f"benchmarks.{module}"], cwd=Path(__file__).parent.parent)
    if done.returncode != 0:
        raise SystemExit(f"{module} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _target(target: str, measured: float | None, limit: float, at_least: bool = False) -> dict:
    met = None if measured is None else (measured >= limit if at_least else measured < limit)
    return {"target": target, "measured": measured, "limit": limit, "met": met}


def targets(report: dict) -> list[dict]:
    """DESIGN §8's targets, from this run's own figures; `met` is None when the run lacks a figure.

    The time and memory limits are set for 30 and 365 days and only checked at those lengths; the
    ratios and the agreement at any length.
    """
    project = report["project"]
    ratios = report.get("ratios", {})
    peak = max(report[name]["peak_rss_mib"] for name in ("project", "project_sqlite") if name in report)
    checked = []
    if report["days"] == 30:
        checked += [
            _target("project wall_s on the in-memory instance < 20 s (30 days)", project["wall_s"], 20),
            _target("project peak_rss_mib < 2 GiB (30 days)", peak, 2 * GIB),
        ]
    elif report["days"] == 365:
        checked += [
            _target("project wall_s < 5 min (365 days)", project["wall_s"], 300),
            _target("project peak_rss_mib < 4 GiB (365 days)", peak, 4 * GIB),
        ]
    sqlite = ratios.get("project_sqlite_over_project_wall")
    checked += [
        _target("project_sqlite wall_s within 1.15x of project's", sqlite, 1.15),
        _target("pandas wall_s at least 5x project's", ratios.get("pandas_over_project_wall"), 5, True),
        _target("duckdb wall_s at least 3x project's", ratios.get("duckdb_over_project_wall"), 3, True),
    ]
    if "micro" in report:
        micro = report["micro"]
        checked += [
            _target("GBFS status parse >= 70 MB/s", micro["parse_gbfs_status"]["mb_per_s"], 70, True),
            _target(
                "Opendatasoft export parse >= 100 MB/s", micro["parse_opendata_json"]["mb_per_s"], 100, True
            ),
        ]
    if "landing_day" in report:
        day = report["landing_day"]
        checked += [
            _target("a day rebuilt from landing < 10 s", day["rebuild"]["day_s"], 10),
            _target("today's refresh at 23:00 < 10 s", day["at_23h"]["seconds"], 10),
        ]
        if day.get("rebuild_many", {}).get("days") == 30:
            rebuilt = day["rebuild_many"]["seconds_to_rankings"]
            checked.append(_target("30 days rebuilt from landing to rankings < 5 min", rebuilt, 300))
    if "agree" in report:
        checked.append({"target": "every table agrees with the project's", "measured": report["agree"],
                        "limit": True, "met": report["agree"]})
    return checked


def print_agreement(report: dict) -> None:
    for name, tables in report["agreement"].items():
        for table, a in tables.items():
            if a["agree"]:
                print(f"  {name:16}{table:27}{a['rows']:>14,} rows agree")
                continue
            print(f"  {name:16}{table:27}{a['rows']:>14,} rows DISAGREE: {a['other_rows']:,} rows in "
                  f"{name}, {a['only_in_project']:,} only in project, {a['only_in_other']:,} only in {name}, "
                  f"mismatched values {a['mismatches']}")
            for column, example in a["examples"].items():
                print(f"      {column}: {example}")


def print_table(report: dict) -> None:
    print(f"\n{report['days']} days x {report['stations']} stations at {report['cadence_s']} s: "
          f"{report['rows']:,} rows ({report['raw_bytes'] / 2**20:.0f} MiB raw Parquet)")
    print(f"{'':15}{'wall s':>10}{'rows/s':>14}{'peak RSS MiB':>14}{'process s':>11}{'CPU s':>9}"
          f"{'steal':>8}")
    for name in IMPLEMENTATIONS:
        if name in report:
            f = report[name]
            steal = "" if f.get("cpu_steal_share") is None else f"{f['cpu_steal_share']:.1%}"
            print(f"{name:15}{f['wall_s']:>10.2f}{f['rows_per_s']:>14,}{f['peak_rss_mib']:>14.0f}"
                  f"{f['process_wall_s']:>11.2f}{f['cpu_s']:>9.1f}{steal:>8}")
    if "ratios" in report:
        print("ratios:", ", ".join(f"{k} {v}" for k, v in report["ratios"].items()))
        print(f"agreement with the project's tables ({report['compare_s']} s to compare):")
        print_agreement(report)
    if "dagster_floor" in report:
        floors = ", ".join(f"{name} {f['wall_s']:.2f} s" if "wall_s" in f else f"{name} skipped"
                           for name, f in report["dagster_floor"].items())
        print(f"dagster_floor (the same backfill with no-op assets): {floors}")
    if "targets" in report:
        print("targets:")
        for t in report["targets"]:
            verdict = {True: "met", False: "MISSED", None: "n/a"}[t["met"]]
            print(f"  {verdict:7}{t['target']}: {t['measured']}")
    if "micro" in report:
        m = report["micro"]
        tick, first = m["sensor_tick_s"] * 1000, m["sensor_first_tick_s"] * 1000
        print(f"sensor tick {tick:.0f} ms (first {first:.0f} ms), "
              f"landing parse {m['parse_gbfs_status']['mb_per_s']} MB/s GBFS "
              f"({m['parse_gbfs_status']['speedup']}x the reference parser), "
              f"{m['parse_opendata_json']['mb_per_s']} MB/s Opendatasoft "
              f"({m['parse_opendata_json']['speedup']}x), "
              f"definitions load {m['definitions_load_s']} s")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=1)
    parser.add_argument("--start", type=date.fromisoformat, default=generate.DEFAULT_START)
    parser.add_argument("--cadence", type=int, default=60, help="seconds between captures")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--stations", type=int, default=None, help="only the first N stations")
    parser.add_argument("--data-dir", type=Path,
                        default=Path(os.environ.get("VELIB_BENCH_DIR", generate.DEFAULT_DATA_DIR)))
    parser.add_argument("--only", nargs="+", choices=list(IMPLEMENTATIONS), default=list(IMPLEMENTATIONS))
    parser.add_argument("--results", type=Path, default=RESULTS_DIR)
    parser.add_argument("--skip-micro", action="store_true", help="skip the sensor/parse/definitions figures")
    parser.add_argument(
        "--skip-landing-day", action="store_true",
        help="skip the day of real-size landing files (refresh, storage, rebuild; about two minutes)",
    )
    args = parser.parse_args(argv)
    report = run(args)
    print_table(report)
    args.results.mkdir(parents=True, exist_ok=True)
    text = json.dumps(report, indent=2, default=str)
    (args.results / "latest.json").write_text(text + "\n")
    if args.stations is None and args.cadence == 60:
        (args.results / f"days-{args.days}.json").write_text(text + "\n")
    if report.get("agree") is False:
        raise SystemExit("the implementations disagree with the project's tables: see 'agreement' above")


if __name__ == "__main__":
    main()
