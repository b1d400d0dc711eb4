"""The DuckDB serving layer: schemas `raw`, `staging`, `marts` of views over the lake's Parquet files.

The views read the lake through globs, so new partitions show up without touching the database.
The file is rebuilt under a temporary name and renamed into place: no run ever holds a DuckDB write
lock on the file analysts read, and a reader holding the old file open keeps reading it undisturbed.
"""

import os
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager as ContextManager
from pathlib import Path

import duckdb

HOURLY = "date=*/hour=*/part.parquet"
DAILY = "day=*/part.parquet"

LAKE_VIEWS: dict[str, tuple[str, str]] = {
    "raw.raw_station_snapshots": ("raw_station_snapshots", HOURLY),
    "staging.clean_stations": ("clean_stations", HOURLY),
    "staging.clean_stations_quarantine": ("clean_stations_quarantine", HOURLY),
    "staging.station_reference": ("station_reference", "part.parquet"),
    "marts.station_occupancy": ("station_occupancy", HOURLY),
    "marts.district_occupancy": ("district_occupancy", HOURLY),
    "marts.critical_station_rankings": ("critical_station_rankings", DAILY),
}

TOP_N = 10
DERIVED_VIEWS: dict[str, tuple[str, str]] = {
    "marts.top_critical_stations": (
        "marts.critical_station_rankings",
        f"""SELECT day, rank, station_code, name, district, critical_minutes, empty_minutes, full_minutes,
       longest_empty_streak_minutes, longest_full_streak_minutes
FROM marts.critical_station_rankings WHERE rank <= {TOP_N} ORDER BY day, rank""",
    ),
    "marts.critical_stations_2h": (
        "marts.station_occupancy",
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
    for view, (source, sql) in DERIVED_VIEWS.items():
        if source in created:
            statements.append(f"CREATE OR REPLACE VIEW {view} AS {sql}")
            created.append(view)
        else:
            skipped.append(view)
    return statements, created, skipped


def publish_views(
    database: Path, lake: Path, connect: Callable[[str], ContextManager[duckdb.DuckDBPyConnection]]
) -> tuple[dict[str, int], list[str]]:
    """Build the view database next to `database`, then rename it over it.

    Returns the row count of each view created, and the views skipped for want of data.
    """
    statements, created, skipped = build_views_sql(lake)
    counts: dict[str, int] = {}
    database.parent.mkdir(parents=True, exist_ok=True)
    tmp = database.with_name(f".{database.name}.{uuid.uuid4().hex}.tmp")
    try:
        with connect(str(tmp)) as connection:
            for statement in statements:
                connection.execute(statement)
            for view in created:
                counts[view] = connection.execute(f"SELECT count(*) FROM {view}").fetchone()[0]
            connection.execute("CHECKPOINT")
        os.replace(tmp, database)
    finally:
        tmp.unlink(missing_ok=True)
        Path(f"{tmp}.wal").unlink(missing_ok=True)
    return counts, skipped
