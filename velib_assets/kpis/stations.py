"""Station attributes as a slowly-changing dimension, apart from the minute-by-minute state.

A clean row repeats a station's name, position, capacity and commune every minute although they
change a few times a year. `split_clean` keeps only the minute state and stores each run of
unchanged attributes once (a spell); `join_spells` rebuilds the clean rows exactly. The spells of
many days fold into an SCD2 dimension (`station_versions`) whose version boundaries are the station
events people ask about (`station_changes`): openings, closures, relocations, capacity changes,
renamings.
"""

from datetime import timedelta

import polars as pl

from velib_assets.kpis.clean import CLEAN_SCHEMA
from velib_assets.schema import UTC_TS

STATION_ATTRIBUTES = (
    "station_id",
    "name",
    "lat",
    "lon",
    "capacity",
    "commune",
    "code_insee",
    "arrondissement",
)
"""The clean columns that describe a station rather than its state at one minute."""

RELOCATION_METRES = 50
"""Moves up to this are GPS noise or a re-survey of the same spot, not a relocation."""

EARTH_RADIUS_M = 6_371_008.8
"""The mean Earth radius (IUGG)."""

CLEAN_MINUTE_SCHEMA: dict[str, pl.DataType] = {
    name: dtype for name, dtype in CLEAN_SCHEMA.items() if name not in STATION_ATTRIBUTES
}
"""The clean columns without the station attributes, in clean order."""

_ATTRIBUTE_SCHEMA: dict[str, pl.DataType] = {name: CLEAN_SCHEMA[name] for name in STATION_ATTRIBUTES}

SPELL_SCHEMA: dict[str, pl.DataType] = {
    "station_code": pl.String(),
    **_ATTRIBUTE_SCHEMA,
    "first_seen": UTC_TS,
    "last_seen": UTC_TS,
    "rows": pl.UInt32(),
}
"""One run of consecutive clean rows of a station with the same attributes."""

STATIONS_SCHEMA: dict[str, pl.DataType] = {
    "station_code": pl.String(),
    "version": pl.Int32(),
    **_ATTRIBUTE_SCHEMA,
    "valid_from": UTC_TS,
    "valid_to": UTC_TS,
    "last_seen": UTC_TS,
    "snapshots": pl.Int64(),
    "changed": pl.String(),
}
"""SCD2: one row per station and attribute version; `valid_to` is null on the current version."""

STATION_CHANGES_SCHEMA: dict[str, pl.DataType] = {
    "station_code": pl.String(),
    "changed_at": UTC_TS,
    "change": pl.String(),
    "before": pl.String(),
    "after": pl.String(),
    "distance_m": pl.Float64(),
}
"""Station events: `opened`, `closed`, `relocated`, `capacity`, `renamed`."""

_KEYED = ("station_code", *STATION_ATTRIBUTES)


def _starts_run() -> pl.Expr:
    """True on a row whose station or attributes differ from the previous row's.

    `ne_missing` makes a null equal to a null, so a station whose capture never carries a commune
    still has one spell, and split and merge agree on what "identical" means.
    """
    differs = (pl.col(name).ne_missing(pl.col(name).shift(1)) for name in _KEYED)
    return pl.any_horizontal(pl.int_range(pl.len()) == 0, *differs)


