"""Typed decoding of the JSON captures a collector lands every minute: GBFS status, Opendatasoft exports.

`formats` is the reference parser: it decodes any JSON into Python objects and judges each value
with a Python function, which reads ~20 MB/s. Here msgspec decodes the bytes straight into the
types a well-formed capture holds (a count is an int in Int32's range, a flag 0/1 or OUI/NON, a
time an int or a string) and Polars converts whole columns. Anything else in a capture
(a string or float count, a `true` flag, NaN, a huge number, a missing envelope, an empty list, no
station code)
fails that typed decoding, and the capture goes to the reference parser whole. So the rows, and the
reasons a bad capture is refused, are the reference's; a test holds the two equal on every recorded
capture and on thousands of damaged ones.
"""

import functools
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import msgspec
import polars as pl

from velib_assets.schema import RAW_SCHEMA, UTC_TS
from velib_assets.sources import formats

Count = Annotated[int, msgspec.Meta(gt=-(2**31), lt=2**31)]
"""`formats._int`'s bounds: a count outside Int32 is the reference's business (it nulls that value)."""
Int64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
GbfsFlag = Literal[0, 1] | None
OdsFlag = Literal["OUI", "NON"] | None
"""The flags real captures hold; `true`, `"oui"` and the like are the reference's to judge."""
Unset = msgspec.UnsetType


class _BikeTypes(msgspec.Struct, gc=False):
    """One item of Vélib's `[{"mechanical": n}, {"ebike": m}]`, or GBFS's single object."""

    mechanical: Count | None | Unset = msgspec.UNSET
    ebike: Count | None | Unset = msgspec.UNSET


class _GbfsStation(msgspec.Struct, gc=False):
    station_code: str | None | Unset = msgspec.field(default=msgspec.UNSET, name="stationCode")
    station_id: Int64 | str | None | Unset = msgspec.UNSET
    bikes: Count | None = msgspec.field(default=None, name="num_bikes_available")
    bikes_camel: Count | None = msgspec.field(default=None, name="numBikesAvailable")
    types: list[_BikeTypes] | _BikeTypes | None = msgspec.field(
        default=None, name="num_bikes_available_types"
    )
    docks: Count | None = msgspec.field(default=None, name="num_docks_available")
    docks_camel: Count | None = msgspec.field(default=None, name="numDocksAvailable")
    is_installed: GbfsFlag = None
    is_renting: GbfsFlag = None
    is_returning: GbfsFlag = None
    last_reported: Int64 | None = None


class _GbfsData(msgspec.Struct):
    stations: list[_GbfsStation]


class _GbfsStatus(msgspec.Struct):
    data: _GbfsData


class _Point(msgspec.Struct, gc=False):
    lon: float | None = None
    lat: float | None = None


class _OdsRecord(msgspec.Struct, gc=False):
    stationcode: str | None | Unset = msgspec.UNSET
    name: str | None = None
    capacity: Count | None = None
    numbikesavailable: Count | None = None
    mechanical: Count | None = None
    ebike: Count | None = None
    numdocksavailable: Count | None = None
    is_installed: OdsFlag = None
    is_renting: OdsFlag = None
    is_returning: OdsFlag = None
    duedate: str | None = None
    coordonnees_geo: _Point | None = None
    nom_arrondissement_communes: str | None = None
    code_insee_commune: str | None = None


class _OdsPage(msgspec.Struct):
    results: list[_OdsRecord]


_GBFS = msgspec.json.Decoder(_GbfsStatus)
_OPENDATA = msgspec.json.Decoder(list[_OdsRecord] | _OdsPage)
_NOT_TYPED = (msgspec.DecodeError, msgspec.ValidationError, RecursionError, UnicodeDecodeError)
"""Whatever the reference must judge: msgspec's recursion limit depends on the stack it runs on, and
it checks UTF-8 only in the fields it reads, where json.loads checks the whole body."""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _texts(values: list[str | None]) -> list[str | None]:
    """`formats._code` on strings: stripped, and blank is null."""
    return [v.strip() or None if v is not None else None for v in values]


def _flags(values: list[Any], true: int | str) -> pl.Series:
    """0/1 or OUI/NON (nothing else decodes) as booleans, null kept, in one vectorised comparison."""
    return pl.Series(values, dtype=pl.Int8() if isinstance(true, int) else pl.String()) == true


def _epoch_times(values: list[int | None]) -> pl.Series:
    """`formats._epoch_utc` on integers: milliseconds above 1e11, nothing before 1970 or after 2100
    (integer arithmetic, so exact; a test checks it against the reference on random values)."""
    ms, latest, latest_ms = formats.MS_EPOCH_ABOVE, formats.LATEST_EPOCH, formats.LATEST_EPOCH * 1000
    micros = [
        None if v is None else v * 1_000_000 if 0 < v < latest else v * 1000 if ms < v < latest_ms else None
        for v in values
    ]
    return pl.Series(micros, dtype=pl.Int64()).cast(UTC_TS)


@functools.lru_cache(maxsize=16_384)
def _iso_micros(value: str) -> int | None:
    """Microseconds since the epoch of `formats._iso_utc(value)`. Cached: an export holds ~450 distinct
    due dates, and the next export repeats most of them."""
    parsed = formats._iso_utc(value)
    return None if parsed is None else (parsed - _EPOCH) // _MICROSECOND


def _iso_times(values: list[str | None]) -> pl.Series:
    micros = {value: _iso_micros(value) for value in set(values) if value is not None}
    column = [micros.get(v) if v is not None else None for v in values]
    return pl.Series(column, dtype=pl.Int64()).cast(UTC_TS)


