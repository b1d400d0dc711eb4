"""Dagster wiring, one module per layer: ingestion, staging, marts, serving, reports.

Two Dagster 1.13 features used here on purpose are still marked beta: single-run backfill policies
(a month must be one run, not 720) and source code references in the UI. Their notices are silenced
by name, so loading the definitions prints nothing; any other warning still shows.
"""

import warnings

from dagster import BetaWarning

_DELIBERATE_BETA = (
    "Parameter `backfill_policy`",
    "Function `with_source_code_references`",
    "Class `LocalFileCodeReference`",
    "Class `CodeReferencesMetadataValue`",
)
for _beta in _DELIBERATE_BETA:
    warnings.filterwarnings("ignore", message=_beta, category=BetaWarning)
