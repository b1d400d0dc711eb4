"""The quality checks of DESIGN §4 as plain verdicts: each computes its figures on a frame.

Checks that guard downstream correctness are ERROR (declared blocking on their asset); the rest
WARN. They are plain functions of frames so a test can make each one fail on crafted data, and
they return plain data, not Dagster objects, so worker processes can compute them hour by hour
(`velib_assets.defs.checks` turns verdicts into asset check results).
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from typing import TYPE_CHECKING

import polars as pl

from velib_assets.reference import arrondissement_violations

if TYPE_CHECKING:
    from velib_assets.coverage import DayCoverage
from velib_assets.settings import clock_tolerance


class Severity(Enum):
    """Named as Dagster names its asset check severities."""

    WARN = "WARN"
    ERROR = "ERROR"


ERROR = Severity.ERROR
WARN = Severity.WARN
EXPECTED_STATIONS = (1_000, 2_500)
MAX_CAPACITY_MISMATCH_SHARE = 0.25
MAX_STALE_SHARE = 0.10
MIN_COVERAGE = 0.5
MAX_LANDING_AGE = timedelta(minutes=15)


@dataclass(frozen=True)
class Verdict:
    check_name: str
    passed: bool
    severity: Severity
    metadata: dict[str, object] = field(default_factory=dict)


def _result(name: str, passed: bool, severity: Severity, **metadata: object) -> Verdict:
    return Verdict(check_name=name, passed=bool(passed), severity=severity, metadata=metadata)


def _share(part: int, whole: int) -> float:
    return round(part / whole, 6) if whole else 0.0


# raw_station_snapshots ---------------------------------------------------------------------------
def raw_parse_errors(captures: int, errors: list[tuple[str, str]]) -> Verdict:
    return _result("raw_parse_errors", not errors, WARN, captures=captures, parse_errors=len(errors))


def raw_empty_station_lists(errors: list[tuple[str, str]]) -> Verdict:
    empty = sum(1 for _, reason in errors if "empty station list" in reason)
    return _result("raw_empty_station_lists", empty == 0, WARN, empty_station_lists=empty)


def landing_coverage(captures_per_hour: dict[str, int], expected_per_hour: int) -> Verdict:
    """Share of the expected snapshots that landed, for the worst hour of the run."""
    shares = {key: _share(n, expected_per_hour) for key, n in captures_per_hour.items()}
    worst = min(shares.values(), default=0.0)
    return _result(
        "landing_coverage",
        worst >= MIN_COVERAGE,
        WARN,
        expected_per_hour=expected_per_hour,
        worst_hour_share=worst,
        hours_below_threshold=sum(1 for s in shares.values() if s < MIN_COVERAGE),
    )


def landing_freshness(newest: datetime | None, now: datetime) -> Verdict:
    """Fails when the newest capture is too old, or dated beyond the clock tolerance in the future.

    A future-dated capture is a mis-dated file, not a fresh one: it would read as fresh for years and
    hide a stopped ingestion, so it fails the check (with its true, negative age) until it is removed.
    """
    age = None if newest is None else (now - newest).total_seconds()
    ahead = -age if age is not None and age < 0 else 0.0
    tolerance = clock_tolerance().total_seconds()
    in_future = ahead > tolerance
    passed = age is not None and age <= MAX_LANDING_AGE.total_seconds() and not in_future
    return _result(
        "landing_freshness",
        passed,
        WARN,
        newest_capture=str(newest) if newest else "none",
        age_seconds=float(age if age is not None else -1.0),
        max_age_seconds=MAX_LANDING_AGE.total_seconds(),
        ahead_of_clock_seconds=ahead,
        clock_tolerance_seconds=tolerance,
        problem=_freshness_problem(age, in_future),
    )


def _freshness_problem(age: float | None, in_future: bool) -> str:
    if age is None:
        return "no capture landed"
    if in_future:
        return (
            "the newest capture is dated in the future beyond the clock tolerance: a mis-dated capture; "
            "remove it from the landing zone to judge freshness again"
        )
    return "too old" if age > MAX_LANDING_AGE.total_seconds() else "none"


# clean_stations ----------------------------------------------------------------------------------
def _changes(*names: str) -> pl.Expr:
    """Rows that differ from the previous row in any of `names` (the first row counts as a change)."""
    return pl.any_horizontal(pl.col(n).ne_missing(pl.col(n).shift(1)) for n in names).fill_null(True)


def clean_unique_keys(clean: pl.DataFrame) -> Verdict:
    """Clean rows come sorted by key within each hour, so duplicates are neighbours; other input is
    hashed instead (which takes a day's keys in memory once more)."""
    code, ts = pl.col("station_code"), pl.col("snapshot_ts")
    hour = ts.dt.truncate("1h")
    same_hour_in_order = (hour == hour.shift(1)) & (
        (code > code.shift(1)) | ((code == code.shift(1)) & (ts >= ts.shift(1)))
    )
    in_order = ((hour > hour.shift(1)) | same_hour_in_order).slice(1).all()
    if clean.height < 2:
        duplicates = 0
    elif clean.select(in_order).item():
        duplicates = clean.select((~_changes("station_code", "snapshot_ts")).sum()).item()
    else:
        duplicates = clean.height - clean.select("station_code", "snapshot_ts").n_unique()
    return _result("clean_unique_keys", duplicates == 0, ERROR, duplicate_rows=int(duplicates))


def clean_non_null_keys(clean: pl.DataFrame) -> Verdict:
    nulls = clean.select(
        pl.col("station_code").is_null().sum() + pl.col("snapshot_ts").is_null().sum()
    ).item()
    return _result("clean_non_null_keys", nulls == 0, ERROR, null_keys=int(nulls))


def clean_counts_non_negative(clean: pl.DataFrame) -> Verdict:
    counts = ["bikes", "docks", "mechanical", "ebike", "capacity"]
    negative = clean.select(pl.any_horizontal(pl.col(c) < 0 for c in counts).sum()).item() or 0
    return _result("clean_counts_non_negative", negative == 0, ERROR, negative_rows=int(negative))


def clean_bike_types_add_up(clean: pl.DataFrame) -> Verdict:
    known = pl.col("mechanical").is_not_null() & pl.col("ebike").is_not_null()
    checked, wrong = clean.select(
        known.sum().alias("checked"),
        (known & (pl.col("mechanical") + pl.col("ebike") != pl.col("bikes"))).sum().alias("wrong"),
    ).row(0)
    return _result(
        "clean_bike_types_add_up", wrong == 0, WARN, rows_checked=int(checked), mismatched_rows=int(wrong)
    )


def clean_capacity_mismatch_share(clean: pl.DataFrame) -> Verdict:
    share = _share(int(clean["capacity_mismatch"].sum() or 0), clean.height)
    return _result(
        "clean_capacity_mismatch_share",
        share <= MAX_CAPACITY_MISMATCH_SHARE,
        WARN,
        share=share,
        max_share=MAX_CAPACITY_MISMATCH_SHARE,
    )


def clean_stale_share(clean: pl.DataFrame) -> Verdict:
    share = _share(int(clean["is_stale"].sum() or 0), clean.height)
    return _result(
        "clean_stale_share", share <= MAX_STALE_SHARE, WARN, share=share, max_share=MAX_STALE_SHARE
    )


def clean_station_count(clean: pl.DataFrame) -> Verdict:
    """Stations per snapshot within the expected band (a half-empty feed passes every other check)."""
    low, high = EXPECTED_STATIONS
    if clean.is_empty():  # an hour without captures: landing coverage and raw report that
        return _result("clean_station_count", True, WARN, snapshots=0, expected_band=f"{low}..{high}")
    per_snapshot = clean.group_by("snapshot_ts").agg(pl.len().alias("stations"))
    smallest = int(per_snapshot["stations"].min() or 0)
    largest = int(per_snapshot["stations"].max() or 0)
    return _result(
        "clean_station_count",
        low <= smallest and largest <= high,
        WARN,
        snapshots=per_snapshot.height,
        min_stations=smallest,
        max_stations=largest,
        expected_band=f"{low}..{high}",
    )


def arrondissement_rule(
    stations: pl.DataFrame, name: str = "clean_arrondissement_rule"
) -> Verdict:
    # Clean rows come sorted by station: dropping rows equal to their predecessor first leaves the
    # hashing `unique` a row per station instead of a row per snapshot (any order stays correct).
    columns = ("station_code", "commune", "arrondissement")
    distinct = stations.select(columns).filter(_changes(*columns)).unique()
    violations = arrondissement_violations(distinct)
    return _result(
        name,
        violations.is_empty(),
        ERROR,
        paris_stations=distinct.filter(pl.col("commune") == "Paris")["station_code"].n_unique(),
        violations=violations.height,
        examples=", ".join(violations["station_code"].head(10).to_list()) or "none",
    )


# occupancy and rankings --------------------------------------------------------------------------
def occupancy_minutes_in_range(occupancy: pl.DataFrame) -> Verdict:
    minutes = [c for c in occupancy.columns if c.endswith("_minutes")]
    bad = occupancy.select(
        pl.any_horizontal((pl.col(c) < 0) | (pl.col(c) > 60) for c in minutes).sum()
    ).item()
    return _result(
        "occupancy_minutes_in_range", not bad, ERROR, rows=occupancy.height, rows_out_of_range=int(bad or 0)
    )


def occupancy_fill_rate_in_range(occupancy: pl.DataFrame) -> Verdict:
    rate = pl.col("mean_fill_rate")
    bad = occupancy.filter(rate.is_not_null() & ((rate < 0) | (rate > 1))).height
    return _result(
        "occupancy_fill_rate_in_range", bad == 0, ERROR, rows=occupancy.height, rows_out_of_range=bad
    )


def rankings_contiguous(rankings: pl.DataFrame) -> Verdict:
    """Each day's ranks are exactly 1..n."""
    per_day = rankings.group_by("day").agg(
        (pl.col("rank").sort() == pl.int_range(1, pl.len() + 1)).all().alias("ok"), pl.len().alias("stations")
    )
    broken = per_day.filter(~pl.col("ok"))["day"].cast(pl.String).to_list()
    return _result(
        "rankings_contiguous",
        not broken,
        ERROR,
        days=per_day.height,
        broken_days=", ".join(broken) or "none",
    )


# coverage ----------------------------------------------------------------------------------------
def rankings_day_coverage(coverages: "list[DayCoverage]", min_share: float) -> Verdict:
    """WARN when a day was observed less than `min_share` of the time: its ranking rests on gaps."""
    worst = min(coverages, key=lambda c: c.observed_share, default=None)
    below = [c for c in coverages if c.observed_share < min_share]
    return _result(
        "rankings_day_coverage",
        not below,
        WARN,
        min_observed_share=min_share,
        days_below=", ".join(str(c.day) for c in below) or "none",
        worst_day=str(worst.day) if worst else "none",
        worst_observed_share=worst.observed_share if worst else 0.0,
        worst_day_captures=worst.captures if worst else 0,
    )


def raw_frozen_feed(longest_frozen_s: dict[str, float], max_gap: timedelta) -> Verdict:
    """WARN when the station data stayed identical under new times for longer than MAX_GAP: a feed
    that answers but no longer moves (shorter spells are the source's own refresh rhythm)."""
    frozen = {key: s for key, s in longest_frozen_s.items() if s > max_gap.total_seconds()}
    return _result(
        "raw_frozen_feed",
        not frozen,
        WARN,
        max_unchanged_minutes=max_gap.total_seconds() / 60,
        longest_unchanged_minutes=round(max(longest_frozen_s.values(), default=0.0) / 60, 1),
        frozen_hours=", ".join(sorted(frozen)) or "none",
    )
