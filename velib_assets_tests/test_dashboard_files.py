"""The dashboard's shipped files and its command's refusals, without a browser or a server."""

import json
import re
import socket
import tomllib
from pathlib import Path

import polars as pl
import pytest

from velib_assets.cli import main
from velib_assets.dashboard.app import PLOTLY_JS, STATIC
from velib_assets.kpis.occupancy import district_label
from velib_assets.reference import load_bundled_reference

PROJECT_ROOT = Path(__file__).resolve().parents[1]
OUTLINES = STATIC / "districts.geojson"
# Île-de-France around Paris: an outline outside it was mistyped or from the wrong file.
LON_RANGE, LAT_RANGE = (1.4, 3.6), (48.1, 49.3)


def outline_points(geometry: dict) -> list[list[float]]:
    polygons = [geometry["coordinates"]] if geometry["type"] == "Polygon" else geometry["coordinates"]
    return [point for polygon in polygons for ring in polygon for point in ring]


def test_outlines_cover_every_district_of_the_station_reference() -> None:
    outlines = json.loads(OUTLINES.read_text(encoding="utf-8"))
    served = {f["properties"]["district"] for f in outlines["features"] if f["properties"]["served"]}
    reference = load_bundled_reference()
    label = district_label(pl.col("arrondissement"), pl.col("commune")).alias("district")
    districts = set(reference.select(label)["district"])
    assert len(districts) > 80
    assert districts <= served
    arrondissements = sorted(
        f["properties"]["arrondissement"] for f in outlines["features"] if f["properties"]["arrondissement"]
    )
    assert arrondissements == list(range(1, 21))


def test_outlines_are_small_plausible_polygons_with_their_attribution() -> None:
    text = OUTLINES.read_text(encoding="utf-8")
    outlines = json.loads(text)
    assert "Ville de Paris" in outlines["attribution"] and "IGN" in outlines["attribution"]
    assert len(text) < 400_000
    for feature in outlines["features"]:
        assert feature["geometry"]["type"] in ("Polygon", "MultiPolygon")
        points = outline_points(feature["geometry"])
        assert len(points) >= 4, feature["properties"]
        for lon, lat in points:
            assert LON_RANGE[0] < lon < LON_RANGE[1] and LAT_RANGE[0] < lat < LAT_RANGE[1]
            assert round(lon, 5) == lon and round(lat, 5) == lat


def test_page_files_name_no_outside_address() -> None:
    for name in ("index.html", "dashboard.js", "dashboard.css"):
        text = (STATIC / name).read_text(encoding="utf-8")
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, flags=re.IGNORECASE), name
    page = (STATIC / "index.html").read_text(encoding="utf-8")
    assert re.findall(r'(?:src|href)="([^"]+)"', page) == [
        "dashboard.css",
        "vendor/plotly.min.js",
        "dashboard.js",
        "reports/",
    ]
    assert PLOTLY_JS.is_file() and PLOTLY_JS.stat().st_size > 1_000_000


def test_the_wheel_ships_the_static_files() -> None:
    config = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["velib_assets"]
    package = PROJECT_ROOT / "velib_assets"
    shipped = {path for pattern in patterns for path in package.glob(pattern) if path.is_file()}
    assert {p for p in STATIC.rglob("*") if p.is_file()} <= shipped


def test_dashboard_without_a_serving_file_says_so_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("VELIB_DATA_DIR", str(tmp_path))
    assert main(["dashboard", "--port", "8050"]) == 2
    err = capsys.readouterr().err
    serving_file = tmp_path / "warehouse.duckdb"
    assert err == f"velib: no serving file at {serving_file} yet: run `velib demo` or `velib run` first\n"


def test_dashboard_on_a_taken_port_says_so_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    (tmp_path / "warehouse.duckdb").touch()
    monkeypatch.setenv("VELIB_DATA_DIR", str(tmp_path))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["dashboard", "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"velib: cannot listen on 127.0.0.1:{port}: ") and err.count("\n") == 1
    assert err.endswith("(choose another --host or --port)\n")
