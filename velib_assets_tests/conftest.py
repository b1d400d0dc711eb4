"""Shared fixtures: the bundled real recordings, a landing zone imported from them, a local GBFS feed."""

import gzip
import json
import shutil
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest

from velib_assets.importer import ImportReport, import_paths
from velib_assets.sources.gbfs import GbfsClient

SAMPLE = Path(__file__).resolve().parents[1] / "velib_assets" / "sample"
GBFS_STATUS_2025 = SAMPLE / "gbfs-2025-10" / "station_status.json"
GBFS_INFO_2025 = SAMPLE / "gbfs-2025-10" / "station_information.json"
GBFS_DISCOVERY_2022 = SAMPLE / "gbfs-2022-02" / "gbfs.json"
OPENDATA_EXPORTS = SAMPLE / "opendata-exports-5min"
PARTITIONS_START = datetime(2024, 8, 1, tzinfo=UTC)


def sample_bytes(relative: str) -> bytes:
    """Verbatim bytes of a bundled recording, gunzipped when it was stored gzipped."""
    body = (SAMPLE / relative).read_bytes()
    return gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body


def status_at(epoch: int) -> bytes:
    """The recorded 2025-10 `station_status.json` with only its `lastUpdatedOther` rewritten."""
    body = GBFS_STATUS_2025.read_bytes()
    recorded = json.loads(body)["lastUpdatedOther"]
    needle = f'"lastUpdatedOther":{recorded}'.encode()
    assert body.count(needle) == 1
    return body.replace(needle, f'"lastUpdatedOther":{epoch}'.encode())


def drain(httpserver) -> None:
    """Wait until a slow handler has answered: the shared test server handles one request at a time."""
    httpserver.expect_request("/drained").respond_with_data("ok")
    with urllib.request.urlopen(httpserver.url_for("/drained"), timeout=5) as answer:
        assert answer.read() == b"ok"


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    return SAMPLE


@pytest.fixture(scope="session")
def imported_sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ImportReport]:
    """The whole bundled sample imported once into a landing zone; treat it as read-only."""
    landing_root = tmp_path_factory.mktemp("imported") / "landing"
    return landing_root, import_paths([SAMPLE], landing_root, PARTITIONS_START)


@pytest.fixture
def data_dir_with(imported_sample, tmp_path: Path):
    """A fresh data directory whose landing zone holds the chosen UTC hours of the imported sample."""
    source_root, _ = imported_sample

    def build(*hours: str) -> Path:
        """`hours` are landing folders relative to `captures/`, e.g. "date=2024-11-03/hour=16"."""
        landing_root = tmp_path / "data" / "landing"
        for hour in hours:
            shutil.copytree(source_root / "captures" / hour, landing_root / "captures" / hour)
        shutil.copytree(source_root / "station_information", landing_root / "station_information")
        return tmp_path / "data"

    return build


@pytest.fixture(autouse=True)
def forget_gbfs_discovery():
    """`GbfsClient` remembers discovery per process; the local server's URL is the same in every test."""
    GbfsClient._discovered.clear()
    yield
    GbfsClient._discovered.clear()


@pytest.fixture
def gbfs_discovery(httpserver) -> str:
    """The recorded 2022 `gbfs.json` (feeds nested under a language) pointing at the local server."""
    discovery = json.loads(GBFS_DISCOVERY_2022.read_bytes())
    for feed in discovery["data"]["en"]["feeds"]:
        feed["url"] = httpserver.url_for(f"/{feed['name']}.json")
    httpserver.expect_request("/gbfs.json").respond_with_json(discovery)
    return httpserver.url_for("/gbfs.json")
