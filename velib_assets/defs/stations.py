"""The station dimension: one row per version of a station's attributes, and the changes between them.

Clean snapshots keep what changes every minute; a station's name, position, capacity, commune and
arrondissement change a few times a year at most. Each day of `clean_stations` keeps its spells of
unchanged attributes; these assets fold every day's spells into versions, so a rebuild of any day
or of the whole history gives the same dimension.
"""

import dagster as dg
import polars as pl

from velib_assets import lake
from velib_assets.builds import CLEAN, SPELLS_FILE
from velib_assets.defs.ingestion import OWNERS
from velib_assets.defs.metadata import markdown_table, spec_metadata
from velib_assets.defs.resources import LakeResource
from velib_assets.kpis.stations import (
    RELOCATION_METRES,
    SPELL_SCHEMA,
    STATION_CHANGES_SCHEMA,
    STATIONS_SCHEMA,
    station_changes,
    station_versions,
)

STATIONS = "stations"
STATION_CHANGES = "station_changes"


def _all_spells(lake_root) -> pl.LazyFrame:
    files = sorted((lake_root / CLEAN).glob(f"day=*/{SPELLS_FILE}"))
    return lake.scan_files(files, SPELL_SCHEMA)


@dg.asset(
    name=STATIONS,
    deps=[CLEAN],
    group_name="staging",
    kinds={"polars", "parquet"},
    owners=OWNERS,
    metadata=spec_metadata(STATIONS_SCHEMA),
    description=(
        "Slowly-changing station dimension (type 2): one row per version of a station's name, "
        "position, capacity, commune and arrondissement, valid from its first snapshot to the next "
        "version's (`valid_to` null: current), with the attributes that changed. Built from every "
        "day's clean rows (GBFS `station_information`, the Opendatasoft exports' fields, the bundled "
        "reference for what they lack)."
    ),
)
def stations(lake_store: LakeResource) -> dg.MaterializeResult:
    versions = station_versions(_all_spells(lake_store.lake))
    lake.write_parquet(versions, lake_store.lake / STATIONS)
    current = versions.filter(pl.col("valid_to").is_null())
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": versions.height,
            "stations": current.height,
            "stations_with_several_versions": int((versions["version"] > 1).sum()),
            "preview": dg.MetadataValue.md(markdown_table(versions.filter(pl.col("version") > 1))),
        }
    )


@dg.asset(
    name=STATION_CHANGES,
    deps=[STATIONS],
    group_name="staging",
    kinds={"polars", "parquet"},
    owners=OWNERS,
    metadata=spec_metadata(STATION_CHANGES_SCHEMA),
    description=(
        f"What changed in the network: stations opened and closed, relocated (moved more than "
        f"{RELOCATION_METRES} m), capacity changes and renames, with before and after, in time order."
    ),
)
def station_changes_asset(lake_store: LakeResource) -> dg.MaterializeResult:
    versions = pl.read_parquet(lake_store.lake / STATIONS / lake.PART_FILE)
    changes = station_changes(versions)
    lake.write_parquet(changes, lake_store.lake / STATION_CHANGES)
    counts = dict(changes["change"].value_counts().sort("change").iter_rows())
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": changes.height,
            "changes": dg.MetadataValue.json(counts),
            "preview": dg.MetadataValue.md(markdown_table(changes.tail(10))),
        }
    )
