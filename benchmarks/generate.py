"""Synthetic Vélib' history at any cadence, shaped like the real feed, written as raw lake partitions.

The station list (codes, capacities, communes, coordinates) is the real one from the bundled
reference. Bike counts follow commute waves (residential stations drain in the morning and fill in
the evening, business stations the other way round), hill stations stay empty and sink stations
full for hours, trucks rebalance now and then, and the defects of the real feed are kept at about
their observed rates: closed stations, maintenance spells, stale stations frozen for months,
bikes + docks off capacity, captures with null metadata, rows without a code, missed captures and
the odd sensor outage longer than MAX_GAP.

Output: one Parquet file per UTC hour in its local day's folder under
`<root>/lake/raw_station_snapshots/day=YYYY-MM-DD/`, in RAW_SCHEMA, where and how the
`raw_station_snapshots` asset writes them (without the asset's JSON sidecars), so the transform
benchmarks start from the lake. Every local day is drawn from its own seed, so any day range is
reproducible on its own and days are generated in parallel.
"""

import argparse
import hashlib
import json
import math
import multiprocessing
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from velib_assets import lake
from velib_assets.schema import RAW_SCHEMA
from velib_assets.settings import PARIS

RAW_ASSET = "raw_station_snapshots"
GENERATOR_VERSION = 2
"""2: raw hour files in per-day folders (`day=YYYY-MM-DD/<UTC hour>Z.parquet`); 1 was `date=/hour=/`."""
DEFAULT_START = date(2024, 10, 14)
"""Thirty days from here cross the autumn DST change (27 Oct 2024, a 25-hour day)."""
DEFAULT_DATA_DIR = Path(__file__).parent / ".data"

# Rates observed in the real Opendatasoft exports of Oct-Nov 2024 (see benchmarks/README.md).
CLOSED_SHARE = 0.019
STALE_SHARE = 0.006
MAINTENANCE_PER_DAY = 0.03
NULL_METADATA_CAPTURE_SHARE = 0.14
NULL_CODE_ROW_SHARE = 0.002
NEGATIVE_COUNT_ROW_SHARE = 2e-5
MISSING_ROW_SHARE = 5e-4
MISSED_CAPTURE_SHARE = 0.003
OUTAGE_PER_DAY = 0.25
OVERFLOW_SHARE = 0.01
KINDS = ("residential", "business", "balanced", "hill", "sink")
KIND_SHARES = (0.45, 0.30, 0.18, 0.05, 0.02)


@dataclass(frozen=True)
class Stations:
    """The real station list plus per-station traits drawn once from the seed."""

    reference: pl.DataFrame
    capacity: np.ndarray
    kind: np.ndarray
    rate: np.ndarray
    ebike_share: np.ndarray
    closed: np.ndarray
    stale: np.ndarray
    stale_since_s: np.ndarray
    overflow: np.ndarray

    @property
    def count(self) -> int:
        return self.reference.height


@dataclass(frozen=True)
class Generated:
    data_dir: str
    start: str
    days: int
    cadence_s: int
    seed: int
    stations: int
    rows: int
    files: int
    bytes: int
    generated_days: int


def load_reference() -> pl.DataFrame:
    """The bundled station reference: real codes, capacities, communes and coordinates."""
    from velib_assets.reference import load_bundled_reference

    return load_bundled_reference().filter(pl.col("station_code").is_not_null()).sort("station_code")


def draw_stations(reference: pl.DataFrame, seed: int, limit: int | None = None) -> Stations:
    """Per-station traits: kind of commute profile, activity, e-bike share, closed/stale/overflow flags."""
    if limit is not None:
        reference = reference.head(limit)
    rng = np.random.default_rng([seed, 0])
    n = reference.height
    capacity = reference["capacity"].fill_null(0).clip(0, 200).to_numpy().astype(np.int64)
    stale = rng.random(n) < STALE_SHARE
    return Stations(
        reference=reference,
        capacity=capacity,
        kind=rng.choice(len(KINDS), size=n, p=KIND_SHARES),
        # Departures per minute at the daily mean: ~270 trips a day on a 30-dock station.
        rate=np.maximum(capacity, 5) * 0.0063 * rng.lognormal(0.0, 0.4, n),
        ebike_share=rng.beta(2.0, 4.0, n),
        closed=(rng.random(n) < CLOSED_SHARE) & ~stale,
        stale=stale,
        stale_since_s=rng.integers(2 * 86_400, 700 * 86_400, n),
        overflow=np.where(rng.random(n) < OVERFLOW_SHARE, rng.integers(1, 5, n), 0),
    )


