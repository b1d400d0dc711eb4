"""Quality verdicts (`velib_assets.quality`) reported as Dagster asset check results."""

from collections.abc import Sequence
from datetime import UTC, datetime

import dagster as dg

from velib_assets.quality import Verdict


def report(verdict: Verdict) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        check_name=verdict.check_name,
        passed=verdict.passed,
        severity=dg.AssetCheckSeverity(verdict.severity.value),
        metadata=verdict.metadata,
    )


def merge_partitions(per_day: Sequence[Sequence[Verdict]], keys: Sequence[str]) -> list[dg.AssetCheckResult]:
    """One result per check for a run over many days: it passes when every day passed, and shows
    the first failing day's figures and names the failing days, so a month-long backfill never
    holds a month of rows to check it and an analyst knows which partition to open."""
    merged = []
    for verdicts in zip(*per_day, strict=True):
        failing = [(key, v) for key, v in zip(keys, verdicts, strict=True) if not v.passed]
        shown_key, shown = failing[0] if failing else (keys[0], verdicts[0])
        metadata = {
            **shown.metadata,
            "partitions_checked": len(verdicts),
            "partitions_failed": len(failing),
            "shown_partition": shown_key,
            "failed_partitions": ", ".join(key for key, _ in failing[:31]) or "none",
        }
        merged.append(report(Verdict(shown.check_name, not failing, shown.severity, metadata)))
    return merged


def now_utc() -> datetime:
    return datetime.now(UTC)


def run_now(context: dg.AssetExecutionContext) -> datetime:
    """The run's clock: when it started, the same for all its steps, so a run that crosses an hour
    or midnight builds every asset of today on the same closed hours and labels them alike."""
    record = context.instance.get_run_record_by_id(context.run.run_id)
    started = record.start_time if record is not None else None
    now = now_utc()
    return min(now, datetime.fromtimestamp(started, UTC)) if started else now
