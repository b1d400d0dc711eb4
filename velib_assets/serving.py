"""The DuckDB serving layer: schemas `raw`, `staging`, `marts` of views over the lake's Parquet files.

The views read the lake through globs, so new partitions show up without touching the database.
The file is rebuilt under a temporary name and renamed into place: no run ever holds a DuckDB write
lock on the file analysts read, and a reader holding the old file open keeps reading it undisturbed.

The file belongs to the pipeline, but analysts do create tables and views in it: those are carried
over into the rebuilt file. Anything else of theirs (a macro, a sequence, a type, an index) cannot
be carried faithfully, so the refresh then refuses with a message naming it and leaves the file as
it was. A write-ahead log left by a crashed read-write session is replayed before the rebuild, and
no log is ever left beside a rebuilt file, so readers can always open it. While it is rebuilt the
old file is held open read-only, so a session that tries to write to it is refused, not lost.
"""

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager as ContextManager
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb

from velib_assets.kpis.clean import CLEAN_SCHEMA
from velib_assets.kpis.stations import STATION_ATTRIBUTES

HOURS = "day=*/*Z.parquet"
DAILY = "day=*/part.parquet"

LAKE_VIEWS: dict[str, tuple[str, str]] = {
    "raw.raw_station_snapshots": ("raw_station_snapshots", HOURS),
    "staging.clean_station_minutes": ("clean_stations", DAILY),
    "staging.clean_stations_quarantine": ("clean_stations_quarantine", DAILY),
    "staging.station_reference": ("station_reference", "part.parquet"),
    "staging.stations": ("stations", "part.parquet"),
    "staging.station_changes": ("station_changes", "part.parquet"),
    "marts.station_occupancy": ("station_occupancy", DAILY),
    "marts.district_occupancy": ("district_occupancy", DAILY),
    "marts.critical_station_rankings": ("critical_station_rankings", DAILY),
    # Rewritten after each capture (`velib_assets.network_now`): the view reads the file at query time.
    "marts.stations_now": ("stations_now", "part.parquet"),
    # Rewritten at each alert evaluation (`velib_assets.alerts`): episodes and their deliveries.
    "marts.alerts": ("alerts", "part.parquet"),
    # Forecasts issued at each day's latest observation, and the backtest (`velib_assets.forecast`).
    "marts.availability_forecast": ("availability_forecast", DAILY),
    "marts.forecast_backtest": ("forecast_backtest", "part.parquet"),
    "marts.forecast_calibration": ("forecast_calibration", "part.parquet"),
}

_CLEAN_COLUMNS = ", ".join(
    f"s.{name}" if name in STATION_ATTRIBUTES else f"m.{name}" for name in CLEAN_SCHEMA
)
TOP_N = 10
# Views over other views, created when every view they read exists.
DERIVED_VIEWS: dict[str, tuple[tuple[str, ...], str]] = {
    # The clean rows as they were before the station dimension: each minute row with the version of
    # its station valid at that time. A left join: a row never disappears, even before `stations`
    # is rebuilt for a day just cleaned (its attributes then read as NULL or as the current version).
    "staging.clean_stations": (
        ("staging.clean_station_minutes", "staging.stations"),
        f"""SELECT {_CLEAN_COLUMNS}
FROM staging.clean_station_minutes m
LEFT JOIN staging.stations s ON s.station_code = m.station_code
  AND m.snapshot_ts >= s.valid_from AND (s.valid_to IS NULL OR m.snapshot_ts < s.valid_to)""",
    ),
    "marts.top_critical_stations": (
        ("marts.critical_station_rankings",),
        f"""SELECT day, rank, station_code, name, district, critical_minutes, empty_minutes, full_minutes,
       longest_empty_streak_minutes, longest_full_streak_minutes
FROM marts.critical_station_rankings WHERE rank <= {TOP_N} ORDER BY day, rank""",
    ),
    "marts.critical_stations_2h": (
        ("marts.station_occupancy",),
        # The newest two hours in the lake, ranked like the daily rankings: the top 10 right now.
        # Sums are rounded to 1e-6 minutes, as in the rankings, so float noise cannot break ties.
        """WITH latest AS (SELECT max(hour_start) AS last_hour FROM marts.station_occupancy),
window_rows AS (
  SELECT o.* FROM marts.station_occupancy o, latest
  WHERE o.hour_start > latest.last_hour - INTERVAL 2 HOUR
),
totals AS (
  SELECT station_code, any_value(district) AS district,
         min(hour_start) AS window_start, max(hour_start) + INTERVAL 1 HOUR AS window_end,
         round(sum(in_service_minutes), 6) AS in_service_minutes,
         round(sum(empty_minutes), 6) AS empty_minutes,
         round(sum(full_minutes), 6) AS full_minutes,
         round(sum(empty_minutes) + sum(full_minutes), 6) AS critical_minutes
  FROM window_rows GROUP BY station_code HAVING sum(in_service_minutes) > 0
)
SELECT row_number() OVER (ORDER BY critical_minutes DESC, empty_minutes DESC, station_code) AS rank, *
FROM totals QUALIFY rank <= 10 ORDER BY rank""",
    ),
}


