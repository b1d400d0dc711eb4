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


def merge_hourly(per_hour: Sequence[Sequence[Verdict]]) -> list[dg.AssetCheckResult]:
    """One result per check for a run over many hours: it passes when every hour passed, and shows
    the worst hour's figures, so a month-long backfill never holds a month of rows to check it."""
    merged = []
    for verdicts in zip(*per_hour, strict=True):
        failing = [v for v in verdicts if not v.passed]
        shown = failing[0] if failing else verdicts[0]
        metadata = {**shown.metadata, "hours_checked": len(verdicts), "hours_failed": len(failing)}
        merged.append(report(Verdict(shown.check_name, not failing, shown.severity, metadata)))
    return merged


def now_utc() -> datetime:
    return datetime.now(UTC)
