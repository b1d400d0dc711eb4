"""The DESIGN §3 rankings as one DuckDB SQL query over the raw Parquet partitions of the whole range.

What a SQL analyst writes: read_parquet over the files, the quarantine rules as a WHERE, the
last row per key with QUALIFY, window functions for the hourly time weighting and for the streaks
(gaps and islands), GROUP BY for the sums, row_number() for the rank. Durations are summed as integer
microseconds, so equal totals really tie and the rank's tie-breaks decide. DuckDB plans and
parallelises it on its own (all cores, its default memory limit).
"""

import duckdb
import polars as pl

from benchmarks.workload import Workload, run_child, thresholds

RANKINGS_SQL = """
WITH raw AS (
    SELECT station_code, snapshot_ts, bikes, docks, mechanical, ebike, capacity,
           is_installed, is_renting, is_returning, reported_at, filename, file_row_number
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
    SELECT station_code, snapshot_ts, bikes, docks,
           date_trunc('hour', snapshot_ts) AS hour_start,
           coalesce(is_installed, false) AND coalesce(is_renting, false) AND coalesce(is_returning, false)
             AND NOT coalesce(epoch_us(snapshot_ts) - epoch_us(reported_at) > $stale_us, false)
             AND bikes + docks > 0 AS in_service
    FROM usable
),
weighted AS (
    SELECT station_code, snapshot_ts, in_service,
           in_service AND bikes = 0 AS is_empty,
           in_service AND docks = 0 AS is_full,
           CAST(timezone('Europe/Paris', hour_start) AS DATE) AS day,
           epoch_us(least(coalesce(lead(snapshot_ts) OVER hourly, hour_start + INTERVAL 1 HOUR),
                          snapshot_ts + to_microseconds($gap_us),
                          hour_start + INTERVAL 1 HOUR))
           - epoch_us(snapshot_ts) AS us
    FROM flagged
    WINDOW hourly AS (PARTITION BY station_code, hour_start ORDER BY snapshot_ts)
),
runs AS (
    SELECT *,
           sum(CASE WHEN breaks OR is_empty IS DISTINCT FROM prev_empty THEN 1 ELSE 0 END)
               OVER daily_rows AS empty_run,
           sum(CASE WHEN breaks OR is_full IS DISTINCT FROM prev_full THEN 1 ELSE 0 END)
               OVER daily_rows AS full_run
    FROM (
        SELECT *,
               coalesce(epoch_us(snapshot_ts) - epoch_us(lag(snapshot_ts) OVER daily) > $gap_us, true) AS breaks,
               lag(is_empty) OVER daily AS prev_empty,
               lag(is_full) OVER daily AS prev_full
        FROM weighted
        WINDOW daily AS (PARTITION BY station_code, day ORDER BY snapshot_ts)
    )
    WINDOW daily_rows AS (PARTITION BY station_code, day ORDER BY snapshot_ts ROWS UNBOUNDED PRECEDING)
),
hourly AS (
    SELECT station_code, day, date_trunc('hour', snapshot_ts) AS hour_start,
           sum(CASE WHEN in_service THEN us ELSE 0 END) AS in_service_us,
           sum(CASE WHEN is_empty THEN us ELSE 0 END) AS empty_us,
           sum(CASE WHEN is_full THEN us ELSE 0 END) AS full_us
    FROM weighted GROUP BY ALL
),
totals AS (
    SELECT station_code, day, sum(in_service_us) AS in_service_us,
           sum(empty_us) AS empty_us, sum(full_us) AS full_us
    FROM hourly GROUP BY ALL HAVING sum(in_service_us) > 0
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
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        relation = con.execute(
            RANKINGS_SQL,
            {
                "files": files,
                "absurd": 1000,
                "stale_us": int(limits.stale_after.total_seconds() * 1_000_000),
                "gap_us": int(limits.max_gap.total_seconds() * 1_000_000),
            },
        )
        return pl.from_arrow(relation.to_arrow_table())


if __name__ == "__main__":
    run_child(rankings)
