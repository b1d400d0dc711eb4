"""The DESIGN §3 KPIs in DuckDB SQL over the raw Parquet partitions of the whole range.

What a SQL analyst writes: a temporary table of clean, time-weighted observations (read_parquet over
the files, the quarantine rules as a WHERE, the last row per key with QUALIFY, the station reference
for missing communes, a window function for the hourly weighting), then station and district
occupancy per hour (written as Parquet) and the daily rankings, whose streaks are gaps and islands
over window functions. Durations are summed as integer
microseconds, so equal totals really tie and the rank's tie-breaks decide. DuckDB plans and
parallelises it on its own (all cores, its default memory limit).
"""

import duckdb
import polars as pl

from benchmarks.generate import load_reference
from benchmarks.workload import Workload, run_child, thresholds

OBSERVATIONS_SQL = """
CREATE TEMP TABLE observations AS
WITH raw AS (
    SELECT station_code, snapshot_ts, bikes, docks, mechanical, ebike, capacity,
           is_installed, is_renting, is_returning, reported_at, commune, filename, file_row_number
    FROM read_parquet($files, filename = true, file_row_number = true)
),
usable AS (
    SELECT * FROM raw
    WHERE station_code IS NOT NULL AND trim(station_code) <> ''
      AND snapshot_ts IS NOT NULL AND bikes IS NOT NULL AND docks IS NOT NULL
      AND NOT coalesce(bikes < 0 OR docks < 0 OR mechanical < 0 OR ebike < 0 OR capacity < 0, false)
      AND NOT coalesce(bikes > $absurd OR docks > $absurd OR mechanical > $absurd OR ebike > $absurd
                       OR capacity > $absurd, false)
    QUALIFY row_number() OVER (
        PARTITION BY station_code, snapshot_ts ORDER BY filename DESC, file_row_number DESC) = 1
),
flagged AS (
    SELECT u.station_code, u.snapshot_ts, u.bikes, u.docks, u.ebike,
           coalesce(u.commune, r.commune) AS commune,
           date_trunc('hour', u.snapshot_ts) AS hour_start,
           CASE WHEN u.bikes + u.docks > 0 THEN u.bikes / (u.bikes + u.docks) END AS fill_rate,
           coalesce(u.is_installed, false) AND coalesce(u.is_renting, false)
             AND coalesce(u.is_returning, false)
             AND NOT coalesce(epoch_us(u.snapshot_ts) - epoch_us(u.reported_at) > $stale_us, false)
             AND u.bikes + u.docks > 0 AS in_service
    FROM usable u LEFT JOIN reference r USING (station_code)
)
SELECT station_code, snapshot_ts, hour_start, bikes, docks, ebike, commune, fill_rate, in_service,
       in_service AND bikes = 0 AS is_empty,
       in_service AND docks = 0 AS is_full,
       in_service AND fill_rate <= $nearly_empty AS is_nearly_empty,
       in_service AND fill_rate >= $nearly_full AS is_nearly_full,
       CAST(timezone('Europe/Paris', hour_start) AS DATE) AS day,
       epoch_us(least(coalesce(lead(snapshot_ts) OVER hourly, hour_start + INTERVAL 1 HOUR),
                      snapshot_ts + to_microseconds($gap_us),
                      hour_start + INTERVAL 1 HOUR))
       - epoch_us(snapshot_ts) AS us
FROM flagged
WINDOW hourly AS (PARTITION BY station_code, hour_start ORDER BY snapshot_ts)
"""

