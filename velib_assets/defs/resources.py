"""Resources: where data lives, how feeds are reached, and the KPI thresholds, all from the environment."""

import os
from datetime import timedelta
from pathlib import Path

import dagster as dg
from dagster_duckdb import DuckDBResource

from velib_assets import settings
from velib_assets.settings import KpiThresholds
from velib_assets.sources.gbfs import GbfsClient
from velib_assets.sources.http import HttpClient, HttpSettings
from velib_assets.sources.opendata import OpendataClient


class LakeResource(dg.ConfigurableResource):
    """The data directory: landing zone, lake, reports and the DuckDB file live below it."""

    data_dir: str = "data"

    @property
    def root(self) -> Path:
        return Path(self.data_dir).expanduser().resolve()

    @property
    def landing(self) -> Path:
        return self.root / "landing"

    @property
    def lake(self) -> Path:
        return self.root / "lake"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def warehouse(self) -> Path:
        return self.root / "warehouse.duckdb"


class FeedResource(dg.ConfigurableResource):
    """Which live feed the sensor polls and how patiently (timeouts, retries, size bound, and the time
    budget of one tick's whole poll)."""

    source: str = "gbfs"
    gbfs_url: str = settings.DEFAULT_GBFS_URL
    opendata_url: str = settings.DEFAULT_OPENDATA_URL
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 10.0
    max_retries: int = 2
    max_response_bytes: int = 20 * 1024 * 1024
    tick_budget_s: float = 40.0

    def http(self, budget_s: float | None = None) -> HttpClient:
        """A client whose requests all end within `budget_s` from now (None: no deadline)."""
        return HttpClient(
            HttpSettings(
                connect_timeout_s=self.connect_timeout_s,
                read_timeout_s=self.read_timeout_s,
                max_retries=self.max_retries,
                max_bytes=self.max_response_bytes,
            ),
            budget_s=budget_s,
        )

    def gbfs(self, budget_s: float | None = None) -> GbfsClient:
        return GbfsClient(self.http(budget_s), self.gbfs_url)

    def opendata(self, budget_s: float | None = None) -> OpendataClient:
        return OpendataClient(self.http(budget_s), self.opendata_url)


class KpiResource(dg.ConfigurableResource):
    """The DESIGN §3 thresholds, surfaced so the UI shows the values a run used."""

    max_gap_minutes: float = 15.0
    nearly_empty_rate: float = 0.10
    nearly_full_rate: float = 0.90
    stale_hours: float = 24.0
    expected_snapshots_per_hour: int = 60
    min_day_coverage: float = 0.8

    @property
    def cadence_s(self) -> float:
        return 3600 / max(1, self.expected_snapshots_per_hour)

    def thresholds(self) -> KpiThresholds:
        return KpiThresholds(
            max_gap=timedelta(minutes=self.max_gap_minutes),
            nearly_empty_rate=self.nearly_empty_rate,
            nearly_full_rate=self.nearly_full_rate,
            stale_after=timedelta(hours=self.stale_hours),
        )


def _env(name: str, default: object) -> object:
    """`dg.EnvVar(name)` when the variable is set (the UI then shows its origin), else the default."""
    return dg.EnvVar(name) if os.environ.get(name, "").strip() else default


def _env_number(name: str, default: object) -> object:
    return dg.EnvVar.int(name) if os.environ.get(name, "").strip() else default


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name, "").strip()
    return float(value) if value else default


def build_resources() -> dict[str, object]:
    data_dir = settings.data_dir()
    thresholds = KpiThresholds.from_env()
    return {
        "lake_store": LakeResource(data_dir=_env(settings.ENV_DATA_DIR, str(data_dir))),
        "feed": FeedResource(
            source=_env(settings.ENV_SOURCE, "gbfs"),
            gbfs_url=_env(settings.ENV_GBFS_URL, settings.DEFAULT_GBFS_URL),
            opendata_url=_env(settings.ENV_OPENDATA_URL, settings.DEFAULT_OPENDATA_URL),
            connect_timeout_s=_env_float(settings.ENV_CONNECT_TIMEOUT, 5.0),
            read_timeout_s=_env_float(settings.ENV_READ_TIMEOUT, 10.0),
            max_retries=_env_number(settings.ENV_MAX_RETRIES, 2),
            max_response_bytes=_env_number(settings.ENV_MAX_BYTES, 20 * 1024 * 1024),
            tick_budget_s=settings.tick_budget_seconds(),
        ),
        "kpi": KpiResource(
            max_gap_minutes=thresholds.max_gap.total_seconds() / 60,
            nearly_empty_rate=thresholds.nearly_empty_rate,
            nearly_full_rate=thresholds.nearly_full_rate,
            stale_hours=thresholds.stale_after.total_seconds() / 3600,
            expected_snapshots_per_hour=max(1, round(3600 / settings.poll_interval_seconds())),
            min_day_coverage=settings.min_day_coverage(),
        ),
        "duckdb": DuckDBResource(database=str(data_dir / "warehouse.duckdb")),
    }
