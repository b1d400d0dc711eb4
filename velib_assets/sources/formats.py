"""Parsers from verbatim capture bytes to the raw Polars schema, one per recorded format.

A capture that does not parse raises `CaptureParseError` with a reason a person can act on
(truncated JSON, an HTML page, an empty station list, the wrong shape); nothing is repaired here.
"""

import csv
import io
import json
import re
import struct
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import polars as pl
from isal import igzip, isal_zlib

from velib_assets.schema import RAW_SCHEMA

OPENDATA_JSON = "opendata-json"
OPENDATA_CSV = "opendata-csv"
OPENDATA_PARQUET = "opendata-parquet"
GBFS_STATUS = "gbfs-status"
GBFS_STATUS_LINES = "gbfs-status-lines"
GBFS_INFO = "gbfs-info"
STATUS_FORMATS = (OPENDATA_JSON, OPENDATA_CSV, OPENDATA_PARQUET, GBFS_STATUS, GBFS_STATUS_LINES)

GBFS_TIMESTAMP_KEYS = ("last_updated", "lastUpdatedOther")
# What makes an entry a station (see `_require_stations`): a code field, and counts or a description.
GBFS_CODE_KEYS = ("stationCode", "station_id")
GBFS_COUNT_KEYS = ("num_bikes_available", "numBikesAvailable", "num_docks_available", "numDocksAvailable")
GBFS_INFO_KEYS = ("name", "lat", "lon")
OPENDATA_COUNT_KEYS = ("numbikesavailable", "numdocksavailable")

# Column labels of the Paris Open Data CSV export, mapped to the API's record fields.
CSV_LABELS = {
    "Identifiant station": "stationcode",
    "Nom station": "name",
    "Station en fonctionnement": "is_installed",
    "Capacité de la station": "capacity",
    "Nombre bornettes libres": "numdocksavailable",
    "Nombre total vélos disponibles": "numbikesavailable",
    "Vélos mécaniques disponibles": "mechanical",
    "Vélos électriques disponibles": "ebike",
    "Borne de paiement disponible": "is_renting",
    "Retour vélib possible": "is_returning",
    "Actualisation de la donnée": "duedate",
    "Coordonnées géographiques": "coordonnees_geo",
    "Nom communes équipées": "nom_arrondissement_communes",
    "Code INSEE communes équipées": "code_insee_commune",
}


class CaptureParseError(ValueError):
    """A capture's bytes are not a usable station list; the message says why."""


def decompress(body: bytes) -> bytes:
    """A gzipped capture's bytes (ISA-L's inflate: the same bytes as zlib's, in 60 % of the time)."""
    if body[:2] == b"\x1f\x8b":
        try:
            return igzip.decompress(body)
        except (OSError, EOFError, isal_zlib.error) as exc:
            raise CaptureParseError(f"truncated or corrupt gzip ({exc})") from exc
    return body


def load_json(body: bytes) -> Any:
    text = decompress(body)
    stripped = text.lstrip()
    if not stripped:
        raise CaptureParseError("empty body")
    if stripped[:1] == b"<":
        raise CaptureParseError("HTML page, not JSON")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        if _truncated(text, exc):
            raise CaptureParseError(f"truncated JSON at byte {exc.pos}") from exc
        raise CaptureParseError(f"invalid JSON at byte {exc.pos}: {exc.msg}") from exc
    except UnicodeDecodeError as exc:
        raise CaptureParseError(f"not UTF-8 text ({exc.reason})") from exc
    except RecursionError as exc:
        raise CaptureParseError("JSON nested too deep to be a station list") from exc
    except ValueError as exc:  # after its subclasses: an integer past Python's 4,300-digit int(str) bound
        reason = " ".join(str(exc).partition(":")[0].split())  # one line, without the sys.* advice
        raise CaptureParseError(f"unreadable JSON value ({reason})") from exc


_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')


def _truncated(text: bytes, exc: json.JSONDecodeError) -> bool:
    """The body stopped before the document closed: inside a string, or with brackets still open."""
    if exc.pos >= len(text.rstrip()) - 1 or exc.msg.startswith("Unterminated string"):
        return True
    bare = _JSON_STRING.sub(b"", text)
    return bare.count(b"[") + bare.count(b"{") > bare.count(b"]") + bare.count(b"}")