def _has_files(lake: Path, asset: str, pattern: str) -> bool:
    return any((lake / asset).glob(pattern))


def build_views_sql(lake: Path) -> tuple[list[str], list[str], list[str]]:
    """SQL statements, the views they create, and the views skipped because their asset has no data yet."""
    statements = [f"CREATE SCHEMA IF NOT EXISTS {schema}" for schema in ("raw", "staging", "marts")]
    created, skipped = [], []
    for view, (asset, pattern) in LAKE_VIEWS.items():
        if not _has_files(lake, asset, pattern):
            skipped.append(view)
            continue
        glob = str(lake / asset / pattern).replace("'", "''")
        statements.append(
            f"CREATE OR REPLACE VIEW {view} AS "
            # union_by_name: partitions written before a column was added read it as NULL.
            f"SELECT * FROM read_parquet('{glob}', hive_partitioning = false, union_by_name = true)"
        )
        created.append(view)
    for view, (sources, sql) in DERIVED_VIEWS.items():
        if all(name in created for name in sources):
            statements.append(f"CREATE OR REPLACE VIEW {view} AS {sql}")
            created.append(view)
        else:
            skipped.append(view)
    return statements, created, skipped


class ServingFileError(Exception):
    """The serving file cannot be rebuilt safely right now; the message says why and what to do."""


ATTACH_HINT = (
    "keep your own objects in your own DuckDB file that attaches the warehouse read-only "
    "(README, DuckDB: ATTACH 'data/warehouse.duckdb' AS velib (READ_ONLY))"
)


@dataclass(frozen=True)
class ForeignObject:
    """An object in the serving file that the pipeline did not create."""

    kind: str
    schema: str
    name: str
    sql: str | None

    @property
    def label(self) -> str:
        return f"{self.kind} {self.schema}.{self.name}"


_INVENTORY = """
SELECT 'table', schema_name, table_name, sql FROM duckdb_tables()
  WHERE database_name = current_database() AND NOT internal AND NOT temporary
UNION ALL SELECT 'view', schema_name, view_name, sql FROM duckdb_views()
  WHERE database_name = current_database() AND NOT internal AND NOT temporary
UNION ALL SELECT 'macro', schema_name, function_name, NULL FROM duckdb_functions()
  WHERE database_name = current_database() AND NOT internal AND function_type IN ('macro', 'table_macro')
UNION ALL SELECT 'sequence', schema_name, sequence_name, NULL FROM duckdb_sequences()
  WHERE database_name = current_database() AND NOT temporary
UNION ALL SELECT 'type', schema_name, type_name, NULL FROM duckdb_types()
  WHERE database_name = current_database() AND NOT internal
UNION ALL SELECT 'index', schema_name, index_name, NULL FROM duckdb_indexes()
  WHERE database_name = current_database()
"""


