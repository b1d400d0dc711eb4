"""The DESIGN §3 tables in DuckDB SQL, one local day at a time, over the day's raw hour files.

What a SQL analyst writes: a temporary table of clean rows (read_parquet over the files, the
quarantine rules as a WHERE, the last row per key with QUALIFY, the station reference for missing
metadata, the flags as expressions), copied to Parquet whole (every CLEAN_SCHEMA column); then the
time-weighted observations (a window function for the hourly weighting), station and district
occupancy per hour and the day's rankings, whose streaks are gaps and islands over window functions,
each copied to Parquet. Durations are summed as integer microseconds, so equal totals really tie and
the rank's tie-breaks decide. DuckDB plans and parallelises each statement on its own (all cores, its
default memory limit).

A day per pass, like the project's partitions: an earlier version that ran over the whole range at
once (and kept only the occupancy columns of the clean rows) peaked at 12.6 GiB for 30 days, so a
year would not fit this machine without spilling.
Every station of the benchmark's history is in the reference, so the project's fallback for unknown
stations (the nearest known station's commune) never applies and is not reimplemented here.
"""

from datetime import date
from pathlib import Path

import duckdb

from benchmarks.generate import load_reference
from benchmarks.workload import (
    CLEAN,
    DISTRICT_OCCUPANCY,
    RANKINGS,
    STATION_OCCUPANCY,
    Workload,
    run_child,
    table_file,
    thresholds,
)
from velib_assets.kpis.clean import ABSURD_COUNT, CLEAN_SCHEMA

CLEAN_SQL = """
CREATE OR REPLACE TEMP TABLE clean AS
WITH usable AS (
    SELECT * EXCLUDE (filename, file_row_number)
    FROM read_parquet($files, filename = true, file_row_number = true)
    WHERE station_code IS NOT NULL AND trim(station_code) <> ''
      AND snapshot_ts IS NOT NULL AND bikes IS NOT NULL AND docks IS NOT NULL
      AND NOT coalesce(bikes < 0 OR docks < 0 OR mechanical < 0 OR ebike < 0 OR capacity < 0, false)
      AND NOT coalesce(bikes > $absurd OR docks > $absurd OR mechanical > $absurd OR ebike > $absurd
                       OR capacity > $absurd, false)
    QUALIFY row_number() OVER (
        PARTITION BY station_code, snapshot_ts ORDER BY filename DESC, file_row_number DESC) = 1
),
filled AS (
    SELECT u.* REPLACE (
               coalesce(u.name, r.name) AS name, coalesce(u.lat, r.lat) AS lat,
               coalesce(u.lon, r.lon) AS lon, coalesce(u.capacity, r.capacity) AS capacity,
               coalesce(u.commune, r.commune) AS commune, coalesce(u.code_insee, r.code_insee) AS code_insee),
           coalesce(epoch_us(u.snapshot_ts) - epoch_us(u.reported_at) > $stale_us, false) AS is_stale,
           CASE WHEN u.bikes + u.docks > 0 THEN u.bikes / (u.bikes + u.docks) END AS fill_rate
    FROM usable u LEFT JOIN reference r USING (station_code)
),
serviced AS (
    SELECT *,
           CASE WHEN commune = 'Paris' AND try_cast(station_code AS BIGINT) // 1000 BETWEEN 1 AND 20
                THEN CAST(try_cast(station_code AS BIGINT) // 1000 AS TINYINT) END AS arrondissement,
           coalesce(is_installed, false) AND coalesce(is_renting, false) AND coalesce(is_returning, false)
               AND NOT is_stale AND bikes + docks > 0 AS in_service
    FROM filled
)
SELECT *,
       CASE WHEN NOT coalesce(is_installed, false) THEN 'closed'
            WHEN NOT in_service THEN 'out_of_service' ELSE 'in_service' END AS status,
       in_service AND bikes = 0 AS is_empty,
       in_service AND docks = 0 AS is_full,
       in_service AND fill_rate <= $nearly_empty AS is_nearly_empty,
       in_service AND fill_rate >= $nearly_full AS is_nearly_full,
       coalesce(bikes + docks > capacity, false) AS capacity_mismatch
FROM serviced
"""

