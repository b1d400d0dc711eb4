"""The `velib` command: import recorded captures, run the pipeline for days, print rankings, the demo.

Thin over the same code the assets use; every error is one line on stderr with a non-zero exit code.
"""

import argparse
import functools
import json
import logging
import os
import shutil
import signal
import sqlite3
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import NoReturn

import polars as pl

from velib_assets import lake, landing
from velib_assets.health import DayHealth, day_health
from velib_assets.settings import PARIS, data_dir, partitions_end, partitions_start

SAMPLE = Path(__file__).parent / "sample" / "opendata-exports-5min"
DEMO_DAYS = (date(2024, 10, 31), date(2024, 11, 4))
DEMO_DAY = date(2024, 11, 3)


NOW_STATES = ("closed", "out_of_service", "empty", "full", "nearly_empty", "nearly_full", "ok")
"""`velib_assets.network_now.STATES`, repeated so that `velib --help` imports no Polars pipeline code."""

MAX_TOP = 100_000
"""More stations than any bike-share network has: a larger --top is a typo."""


class UsageError(Exception):
    """Bad input from the command line: printed as one line, exit code 2."""


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from exc


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from exc
    if not 1 <= value <= MAX_TOP:
        raise argparse.ArgumentTypeError(f"{value} is not a number from 1 to {MAX_TOP:,}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from exc
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port from 1 to 65535")
    return value


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors on one line (it prints the usage too by default)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see --help)\n")


def _spans(days: list[date]) -> str:
    """`2024-10-31 .. 2024-11-04, 2024-11-09`: consecutive days folded into ranges."""
    spans: list[list[date]] = []
    for day in days:
        if spans and day - spans[-1][1] == timedelta(days=1):
            spans[-1][1] = day
        else:
            spans.append([day, day])
    return ", ".join(str(a) if a == b else f"{a} .. {b}" for a, b in spans)


def check_run_range(first: date, last: date, today: date) -> None:
    """A range `velib run` can build: ordered, within the partitions, of closed days, with captures."""
    if last < first:
        raise UsageError(f"--to {last} is before --from {first}")
    start = date.fromisoformat(partitions_start())
    if first < start:
        raise UsageError(f"--from {first} is before the partitions start ({start}, VELIB_PARTITIONS_START)")
    end = partitions_end()
    if end is not None and last > date.fromisoformat(end):
        raise UsageError(f"--to {last} is after the partitions end ({end}, VELIB_PARTITIONS_END)")
    if last >= today:
        raise UsageError(
            f"--to {last} has not closed yet (today is {today} in Europe/Paris): the latest day is "
            f"{today - timedelta(days=1)}"
        )
    days = landing.capture_days(data_dir() / "landing")
    if not any(first <= day <= last for day in days):
        held = f"captures exist for {_spans(days)}" if days else "the landing zone is empty"
        raise UsageError(
            f"no captures landed from {first} to {last}; {held} (import recordings with `velib import`, "
            "or switch velib_snapshot_sensor on)"
        )


def cmd_import(paths: Sequence[Path]) -> int:
    from velib_assets.importer import import_paths

    landing_root = data_dir() / "landing"
    earliest = datetime.fromisoformat(partitions_start()).replace(tzinfo=UTC)
    report = import_paths(paths, landing_root, earliest)
    for path, reason in report.rejected:
        print(f"rejected {path}: {reason}", file=sys.stderr)
    if report.stopped:
        print(f"velib: import stopped: {report.stopped}", file=sys.stderr)
    print(
        f"imported {len(report.imported)}, skipped {len(report.skipped)} (already landed), "
        f"rejected {len(report.rejected)} -> {landing_root}"
    )
    return 0 if (report.imported or report.skipped) and not report.stopped else 1