def _frame(columns: dict[str, list[Any] | pl.Series], snapshot_ts: datetime, source: str) -> pl.DataFrame:
    """Raw rows in RAW_SCHEMA's order: columns the format lacks are nulls, as in the reference.
    Each column is built as a typed Series: a frame built from Python lists with a schema costs 5x."""
    height = len(next(iter(columns.values())))
    given = {**columns, "snapshot_ts": [snapshot_ts], "source": [source]}
    series = []
    for name, dtype in RAW_SCHEMA.items():
        values = given.get(name, [None])
        column = values if isinstance(values, pl.Series) else pl.Series(name, values, dtype=dtype)
        series.append(column.alias(name) if len(column) == height else column.new_from_index(0, height))
    return pl.DataFrame(series)


def _gbfs_frame(stations: list[_GbfsStation], snapshot_ts: datetime) -> pl.DataFrame | None:
    """Raw rows, or None where the reference must judge (no stations, or none with a code and a count)."""
    if not any(
        (s.station_code is not msgspec.UNSET or s.station_id is not msgspec.UNSET)
        and any(count is not None for count in (s.bikes, s.bikes_camel, s.docks, s.docks_camel))
        for s in stations
    ):
        return None
    mechanical: list[int | None] = []
    ebike: list[int | None] = []
    for station in stations:
        kinds = station.types
        found_mechanical = found_ebike = None
        for kind in kinds if type(kinds) is list else [kinds] if kinds is not None else []:
            if kind.mechanical is not msgspec.UNSET:
                found_mechanical = kind.mechanical
            if kind.ebike is not msgspec.UNSET:
                found_ebike = kind.ebike
        mechanical.append(found_mechanical)
        ebike.append(found_ebike)
    ids = [None if s.station_id is msgspec.UNSET else s.station_id for s in stations]
    given = [None if s.station_code is msgspec.UNSET else s.station_code for s in stations]
    columns = {
        "station_code": [  # stationCode when sent (even blank), else the station_id, as `formats._first`
            code if raw is not None else formats._code(station_id)
            for raw, code, station_id in zip(given, _texts(given), ids, strict=True)
        ],
        "station_id": [i if type(i) is int else formats._station_id(i) for i in ids],
        "bikes": [s.bikes if s.bikes is not None else s.bikes_camel for s in stations],
        "mechanical": mechanical,
        "ebike": ebike,
        "docks": [s.docks if s.docks is not None else s.docks_camel for s in stations],
        "is_installed": _flags([s.is_installed for s in stations], 1),
        "is_renting": _flags([s.is_renting for s in stations], 1),
        "is_returning": _flags([s.is_returning for s in stations], 1),
        "reported_at": _epoch_times([s.last_reported for s in stations]),
    }
    return _frame(columns, snapshot_ts, "gbfs")


def _opendata_frame(records: list[_OdsRecord], snapshot_ts: datetime) -> pl.DataFrame | None:
    if not any(
        r.stationcode is not msgspec.UNSET
        and (r.numbikesavailable is not None or r.numdocksavailable is not None)
        for r in records
    ):
        return None
    points = [r.coordonnees_geo for r in records]
    columns = {
        "station_code": _texts([None if r.stationcode is msgspec.UNSET else r.stationcode for r in records]),
        "name": _texts([r.name for r in records]),
        "lat": [p.lat if p is not None else None for p in points],
        "lon": [p.lon if p is not None else None for p in points],
        "capacity": [r.capacity for r in records],
        "bikes": [r.numbikesavailable for r in records],
        "mechanical": [r.mechanical for r in records],
        "ebike": [r.ebike for r in records],
        "docks": [r.numdocksavailable for r in records],
        "is_installed": _flags([r.is_installed for r in records], "OUI"),
        "is_renting": _flags([r.is_renting for r in records], "OUI"),
        "is_returning": _flags([r.is_returning for r in records], "OUI"),
        "reported_at": _iso_times([r.duedate for r in records]),
        "commune": _texts([r.nom_arrondissement_communes for r in records]),
        "code_insee": _texts([r.code_insee_commune for r in records]),
    }
    return _frame(columns, snapshot_ts, "opendata")


def _utf8(text: bytes) -> bytes:
    text.decode("utf-8")  # raises UnicodeDecodeError; 0.03 ms for a capture (ASCII fast path)
    return text


def _gbfs(body: bytes, snapshot_ts: datetime) -> pl.DataFrame | None:
    try:
        stations = _GBFS.decode(_utf8(formats.decompress(body))).data.stations
    except _NOT_TYPED:
        return None
    return _gbfs_frame(stations, snapshot_ts) if stations else None


def _opendata(body: bytes, snapshot_ts: datetime) -> pl.DataFrame | None:
    try:
        document = _OPENDATA.decode(_utf8(formats.decompress(body)))
    except _NOT_TYPED:
        return None
    records = document.results if isinstance(document, _OdsPage) else document
    return _opendata_frame(records, snapshot_ts) if records else None


def parse_gbfs_status(body: bytes, snapshot_ts: datetime) -> pl.DataFrame:
    """`formats.parse_gbfs_status`'s rows; a well-formed capture never reaches it."""
    frame = _gbfs(body, snapshot_ts)
    return frame if frame is not None else formats.parse_gbfs_status(body, snapshot_ts)


def parse_opendata_json(body: bytes, snapshot_ts: datetime) -> pl.DataFrame:
    """`formats.parse_opendata_json`'s rows; a well-formed export never reaches it."""
    frame = _opendata(body, snapshot_ts)
    return frame if frame is not None else formats.parse_opendata_json(body, snapshot_ts)