def local_day_window(day: date) -> tuple[datetime, datetime]:
    """UTC bounds of a local Europe/Paris day (23 or 25 hours on DST days)."""
    start = datetime.combine(day, datetime.min.time(), PARIS).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), datetime.min.time(), PARIS).astimezone(UTC)
    return start, end


def _bump(hours: np.ndarray, centre: float, width: float) -> np.ndarray:
    return np.exp(-0.5 * ((hours - centre) / width) ** 2)


def _flow_rates(local_hours: np.ndarray, weekend: bool, kind: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Relative departure and arrival intensity, shape (captures, stations)."""
    h = local_hours[:, None]
    if weekend:
        base = 0.15 + 0.9 * _bump(h, 15.0, 3.5)
        am = pm = np.zeros_like(h)
    else:
        base = 0.12 + 0.35 * _bump(h, 13.0, 2.5)
        am, pm = 0.75 * _bump(h, 8.4, 0.9), 0.55 * _bump(h, 18.2, 1.2)
    k = kind[None, :]
    both = 0.5 * (am + pm)
    out = base + np.where(k == 0, am, 0.0) + np.where(k == 1, pm, 0.0) + np.where(k == 2, both, 0.0)
    inn = base + np.where(k == 0, pm, 0.0) + np.where(k == 1, am, 0.0) + np.where(k == 2, both, 0.0)
    out = np.where(k == 3, 1.8 * (base + 0.5 * (am + pm)), np.where(k == 4, 0.5 * base, out))
    inn = np.where(k == 3, 0.4 * base, np.where(k == 4, 1.4 * (base + 0.5 * (am + pm)), inn))
    return out, inn


def capture_times(day: date, cadence_s: int, rng: np.random.Generator) -> np.ndarray:
    """Epoch seconds of the day's captures: cadence plus a few seconds of jitter, some missed."""
    start, end = local_day_window(day)
    t0, t1 = int(start.timestamp()), int(end.timestamp())
    steps = math.ceil((t1 - t0) / cadence_s)
    jitter = rng.integers(0, min(5, cadence_s - 1) + 1, steps) if cadence_s > 1 else np.zeros(steps, int)
    times = t0 + np.arange(steps, dtype=np.int64) * cadence_s + jitter
    keep = (rng.random(steps) >= MISSED_CAPTURE_SHARE) & (times < t1)
    if rng.random() < OUTAGE_PER_DAY:
        outage_start = t0 + rng.integers(0, t1 - t0)
        keep &= ~((times >= outage_start) & (times < outage_start + rng.integers(16, 91) * 60))
    return times[keep]


def simulate_day(stations: Stations, day: date, cadence_s: int, seed: int) -> pl.DataFrame:
    """All raw rows of one local day, in capture order (RAW_SCHEMA)."""
    rng = np.random.default_rng([seed, day.toordinal()])
    times = capture_times(day, cadence_s, rng)
    n, steps = stations.count, len(times)
    local_hours = (
        pl.Series(times * 1_000_000).cast(pl.Datetime("us", "UTC")).dt.convert_time_zone(PARIS.key)
    )
    hours = (local_hours.dt.hour() + local_hours.dt.minute() / 60).to_numpy()
    gaps = np.diff(times, prepend=times[0] - cadence_s) / 60.0

    broken = np.minimum(rng.geometric(0.55, n) - 1, stations.capacity)
    bike_room = stations.capacity - broken
    out_rel, in_rel = _flow_rates(hours, day.weekday() >= 5, stations.kind)
    scale = stations.rate[None, :] * gaps[:, None]
    departures = rng.poisson(out_rel * scale)
    arrivals = rng.poisson(in_rel * scale)
    rebalance = rng.random((steps, n)) < 0.0012 * gaps[:, None]
    refill = np.round(bike_room * rng.uniform(0.3, 0.7, n)).astype(np.int64)

    start_share = np.select(
        [stations.kind == 3, stations.kind == 4], [rng.uniform(0.6, 1.0, n), rng.uniform(0.0, 0.3, n)],
        rng.beta(2.0, 2.0, n),
    )
    level = np.round(bike_room * start_share).astype(np.int64)
    frozen = stations.stale | stations.closed
    bikes = np.empty((steps, n), dtype=np.int64)
    for step in range(steps):
        level = np.clip(level + arrivals[step] - departures[step], 0, bike_room)
        level = np.where(rebalance[step], refill, level)
        bikes[step] = level
    bikes[:, frozen] = bikes[0, frozen]
    bikes[:, stations.closed] = 0
    docks = bike_room[None, :] - bikes + stations.overflow[None, :]
    docks[:, stations.closed] = 0

    installed = np.broadcast_to(~stations.closed, (steps, n)).copy()
    serving = installed.copy()
    for station in np.flatnonzero(rng.random(n) < MAINTENANCE_PER_DAY):
        begin = rng.integers(0, steps)
        serving[begin : begin + int(rng.integers(60, 360) * 60 / cadence_s), station] = False

    ebike = rng.binomial(bikes, stations.ebike_share[None, :])
    snapshot_s = np.repeat(times, n)
    lag = np.minimum(rng.exponential(180.0, (steps, n)).astype(np.int64), 7_200).ravel()
    reported_s = np.where(
        np.tile(stations.stale, steps), times[0] - np.tile(stations.stale_since_s, steps), snapshot_s - lag
    )
    docks_flat = docks.ravel()
    docks_flat[rng.random(docks_flat.size) < NEGATIVE_COUNT_ROW_SHARE] = -1

    station_idx = np.tile(np.arange(n), steps)
    capture_idx = np.repeat(np.arange(steps), n)
    null_meta = (rng.random(steps) < NULL_METADATA_CAPTURE_SHARE)[capture_idx]
    null_code = rng.random(station_idx.size) < NULL_CODE_ROW_SHARE
    keep = rng.random(station_idx.size) >= MISSING_ROW_SHARE

    ref = stations.reference
    frame = pl.DataFrame(
        {
            "snapshot_ts": snapshot_s * 1_000_000,
            "station_idx": station_idx,
            "null_meta": null_meta,
            "null_code": null_code,
            "bikes": bikes.ravel(),
            "ebike": ebike.ravel(),
            "docks": docks_flat,
            "is_installed": installed.ravel(),
            "serving": serving.ravel(),
            "reported_at": reported_s * 1_000_000,
        }
    ).filter(pl.Series(keep))
    idx = frame["station_idx"]
    meta = {c: ref[c].gather(idx) for c in ("name", "lat", "lon", "capacity", "commune", "code_insee")}
    return frame.select(
        pl.col("snapshot_ts").cast(pl.Datetime("us")).dt.replace_time_zone("UTC"),
        pl.when(~pl.col("null_code")).then(ref["station_code"].gather(idx)).alias("station_code"),
        pl.lit(None, pl.Int64).alias("station_id"),
        *(pl.when(~pl.col("null_meta")).then(series).alias(c) for c, series in meta.items()),
        pl.col("bikes"),
        (pl.col("bikes") - pl.col("ebike")).alias("mechanical"),
        pl.col("ebike"),
        pl.col("docks"),
        pl.col("is_installed"),
        pl.col("serving").alias("is_renting"),
        pl.col("serving").alias("is_returning"),
        pl.col("reported_at").cast(pl.Datetime("us")).dt.replace_time_zone("UTC"),
        pl.lit("opendata").alias("source"),
    ).select(pl.col(name).cast(dtype) for name, dtype in RAW_SCHEMA.items())


def _write_day(args: tuple[Stations, date, int, int, Path]) -> tuple[int, int, int]:
    """Write a day's rows as one file per UTC hour in the day's folder, as `raw_station_snapshots`
    lays them out (`lake.hour_file`); every hour of the day gets its file, empty or not."""
    stations, day, cadence_s, seed, data_dir = args
    frame = simulate_day(stations, day, cadence_s, seed)
    window_start, window_end = local_day_window(day)
    stamps = frame["snapshot_ts"].dt.epoch("s").to_numpy()
    files = written = 0
    hour = window_start
    while hour < window_end:
        lo, hi = np.searchsorted(stamps, [hour.timestamp(), hour.timestamp() + 3600])
        target = lake.hour_file(data_dir / "lake", RAW_ASSET, day, hour)
        path = lake.write_parquet_file(frame.slice(int(lo), int(hi - lo)), target)
        files += 1
        written += path.stat().st_size
        hour += timedelta(hours=1)
    return frame.height, files, written


def _fingerprint(stations: Stations) -> str:
    codes = stations.reference.select(pl.col("station_code"), pl.col("capacity"))
    return hashlib.sha256(codes.write_csv().encode()).hexdigest()[:16]


def generate(
    data_dir: Path,
    start: date = DEFAULT_START,
    days: int = 1,
    cadence_s: int = 60,
    seed: int = 42,
    station_limit: int | None = None,
    workers: int = 2,
) -> Generated:
    """Write the raw partitions of `days` local days from `start`, skipping days already generated.

    The manifest remembers which days exist for which settings, so 1-, 7- and 30-day runs share
    their data; other settings (cadence, seed, station list) start the lake afresh.
    """
    manifest_path = data_dir / "manifest.json"
    stations = draw_stations(load_reference(), seed, station_limit)
    settings = {"cadence_s": cadence_s, "seed": seed, "stations": stations.count,
                "reference": _fingerprint(stations), "generator_version": GENERATOR_VERSION}
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    if manifest.get("settings") != settings:
        shutil.rmtree(data_dir / "lake" / RAW_ASSET, ignore_errors=True)
        manifest = {"settings": settings, "days": {}}
    wanted = [start + timedelta(days=d) for d in range(days)]
    todo = [day for day in wanted if day.isoformat() not in manifest["days"]]
    jobs = [(stations, day, cadence_s, seed, data_dir) for day in todo]
    if workers > 1 and len(jobs) > 1:
        # spawn, not fork: forking a process whose Polars thread pool is running can deadlock.
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=spawn) as pool:
            parts = list(pool.map(_write_day, jobs))
    else:
        parts = [_write_day(job) for job in jobs]
    for day, (rows, files, size) in zip(todo, parts, strict=True):
        manifest["days"][day.isoformat()] = {"rows": rows, "files": files, "bytes": size}
    data_dir.mkdir(parents=True, exist_ok=True)
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True))
    chosen = [manifest["days"][day.isoformat()] for day in wanted]
    return Generated(
        data_dir=str(data_dir), start=start.isoformat(), days=days, cadence_s=cadence_s, seed=seed,
        stations=stations.count, rows=sum(d["rows"] for d in chosen), files=sum(d["files"] for d in chosen),
        bytes=sum(d["bytes"] for d in chosen), generated_days=len(todo),
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=1)
    parser.add_argument("--start", type=date.fromisoformat, default=DEFAULT_START)
    parser.add_argument("--cadence", type=int, default=60, help="seconds between captures")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--stations", type=int, default=None, help="only the first N stations")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    args = parser.parse_args(argv)
    began = time.perf_counter()
    result = generate(args.data_dir, args.start, args.days, args.cadence, args.seed, args.stations)
    print(json.dumps({**asdict(result), "seconds": round(time.perf_counter() - began, 2)}, indent=2))


if __name__ == "__main__":
    main()
