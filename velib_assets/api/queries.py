"""SQL over the serving views, one function per question the API answers.

Every function takes a reader of the serving file and returns plain dicts (the response models
validate them). A view the pipeline has not published yet (no data for it) reads as no rows,
with a note saying why, never as an error.
"""

import os
import re
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from velib_assets.api.connection import NotInLake, Reader
from velib_assets.api.params import Page, TimeRange
from velib_assets.settings import PARIS

# `velib_assets.kpis.occupancy.district_label`, over the station dimension.
DISTRICT = """CASE WHEN s.arrondissement IS NOT NULL
  THEN 'Paris ' || s.arrondissement || CASE WHEN s.arrondissement = 1 THEN 'er' ELSE 'e' END
  ELSE coalesce(s.commune, 'Unknown') END"""

# Each station's newest version in the dimension, with its state now when that is published.
_CURRENT = """SELECT s.*, row_number() OVER (PARTITION BY s.station_code ORDER BY s.version DESC) AS newest
FROM staging.stations s"""
STATION_COLUMNS = f"""s.station_code, s.name, {DISTRICT} AS district, s.lat, s.lon, s.capacity"""
NOW_COLUMNS = """n.state, n.since, n.since_at_least, n.minutes_in_state, n.bikes, n.mechanical, n.ebike,
  n.docks, n.latest_capture AS captured_at"""
NO_NOW = """NULL AS state, NULL AS since, NULL AS since_at_least, NULL AS minutes_in_state, NULL AS bikes,
  NULL AS mechanical, NULL AS ebike, NULL AS docks, NULL AS captured_at"""
DIMENSION_COLUMNS = """s.version, s.station_id, s.commune, s.code_insee, s.arrondissement, s.valid_from,
  s.valid_to, s.last_seen, s.changed"""

NOT_PUBLISHED = "{view} is not published yet: the pipeline has not built it"
NO_FORECASTS = "no forecasts built yet"


def paged(
    db: Reader, sql: str, params: list[Any], order: str, page: Page
) -> tuple[list[dict], int]:
    """One page of `sql`'s rows and the total over all pages, in one query when the page has rows."""
    rows = db.query(
        f"SELECT *, count(*) OVER () AS _total FROM ({sql}) ORDER BY {order} LIMIT ? OFFSET ?",
        [*params, page.limit, page.offset],
    )
    if rows:
        total = rows[0]["_total"]
        for row in rows:
            del row["_total"]
        return rows, total
    return [], _count(db, f"SELECT count(*) AS n FROM ({sql})", params)


def _count(db: Reader, sql: str, params: list[Any]) -> int:
    found = db.query(sql, params)
    return found[0]["n"] if found else 0


def _stations_sql(db: Reader, detail: bool) -> str:
    now = db.has("marts.stations_now")
    columns = [STATION_COLUMNS, NOW_COLUMNS if now else NO_NOW]
    if detail:
        columns.append(DIMENSION_COLUMNS)
    joined = "LEFT JOIN marts.stations_now n USING (station_code)" if now else ""
    return f"SELECT {', '.join(columns)} FROM ({_CURRENT}) s {joined} WHERE s.newest = 1"


def stations_note(db: Reader) -> str | None:
    if not db.has("staging.stations"):
        return NOT_PUBLISHED.format(view="staging.stations")
    if not db.has("marts.stations_now"):
        return "the network's state now is not published yet (marts.stations_now): state fields are null"
    return None


def stations(
    db: Reader, district: str | None, state: str | None, q: str | None, page: Page
) -> tuple[list[dict], int]:
    if not db.has("staging.stations"):
        return [], 0
    sql, params = f"SELECT * FROM ({_stations_sql(db, detail=False)}) WHERE true", []
    if district is not None:
        sql, params = sql + " AND district = ?", [*params, district]
    if state is not None:
        sql, params = sql + " AND state = ?", [*params, state]
    if q is not None:
        # case- and accent-insensitive: "bd st germain" does not match, "saint-germain" and "SAINT GERMAIN" do
        sql += (
            " AND (contains(station_code, trim(?)) OR contains(strip_accents(lower(name)), "
            "strip_accents(lower(trim(?)))))"
        )
        params = [*params, q, q]
    return paged(db, sql, params, "station_code", page)


def station(db: Reader, code: str) -> dict | None:
    if not db.has("staging.stations"):
        return None
    sql = f"SELECT * FROM ({_stations_sql(db, detail=True)}) WHERE station_code = ?"
    found = db.query(sql, [code])
    return found[0] if found else None