def cmd_run(first: date, last: date) -> int:
    from velib_assets.pipeline import instance_for_cli, run_days
    from velib_assets.run_guard import PoolWaitTimeout

    check_run_range(first, last, datetime.now(PARIS).date())
    try:
        results = run_days(first, last, instance_for_cli())
    except PoolWaitTimeout as exc:
        print(f"velib: {exc}", file=sys.stderr)
        return 1
    failed = [r for r in results if not r.success]
    if failed:
        for error in failed[0].errors:
            print(f"  {error}", file=sys.stderr)
        print(
            f"run failed at {failed[0].name}: see run {failed[0].run_id} in the Dagster UI", file=sys.stderr
        )
        return 1
    print(f"views refreshed in {data_dir() / 'warehouse.duckdb'}")
    return 0


def cmd_rebuild() -> int:
    """Rebuild every closed day with captures from the landing zone: after an upgrade that changed
    the lake's layout (the hourly partitions of earlier versions), or to start the lake afresh."""
    lake_root = data_dir() / "lake"
    old = lake.hourly_layout_folders(lake_root)
    for folder in old:
        shutil.rmtree(folder)
    if old:
        print(
            f"removed {len(old)} day folders of the hourly lake layout "
            "(derived data; the landing zone is untouched)"
        )
    today = datetime.now(PARIS).date()
    start, end = date.fromisoformat(partitions_start()), partitions_end()
    last_day = min(today - timedelta(days=1), date.fromisoformat(end)) if end else today - timedelta(days=1)
    days = [d for d in landing.capture_days(data_dir() / "landing") if start <= d <= last_day]
    if not days:
        raise UsageError(f"no captures landed in closed days from {start} to {last_day}: nothing to rebuild")
    print(f"rebuilding {len(days)} days with captures: {_spans(days)}")
    return cmd_run(days[0], days[-1])


def cmd_compact_landing() -> int:
    """Gzip in place the plain captures of a landing zone written by an earlier release."""
    from velib_assets.sources.formats import CaptureParseError

    root = data_dir() / "landing"
    if not root.is_dir():
        raise UsageError(f"no landing zone at {root} (VELIB_DATA_DIR)")
    try:
        report = landing.compact_landing(root)
    except (OSError, landing.LandingError, CaptureParseError) as exc:
        print(f"velib: compaction stopped, every capture still readable: {exc}", file=sys.stderr)
        return 1
    for path in report.conflicts:
        print(f"left both {path.name} and its .gz: they differ (check them by hand)", file=sys.stderr)
    share = f" ({report.bytes_after / report.bytes_before:.1%})" if report.bytes_before else ""
    print(
        f"gzipped {report.gzipped} captures, finished {report.finished} an earlier run had started: "
        f"{report.bytes_before / 1e6:,.1f} MB -> {report.bytes_after / 1e6:,.1f} MB{share} in {root}"
    )
    return 1 if report.conflicts else 0


def cmd_archive_landing(before: date, destination: Path) -> int:
    """Move closed days' captures to another directory (after a backup); the pipeline reads them there."""
    root = data_dir() / "landing"
    latest = datetime.now(UTC).date() - timedelta(days=1)
    if before > latest:
        raise UsageError(f"--before {before} would archive days not closed yet: use {latest} or earlier")
    destination = destination.expanduser().resolve()
    if destination == root.resolve() or root.resolve() in destination.parents:
        raise UsageError(f"--to {destination} is inside the landing zone {root}: choose another directory")
    try:
        moved = landing.archive_days(root, before, destination)
    except (OSError, landing.LandingError) as exc:
        print(f"velib: archiving stopped, every capture still readable: {exc}", file=sys.stderr)
        return 1
    where = f" to {destination}" if moved else ""
    print(f"archived {len(moved)} UTC days of captures before {before}{where}; recorded in "
          f"{landing.archive_manifest(root)}")
    return 0


def read_rankings(day: date) -> pl.DataFrame:
    path = lake.day_dir(data_dir() / "lake", "critical_station_rankings", day) / lake.PART_FILE
    if not path.is_file():
        raise UsageError(
            f"no rankings for {day} in {data_dir()}: run `velib run --from {day} --to {day}` first"
        )
    return pl.read_parquet(path)