OBSERVATIONS_SQL = """
CREATE OR REPLACE TEMP TABLE observations AS
SELECT station_code, snapshot_ts, hour_start, name, arrondissement, commune, bikes, docks, ebike, fill_rate,
       in_service, is_empty, is_full, is_nearly_empty, is_nearly_full,
       epoch_us(least(coalesce(lead(snapshot_ts) OVER hourly, hour_start + INTERVAL 1 HOUR),
                      snapshot_ts + to_microseconds($gap_us),
                      hour_start + INTERVAL 1 HOUR))
       - epoch_us(snapshot_ts) AS us
FROM (SELECT *, date_trunc('hour', snapshot_ts) AS hour_start FROM clean)
WINDOW hourly AS (PARTITION BY station_code, hour_start ORDER BY snapshot_ts)
"""

STATION_OCCUPANCY_SQL = """
CREATE OR REPLACE TEMP TABLE station_occupancy AS
SELECT station_code, hour_start,
       arg_max(name, snapshot_ts) FILTER (name IS NOT NULL) AS name,
       coalesce('Paris ' || arg_max(arrondissement, snapshot_ts) FILTER (arrondissement IS NOT NULL)
                || CASE WHEN arg_max(arrondissement, snapshot_ts) FILTER (arrondissement IS NOT NULL) = 1
                        THEN 'er' ELSE 'e' END,
                arg_max(commune, snapshot_ts) FILTER (commune IS NOT NULL), 'Unknown') AS district,
       sum(us) AS observed_us,
       sum(us) FILTER (in_service) AS in_service_us,
       sum(us) FILTER (is_empty) AS empty_us,
       sum(us) FILTER (is_full) AS full_us,
       sum(us) FILTER (is_nearly_empty) AS nearly_empty_us,
       sum(us) FILTER (is_nearly_full) AS nearly_full_us,
       sum(us * fill_rate) / nullif(sum(us) FILTER (fill_rate IS NOT NULL), 0) AS mean_fill_rate,
       min(bikes) AS min_bikes, max(bikes) AS max_bikes, min(docks) AS min_docks, max(docks) AS max_docks,
       avg(ebike) AS mean_ebike, count(*) AS snapshots
FROM observations GROUP BY station_code, hour_start
"""

MINUTES = ", ".join(
    f"coalesce({name}_us, 0) / 60e6 AS {name}_minutes"
    for name in ("observed", "in_service", "empty", "full", "nearly_empty", "nearly_full")
)
STATION_COLUMNS = (
    f"station_code, hour_start, name, district, {MINUTES}, mean_fill_rate, min_bikes, max_bikes, "
    "min_docks, max_docks, mean_ebike, snapshots"
)

DISTRICT_OCCUPANCY_SQL = """
SELECT district, hour_start, count(*) AS stations,
       sum(observed_us) / 60e6 AS observed_minutes,
       coalesce(sum(in_service_us), 0) / 60e6 AS in_service_minutes,
       coalesce(sum(empty_us), 0) / 60e6 AS empty_minutes,
       coalesce(sum(full_us), 0) / 60e6 AS full_minutes,
       coalesce(sum(nearly_empty_us), 0) / 60e6 AS nearly_empty_minutes,
       coalesce(sum(nearly_full_us), 0) / 60e6 AS nearly_full_minutes,
       avg(mean_fill_rate) AS mean_fill_rate, avg(mean_ebike) AS mean_ebike, sum(snapshots) AS snapshots
FROM station_occupancy GROUP BY district, hour_start
"""

