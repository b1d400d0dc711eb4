"""`python -m benchmarks.run --days N`: generate, run the three implementations, compare, report.

Each implementation runs in its own child process (see `benchmarks.rss`), one after the other, on
the same raw lake partitions; their rankings must agree. Figures are printed and written to
`benchmarks/results/latest.json` (and `results/days-N.json`, the input of the README growth table).
"""

import argparse
import json
import os
import platform
import shutil
import sys
import time
from datetime import date
from pathlib import Path

import polars as pl
import psutil

from benchmarks import generate
from benchmarks.rss import measure
from benchmarks.workload import RANKING_COLUMNS
from velib_assets.settings import partitions_start

IMPLEMENTATIONS = {
    "project": "benchmarks.project",
    "project_sqlite": "benchmarks.project",
    "pandas": "benchmarks.pandas_kpis",
    "duckdb": "benchmarks.duckdb_kpis",
}
DERIVED_ASSETS = (
    "clean_stations",
    "quarantine",
    "station_occupancy",
    "district_occupancy",
    "critical_station_rankings",
)
RESULTS_DIR = Path(__file__).parent / "results"
TOLERANCE = 1e-6
MINUTE_COLUMNS = [c for c in RANKING_COLUMNS if c.endswith("_minutes")]


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


def compare(reference: pl.DataFrame, other: pl.DataFrame) -> dict[str, int]:
    """Counts of disagreement between two rankings on (day, station_code): 0 everywhere means agree."""
    joined = reference.join(other, on=["day", "station_code"], how="full", suffix="_other", coalesce=True)
    counts = {
        "rows": reference.height,
        "only_in_project": joined.filter(pl.col("rank_other").is_null()).height,
        "only_in_other": joined.filter(pl.col("rank").is_null()).height,
    }
    both = joined.filter(pl.col("rank").is_not_null() & pl.col("rank_other").is_not_null())
    counts["rank"] = both.filter(pl.col("rank") != pl.col("rank_other")).height
    for column in MINUTE_COLUMNS:
        counts[column] = both.filter((pl.col(column) - pl.col(f"{column}_other")).abs() > TOLERANCE).height
    return counts


def _clear_outputs(data_dir: Path) -> None:
    for asset in DERIVED_ASSETS:
        shutil.rmtree(data_dir / "lake" / asset, ignore_errors=True)


def _rounded(share: float | None) -> float | None:
    return None if share is None else round(share, 4)


def run_implementation(
    name: str, data_dir: Path, start: date, days: int, rows: int
) -> tuple[dict, pl.DataFrame]:
    out = data_dir / "results" / f"{name}.parquet"
    out.unlink(missing_ok=True)
    _clear_outputs(data_dir)
    home = data_dir / "dagster_home"
    if name == "project_sqlite":  # a fresh SQLite instance per run, as on a new machine
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir(parents=True)
        (home / "dagster.yaml").write_text("")
    env = {**os.environ, "VELIB_DATA_DIR": str(data_dir), "DAGSTER_HOME": str(home),
           "VELIB_BENCH_INSTANCE": "sqlite" if name == "project_sqlite" else "memory",
           "VELIB_PARTITIONS_START": min(start, date.fromisoformat(partitions_start())).isoformat()}
    command = [sys.executable, "-m", IMPLEMENTATIONS[name], "--data-dir", str(data_dir),
               "--start", start.isoformat(), "--days", str(days), "--out", str(out)]
    result = measure(command, env=env, cwd=Path(__file__).parent.parent)
    if result.returncode != 0:
        raise SystemExit(f"{name} failed (exit {result.returncode}):\n{result.stderr[-4000:]}")
    reported = json.loads(result.stdout.strip().splitlines()[-1])
    figures = {
        "wall_s": round(reported["wall_s"], 3),
        "peak_rss_mib": round(result.peak_rss_mib, 1),
        "rows_per_s": round(rows / reported["wall_s"]),
        "process_wall_s": round(result.process_wall_s, 3),
        "cpu_s": round(result.cpu_s, 2),
        "cpu_steal_share": _rounded(result.steal_share),
        "sampled_tree_peak_mib": round(result.sampled_tree_peak_mib, 1),
        "ru_maxrss_mib": round(result.ru_maxrss_mib, 1),
        **{k: v for k, v in reported.items() if k not in ("wall_s",)},
    }
    return figures, pl.read_parquet(out)