def cmd_rankings(day: date, top: int, as_json: bool) -> int:
    ranking = read_rankings(day).sort("rank").head(top)
    if as_json:
        print(
            json.dumps(
                ranking.with_columns(pl.col("day").cast(pl.String)).to_dicts(), ensure_ascii=False, indent=1
            )
        )
        return 0
    print(f"Top {ranking.height} critical stations on {day} (minutes empty or full while in service)")
    print(f"{'rank':>4}  {'code':<8} {'name':<40} {'district':<22} {'critical':>8} {'empty':>7} {'full':>7}")
    for row in ranking.iter_rows(named=True):
        print(
            f"{row['rank']:>4}  {row['station_code']:<8} {(row['name'] or '')[:40]:<40} "
            f"{row['district'][:22]:<22} "
            f"{row['critical_minutes']:>8.1f} {row['empty_minutes']:>7.1f} {row['full_minutes']:>7.1f}"
        )
    return 0


def _operational(command: Callable[..., int]) -> Callable[..., int]:
    """The operations commands read settings, the lake and the alert store: a bad setting
    (ValueError, naming it), an unreadable file or a locked store is one line, exit code 2."""

    @functools.wraps(command)
    def run(*args: object, **kwargs: object) -> int:
        try:
            return command(*args, **kwargs)
        except BrokenPipeError:
            raise  # the reader of the output left: `main` ends quietly
        except (ValueError, OSError, sqlite3.Error, pl.exceptions.PolarsError) as exc:
            raise UsageError(" ".join(str(exc).split())) from exc

    return run


def _network_now() -> pl.DataFrame:
    """`stations_now` brought up to the newest landed capture."""
    from velib_assets import network_now
    from velib_assets.defs.resources import LakeResource
    from velib_assets.defs.staging import read_reference
    from velib_assets.settings import KpiThresholds

    root = data_dir()
    if landing.newest_capture(root / "landing") is None:
        raise UsageError(f"no captures in {root / 'landing'}: switch the sensor on, or `velib import` first")
    reference = read_reference(LakeResource(data_dir=str(root)))
    return network_now.update(root, reference, KpiThresholds.from_env()).table


@_operational
def cmd_now(district: str | None, state: str | None, as_json: bool) -> int:
    """The network now, brought up to the newest landed capture first (the sensor usually has)."""
    table = _network_now()
    if district is not None:
        known = sorted(table["district"].drop_nulls().unique().to_list())
        if district not in known:
            raise UsageError(f"no station in district {district!r}; districts: {', '.join(known)}")
        table = table.filter(pl.col("district") == district)
    if state is not None:
        table = table.filter(pl.col("state") == state)
    table = table.sort(["state", "minutes_in_state", "station_code"], descending=[False, True, False])
    if as_json:
        times = [pl.col(c).dt.strftime("%Y-%m-%dT%H:%M:%SZ") for c in ("since", "latest_capture", "through")]
        rows = table.with_columns(*times, pl.col("state").cast(pl.String)).to_dicts()
        print(json.dumps(rows, ensure_ascii=False, indent=1))
        return 0
    through = table["through"].max() if not table.is_empty() else None
    at = through.astimezone(PARIS).strftime("%Y-%m-%d %H:%M %Z") if through else "no capture"  # type: ignore[union-attr]
    print(f"{table.height} stations at the capture of {at}")
    print(f"{'state':<15}{'for':>8}  {'code':<8} {'name':<36} {'district':<20} {'bikes':>5} {'mech':>5} "
          f"{'ebike':>5} {'docks':>5}")
    for row in table.iter_rows(named=True):
        held = f"{'≥' if row['since_at_least'] else ''}{row['minutes_in_state']:.0f} min"
        print(
            f"{row['state']:<15}{held:>8}  {row['station_code']:<8} {(row['name'] or '')[:36]:<36} "
            f"{(row['district'] or '')[:20]:<20} {_count(row['bikes'])} {_count(row['mechanical'])} "
            f"{_count(row['ebike'])} {_count(row['docks'])}"
        )
    return 0


