"""`station_reference` as its own asset: bundled by default, refreshable from the live dataset."""

import gzip
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from pytest_httpserver import HTTPServer

from velib_assets import lake
from velib_assets.defs.resources import FeedResource, LakeResource
from velib_assets.defs.staging import REFERENCE, station_reference
from velib_assets.reference import load_bundled_reference

SAMPLE = Path(__file__).resolve().parents[1] / "velib_assets" / "sample"
EXPORT = SAMPLE / "opendata-exports-5min" / "velib_data_20241103_120001.json.gz"
EXPORT_PATH = "/dataset/exports/json"


def _materialize(tmp_path: Path, url: str, source: str) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [station_reference],
        resources={
            "lake_store": LakeResource(data_dir=str(tmp_path)),
            "feed": FeedResource(opendata_url=url, max_retries=0, read_timeout_s=2.0),
        },
        run_config={"ops": {REFERENCE: {"config": {"source": source}}}},
        raise_on_error=False,
    )


def test_bundled_reference_materializes_with_rule_check(tmp_path: Path) -> None:
    result = _materialize(tmp_path, "http://127.0.0.1:9/unused", "bundled")
    assert result.success
    written = pl.read_parquet(tmp_path / "lake" / REFERENCE / lake.PART_FILE)
    assert written.equals(load_bundled_reference())
    (check,) = result.get_asset_check_evaluations()
    assert check.passed and check.metadata["violations"].value == 0
    assert check.metadata["paris_stations"].value == 992


def test_refresh_from_api_uses_the_live_export(tmp_path: Path, httpserver: HTTPServer) -> None:
    body = gzip.decompress(EXPORT.read_bytes())
    httpserver.expect_request(EXPORT_PATH).respond_with_data(body, content_type="application/json")
    result = _materialize(tmp_path, httpserver.url_for("/dataset"), "api")
    assert result.success
    reference = pl.read_parquet(tmp_path / "lake" / REFERENCE / lake.PART_FILE)
    assert reference.height == 1485
    assert reference.filter(pl.col("station_code") == "16107")["arrondissement"].item() == 16


def test_failed_refresh_keeps_the_previous_reference(tmp_path: Path, httpserver: HTTPServer) -> None:
    assert _materialize(tmp_path, "http://127.0.0.1:9/unused", "bundled").success
    path = tmp_path / "lake" / REFERENCE / lake.PART_FILE
    before = path.read_bytes()
    httpserver.expect_request(EXPORT_PATH).respond_with_data("<html>maintenance</html>", status=503)
    result = _materialize(tmp_path, httpserver.url_for("/dataset"), "api")
    assert not result.success
    failure = result.get_step_failure_events()[0].event_specific_data.error.message
    assert "station reference refresh failed" in failure and "503" in failure
    assert path.read_bytes() == before


@pytest.mark.parametrize("source", ["nightly", ""])
def test_unknown_source_is_refused(tmp_path: Path, source: str) -> None:
    result = _materialize(tmp_path, "http://127.0.0.1:9/unused", source)
    assert not result.success
    assert "use 'bundled' or 'api'" in result.get_step_failure_events()[0].event_specific_data.error.message
