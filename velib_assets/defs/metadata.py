"""Metadata helpers: column schemas, row counts and Markdown previews the Dagster UI renders."""

from collections.abc import Sequence
from datetime import date, datetime

import dagster as dg
import polars as pl

from velib_assets.columns import describe
from velib_assets.days import is_provisional
from velib_assets.settings import PARIS


def column_schema(schema: dict[str, pl.DataType]) -> dg.TableSchema:
    """The UI's column table: name, Polars type and what the column means (`velib_assets.columns`)."""
    columns = [dg.TableColumn(name, str(dtype), description=describe(name)) for name, dtype in schema.items()]
    return dg.TableSchema(columns=columns)


def markdown_table(frame: pl.DataFrame, rows: int = 10) -> str:
    """A small Markdown preview (no extra dependency for a dozen lines of text)."""
    head = frame.head(rows)
    if head.is_empty():
        return "_no rows_"
    lines = ["| " + " | ".join(head.columns) + " |", "|" + "---|" * len(head.columns)]
    for row in head.iter_rows():
        lines.append("| " + " | ".join("" if v is None else str(v).replace("|", "\\|") for v in row) + " |")
    return "\n".join(lines)


def errors_table(errors: Sequence[tuple[str, str]], limit: int = 50) -> str:
    if not errors:
        return "_none_"
    lines = ["| capture | reason |", "|---|---|"]
    lines += [f"| {name} | {reason.replace('|', '/')} |" for name, reason in errors[:limit]]
    if len(errors) > limit:
        lines.append(f"| … | {len(errors) - limit} more |")
    return "\n".join(lines)


def spec_metadata(schema: dict[str, pl.DataType]) -> dict[str, object]:
    return {"dagster/column_schema": column_schema(schema)}


def provisional_metadata(day: date, through: datetime) -> dict[str, object]:
    """Whether the partition holds its whole day or today so far, and up to when (local time)."""
    provisional = is_provisional(day, through)
    return {
        "provisional": provisional,
        "built_through": (
            through.astimezone(PARIS).isoformat(timespec="minutes") if provisional else "end of day"
        ),
    }