@_operational
def cmd_health(day: date | None, as_json: bool) -> int:
    """The collection's health for a local day (today by default), computed from the landing zone
    and the poll log, with the newest capture's age first."""
    from velib_assets.settings import KpiThresholds, feed_down_minutes

    root, now = data_dir(), datetime.now(UTC)
    day = day or now.astimezone(PARIS).date()
    if day > now.astimezone(PARIS).date():
        raise UsageError(f"{day} has not started yet")
    found = day_health(root, day, now, KpiThresholds.from_env().max_gap)
    newest = landing.newest_capture(root / "landing")
    age = (now - newest.capture_time).total_seconds() / 60 if newest else None
    if as_json:
        print(json.dumps(_health_json(day, found, age), indent=1))
        return 0
    down = " (FEED DOWN)" if age is not None and age > feed_down_minutes() else ""
    print(f"newest capture: {'none' if age is None else f'{age:,.0f} min ago'}{down}")
    failed = ", ".join(f"{n} {k}" for k, n in found.failed_by_reason.items()) or "none"
    lag = "no poll logged"
    if found.lag_median_s is not None:
        lag = f"median {found.lag_median_s:.0f} s, p95 {found.lag_p95_s:.0f} s"
    print(
        f"{day}: {found.captures} captures, {found.polls} polls logged, failed: {failed}; landing lag "
        f"{lag}; {found.frozen_hours} hours with a frozen spell; {len(found.gaps)} gaps over MAX_GAP"
    )
    for a, b in found.gaps:
        minutes = (b - a).total_seconds() / 60
        print(f"  gap {a.astimezone(PARIS):%H:%M} to {b.astimezone(PARIS):%H:%M} ({minutes:.0f} min)")
    print(f"{'hour':<13}{'captures':>9}{'polls':>7}{'failed':>8}{'lag p50 s':>10}{'lag p95 s':>10}"
          f"{'frozen s':>9}")
    for row in found.hours.iter_rows(named=True):
        hour = f"{row['hour_start'].astimezone(PARIS):%H:%M %Z}"
        figures = "".join(
            (_figure(row["lag_median_s"]), _figure(row["lag_p95_s"]), _figure(row["longest_frozen_s"], 9))
        )
        print(f"{hour:<13}{row['captures']:>9}{row['polls']:>7}{row['polls_failed']:>8}{figures}")
    return 0


def _health_json(day: date, found: DayHealth, age: float | None) -> dict[str, object]:
    return {
        "day": day.isoformat(),
        "newest_capture_age_minutes": None if age is None else round(age, 1),
        **found.figures(),
        "gaps": [{"from": a.isoformat(), "to": b.isoformat()} for a, b in found.gaps],
        "hours": found.hours.with_columns(pl.col("hour_start").dt.strftime("%Y-%m-%dT%H:%MZ")).to_dicts(),
    }


def _figure(value: float | None, width: int = 10) -> str:
    return f"{'-' if value is None else f'{value:.0f}':>{width}}"


def _count(value: int | None) -> str:
    return f"{'-' if value is None else value:>5}"