def known_station(db: Reader, code: str) -> bool:
    if not db.has("staging.stations"):
        return False
    return _count(db, "SELECT count(*) AS n FROM staging.stations WHERE station_code = ?", [code]) > 0


def districts(db: Reader, page: Page) -> tuple[list[dict], int]:
    if not db.has("staging.stations"):
        return [], 0
    sql = f"SELECT {DISTRICT} AS district, count(*) AS stations FROM ({_CURRENT}) s WHERE newest = 1"
    sql += " GROUP BY ALL"
    return paged(db, sql, [], "district", page)


def known_district(db: Reader, district: str) -> bool:
    if not db.has("staging.stations"):
        return False
    return _count(db, f"SELECT count(*) AS n FROM ({_CURRENT}) s WHERE {DISTRICT} = ?", [district]) > 0


# A view over daily partitions: `read_parquet('<lake>/<asset>/day=*/part.parquet', ...)`.
_DAILY_GLOB = re.compile(r"read_parquet\('((?:[^']|'')*)/day=\*/part\.parquet'")


def local_days(span: TimeRange) -> list[date]:
    """The Paris days `[start, end)` touches: the lake's day partitions that can hold its hours."""
    first = span.start.astimezone(PARIS).date()
    last = (span.end - timedelta(microseconds=1)).astimezone(PARIS).date()
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def _over_days(
    db: Reader, view: str, days: list[date], query: Callable[[str], tuple[list[dict], int]]
) -> tuple[list[dict], int]:
    """`query(source)` over only the partition files of `days`, when `view` reads daily partitions.

    The views read the lake without hive partitioning, so through the view DuckDB opens the footer of
    every day of the lake to answer for one (a `station_occupancy` file's row-group statistics then
    skip the other stations, but only inside the files it opened). The view's own glob, narrowed to
    the days asked, reads the same rows from one file a day. A file replaced meanwhile is renamed
    into place, never half-written (`Reader.query` reads again if the query saw the swap); one removed
    meanwhile (a rebuild of the lake) sends the query through the view."""
    match = _DAILY_GLOB.search(db.relations.get(view, ""))
    if match is None:
        return query(view)
    root = match.group(1).replace("''", "'")
    files = [path for day in days if os.path.isfile(path := f"{root}/day={day.isoformat()}/part.parquet")]
    if not files:
        if not os.path.isdir(root):  # the view has nothing to read on any day: not published
            raise NotInLake(f"{root}/day=*/part.parquet")
        return [], 0
    listed = ", ".join("'" + path.replace("'", "''") + "'" for path in files)
    try:
        return query(f"read_parquet([{listed}], hive_partitioning = false, union_by_name = true)")
    except (NotInLake, duckdb.IOException):
        return query(view)


def _newest_day_file(db: Reader, view: str) -> str | None:
    """The newest day partition a view of daily partitions reads, as a `read_parquet` source."""
    match = _DAILY_GLOB.search(db.relations.get(view, ""))
    if match is None:
        return None
    days = sorted(Path(match.group(1).replace("''", "'")).glob("day=*/part.parquet"))
    return "read_parquet('" + str(days[-1]).replace("'", "''") + "')" if days else None


def latest_hour(db: Reader, view: str, code: str | None = None) -> datetime | None:
    """The newest hour a view of hourly rows holds, of one station when `code` is given (None: the
    view is missing or holds none). Read from its newest day partition when it reads daily ones and
    that day has it; a station missing from that day is looked for in every day."""
    if not db.has(view):
        return None
    where, params = ("WHERE station_code = ?", [code]) if code is not None else ("", [])
    newest = _newest_day_file(db, view)
    for source in ([newest] if newest else []) + [view]:
        try:
            found = db.query(f"SELECT max(hour_start) AS hour FROM {source} {where}", params)
        except (NotInLake, duckdb.IOException):
            if source == view:
                raise
            continue  # that day's file was removed meanwhile
        if found and found[0]["hour"] is not None:
            return found[0]["hour"]
    return None


def station_occupancy(db: Reader, code: str, span: TimeRange, page: Page) -> tuple[list[dict], int]:
    def query(source: str) -> tuple[list[dict], int]:
        sql = (
            f"SELECT * EXCLUDE (name, district) FROM {source} "
            "WHERE station_code = ? AND hour_start >= ? AND hour_start < ?"
        )
        return paged(db, sql, [code, span.start, span.end], "hour_start", page)

    return _over_days(db, "marts.station_occupancy", local_days(span), query)


