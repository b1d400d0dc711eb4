"""API latency on a month of data: a station's day of occupancy and a day's rankings, 50 clients at once.

    .venv/bin/python -m benchmarks.api [--days 30] [--cadence 300] [--clients 50] [--seconds 20]

Builds the month once under `<data-dir>/api` (default `benchmarks/.data/api`): the synthetic raw
history of `generate.py`, the derived assets through the project's Dagster job as `project.py` runs
them, the station dimension, then the serving views. The serving layer holds one row per station
and hour whatever the capture cadence, so the month is generated at `--cadence` 300 s (the bundled
sample's) to keep the build short; the API reads the same tables either way.

Then it starts `velib serve` as its own process (a real uvicorn server) and measures, per endpoint:
- `closed`: `--clients` clients each sending its next request as soon as the last one answered
  (the server's saturation: latency = clients / throughput);
- `paced`: the same clients each sending one request a second (a dashboard's users clicking).
Results: `benchmarks/results/api.json` (p50, p95, max in ms, requests per second, errors).
"""

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import duckdb
import httpx
import numpy as np

from benchmarks.generate import DEFAULT_DATA_DIR, DEFAULT_START, generate

RESULTS = Path(__file__).parent / "results" / "api.json"
TARGET_P95_MS = 50.0


def build_month(data_dir: Path, start: date, days: int, cadence_s: int) -> dict:
    """Raw history, derived assets, station dimension and views; reused when already built."""
    marker = data_dir / "built.json"
    wanted = {"start": start.isoformat(), "days": days, "cadence_s": cadence_s}
    if marker.is_file() and json.loads(marker.read_text()).get("month") == wanted:
        return json.loads(marker.read_text())
    generated = generate(data_dir, start, days, cadence_s)
    began = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "benchmarks.api", "--build-derived", str(data_dir), str(start), str(days)],
        check=True, env={**os.environ, "VELIB_DATA_DIR": str(data_dir)},
    )
    summary = {"month": wanted, "raw_rows": generated.rows, "build_s": round(time.perf_counter() - began, 1)}
    marker.write_text(json.dumps(summary))
    return summary


def build_derived(data_dir: Path, start: date, days: int) -> None:
    """In a child whose VELIB_DATA_DIR is the month's: the definitions read it when imported."""
    import dagster as dg

    from benchmarks.project import DERIVED_ASSETS, JOB, _benchmark_defs
    from velib_assets import lake, serving
    from velib_assets.defs.stations import _all_spells  # the stations asset's own reader
    from velib_assets.kpis.stations import station_versions
    from velib_assets.pipeline import QUIET, range_tags

    last = start + timedelta(days=days - 1)
    outcome = _benchmark_defs().resolve_job_def(JOB).execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), tags=range_tags(start.isoformat(), last.isoformat()),
        run_config=QUIET, raise_on_error=True,
    )
    assert outcome.success, f"{DERIVED_ASSETS} failed"
    lake.write_parquet(station_versions(_all_spells(data_dir / "lake")), data_dir / "lake" / "stations")
    serving.publish_views(data_dir / "warehouse.duckdb", data_dir / "lake", duckdb.connect)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def _client(
    seed: int, http: httpx.AsyncClient, urls: list[str], until: float, pace_s: float, latencies: list[float],
    errors: list[int],
) -> None:
    rng = random.Random(seed)
    await asyncio.sleep(rng.random() * pace_s)
    while (now := time.perf_counter()) < until:
        began = now
        try:
            status = (await http.get(rng.choice(urls))).status_code
        except httpx.TransportError:
            status = 0
        latencies.append((time.perf_counter() - began) * 1000)
        if status != 200:
            errors.append(status)
        if pace_s:
            await asyncio.sleep(max(0.0, pace_s - (time.perf_counter() - began)))


async def _load(base: str, urls: list[str], clients: int, seconds: float, pace_s: float) -> dict:
    latencies: list[float] = []
    errors: list[int] = []
    # Idle connections are dropped before uvicorn's 5 s keep-alive closes them under the client.
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients, keepalive_expiry=4.0)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as http:
        for url in urls[:clients]:  # warm the connections and the Parquet footers
            await http.get(url)
        began = time.perf_counter()
        until = began + seconds
        tasks = (_client(n, http, urls, until, pace_s, latencies, errors) for n in range(clients))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - began
    values = np.array(latencies)
    return {
        "requests": len(latencies),
        "errors": len(errors),
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(float(np.percentile(values, 50)), 1),
        "p95_ms": round(float(np.percentile(values, 95)), 1),
        "max_ms": round(float(values.max()), 1),
    }


def measure(data_dir: Path, start: date, days: int, clients: int, seconds: float) -> dict:
    import polars as pl

    stations = pl.read_parquet(data_dir / "lake" / "stations" / "part.parquet")
    codes = stations["station_code"].unique().sort().to_list()
    rng = random.Random(7)
    month = [start + timedelta(days=d) for d in range(days)]
    workloads = {
        "station_day_occupancy": [
            f"/api/stations/{rng.choice(codes)}/occupancy?start={day}&end={day}"
            for day in (rng.choice(month) for _ in range(2000))
        ],
        "day_rankings": [f"/api/rankings/{rng.choice(month)}?top=20" for _ in range(2000)],
    }
    port = free_port()
    env = {**os.environ, "VELIB_DATA_DIR": str(data_dir)}
    velib = str(Path(sys.executable).parent / "velib")
    command = [velib, "serve", "--port", str(port)]
    server = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    try:
        server.stdout.readline()  # type: ignore[union-attr]
        base = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                httpx.get(f"{base}/api/days", timeout=5)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        results = {}
        for name, urls in workloads.items():
            results[name] = {
                "closed": asyncio.run(_load(base, urls, clients, seconds, 0.0)),
                "paced": asyncio.run(_load(base, urls, clients, seconds, 1.0)),
            }
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    return results


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--build-derived"]:
        build_derived(Path(argv[1]), date.fromisoformat(argv[2]), int(argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--start", type=date.fromisoformat, default=DEFAULT_START)
    parser.add_argument("--cadence", type=int, default=300, help="seconds between synthetic captures")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each measurement")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR / "api")
    args = parser.parse_args(argv)
    data_dir = args.data_dir.resolve()
    built = build_month(data_dir, args.start, args.days, args.cadence)
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as db:
        rows = {view: db.execute(f"SELECT count(*) FROM {view}").fetchone()[0]  # type: ignore[index]
                for view in ("marts.station_occupancy", "marts.critical_station_rankings")}
    load_before = os.getloadavg()[0]
    results = measure(data_dir, args.start, args.days, args.clients, args.seconds)
    report = {
        "days": args.days, "cadence_s": args.cadence, "clients": args.clients, "seconds": args.seconds,
        "serving_rows": rows, "build": built, "cpus": os.cpu_count(), "target_p95_ms": TARGET_P95_MS,
        # The machine's 1-minute load average before and after: other work on it shows in the figures.
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "endpoints": results,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
