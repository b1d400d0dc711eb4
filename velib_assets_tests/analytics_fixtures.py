"""Helpers of the check, definitions and end-to-end tests: real sample captures turned into frames,
and Dagster runs in a child process with its own data dir and Dagster home.

The definitions read `VELIB_DATA_DIR` and friends when they are imported (resources, the DuckDB path),
and any test module of the suite may import them first with another environment. A child process
started with a clean environment is the one way to run the real jobs on a temporary lake whatever
ran before; it is also exactly how `velib run` and the Dagster run workers load the code.

Run as `python -m velib_assets_tests.analytics_fixtures COMMAND ...` (see `main`).
"""

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path

import polars as pl

from velib_assets.kpis.clean import clean_snapshots
from velib_assets.reference import load_bundled_reference
from velib_assets.settings import KpiThresholds
from velib_assets.sources import parsers
from velib_assets.sources.recorded import read_recorded

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SAMPLE = PROJECT_ROOT / "velib_assets" / "sample" / "opendata-exports-5min"
CHILD_TIMEOUT_S = 240


def sample_files(*days: date) -> list[Path]:
    """The bundled 5-minute exports recorded on the given local days (the file name is Paris time)."""
    stamps = {f"{day:%Y%m%d}" for day in days}
    return sorted(p for p in SAMPLE.iterdir() if p.name.split("_")[2] in stamps)


def raw_capture(name: str) -> pl.DataFrame:
    """One bundled export parsed into raw rows, dated like `velib import` dates it."""
    recorded = read_recorded(SAMPLE / name)
    return parsers.parse_capture(recorded.body, recorded.fmt, recorded.capture_time)


def clean_captures(*names: str) -> pl.DataFrame:
    """Clean rows of bundled exports, with the bundled station reference and default thresholds."""
    raw = pl.concat([raw_capture(name) for name in names])
    return clean_snapshots(raw, load_bundled_reference(), KpiThresholds()).clean


def make_dagster_home(path: Path) -> Path:
    """A Dagster home holding the project's own `dagster.yaml` (pools, telemetry off)."""
    path.mkdir(parents=True, exist_ok=True)
    shutil.copy(PROJECT_ROOT / "dagster.yaml", path / "dagster.yaml")
    return path


def child_env(data_dir: Path, dagster_home: Path | None = None) -> dict[str, str]:
    """This environment minus every project and Dagster setting, plus the given data dir and home."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VELIB_", "DAGSTER_"))}
    env["VELIB_DATA_DIR"] = str(data_dir)
    if dagster_home is not None:
        env["DAGSTER_HOME"] = str(dagster_home)
    return env


def run_child(command: Sequence[str], data_dir: Path, dagster_home: Path) -> tuple[list[dict], str]:
    """Run a `main` command in a child process; returns its JSON result and its stderr."""
    done = subprocess.run(
        [sys.executable, "-m", "velib_assets_tests.analytics_fixtures", *command],
        cwd=PROJECT_ROOT,
        env=child_env(data_dir, dagster_home),
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT_S,
    )
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(command)} exited {done.returncode}:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr


def main(argv: Sequence[str]) -> int:
    """`run-days FIRST LAST`: `pipeline.run_days` on the instance under DAGSTER_HOME.
    `runs [--ephemeral] JOB[:PARTITION] ...`: one run per argument of the named job, as the sensor
    requests them, on that instance or on an in-memory one (when only the lake matters: SQLite
    commits of the run events are most of a small run's time).
    Prints one JSON list of {name, run_id, success}; exits 1 when a run failed."""
    import dagster as dg

    from velib_assets.definitions import defs
    from velib_assets.pipeline import QUIET, run_days

    ephemeral = "--ephemeral" in argv
    argv = [arg for arg in argv if arg != "--ephemeral"]
    instance = dg.DagsterInstance.ephemeral() if ephemeral else dg.DagsterInstance.get()
    results: list[dict] = []
    if argv[0] == "run-days":
        stages = run_days(
            date.fromisoformat(argv[1]),
            date.fromisoformat(argv[2]),
            instance,
            progress=lambda line: print(line, file=sys.stderr),
        )
        results = [{"name": s.name, "run_id": s.run_id, "success": s.success} for s in stages]
    elif argv[0] == "runs":
        for spec in argv[1:]:
            job_name, _, partition = spec.partition(":")
            outcome = defs.resolve_job_def(job_name).execute_in_process(
                instance=instance, partition_key=partition or None, run_config=QUIET, raise_on_error=False
            )
            results.append({"name": spec, "run_id": outcome.run_id, "success": outcome.success})
    else:
        print(f"unknown command {argv[0]!r}", file=sys.stderr)
        return 2
    print(json.dumps(results))
    return 0 if all(r["success"] for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