def _open(database: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    try:
        return duckdb.connect(str(database), read_only=read_only)
    except duckdb.IOException as exc:
        raise ServingFileError(
            f"{database} is open for writing by another process, so it cannot be rebuilt now: close that "
            f"session (the next refresh retries); {ATTACH_HINT}. DuckDB said: {str(exc).splitlines()[0]}"
        ) from exc


@contextmanager
def held(database: Path) -> Iterator[duckdb.DuckDBPyConnection | None]:
    """The old file, open read-only from its inventory until it is replaced.

    DuckDB's lock then refuses any session that tries to open it for writing meanwhile, with an
    error it sees, instead of letting it write into a file about to be replaced (lost writes). A log
    left by a crashed read-write session is replayed first, by opening the file read-write once.
    """
    if not database.is_file():
        yield None
        return
    if Path(f"{database}.wal").exists():
        _open(database, read_only=False).close()
    holder = _open(database, read_only=True)
    try:
        yield holder
    finally:
        holder.close()


def foreign_objects(holder: duckdb.DuckDBPyConnection | None) -> list[ForeignObject]:
    """What analysts added to the serving file (nothing when there is no file yet)."""
    if holder is None:
        return []
    ours = set(LAKE_VIEWS) | set(DERIVED_VIEWS)
    objects = [ForeignObject(*row) for row in holder.execute(_INVENTORY).fetchall()]
    return [o for o in objects if o.kind != "view" or f"{o.schema}.{o.name}" not in ours]


def _carry_over(
    connection: duckdb.DuckDBPyConnection, holder: duckdb.DuckDBPyConnection, objects: list[ForeignObject]
) -> None:
    """Recreate analysts' tables (with their rows) and views in the file being built.

    Rows travel through the holder's connection: attaching the old file here and detaching it would
    close a descriptor of it in this process, which drops the holder's lock (POSIX record locks)."""
    for table in (o for o in objects if o.kind == "table"):
        try:
            _copy_table(connection, holder, table)
        except duckdb.Error as exc:
            reason = str(exc).splitlines()[0]
            raise ServingFileError(
                f"the analysts' {table.label} cannot be carried into the rebuilt file ({reason}), "
                f"so the refresh is refused and nothing is lost; {ATTACH_HINT}"
            ) from exc
    pending = [o for o in objects if o.kind == "view"]
    while pending:  # a view may read another of the analyst's views: create them as they can be
        failed: list[tuple[ForeignObject, duckdb.Error]] = []
        for view in pending:
            try:
                connection.execute(f'CREATE SCHEMA IF NOT EXISTS "{view.schema}"')
                connection.execute(view.sql or "")
            except duckdb.Error as exc:
                failed.append((view, exc))
        if len(failed) == len(pending):
            view, exc = failed[0]
            raise ServingFileError(
                f"the analysts' {view.label} cannot be recreated over the rebuilt views "
                f"({str(exc).splitlines()[0]}); {ATTACH_HINT}"
            )
        pending = [view for view, _ in failed]


COPY_BATCH_ROWS = 10_000


def _copy_table(
    connection: duckdb.DuckDBPyConnection, holder: duckdb.DuckDBPyConnection, table: ForeignObject
) -> None:
    """The table as its owner declared it (constraints and defaults), then its rows, in batches."""
    connection.execute(f'CREATE SCHEMA IF NOT EXISTS "{table.schema}"')
    connection.execute(table.sql or "")
    source = holder.execute(f'SELECT * FROM "{table.schema}"."{table.name}"')
    marks = ", ".join("?" * len(source.description))
    while rows := source.fetchmany(COPY_BATCH_ROWS):
        connection.executemany(f'INSERT INTO "{table.schema}"."{table.name}" VALUES ({marks})', rows)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_temporaries(database: Path) -> list[Path]:
    """Remove the half-built files (and their logs) of rebuilds whose process died."""
    removed = []
    for path in database.parent.glob(f".{database.name}.*.tmp*"):
        owner = path.name.removeprefix(f".{database.name}.").split("-", 1)[0]
        if not (owner.isdigit() and _pid_alive(int(owner))):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def publish_views(
    database: Path, lake: Path, connect: Callable[[str], ContextManager[duckdb.DuckDBPyConnection]]
) -> tuple[dict[str, int], list[str], list[str]]:
    """Build the view database next to `database`, then rename it over it.

    Returns the row count of each view created, the views skipped for want of data, and the
    analysts' objects carried over. Raises `ServingFileError` when the file cannot be rebuilt
    without losing something of theirs, leaving it as it was.
    """
    statements, created, skipped = build_views_sql(lake)
    counts: dict[str, int] = {}
    database.parent.mkdir(parents=True, exist_ok=True)
    sweep_temporaries(database)
    tmp = database.with_name(f".{database.name}.{os.getpid()}-{uuid.uuid4().hex}.tmp")
    try:
        with held(database) as holder:
            foreign = foreign_objects(holder)
            uncarried = [o.label for o in foreign if o.kind not in ("table", "view")]
            if uncarried:
                raise ServingFileError(
                    f"{database} holds {', '.join(uncarried)}, which the pipeline did not create and cannot "
                    f"carry into the rebuilt file; the refresh is refused so nothing is lost: {ATTACH_HINT}"
                )
            with connect(str(tmp)) as connection:
                for statement in statements:
                    connection.execute(statement)
                if holder is not None and foreign:
                    _carry_over(connection, holder, foreign)
                for view in created:
                    counts[view] = connection.execute(f"SELECT count(*) FROM {view}").fetchone()[0]
                connection.execute("CHECKPOINT")
            os.replace(tmp, database)
            Path(f"{database}.wal").unlink(missing_ok=True)  # a log of the replaced file would break readers
    finally:
        tmp.unlink(missing_ok=True)
        Path(f"{tmp}.wal").unlink(missing_ok=True)
    with duckdb.connect(str(database), read_only=True) as reader:
        reader.execute("SELECT count(*) FROM duckdb_views()").fetchone()
    return counts, skipped, [o.label for o in foreign]