def gbfs_feed_time(document: Any) -> datetime | None:
    """The feed's own timestamp (`last_updated`, or Vélib's `lastUpdatedOther`), in UTC; None when
    absent or absurd. Whether it is plausible (not in the future, say) is for the caller to judge."""
    if not isinstance(document, dict):
        return None
    for key in GBFS_TIMESTAMP_KEYS:
        parsed = _epoch_utc(document.get(key))
        if parsed is not None:
            return parsed
    return None


def gbfs_stations(document: Any) -> list[dict[str, Any]]:
    if not isinstance(document, dict) or not isinstance(document.get("data"), dict):
        raise CaptureParseError("wrong shape: expected a GBFS envelope with data.stations")
    stations = document["data"].get("stations")
    if not isinstance(stations, list):
        raise CaptureParseError("wrong shape: GBFS data.stations is not a list")
    return _non_empty(stations)


def _non_empty(stations: list[Any]) -> list[dict[str, Any]]:
    if not stations:
        raise CaptureParseError("empty station list")
    if not all(isinstance(s, dict) for s in stations):
        raise CaptureParseError("wrong shape: station entries are not JSON objects")
    return stations


def _require_stations(
    stations: list[dict[str, Any]], code_keys: tuple[str, ...], value_keys: tuple[str, ...], what: str
) -> None:
    """Any JSON object passes the shape checks (`{"a": 1}` on a line): a station list needs at least one
    entry with the format's station code field and `what`. The field may be null (real exports null
    every `stationcode` at times, and those are still captures of the feed), but it must be there."""
    for station in stations:
        if any(k in station for k in code_keys) and any(station.get(k) is not None for k in value_keys):
            return
    raise CaptureParseError(
        f"not a station list: none of its {len(stations)} entries has a station code field "
        f"({' or '.join(code_keys)}) with {what}"
    )