def split_clean(clean: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(minutes, spells) of a clean frame sorted by (station_code, snapshot_ts).

    `minutes` keeps the rows and order with only the CLEAN_MINUTE_SCHEMA columns; `spells` has one row
    per maximal run of a station's consecutive rows with identical attributes, in row order (a flap
    A, B, A is three spells, so `join_spells` can put every row back).
    """
    minutes = clean.select(list(CLEAN_MINUTE_SCHEMA))
    spells = (
        clean.lazy()
        .select(*_KEYED, "snapshot_ts", _starts_run().cum_sum().alias("_spell"))
        .group_by("_spell", maintain_order=True)
        .agg(
            *(pl.col(name).first() for name in _KEYED),
            pl.col("snapshot_ts").first().alias("first_seen"),
            pl.col("snapshot_ts").last().alias("last_seen"),
            pl.len().alias("rows"),
        )
        .select(pl.col(name).cast(dtype) for name, dtype in SPELL_SCHEMA.items())
        .collect()
    )
    return minutes, spells


def join_spells(minutes: pl.DataFrame, spells: pl.DataFrame) -> pl.DataFrame:
    """The clean frame `split_clean` split: each spell's attributes repeated `rows` times beside the
    minute rows, in order, so no join or sort is needed.

    Given only some minute columns and some attributes (a day read for what one KPI needs), it
    returns those, in clean order."""
    total = spells["rows"].sum()
    if total != minutes.height:
        raise ValueError(f"spells cover {total} rows but minutes has {minutes.height}")
    index = pl.int_range(spells.height, eager=True).repeat_by(spells["rows"]).explode(empty_as_null=False)
    attributes = spells.select(name for name in _KEYED if name in spells.columns)[index]
    mismatch = attributes["station_code"].ne_missing(minutes["station_code"]).arg_true()
    if mismatch.len():
        row = mismatch[0]
        raise ValueError(
            f"spells do not line up with minutes: row {row} is station "
            f"{minutes['station_code'][row]!r} but its spell is {attributes['station_code'][row]!r}"
        )
    joined = minutes.hstack(attributes.drop("station_code"))
    present = [(name, dtype) for name, dtype in CLEAN_SCHEMA.items() if name in joined.columns]
    return joined.select(pl.col(name).cast(dtype) for name, dtype in present)


def station_versions(spells: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """The SCD2 station dimension from the spells of any number of days, in any order.

    Consecutive spells of a station with identical attributes are one version, across day
    boundaries too. The sort uses every column, so duplicated or tied spells still give the same
    answer whatever order they come in.
    """
    order = ["station_code", "first_seen", "last_seen", *STATION_ATTRIBUTES, "rows"]
    code = pl.col("station_code")
    differs = (
        pl.when(pl.col(name).ne_missing(pl.col(name).shift(1))).then(pl.lit(name))
        for name in STATION_ATTRIBUTES
    )
    return (
        spells.lazy()
        .sort(order, nulls_last=False)
        .with_columns(_starts_run().cum_sum().alias("_version"))
        .group_by("_version", maintain_order=True)
        .agg(
            *(pl.col(name).first() for name in _KEYED),
            pl.col("first_seen").min().alias("valid_from"),
            pl.col("last_seen").max().alias("last_seen"),
            pl.col("rows").sum().cast(pl.Int64).alias("snapshots"),
        )
        .with_columns(pl.int_range(1, pl.len() + 1, dtype=pl.Int32).over(code).alias("version"))
        .with_columns(
            pl.when(code == code.shift(-1)).then(pl.col("valid_from").shift(-1)).alias("valid_to"),
            pl.when(pl.col("version") > 1)
            .then(pl.concat_str(differs, separator=",", ignore_nulls=True))
            .alias("changed"),
        )
        .select(pl.col(name).cast(dtype) for name, dtype in STATIONS_SCHEMA.items())
        .collect()
    )


def _haversine_m(lat1: pl.Expr, lon1: pl.Expr, lat2: pl.Expr, lon2: pl.Expr) -> pl.Expr:
    """Great-circle distance in metres; null when a coordinate is unknown."""
    half_dlat = (lat2 - lat1).radians() / 2
    half_dlon = (lon2 - lon1).radians() / 2
    a = half_dlat.sin() ** 2 + lat1.radians().cos() * lat2.radians().cos() * half_dlon.sin() ** 2
    return 2 * EARTH_RADIUS_M * a.sqrt().arcsin()


def _position(lat: pl.Expr, lon: pl.Expr) -> pl.Expr:
    """`lat,lon` with exactly 6 decimals (0.1 m): a Decimal cast rounds and keeps trailing zeros,
    which `round(6)` and a String cast would drop."""
    degrees = pl.Decimal(38, 6)
    return pl.concat_str(lat.cast(degrees).cast(pl.String), lon.cast(degrees).cast(pl.String), separator=",")


def station_changes(stations: pl.DataFrame, closed_after: timedelta = timedelta(days=1)) -> pl.DataFrame:
    """The station events of a `station_versions` dimension, sorted by (changed_at, station_code, change).

    Only changes between two known values count: a null appearing or disappearing is a gap in a
    feed, not an event. `opened` and `closed` are judged against the span of the whole dimension, so
    stations present from its first capture are not "opened" and those still seen lately not "closed";
    `closed_after` tolerates a station missing from the last captures for a while.
    """
    code, at, name = pl.col("station_code"), pl.col("valid_from"), pl.col("name")
    lat, lon, capacity = pl.col("lat"), pl.col("lon"), pl.col("capacity")
    old_lat, old_lon, old_capacity, old_name = (
        pl.col(f"_old_{c}") for c in ("lat", "lon", "capacity", "name")
    )
    versions = (
        stations.lazy()
        .sort("station_code", "version")
        .with_columns(
            pl.when(code == code.shift(1)).then(pl.col(c).shift(1)).alias(f"_old_{c}")
            for c in ("lat", "lon", "capacity", "name")
        )
        .with_columns(_haversine_m(old_lat, old_lon, lat, lon).alias("distance_m"))
    )
    lifetimes = versions.group_by("station_code").agg(
        at.min(),
        pl.col("last_seen").max(),
        name.drop_nulls().first().alias("first_name"),
        name.drop_nulls().last().alias("last_name"),
    )
    last_seen, none = pl.col("last_seen"), pl.lit(None)
    events = [
        _event(
            versions.filter(pl.col("distance_m") > RELOCATION_METRES),
            "relocated",
            at,
            _position(old_lat, old_lon),
            _position(lat, lon),
            pl.col("distance_m"),
        ),
        _event(
            versions.filter(old_capacity != capacity),
            "capacity",
            at,
            old_capacity.cast(pl.String),
            capacity.cast(pl.String),
            none,
        ),
        _event(versions.filter(old_name != name), "renamed", at, old_name, name, none),
        _event(lifetimes.filter(at > at.min()), "opened", at, none, pl.col("first_name"), none),
        _event(
            lifetimes.filter(last_seen < last_seen.max() - closed_after),
            "closed",
            last_seen,
            pl.col("last_name"),
            none,
            none,
        ),
    ]
    return pl.concat(events).sort("changed_at", "station_code", "change").collect()


def _event(
    rows: pl.LazyFrame, change: str, at: pl.Expr, before: pl.Expr, after: pl.Expr, distance_m: pl.Expr
) -> pl.LazyFrame:
    """`rows` as STATION_CHANGES_SCHEMA rows of one kind of change."""
    columns = (pl.col("station_code"), at, pl.lit(change), before, after, distance_m)
    return rows.select(
        column.cast(dtype).alias(name)
        for column, (name, dtype) in zip(columns, STATION_CHANGES_SCHEMA.items(), strict=True)
    )
