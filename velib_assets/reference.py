"""The station reference: where each station is and which commune / Paris arrondissement it belongs to.

Captures are unreliable carriers of metadata (whole Opendatasoft exports arrive with null names,
coordinates and communes; GBFS never says the commune), so clean rows take their metadata from the
capture when present and from this reference otherwise. Stations the reference does not know get
the commune of the nearest station it does know (DESIGN §3).
"""

from pathlib import Path

import polars as pl

from velib_assets.schema import REFERENCE_SCHEMA

REFERENCE_FILE = Path(__file__).parent / "data" / "station_reference.parquet"
"""Bundled copy built with `build_reference` from real Opendatasoft exports, for offline use."""

PARIS = "Paris"
METADATA_COLUMNS = ("name", "lat", "lon", "capacity", "commune", "code_insee")


def arrondissement_expr(code: str = "station_code", commune: str = "commune") -> pl.Expr:
    """Paris arrondissement = station code without its last three digits (`16107` -> 16), else null.

    Only integer codes of a Paris station qualify, and only 1..20 is an arrondissement; anything
    else (other communes, `_relais` suffixes, codes below 1000) is null, which the asset check reports.
    An integer cast instead of a regex: it runs on every clean row.
    """
    prefix = pl.col(code).cast(pl.Int64, strict=False) // 1000
    return (
        pl.when((pl.col(commune) == PARIS) & prefix.is_between(1, 20))
        .then(prefix)
        .otherwise(None)
        .cast(pl.Int8)
        .alias("arrondissement")
    )


def build_reference(raw_opendata: pl.DataFrame) -> pl.DataFrame:
    """One row per station code with the newest non-null value of each metadata field.

    Field by field, because a capture with a null commune or null coordinates must not erase what an
    earlier capture said.
    """
    latest = (
        raw_opendata.lazy()
        .filter(pl.col("station_code").str.strip_chars().str.len_chars() > 0)
        .group_by("station_code")
        .agg(
            pl.col(column).sort_by("snapshot_ts", nulls_last=False).drop_nulls().last()
            for column in METADATA_COLUMNS
        )
    )
    return (
        latest.with_columns(arrondissement_expr())
        .select(pl.col(name).cast(dtype) for name, dtype in REFERENCE_SCHEMA.items())
        .sort("station_code")
        .collect()
    )


def _sector(code: pl.Expr) -> pl.Expr:
    """The thousands of a Vélib' code (`16107` -> 16): it names the arrondissement or suburb sector."""
    return code.str.extract(r"^(\d+)", 1).cast(pl.Int64, strict=False) // 1000


def _nearest_commune(positions: pl.DataFrame, reference: pl.DataFrame) -> pl.DataFrame:
    """For each (station_code, lat, lon) lacking a commune: the commune and code_insee of the closest
    known station of the same code sector, or of any sector when none is known.

    The sector matters at borders: a new suburban station next to a Paris one must not become
    Parisian (its code could never give an arrondissement), so without a same-sector neighbour only
    codes of a Paris sector (1..20) may take a Paris commune. A cross join of the few unknown
    stations with ~1,500 references stays small; distances are equirectangular, plenty at the scale
    of a metropolis; ties go to the smallest station code so the answer is deterministic.
    """
    known = reference.filter(
        pl.col("commune").is_not_null() & pl.col("lat").is_not_null() & pl.col("lon").is_not_null()
    ).select(
        pl.col("station_code").alias("_ref_code"),
        pl.col("lat").alias("_ref_lat"),
        pl.col("lon").alias("_ref_lon"),
        pl.col("commune").alias("_near_commune"),
        pl.col("code_insee").alias("_near_insee"),
    )
    key = ["station_code", "lat", "lon"]
    if positions.is_empty() or known.is_empty():
        return positions.with_columns(
            pl.lit(None, pl.String).alias("_near_commune"), pl.lit(None, pl.String).alias("_near_insee")
        )
    scale = ((pl.col("lat") + pl.col("_ref_lat")) / 2).radians().cos()
    sector = _sector(pl.col("station_code"))
    same_sector = sector == _sector(pl.col("_ref_code"))
    may_be_paris = sector.is_between(1, 20).fill_null(False) | (pl.col("_near_commune") != PARIS)
    return (
        positions.join(known, how="cross")
        .with_columns(
            (
                ((pl.col("lon") - pl.col("_ref_lon")) * scale) ** 2
                + (pl.col("lat") - pl.col("_ref_lat")) ** 2
            ).alias("_d2"),
            same_sector.fill_null(False).alias("_same"),
        )
        .filter(pl.col("_same") | (~pl.col("_same").any().over(key) & may_be_paris))
        .group_by(key)
        .agg(pl.col("_near_commune", "_near_insee").sort_by("_d2", "_ref_code").first())
    )