STATION_OCCUPANCY_SQL = """
CREATE TEMP TABLE station_occupancy AS
SELECT station_code, hour_start, any_value(day) AS day,
       CASE WHEN arg_max(commune, snapshot_ts) FILTER (commune IS NOT NULL) = 'Paris'
                 AND regexp_matches(station_code, '^[0-9]{4,5}$')
                 AND CAST(station_code[:-4] AS INTEGER) BETWEEN 1 AND 20
            THEN 'Paris ' || CAST(station_code[:-4] AS INTEGER)
                 || CASE WHEN CAST(station_code[:-4] AS INTEGER) = 1 THEN 'er' ELSE 'e' END
            ELSE coalesce(arg_max(commune, snapshot_ts) FILTER (commune IS NOT NULL), 'Unknown')
       END AS district,
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
               OVER daily_rows AS empty_run,
           sum(CASE WHEN breaks OR is_full IS DISTINCT FROM prev_full THEN 1 ELSE 0 END)
               OVER daily_rows AS full_run
    FROM (
        SELECT station_code, day, snapshot_ts, us, is_empty, is_full,
               coalesce(epoch_us(snapshot_ts) - epoch_us(lag(snapshot_ts) OVER daily) > $gap_us, true)
                   AS breaks,
               lag(is_empty) OVER daily AS prev_empty,
               lag(is_full) OVER daily AS prev_full
        FROM observations
        WINDOW daily AS (PARTITION BY station_code, day ORDER BY snapshot_ts)
    )
    WINDOW daily_rows AS (PARTITION BY station_code, day ORDER BY snapshot_ts ROWS UNBOUNDED PRECEDING)
),
totals AS (
    SELECT station_code, day, coalesce(sum(in_service_us), 0) AS in_service_us,
           coalesce(sum(empty_us), 0) AS empty_us, coalesce(sum(full_us), 0) AS full_us
    FROM station_occupancy GROUP BY ALL HAVING sum(in_service_us) > 0
),
empty_streaks AS (
    SELECT station_code, day, max(us) AS longest_empty_us
    FROM (SELECT station_code, day, empty_run, sum(us) AS us FROM runs WHERE is_empty GROUP BY ALL)
    GROUP BY ALL
),
full_streaks AS (
    SELECT station_code, day, max(us) AS longest_full_us
    FROM (SELECT station_code, day, full_run, sum(us) AS us FROM runs WHERE is_full GROUP BY ALL)
    GROUP BY ALL
)
SELECT t.day,
       CAST(row_number() OVER (PARTITION BY t.day ORDER BY t.empty_us + t.full_us DESC,
                               t.empty_us DESC, t.station_code) AS UINTEGER) AS rank,
       t.station_code,
       t.in_service_us / 60e6 AS in_service_minutes,
       t.empty_us / 60e6 AS empty_minutes,
       t.full_us / 60e6 AS full_minutes,
       (t.empty_us + t.full_us) / 60e6 AS critical_minutes,
       coalesce(e.longest_empty_us, 0) / 60e6 AS longest_empty_streak_minutes,
       coalesce(f.longest_full_us, 0) / 60e6 AS longest_full_streak_minutes
FROM totals t
LEFT JOIN empty_streaks e USING (station_code, day)
LEFT JOIN full_streaks f USING (station_code, day)
ORDER BY t.day, rank
"""


def rankings(workload: Workload) -> pl.DataFrame:
    limits = thresholds()
    files = [str(path) for path in workload.all_raw_files()]
    reference = load_reference().select("station_code", "commune").to_arrow()
    out = workload.data_dir / "baselines" / "duckdb"
    out.mkdir(parents=True, exist_ok=True)
    gap_us = int(limits.max_gap.total_seconds() * 1_000_000)
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        con.register("reference", reference)
        con.execute(
            OBSERVATIONS_SQL,
            {
                "files": files,
                "absurd": 1000,
                "stale_us": int(limits.stale_after.total_seconds() * 1_000_000),
                "gap_us": gap_us,
                "nearly_empty": limits.nearly_empty_rate,
                "nearly_full": limits.nearly_full_rate,
            },
        )
        con.execute(STATION_OCCUPANCY_SQL)
        station_columns = (
            "station_code, hour_start, district, " + MINUTES + ", mean_fill_rate, min_bikes, max_bikes, "
            "min_docks, max_docks, mean_ebike, snapshots"
        )
        con.execute(f"COPY (SELECT {station_columns} FROM station_occupancy) TO '{out / 'station.parquet'}'")
        con.execute(f"COPY ({DISTRICT_OCCUPANCY_SQL}) TO '{out / 'district.parquet'}'")
        return pl.from_arrow(con.execute(RANKINGS_SQL, {"gap_us": gap_us}).to_arrow_table())


if __name__ == "__main__":
    run_child(rankings)
