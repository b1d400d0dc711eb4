"""Station reference: newest metadata per station, nearest-station commune, arrondissement rule."""

from datetime import UTC, datetime

import polars as pl
import pytest

from velib_assets.reference import (
    arrondissement_expr,
    arrondissement_violations,
    attach_reference,
    build_reference,
    load_bundled_reference,
)
from velib_assets.schema import REFERENCE_SCHEMA, conform_raw
from velib_assets_tests.frames import BENJAMIN_GODARD, BOULOGNE_CENTRE, reference

T0 = datetime(2024, 11, 4, 10, 0, tzinfo=UTC)
T1 = datetime(2024, 11, 4, 10, 5, tzinfo=UTC)


def test_arrondissement_rule_code_without_last_three_digits_for_paris_only():
    stations = pl.DataFrame(
        {
            "station_code": [
                "16107",
                "1001",
                "20999",
                "21001",
                "901",
                "16107",
                "16107_relais",
                "7002",
                "-1001",
            ],
            "commune": ["Paris"] * 5 + ["Boulogne-Billancourt", "Paris", None, "Paris"],
        }
    )
    got = stations.select(arrondissement_expr())["arrondissement"]
    assert got.dtype == pl.Int8
    assert got.to_list() == [16, 1, 20, None, None, None, None, None, None]


def test_build_reference_keeps_newest_non_null_value_of_each_field():
    captures = conform_raw(
        pl.DataFrame(
            [
                # newer capture listed first: order of rows must not matter, snapshot_ts does
                {
                    "snapshot_ts": T1,
                    "station_code": "16107",
                    "name": None,
                    "capacity": 40,
                    "lat": None,
                    "lon": None,
                    "commune": None,
                },
                {
                    "snapshot_ts": T0,
                    "station_code": "16107",
                    "name": "Benjamin Godard",
                    "capacity": 35,
                    "lat": 48.865,
                    "lon": 2.275,
                    "commune": "Paris",
                    "code_insee": "75116",
                },
                {
                    "snapshot_ts": T0,
                    "station_code": "21010",
                    "name": "Boulogne Centre",
                    "capacity": 20,
                    "lat": 48.835,
                    "lon": 2.24,
                    "commune": "Boulogne-Billancourt",
                },
                {"snapshot_ts": T0, "station_code": None, "name": "no code"},
                {"snapshot_ts": T0, "station_code": "", "name": "empty code"},
            ]
        )
    )
    got = build_reference(captures)
    assert got.schema == pl.Schema(REFERENCE_SCHEMA)
    assert got.to_dicts() == [
        {
            "station_code": "16107",
            "name": "Benjamin Godard",
            "lat": 48.865,
            "lon": 2.275,
            "capacity": 40,
            "commune": "Paris",
            "code_insee": "75116",
            "arrondissement": 16,
        },
        {
            "station_code": "21010",
            "name": "Boulogne Centre",
            "lat": 48.835,
            "lon": 2.24,
            "capacity": 20,
            "commune": "Boulogne-Billancourt",
            "code_insee": None,
            "arrondissement": None,
        },
    ]


REF = reference(
    BENJAMIN_GODARD,
    BOULOGNE_CENTRE,
    {
        "station_code": "31000",
        "name": "Nowhere known",
        "lat": 48.900,
        "lon": 2.500,
        "capacity": 10,
        "commune": None,
        "code_insee": None,
        "arrondissement": None,
    },
)


def frame(*rows: dict) -> pl.DataFrame:
    base = {
        "station_code": None,
        "name": None,
        "lat": None,
        "lon": None,
        "capacity": None,
        "commune": None,
        "code_insee": None,
    }
    schema = {k: v for k, v in REFERENCE_SCHEMA.items() if k != "arrondissement"}
    return pl.DataFrame([{**base, **row} for row in rows], schema=schema)


def test_attach_reference_fills_gaps_but_capture_values_win():
    got = attach_reference(
        frame(
            {"station_code": "16107"},  # a whole-null-metadata export row
            {"station_code": "16107", "name": "Godard (renamed)", "capacity": 36},
        ),
        REF,
    )
    assert got.select("name", "capacity", "commune", "code_insee", "arrondissement", "lat").rows() == [
        ("Benjamin Godard", 35, "Paris", "75116", 16, 48.865),
        ("Godard (renamed)", 36, "Paris", "75116", 16, 48.865),
    ]


def test_unknown_station_gets_the_commune_of_the_nearest_known_station():
    got = attach_reference(
        frame(
            # 300 m from Boulogne Centre, 3 km from Benjamin Godard
            {"station_code": "21999", "lat": 48.837, "lon": 2.243},
            # close to Benjamin Godard: gets Paris and, by its code, arrondissement 16
            {"station_code": "16999", "lat": 48.866, "lon": 2.276},
            # known to the reference but without commune there: nearest known commune too
            {"station_code": "31000"},
            # unknown and nowhere: stays unknown
            {"station_code": "40000"},
        ),
        REF,
    )
    assert got.select("station_code", "commune", "code_insee", "arrondissement").rows() == [
        ("21999", "Boulogne-Billancourt", "92012", None),
        ("16999", "Paris", "75116", 16),
        # nearest is Paris, but sector 31 can never be Parisian: nearest non-Paris station instead
        ("31000", "Boulogne-Billancourt", "92012", None),
        ("40000", None, None, None),
    ]


def test_attach_reference_with_empty_reference_leaves_commune_unknown():
    got = attach_reference(frame({"station_code": "21999", "lat": 48.8, "lon": 2.2}), reference())
    assert got["commune"].to_list() == [None]


def test_arrondissement_violations_lists_only_rule_breakers():
    stations = reference(
        {"station_code": "16107", "commune": "Paris", "arrondissement": 16},
        {"station_code": "21001", "commune": "Paris", "arrondissement": None},  # no 21st arrondissement
        {"station_code": "5002", "commune": "Paris", "arrondissement": 6},  # column disagrees with code
        {"station_code": "21010", "commune": "Boulogne-Billancourt", "arrondissement": None},
        {"station_code": "22010", "commune": "Montrouge", "arrondissement": 2},  # not Paris: must be null
    )
    got = arrondissement_violations(stations)
    assert got["station_code"].to_list() == ["21001", "22010", "5002"]
    assert got.filter(pl.col("station_code") == "5002")["derived_arrondissement"].to_list() == [5]
    assert arrondissement_violations(REF.filter(pl.col("station_code") != "31000")).is_empty()


def test_load_bundled_reference_reads_and_conforms(tmp_path):
    path = tmp_path / "station_reference.parquet"
    REF.with_columns(pl.col("capacity").cast(pl.Int64)).write_parquet(path)
    got = load_bundled_reference(path)
    assert got.schema == pl.Schema(REFERENCE_SCHEMA)
    assert got.equals(REF)


def test_load_bundled_reference_names_the_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="station_reference.parquet is missing"):
        load_bundled_reference(tmp_path / "station_reference.parquet")


def test_unknown_station_prefers_a_known_station_of_its_code_sector():
    """Station 43403 (Joinville-le-Pont) appeared after the bundled reference was taken; its nearest
    known neighbour is a Paris 12e station, but its sector (43) has known stations in Joinville."""
    bundled = load_bundled_reference()
    got = attach_reference(frame({"station_code": "43403", "lat": 48.8197, "lon": 2.4644}), bundled)
    assert got.select("commune", "arrondissement").row(0) == ("Joinville-le-Pont", None)
    assert arrondissement_violations(got).is_empty()