def attach_reference(frame: pl.DataFrame, reference: pl.DataFrame) -> pl.DataFrame:
    """Fill metadata from the reference where the capture lacks it, then derive the arrondissement.

    Capture values win when present (they are newer); the reference fills the gaps; rows still
    without a commune take the nearest known station's commune and code_insee. Adds `arrondissement`.
    Any row order works; rows sorted by station (as clean rows are) make the reference match cheap.
    """
    ref = reference.select(
        pl.col("station_code"), *(pl.col(c).alias(f"_ref_{c}") for c in METADATA_COLUMNS)
    ).unique("station_code", keep="last")
    # Join once per run of equal codes, then repeat the run's match over its rows: clean rows come
    # sorted by station, so that is a join of ~1,500 rows instead of one per snapshot.
    codes = frame["station_code"]
    runs = codes.rle().struct.field("value").to_frame("station_code")
    matched = runs.join(ref, on="station_code", how="left", maintain_order="left").drop("station_code")
    filled = (
        frame.hstack(matched[codes.rle_id()].get_columns())
        .with_columns(pl.coalesce(c, f"_ref_{c}").alias(c) for c in METADATA_COLUMNS)
        .drop(f"_ref_{c}" for c in METADATA_COLUMNS)
    )

    lacking = pl.col("commune").is_null() & pl.col("lat").is_not_null() & pl.col("lon").is_not_null()
    positions = filled.filter(lacking).select("station_code", "lat", "lon").unique()
    if not positions.is_empty():
        nearest = _nearest_commune(positions, reference)
        filled = (
            filled.join(nearest, on=["station_code", "lat", "lon"], how="left", maintain_order="left")
            .with_columns(
                pl.when(pl.col("commune").is_null())
                .then(pl.coalesce("code_insee", "_near_insee"))
                .otherwise(pl.col("code_insee"))
                .alias("code_insee"),
                pl.coalesce("commune", "_near_commune").alias("commune"),
            )
            .drop("_near_commune", "_near_insee")
        )
    return filled.with_columns(arrondissement_expr())


def arrondissement_violations(stations: pl.DataFrame) -> pl.DataFrame:
    """Stations breaking the arrondissement rule: empty when the rule holds (the asset check's input).

    A Paris station violates it when its code does not give an arrondissement 1..20, any station when
    its `arrondissement` column differs from the one its code and commune give.
    """
    derived = arrondissement_expr().alias("derived_arrondissement")
    return (
        stations.select("station_code", "commune", "arrondissement")
        .unique()
        .with_columns(derived)
        .filter(
            ((pl.col("commune") == PARIS) & pl.col("derived_arrondissement").is_null())
            | pl.col("arrondissement").ne_missing(pl.col("derived_arrondissement"))
        )
        .sort("station_code")
    )


def load_bundled_reference(path: Path = REFERENCE_FILE) -> pl.DataFrame:
    """The bundled station reference, conformed to REFERENCE_SCHEMA."""
    if not path.is_file():
        raise FileNotFoundError(
            f"station reference {path} is missing: rebuild it with "
            "velib_assets.reference.build_reference from Opendatasoft captures"
        )
    frame = pl.read_parquet(path)
    return frame.select(pl.col(name).cast(dtype) for name, dtype in REFERENCE_SCHEMA.items())
