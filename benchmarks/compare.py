"""Agreement of the implementations' tables with the project's, a local day at a time.

Every table of `workload.TABLES` is matched on its key; floats must agree within `TOLERANCE`, every
other column exactly (null equals only null). A day at a time bounds the comparison's memory by a
day's rows, however long the range.
"""

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import polars as pl

from benchmarks.workload import CLEAN, TABLES, Table, table_file
from velib_assets.builds import SPELLS_FILE
from velib_assets.kpis.stations import join_spells

TOLERANCE = 1e-6


@dataclass
class Agreement:
    """Disagreement counts of one implementation's table against the project's, summed over days."""

    rows: int = 0
    other_rows: int = 0
    only_in_project: int = 0
    only_in_other: int = 0
    mismatches: dict[str, int] = field(default_factory=dict)
    examples: dict[str, str] = field(default_factory=dict)

    @property
    def agree(self) -> bool:
        missing = self.only_in_project or self.only_in_other
        return self.rows == self.other_rows and not (missing or self.mismatches)

    def report(self) -> dict[str, object]:
        return {
            "agree": self.agree, "rows": self.rows, "other_rows": self.other_rows,
            "only_in_project": self.only_in_project, "only_in_other": self.only_in_other,
            "mismatches": self.mismatches, "examples": self.examples,
        }


def read_day(out: Path, table: str, day: date) -> pl.DataFrame | None:
    """A day of `table` as an implementation wrote it under `out` (None: no file for that day).

    The project's clean rows are joined back to their station spells, which gives the full
    CLEAN_SCHEMA frame (`velib_assets.kpis.stations.join_spells`).
    """
    path = table_file(out, table, day)
    if not path.is_file():
        return None
    frame = pl.read_parquet(path)
    spells = path.with_name(SPELLS_FILE)
    if table == CLEAN and spells.is_file():
        frame = join_spells(frame, pl.read_parquet(spells))
    return frame


def _equal(column: str, dtype: pl.DataType) -> pl.Expr:
    mine, theirs = pl.col(column), pl.col(f"{column}_other")
    if dtype.is_float():
        mine, theirs = mine.fill_nan(None), theirs.fill_nan(None)
        close = (mine - theirs).abs() <= TOLERANCE
        either_null = mine.is_null() | theirs.is_null()
        return pl.when(either_null).then(mine.is_null() & theirs.is_null()).otherwise(close)
    return mine.eq_missing(theirs)


def in_key_order(frame: pl.DataFrame, table: Table, schema: pl.Schema | None = None) -> pl.DataFrame:
    """The table's columns (cast to `schema`, the project's types, when given), sorted by its key.

    String keys sort by their rank among the frame's distinct values (a Polars `Enum` of the sorted
    values), which is the string order at a quarter of a string sort's cost on a day of clean rows.
    """
    columns = [*table.keys, *table.columns]
    selected = frame.select(pl.col(c).cast(schema[c]) if schema else pl.col(c) for c in columns)
    order = [
        pl.col(key).cast(pl.Enum(selected[key].unique().drop_nulls().sort())).to_physical()
        if selected.schema[key] == pl.String else pl.col(key)
        for key in table.keys
    ]
    return selected.sort(order)


def compare_day(mine: pl.DataFrame | None, other: pl.DataFrame | None, table: Table, into: Agreement) -> None:
    """Add one day's disagreement of `other` with the project's rows `mine` (`in_key_order`) to `into`.

    Same keys in the same order (the usual case) compare row by row; otherwise a full join on the key
    finds the rows only one side has.
    """
    into.rows += 0 if mine is None else mine.height
    into.other_rows += 0 if other is None else other.height
    if mine is None or other is None:
        into.only_in_project += 0 if mine is None else mine.height
        into.only_in_other += 0 if other is None else other.height
        return
    keys = list(table.keys)
    theirs = in_key_order(other, table, mine.schema)
    if mine.select(keys).equals(theirs.select(keys)):
        both = mine.hstack(theirs.select(pl.col(c).alias(f"{c}_other") for c in table.columns).get_columns())
    else:
        joined = mine.with_columns(pl.lit(True).alias("_mine")).join(
            theirs.with_columns(pl.lit(True).alias("_theirs")), on=keys, how="full", coalesce=True,
            suffix="_other",
        )
        into.only_in_project += joined["_theirs"].null_count()
        into.only_in_other += joined["_mine"].null_count()
        both = joined.filter(pl.col("_mine") & pl.col("_theirs"))
    differing = [(~_equal(c, mine.schema[c])).sum().alias(c) for c in table.columns]
    counts = both.select(differing).row(0, named=True)
    for column, count in counts.items():
        if not count:
            continue
        into.mismatches[column] = into.mismatches.get(column, 0) + count
        if column not in into.examples:
            row = both.filter(~_equal(column, mine.schema[column])).row(0, named=True)
            where = ", ".join(f"{key}={row[key]}" for key in table.keys)
            into.examples[column] = f"{where}: project {row[column]!r}, other {row[f'{column}_other']!r}"


def compare(project: Path, others: dict[str, Path], days: list[date]) -> dict[str, dict[str, Agreement]]:
    """`{implementation: {table: Agreement}}` of each output folder in `others` against `project`'s."""
    agreements = {name: {table: Agreement() for table in TABLES} for name in others}
    for day in days:
        for name, table in TABLES.items():
            frame = read_day(project, name, day)
            mine = None if frame is None else in_key_order(frame, table)
            for other, out in others.items():
                compare_day(mine, read_day(out, name, day), table, agreements[other][name])
    return agreements