RANKINGS_SQL = """
WITH runs AS (
    SELECT *,
           sum(CASE WHEN breaks OR is_empty IS DISTINCT FROM prev_empty THEN 1 ELSE 0 END)
               OVER station_rows AS empty_run,
           sum(CASE WHEN breaks OR is_full IS DISTINCT FROM prev_full THEN 1 ELSE 0 END)
               OVER station_rows AS full_run
    FROM (
        SELECT station_code, snapshot_ts, us, is_empty, is_full,
               coalesce(epoch_us(snapshot_ts) - epoch_us(lag(snapshot_ts) OVER station) > $gap_us, true)
                   AS breaks,
               lag(is_empty) OVER station AS prev_empty,
               lag(is_full) OVER station AS prev_full
        FROM observations
        WINDOW station AS (PARTITION BY station_code ORDER BY snapshot_ts)
    )
    WINDOW station_rows AS (PARTITION BY station_code ORDER BY snapshot_ts ROWS UNBOUNDED PRECEDING)
),
totals AS (
    SELECT station_code, coalesce(sum(in_service_us), 0) AS in_service_us,
           coalesce(sum(empty_us), 0) AS empty_us, coalesce(sum(full_us), 0) AS full_us,
           arg_max(name, hour_start) FILTER (name IS NOT NULL) AS name,
           arg_max(district, hour_start) FILTER (district IS NOT NULL) AS district
    FROM station_occupancy GROUP BY ALL HAVING sum(in_service_us) > 0
),
empty_streaks AS (
    SELECT station_code, max(us) AS longest_empty_us
    FROM (SELECT station_code, empty_run, sum(us) AS us FROM runs WHERE is_empty GROUP BY ALL)
    GROUP BY ALL
),
full_streaks AS (
    SELECT station_code, max(us) AS longest_full_us
    FROM (SELECT station_code, full_run, sum(us) AS us FROM runs WHERE is_full GROUP BY ALL)
    GROUP BY ALL
)
SELECT CAST($day AS DATE) AS day,
       CAST(row_number() OVER (ORDER BY t.empty_us + t.full_us DESC, t.empty_us DESC, t.station_code)
            AS UINTEGER) AS rank,
       t.station_code, t.name, t.district,
       t.in_service_us / 60e6 AS in_service_minutes,
       t.empty_us / 60e6 AS empty_minutes,
       t.full_us / 60e6 AS full_minutes,
       (t.empty_us + t.full_us) / 60e6 AS critical_minutes,
       coalesce(e.longest_empty_us, 0) / 60e6 AS longest_empty_streak_minutes,
       coalesce(f.longest_full_us, 0) / 60e6 AS longest_full_streak_minutes
FROM totals t
LEFT JOIN empty_streaks e USING (station_code)
LEFT JOIN full_streaks f USING (station_code)
ORDER BY rank
"""


def _copy(con: duckdb.DuckDBPyConnection, query: str, target: Path, parameters: dict | None = None) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    con.execute(f"COPY ({query}) TO '{target}' (FORMAT parquet, COMPRESSION zstd)", parameters)


def tables(workload: Workload, out: Path) -> None:
    limits = thresholds()
    reference = load_reference().select("station_code", "name", "lat", "lon", "capacity", "commune",
                                        "code_insee").to_arrow()
    gap_us = int(limits.max_gap.total_seconds() * 1_000_000)
    clean_parameters = {
        "absurd": ABSURD_COUNT,
        "stale_us": int(limits.stale_after.total_seconds() * 1_000_000),
        "nearly_empty": limits.nearly_empty_rate,
        "nearly_full": limits.nearly_full_rate,
    }
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        con.register("reference", reference)
        for day in workload.day_list:
            files = [str(path) for path in workload.raw_files(day)]
            if not files:
                continue
            _write_day(con, day, files, out, clean_parameters, gap_us)


def _write_day(
    con: duckdb.DuckDBPyConnection,
    day: date,
    files: list[str],
    out: Path,
    clean_parameters: dict[str, object],
    gap_us: int,
) -> None:
    con.execute(CLEAN_SQL, {"files": files, **clean_parameters})
    _copy(con, f"SELECT {', '.join(CLEAN_SCHEMA)} FROM clean", table_file(out, CLEAN, day))
    con.execute(OBSERVATIONS_SQL, {"gap_us": gap_us})
    con.execute(STATION_OCCUPANCY_SQL)
    _copy(con, f"SELECT {STATION_COLUMNS} FROM station_occupancy", table_file(out, STATION_OCCUPANCY, day))
    _copy(con, DISTRICT_OCCUPANCY_SQL, table_file(out, DISTRICT_OCCUPANCY, day))
    _copy(con, RANKINGS_SQL, table_file(out, RANKINGS, day), {"gap_us": gap_us, "day": day})


if __name__ == "__main__":
    run_child(tables)