def _iso_utc(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: year 1 or 9999 pushed out of range by the offset
        return None


MS_EPOCH_ABOVE = 1e11
"""A Unix time this large is in milliseconds: 1e11 s is the year 5138, 1e11 ms is 1973."""
LATEST_EPOCH = 4_102_444_800
"""2100-01-01: a time later than this, in seconds or milliseconds, is absurd (1e13 ms is 2286)."""


def _epoch_utc(value: Any) -> datetime | None:
    """A Unix time (seconds, or milliseconds recognised by size) or an ISO string, in UTC.

    Feeds send absurd values (1e13, negative, NaN, Infinity): those are None, so one bad station or
    feed time never breaks a whole capture."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return _iso_utc(value)
    try:
        if not value > 0:  # also NaN
            return None
        seconds = value / 1000 if value > MS_EPOCH_ABOVE else value
        return datetime.fromtimestamp(seconds, UTC) if seconds < LATEST_EPOCH else None
    except (OverflowError, OSError, ValueError):
        return None


def _flag(value: Any) -> bool | None:
    """Vélib' booleans come as 0/1, true/false or "OUI"/"NON"."""
    if value is None:
        return None
    if isinstance(value, str):
        upper = value.strip().upper()
        if upper in ("OUI", "TRUE", "1", "YES"):
            return True
        if upper in ("NON", "FALSE", "0", "NO"):
            return False
        return None
    return bool(value)


def _int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        value = value.strip()
        if not value.lstrip("-").isdigit():
            return None
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an infinite count
        return None
    return number if -(2**31) < number < 2**31 else None


def _station_id(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit() and len(value) < 19:
        return int(value)
    return None


def _code(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _table(columns: dict[str, list[Any]], schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """json.loads reads `"\\ud800"` as a lone surrogate, which is not text: the capture is refused."""
    try:
        return pl.DataFrame(columns, schema=schema, strict=False)
    except UnicodeEncodeError as exc:
        surrogate = exc.object[exc.start]
        raise CaptureParseError(f"a string holds a lone UTF-16 surrogate ({surrogate!r}), not text") from exc


def _frame(columns: dict[str, list[Any]], snapshot_ts: datetime, source: str) -> pl.DataFrame:
    height = len(next(iter(columns.values())))
    columns = {**columns, "snapshot_ts": [snapshot_ts] * height, "source": [source] * height}
    return _table({name: columns.get(name, [None] * height) for name in RAW_SCHEMA}, RAW_SCHEMA)


def _column(records: list[dict[str, Any]], key: str, convert: Callable[[Any], Any]) -> list[Any]:
    return [convert(r.get(key)) for r in records]


def opendata_records_frame(records: list[dict[str, Any]], snapshot_ts: datetime) -> pl.DataFrame:
    """Opendatasoft `velib-disponibilite-en-temps-reel` records (API, CSV or Parquet) to raw rows."""
    _require_stations(records, ("stationcode",), OPENDATA_COUNT_KEYS, "a bike or dock count")
    coords = [r.get("coordonnees_geo") if isinstance(r.get("coordonnees_geo"), dict) else {} for r in records]
    return _frame(
        {
            "station_code": _column(records, "stationcode", _code),
            "name": _column(records, "name", _code),
            "lat": [c.get("lat") for c in coords],
            "lon": [c.get("lon") for c in coords],
            "capacity": _column(records, "capacity", _int),
            "bikes": _column(records, "numbikesavailable", _int),
            "mechanical": _column(records, "mechanical", _int),
            "ebike": _column(records, "ebike", _int),
            "docks": _column(records, "numdocksavailable", _int),
            "is_installed": _column(records, "is_installed", _flag),
            "is_renting": _column(records, "is_renting", _flag),
            "is_returning": _column(records, "is_returning", _flag),
            "reported_at": _column(records, "duedate", _iso_utc),
            "commune": _column(records, "nom_arrondissement_communes", _code),
            "code_insee": _column(records, "code_insee_commune", _code),
        },
        snapshot_ts,
        "opendata",
    )


def parse_opendata_json(body: bytes, snapshot_ts: datetime) -> pl.DataFrame:
    return opendata_json_frame(load_json(body), snapshot_ts)


def opendata_json_frame(document: Any, snapshot_ts: datetime) -> pl.DataFrame:
    """An export (a JSON array of records) or a `/records` page, already decoded."""
    if isinstance(document, dict) and isinstance(document.get("results"), list):
        document = document["results"]  # a /records page
    if not isinstance(document, list):
        raise CaptureParseError("wrong shape: expected a JSON array of Opendatasoft records")
    return opendata_records_frame(_non_empty(document), snapshot_ts)


def parse_opendata_csv(body: bytes, snapshot_ts: datetime) -> pl.DataFrame:
    text = decompress(body).decode("utf-8-sig", errors="strict")
    if text.lstrip()[:1] == "<":
        raise CaptureParseError("HTML page, not CSV")
    rows = list(csv.DictReader(io.StringIO(text), delimiter=";"))
    if rows and "Identifiant station" not in rows[0]:
        raise CaptureParseError("wrong shape: CSV header lacks 'Identifiant station'")
    records = []
    for row in rows:
        record: dict[str, Any] = {CSV_LABELS.get(k, k): (v if v != "" else None) for k, v in row.items()}
        lat_lon = (record.get("coordonnees_geo") or "").split(",")
        record["coordonnees_geo"] = (
            {"lat": float(lat_lon[0]), "lon": float(lat_lon[1])} if len(lat_lon) == 2 else None
        )
        records.append(record)
    return opendata_records_frame(_non_empty(records), snapshot_ts)


def _wkb_point(value: bytes | None) -> dict[str, float] | None:
    if not value or len(value) < 21:
        return None
    order = "<" if value[0] == 1 else ">"
    lon, lat = struct.unpack(f"{order}dd", value[5:21])
    return {"lon": lon, "lat": lat}


def parse_opendata_parquet(body: bytes, snapshot_ts: datetime) -> pl.DataFrame:
    """GeoParquet export: WKB points, and `duedate` as a naive timestamp (the API's UTC default)."""
    try:
        table = pl.read_parquet(io.BytesIO(body))
    except Exception as exc:  # polars raises several error types for corrupt files
        raise CaptureParseError(f"not a readable Parquet file ({exc.__class__.__name__})") from exc
    if "stationcode" not in table.columns:
        raise CaptureParseError("wrong shape: Parquet export lacks 'stationcode'")
    records = table.to_dicts()
    for record in records:
        record["coordonnees_geo"] = _wkb_point(record.get("coordonnees_geo"))
        due = record.get("duedate")
        record["duedate"] = due.replace(tzinfo=UTC).isoformat() if isinstance(due, datetime) else due
    return opendata_records_frame(_non_empty(records), snapshot_ts)


def _bike_types(value: Any) -> dict[str, int]:
    """`num_bikes_available_types`: Vélib' sends `[{"mechanical": n}, {"ebike": m}]`, GBFS a dict."""
    if isinstance(value, dict):
        return value
    merged: dict[str, int] = {}
    if isinstance(value, list):
        for item in value:
            if isinstance(item, dict):
                merged.update(item)
    return merged


def _first(station: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if station.get(key) is not None:
            return station[key]
    return None


def gbfs_status_frame(stations: list[dict[str, Any]], snapshot_ts: datetime) -> pl.DataFrame:
    _require_stations(stations, GBFS_CODE_KEYS, GBFS_COUNT_KEYS, "a bike or dock count")
    types = [_bike_types(s.get("num_bikes_available_types")) for s in stations]
    return _frame(
        {
            "station_code": [_code(_first(s, "stationCode", "station_id")) for s in stations],
            "station_id": _column(stations, "station_id", _station_id),
            "bikes": [_int(_first(s, "num_bikes_available", "numBikesAvailable")) for s in stations],
            "mechanical": [_int(t.get("mechanical")) for t in types],
            "ebike": [_int(t.get("ebike")) for t in types],
            "docks": [_int(_first(s, "num_docks_available", "numDocksAvailable")) for s in stations],
            "is_installed": _column(stations, "is_installed", _flag),
            "is_renting": _column(stations, "is_renting", _flag),
            "is_returning": _column(stations, "is_returning", _flag),
            "reported_at": _column(stations, "last_reported", _epoch_utc),
        },
        snapshot_ts,
        "gbfs",
    )


def gbfs_info_frame(document: Any) -> pl.DataFrame:
    """`station_information` as (station_id, station_code, name, lat, lon, capacity) for joining: one row
    per station code, the last where a code repeats, so a join never multiplies status rows."""
    stations = gbfs_stations(document)
    _require_stations(stations, GBFS_CODE_KEYS, GBFS_INFO_KEYS, "a name or position")
    return _table(
        {
            "station_id": _column(stations, "station_id", _station_id),
            "station_code": [_code(_first(s, "stationCode", "station_id")) for s in stations],
            "name": _column(stations, "name", _code),
            "lat": _column(stations, "lat", lambda v: v if isinstance(v, int | float) else None),
            "lon": _column(stations, "lon", lambda v: v if isinstance(v, int | float) else None),
            "capacity": _column(stations, "capacity", _int),
        },
        schema={
            "station_id": pl.Int64(),
            "station_code": pl.String(),
            "name": pl.String(),
            "lat": pl.Float64(),
            "lon": pl.Float64(),
            "capacity": pl.Int32(),
        },
    ).unique("station_code", keep="last", maintain_order=True)


def with_station_information(status: pl.DataFrame, info: pl.DataFrame | None) -> pl.DataFrame:
    """Fill name, position and capacity from `station_information`, matched on the station code."""
    if info is None or info.is_empty():
        return status
    fields = ["name", "lat", "lon", "capacity"]
    joined = status.drop(fields).join(
        info.select("station_code", *fields), on="station_code", how="left", maintain_order="left"
    )
    return joined.select(status.columns)


def parse_gbfs_status(body: bytes, snapshot_ts: datetime) -> pl.DataFrame:
    return gbfs_status_frame(gbfs_stations(load_json(body)), snapshot_ts)


def parse_gbfs_status_lines(body: bytes, snapshot_ts: datetime) -> pl.DataFrame:
    """One station object per line: a collector dropped the envelope, so the file name dates it."""
    text = decompress(body)
    if text.lstrip()[:1] == b"<":
        raise CaptureParseError("HTML page, not JSON lines")
    stations = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                stations.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise CaptureParseError(f"line {number}: truncated or invalid JSON ({exc.msg})") from exc
            except RecursionError as exc:
                raise CaptureParseError(f"line {number}: JSON nested too deep") from exc
            except ValueError as exc:  # not UTF-8, or an integer past Python's 4,300-digit int(str) bound
                reason = " ".join(str(exc).partition(":")[0].split())
                raise CaptureParseError(f"line {number}: unreadable JSON value ({reason})") from exc
    return gbfs_status_frame(_non_empty(stations), snapshot_ts)


def parse_document(document: Any, fmt: str, snapshot_ts: datetime) -> pl.DataFrame:
    """Raw rows of a JSON capture already decoded (an import decodes it once to recognise it)."""
    if fmt == OPENDATA_JSON:
        return opendata_json_frame(document, snapshot_ts)
    if fmt == GBFS_STATUS:
        return gbfs_status_frame(gbfs_stations(document), snapshot_ts)
    raise CaptureParseError(f"capture format {fmt!r} is not a JSON document")


def max_reported_at(frames: Iterable[pl.DataFrame]) -> datetime | None:
    values = [f["reported_at"].max() for f in frames if not f.is_empty()]
    values = [v for v in values if v is not None]
    return max(values) if values else None  # type: ignore[type-var]