def district_occupancy(
    db: Reader, district: str | None, span: TimeRange, page: Page
) -> tuple[list[dict], int]:
    def query(source: str) -> tuple[list[dict], int]:
        sql = f"SELECT * FROM {source} WHERE hour_start >= ? AND hour_start < ?"
        params: list[Any] = [span.start, span.end]
        if district is not None:
            sql, params = sql + " AND district = ?", [*params, district]
        return paged(db, sql, params, "hour_start, district", page)

    return _over_days(db, "marts.district_occupancy", local_days(span), query)


def days(db: Reader, page: Page) -> tuple[list[dict], int]:
    if not db.has("marts.critical_station_rankings"):
        return [], 0
    sql = "SELECT day, count(*) AS stations FROM marts.critical_station_rankings GROUP BY day"
    return paged(db, sql, [], "day", page)


def latest_days(db: Reader, count: int) -> list[date]:
    """The newest `count` days with rankings, newest first."""
    if not db.has("marts.critical_station_rankings"):
        return []
    sql = "SELECT DISTINCT day FROM marts.critical_station_rankings ORDER BY day DESC LIMIT ?"
    return [row["day"] for row in db.query(sql, [count])]


def ranking(db: Reader, day: date, page: Page) -> tuple[list[dict], int]:
    if not db.has("marts.critical_station_rankings"):
        return [], 0

    def query(source: str) -> tuple[list[dict], int]:
        return paged(db, f"SELECT * FROM {source} WHERE day = ?", [day], "rank", page)

    return _over_days(db, "marts.critical_station_rankings", [day], query)


def rolling_ranking(db: Reader, page: Page) -> tuple[list[dict], int]:
    if not db.has("marts.critical_stations_2h"):
        return [], 0
    names = "(SELECT station_code, name FROM staging.stations QUALIFY row_number() OVER " \
        "(PARTITION BY station_code ORDER BY version DESC) = 1)"
    if db.has("staging.stations"):
        sql = f"SELECT r.*, s.name FROM marts.critical_stations_2h r LEFT JOIN {names} s USING (station_code)"
    else:
        sql = "SELECT *, NULL AS name FROM marts.critical_stations_2h"
    return paged(db, sql, [], "rank", page)


def alerts(db: Reader, open_only: bool | None, page: Page) -> tuple[list[dict], int]:
    if not db.has("marts.alerts"):
        return [], 0
    sql = "SELECT * FROM marts.alerts"
    if open_only is not None:
        sql += " WHERE resolved_at IS NULL" if open_only else " WHERE resolved_at IS NOT NULL"
    return paged(db, sql, [], "opened_at DESC, episode_id DESC, event, channel", page)


FORECAST_COLUMNS = "station_code, issued_at, horizon_minutes, target_at, bikes, docks, p_empty, p_full"
# The newest issue of the forecast: a station missing from it has no current forecast, and an older
# issue's targets may be past already.
_NEWEST_ISSUE = f"""SELECT {FORECAST_COLUMNS} FROM marts.availability_forecast
WHERE issued_at = (SELECT max(issued_at) FROM marts.availability_forecast)"""


def forecasts(db: Reader, code: str | None, page: Page) -> tuple[list[dict], int]:
    sql, params = f"SELECT * FROM ({_NEWEST_ISSUE})", []
    if code is not None:
        sql, params = sql + " WHERE station_code = ?", [code]
    return paged(db, sql, params, "station_code, target_at", page)


def newest_issue(db: Reader) -> datetime | None:
    found = db.query("SELECT max(issued_at) AS issued FROM marts.availability_forecast")
    return found[0]["issued"] if found else None


def forecasts_at_risk(db: Reader, page: Page) -> tuple[list[dict], int]:
    """Each station's riskiest row within the hour of the newest issue, most likely empty or full first."""
    sql = f"""SELECT * FROM ({_NEWEST_ISSUE}) WHERE horizon_minutes <= 60
QUALIFY row_number() OVER (PARTITION BY station_code
  ORDER BY greatest(coalesce(p_empty, 0), coalesce(p_full, 0)) DESC, target_at) = 1"""
    return paged(
        db, sql, [], "greatest(coalesce(p_empty, 0), coalesce(p_full, 0)) DESC, station_code", page
    )


def network_stations(db: Reader) -> int:
    if not db.has("marts.stations_now"):
        return 0
    try:
        return _count(db, "SELECT count(*) AS n FROM marts.stations_now", [])
    except NotInLake:  # its file is being rebuilt: health still answers
        return 0