def _when(text: str) -> datetime:
    """An ISO time; without an offset it is Paris time, as an operator reads a clock."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a time (YYYY-MM-DDTHH:MM, Paris time)") from exc
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=PARIS)).astimezone(UTC)


@_operational
def cmd_alerts_check(at: datetime | None) -> int:
    """Evaluate the alert rules once and deliver: now, or as the landed captures stood at `at`."""
    from velib_assets import alerts, network_now
    from velib_assets.defs.resources import LakeResource
    from velib_assets.defs.staging import read_reference
    from velib_assets.settings import KpiThresholds

    root = data_dir()
    if landing.newest_capture(root / "landing") is None:
        raise UsageError(f"no captures in {root / 'landing'}: switch the sensor on, or `velib import` first")
    reference, thresholds = read_reference(LakeResource(data_dir=str(root))), KpiThresholds.from_env()
    if at is None:
        now, table = datetime.now(UTC), network_now.update(root, reference, thresholds).table
    else:
        now, table = at, network_now.as_of(root, reference, thresholds, at).table
        if table.is_empty():
            local = at.astimezone(PARIS)
            raise UsageError(f"no capture in the {network_now.LOOKBACK} before {local:%Y-%m-%d %H:%M}")
    try:
        outcome = alerts.evaluate_now(root, table, now, replay=at is not None)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    replayed = " (replay: kept apart from the live episodes, see `velib alerts list --replay`)" if at else ""
    print(f"{now.astimezone(PARIS):%Y-%m-%d %H:%M %Z}: {alerts.summary(outcome)}{replayed}")
    return cmd_alerts_list(open_only=True, as_json=False, replay=at is not None)


@_operational
def cmd_alerts_list(open_only: bool, as_json: bool, replay: bool = False) -> int:
    from velib_assets import alerts

    if not alerts.store_path(data_dir(), replay).is_file():
        made_by = "`velib alerts check --at`" if replay else "the network sensor or `velib alerts check`"
        kind = "replayed alerts" if replay else "alerts"
        raise UsageError(f"no {kind} yet in {data_dir()}: {made_by} records them")
    episodes = alerts.episodes(data_dir(), replay)
    if open_only:
        episodes = episodes.filter(pl.col("resolved_at").is_null())
    if as_json:
        names = ("since", "opened_at", "resolved_at", "delivered_at")
        times = [pl.col(c).dt.strftime("%Y-%m-%dT%H:%M:%SZ") for c in names]
        print(json.dumps(episodes.with_columns(times).to_dicts(), ensure_ascii=False, indent=1))
        return 0
    grouped = episodes.group_by("episode_id", maintain_order=True).agg(
        pl.col("kind", "subject", "since", "resolved_at", "duration_minutes").first(),
        pl.format("{} {} ({}x)", "event", "status", "attempts").drop_nulls().alias("deliveries"),
    )
    print(f"{grouped.height} {'open ' if open_only else ''}episodes")
    for row in grouped.iter_rows(named=True):
        since = f"{row['since'].astimezone(PARIS):%Y-%m-%d %H:%M}"
        ended = "open" if row["resolved_at"] is None else f"resolved after {row['duration_minutes']:.0f} min"
        sent = ", ".join(row["deliveries"]) or "no channel configured"
        print(f"  {row['kind']:<15} {row['subject']:<22} since {since}  {ended:<22} {sent}")
    return 0


def cmd_demo() -> int:
    print(f"Importing the bundled sample ({SAMPLE.name}) into {data_dir() / 'landing'}")
    if cmd_import([SAMPLE]) != 0:
        return 1
    # What the network sensor keeps current in a deployment, so the views and the dashboard have it.
    print(f"network now: {_network_now().height} stations at the newest capture")
    if cmd_run(*DEMO_DAYS) != 0:
        return 1
    cmd_rankings(DEMO_DAY, 10, False)
    report = data_dir() / "reports" / f"velib-report-{DEMO_DAY}.html"
    print(f"report: {report}")
    return 0


def parser() -> argparse.ArgumentParser:
    root = _Parser(prog="velib", description=__doc__)
    sub = root.add_subparsers(dest="command", required=True)
    imp = sub.add_parser("import", help="copy recorded captures (files or folders) into the landing zone")
    imp.add_argument("paths", nargs="+", type=Path)
    run = sub.add_parser("run", help="materialize every asset for local days, then refresh the DuckDB views")
    run.add_argument("--from", dest="first", type=_day, required=True)
    run.add_argument("--to", dest="last", type=_day, required=True)
    rank = sub.add_parser("rankings", help="print a day's critical-station ranking")
    rank.add_argument("--day", type=_day, required=True)
    rank.add_argument("--top", type=_positive, default=10)
    rank.add_argument("--json", action="store_true")
    now = sub.add_parser("now", help="every station's state now (empty, full, ...) and for how long")
    now.add_argument("--district", help='e.g. "Paris 16e" or "Boulogne-Billancourt"')
    now.add_argument("--state", choices=list(NOW_STATES))
    now.add_argument("--json", action="store_true")
    health = sub.add_parser("health", help="the collection's health: captures, failed polls, lag, gaps")
    health.add_argument("--day", type=_day, help="local day (default: today)")
    health.add_argument("--json", action="store_true")
    alert = sub.add_parser("alerts", help="evaluate the alert rules and deliver, or list the episodes")
    alert_sub = alert.add_subparsers(dest="alerts_command", required=True)
    check = alert_sub.add_parser("check", help="evaluate once and deliver (cron, or replaying a past time)")
    check.add_argument("--at", type=_when, help="replay as the captures stood then (Paris time by default)")
    listing = alert_sub.add_parser("list", help="the episodes and their deliveries")
    listing.add_argument("--open", dest="open_only", action="store_true")
    listing.add_argument("--json", action="store_true")
    listing.add_argument("--replay", action="store_true", help="the episodes of `alerts check --at` replays")
    forecast = sub.add_parser(
        "forecast", help="a station's forecast, or the stations at risk within an hour"
    )
    target = forecast.add_mutually_exclusive_group(required=True)
    target.add_argument("--station", help="station code, e.g. 16107")
    target.add_argument("--at-risk", action="store_true", help="most likely empty or full within the hour")
    forecast.add_argument("--top", type=_positive, default=20)
    forecast.add_argument("--json", action="store_true")
    serve = sub.add_parser("serve", help="the read-only HTTP API over the DuckDB serving layer")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=_port, default=8000)
    dashboard = sub.add_parser("dashboard", help="the live dashboard in a browser (map, districts, stations)")
    dashboard.add_argument("--host", default="127.0.0.1")
    dashboard.add_argument("--port", type=_port, default=8050)
    sub.add_parser("demo", help="import the bundled real sample, run everything, print the top 10")
    sub.add_parser(
        "rebuild", help="rebuild every closed day with captures from the landing zone (after an upgrade)"
    )
    sub.add_parser("compact-landing", help="gzip in place the plain captures earlier releases landed")
    archive = sub.add_parser(
        "archive-landing", help="move closed days' captures to another directory (opt-in, after a backup)"
    )
    archive.add_argument("--before", type=_day, required=True, help="archive UTC days before this one")
    archive.add_argument("--to", dest="destination", type=Path, required=True)
    return root


def _interrupt(_signum: int, _frame: object) -> NoReturn:
    raise KeyboardInterrupt


def quiet_pool_logs() -> None:
    """SQLAlchemy's pools log "Error closing cursor" with a traceback when Ctrl-C or SIGTERM lands
    inside a query of Dagster's SQLite storage: noise after the interruption, which is reported in
    one line; a pool failure that matters is raised, not only logged."""
    logging.getLogger("sqlalchemy.pool").setLevel(logging.CRITICAL)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    quiet_pool_logs()
    signal.signal(signal.SIGTERM, _interrupt)  # stop like Ctrl-C: the run is marked canceled, slots freed
    try:
        if args.command == "import":
            return cmd_import(args.paths)
        if args.command == "run":
            return cmd_run(args.first, args.last)
        if args.command == "rankings":
            return cmd_rankings(args.day, args.top, args.json)
        if args.command == "now":
            return cmd_now(args.district, args.state, args.json)
        if args.command == "health":
            return cmd_health(args.day, args.json)
        if args.command == "alerts":
            if args.alerts_command == "check":
                return cmd_alerts_check(args.at)
            return cmd_alerts_list(args.open_only, args.json, args.replay)
        if args.command == "forecast":
            from velib_assets.forecast.cli import cmd_forecast

            return _operational(cmd_forecast)(args.station, args.at_risk, args.top, args.json)
        if args.command == "serve":
            from velib_assets.api.cli import cmd_serve

            return cmd_serve(args.host, args.port)
        if args.command == "dashboard":
            from velib_assets.dashboard.cli import cmd_dashboard

            return cmd_dashboard(args.host, args.port)
        if args.command == "rebuild":
            return cmd_rebuild()
        if args.command == "compact-landing":
            return cmd_compact_landing()
        if args.command == "archive-landing":
            return cmd_archive_landing(args.before, args.destination)
        return cmd_demo()
    except UsageError as exc:
        print(f"velib: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `velib now | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        running = args.command in ("run", "demo", "rebuild")
        stopped = ": the run was stopped, its workers ended" if running else ""
        print(f"velib: interrupted{stopped}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
