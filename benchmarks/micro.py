"""Small measurements next to the backfill: a sensor tick, the landing parse rate, loading the definitions.

- `tick`: `velib_snapshot_sensor` evaluated against a GBFS feed served on 127.0.0.1 (no internet)
  with the real 1,495-station Vélib' capture of 2025-10-18: fetch, parse, land the file, report the
  asset event. The first tick also fetches `station_information`; the next ones see a newer feed
  timestamp each time, as the live feed does every minute.
- `parse`: an hour of captures landed in a temporary landing zone, one a minute (60 copies of the
  real GBFS status capture; 60 distinct real Opendatasoft exports), then `snapshots.parse_window`
  over that hour, station_information join included: MB per second of the bytes the feed sent, the
  best of five runs (and the median), beside the reference parser's (`formats`, the parser of
  earlier releases) on the same hour. The two must give the same rows.
- `defs`: a fresh interpreter importing `velib_assets.definitions` and resolving every job, as a
  code server does at start-up.

`python -m benchmarks.micro` prints one JSON object.
"""

import gzip
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

RECORDED = Path(__file__).parent.parent / "velib_assets" / "sample"
"""The real recordings bundled with the project (see its README for their origin)."""
GBFS_DIR = RECORDED / "gbfs-2025-10"
EXPORTS = sorted((RECORDED / "opendata-exports-5min").glob("*.json.gz"))
TICKS = 10


class _Feed:
    """The GBFS documents the local server answers with; `advance` moves the feed's clock a minute."""

    def __init__(self, status: dict, information: bytes) -> None:
        self.status = status
        self.information = information
        self.base = ""

    def advance(self) -> None:
        self.status["lastUpdatedOther"] += 60

    def body(self, path: str) -> bytes | None:
        if path.endswith("gbfs.json"):
            feeds = [{"name": name, "url": f"{self.base}/{name}.json"}
                     for name in ("station_status", "station_information")]
            return json.dumps({"data": {"en": {"feeds": feeds}}}).encode()
        if path.endswith("station_status.json"):
            return json.dumps(self.status).encode()
        if path.endswith("station_information.json"):
            return self.information
        return None


def _serve(feed: _Feed) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            body = feed.body(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    feed.base = f"http://127.0.0.1:{server.server_port}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def sensor_ticks() -> dict[str, float]:
    import dagster as dg

    from velib_assets.defs.resources import FeedResource, LakeResource
    from velib_assets.defs.sensors import velib_snapshot_sensor

    feed = _Feed(json.loads((GBFS_DIR / "station_status.json").read_bytes()),
                 (GBFS_DIR / "station_information.json").read_bytes())
    server = _serve(feed)
    durations = []
    try:
        with tempfile.TemporaryDirectory() as tmp, dg.instance_for_test() as instance:
            resources = {
                "feed": FeedResource(source="gbfs", gbfs_url=f"{feed.base}/gbfs.json"),
                "lake_store": LakeResource(data_dir=tmp),
            }
            cursor = None
            for _ in range(TICKS):
                context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources)
                began = time.perf_counter()
                result = velib_snapshot_sensor(context)
                durations.append(time.perf_counter() - began)
                if not isinstance(result, dg.SensorResult):
                    raise RuntimeError(f"sensor tick did not capture: {result}")
                cursor = result.cursor
                feed.advance()
            landed = len(list(Path(tmp).rglob("*.gbfs-status.json")))
    finally:
        server.shutdown()
    return {
        "sensor_first_tick_s": round(durations[0], 4),
        "sensor_tick_s": round(statistics.median(durations[1:]), 4),
        "sensor_ticks": TICKS,
        "captures_landed": landed,
        "stations_per_capture": len(feed.status["data"]["stations"]),
    }


def parse_rate(fmt: str, bodies: list[bytes], info: bytes | None) -> dict[str, float]:
    """An hour of captures (`bodies`, repeated in turn to fill 60 minutes) landed as the sensor lands
    them, then `snapshots.parse_window` over it, five times, and the reference parser five times on
    the same hour. MB are of the bytes the feed sent (decompressed). The rate is the best run's, as
    `timeit` advises (other guests of a shared machine only ever add time), the median beside it."""
    from velib_assets import landing, snapshots
    from velib_assets.sources import formats, parsers

    start = datetime(2025, 10, 18, 10, tzinfo=UTC)
    reference = {
        formats.GBFS_STATUS: formats.parse_gbfs_status,
        formats.OPENDATA_JSON: formats.parse_opendata_json,
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if info is not None:
            landing.write_capture(root, start - timedelta(hours=1), "gbfs-info", info)
        for minute in range(60):
            when = start + timedelta(minutes=minute, seconds=3)
            landing.write_capture(root, when, fmt, bodies[minute % len(bodies)])

        def timed() -> tuple[float, snapshots.WindowSnapshots]:
            began = time.perf_counter()
            window = snapshots.parse_window(root, start, start + timedelta(hours=1))
            return time.perf_counter() - began, window

        runs = [timed() for _ in range(5)]
        typed_parser, parsers.PARSERS[fmt] = parsers.PARSERS[fmt], reference[fmt]
        try:
            reference_runs = [timed() for _ in range(5)]
        finally:
            parsers.PARSERS[fmt] = typed_parser
    window = runs[0][1]
    if window.errors:
        raise RuntimeError(f"{fmt}: {window.errors[0]}")
    if not window.frame.equals(reference_runs[0][1].frame):
        raise RuntimeError(f"{fmt}: the typed parser's rows differ from the reference parser's")
    seconds = min(t for t, _ in runs)
    median = statistics.median(t for t, _ in runs)
    reference_seconds = min(t for t, _ in reference_runs)
    return {
        "captures": window.captures,
        "distinct_captures": len(set(bodies)),
        "rows": window.frame.height,
        "mb": round(window.bytes_parsed / 1e6, 2),
        "mb_landed": round(window.bytes_read / 1e6, 2),
        "seconds": round(seconds, 3),
        "mb_per_s": round(window.bytes_parsed / 1e6 / seconds, 1),
        "mb_per_s_median": round(window.bytes_parsed / 1e6 / median, 1),
        "rows_per_s": round(window.frame.height / seconds),
        "reference_mb_per_s": round(window.bytes_parsed / 1e6 / reference_seconds, 1),
        "speedup": round(reference_seconds / seconds, 2),
    }


def definitions_load() -> dict[str, float]:
    code = (
        "import time; t = time.perf_counter(); from velib_assets.definitions import defs; "
        "defs.get_repository_def().get_all_jobs(); print(time.perf_counter() - t)"
    )
    began = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parent.parent)
    return {
        "definitions_load_s": round(float(out.stdout.strip().splitlines()[-1]), 3),
        "definitions_process_s": round(time.perf_counter() - began, 3),
    }


def main() -> None:
    report: dict[str, object] = definitions_load()
    report.update(sensor_ticks())
    report["parse_gbfs_status"] = parse_rate(
        "gbfs-status", [(GBFS_DIR / "station_status.json").read_bytes()],
        (GBFS_DIR / "station_information.json").read_bytes(),
    )
    exports = [gzip.decompress(path.read_bytes()) for path in EXPORTS[:60]]
    report["parse_opendata_json"] = parse_rate("opendata-json", exports, None)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