FLOOR_INSTANCES = ("memory", "sqlite", "postgres")


def dagster_floor(start: date, days: int) -> dict:
    """The same two backfills with no-op asset bodies on each kind of instance: Dagster's own cost
    under the project's figure. PostgreSQL is optional: without a server its figure is skipped."""
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
    rankings: dict[str, pl.DataFrame] = {}
    for name in args.only:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        report[name], rankings[name] = run_implementation(
            name, data_dir, args.start, args.days, generated.rows
        )
    if "project" in rankings and len(rankings) > 1:
        report["agreement"] = {
            name: compare(rankings["project"], frame) for name, frame in rankings.items() if name != "project"
        }
        report["agree"] = all(
            all(v == 0 for k, v in counts.items() if k != "rows")
            for counts in report["agreement"].values()
        )
        report["ratios"] = {
            f"{name}_over_project_wall": round(report[name]["wall_s"] / report["project"]["wall_s"], 2)
            for name in rankings if name != "project"
        } | {
            f"{name}_over_project_peak_rss": round(
                report[name]["peak_rss_mib"] / report["project"]["peak_rss_mib"], 2)
            for name in rankings if name != "project"
        }
    if "project" in args.only:
        report["dagster_floor"] = dagster_floor(args.start, args.days)
    if not args.skip_micro:
        print("running micro (sensor tick, parse rate, definitions load) ...", file=sys.stderr, flush=True)
        micro = measure([sys.executable, "-m", "benchmarks.micro"], cwd=Path(__file__).parent.parent)
        if micro.returncode != 0:
            raise SystemExit(f"micro benchmarks failed:\n{micro.stderr[-4000:]}")
        report["micro"] = json.loads(micro.stdout.strip().splitlines()[-1])
    return report


def print_table(report: dict) -> None:
    print(f"\n{report['days']} days x {report['stations']} stations at {report['cadence_s']} s: "
          f"{report['rows']:,} rows ({report['raw_bytes'] / 2**20:.0f} MiB raw Parquet)")
    print(f"{'':10}{'wall s':>10}{'rows/s':>14}{'peak RSS MiB':>14}{'process s':>11}{'CPU s':>9}"
          f"{'steal':>8}")
    for name in IMPLEMENTATIONS:
        if name in report:
            f = report[name]
            steal = "" if f.get("cpu_steal_share") is None else f"{f['cpu_steal_share']:.1%}"
            print(f"{name:10}{f['wall_s']:>10.2f}{f['rows_per_s']:>14,}{f['peak_rss_mib']:>14.0f}"
                  f"{f['process_wall_s']:>11.2f}{f['cpu_s']:>9.1f}{steal:>8}")
    if "ratios" in report:
        print("ratios:", ", ".join(f"{k} {v}" for k, v in report["ratios"].items()))
        print("agree:", report["agree"], json.dumps(report["agreement"]))
    if "dagster_floor" in report:
        floors = ", ".join(f"{name} {f['wall_s']:.2f} s" if "wall_s" in f else f"{name} skipped"
                           for name, f in report["dagster_floor"].items())
        print(f"dagster_floor (the same backfills with no-op assets): {floors}")
    if "micro" in report:
        m = report["micro"]
        tick, first = m["sensor_tick_s"] * 1000, m["sensor_first_tick_s"] * 1000
        print(f"sensor tick {tick:.0f} ms (first {first:.0f} ms), "
              f"landing parse {m['parse_gbfs_status']['mb_per_s']} MB/s GBFS, "
              f"{m['parse_opendata_json']['mb_per_s']} MB/s Opendatasoft, "
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
    args = parser.parse_args(argv)
    report = run(args)
    print_table(report)
    args.results.mkdir(parents=True, exist_ok=True)
    text = json.dumps(report, indent=2, default=str)
    (args.results / "latest.json").write_text(text + "\n")
    if args.stations is None and args.cadence == 60:
        (args.results / f"days-{args.days}.json").write_text(text + "\n")
    if report.get("agree") is False:
        raise SystemExit("the implementations disagree on the rankings: see 'agreement' above")


if __name__ == "__main__":
    main()
