"""The forecast assets through Dagster on a synthetic lake, and `velib forecast` over what they built."""

import json
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from velib_assets.cli import main
from velib_assets.defs import forecasts
from velib_assets.defs.resources import KpiResource, LakeResource
from velib_assets.forecast import store
from velib_assets.pipeline import range_tags
from velib_assets_tests.forecast_history import write_history

FIRST = date(2024, 11, 4)
DAYS = 5


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dg.ExecuteInProcessResult]:
    root = tmp_path_factory.mktemp("forecast-assets")
    days = write_history(root / "lake", FIRST, DAYS)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("VELIB_WORKERS", "1")
        result = dg.materialize(
            [
                forecasts.forecast_features,
                forecasts.forecast_model,
                forecasts.availability_forecast,
                forecasts.forecast_backtest,
            ],
            resources={"lake_store": LakeResource(data_dir=str(root)), "kpi": KpiResource()},
            tags=range_tags(days[0].isoformat(), days[-1].isoformat()),
        )
    return root, result


def test_the_assets_build_forecasts_and_a_backtest(built):
    root, result = built
    assert result.success
    forecasts_day = pl.read_parquet(
        root / "lake" / store.FORECASTS / f"day={FIRST + timedelta(days=4)}" / "part.parquet"
    )
    assert forecasts_day["station_code"].n_unique() == 30
    assert sorted(forecasts_day["horizon_minutes"].unique().to_list()) == [15, 30, 60]
    assert forecasts_day.filter(pl.col("p_empty").is_between(0, 1).not_()).is_empty()
    assert (forecasts_day["bikes"] + forecasts_day["docks"] == 20).all()
    # The first two days have no model, so no forecast: their partitions are empty, not missing.
    assert pl.read_parquet(root / "lake" / store.FORECASTS / f"day={FIRST}" / "part.parquet").is_empty()
    table = pl.read_parquet(root / "lake" / store.BACKTEST / "part.parquet")
    assert set(table["model"]) == {"model", "persistence", "profile"}
    assert table.height == 3 * 3 * 6 and table["days_evaluated"].unique().to_list() == [3]
    metadata = result.asset_materializations_for_node(store.BACKTEST)[0].metadata
    assert len(metadata["backtest"].value.records) == table.height  # type: ignore[union-attr]


def test_the_check_passes_when_the_model_beats_both_baselines(built):
    _, result = built
    (check,) = result.get_asset_check_evaluations()
    assert check.check_name == forecasts.CHECK_BEATS_BASELINES
    assert check.severity == dg.AssetCheckSeverity.WARN
    assert check.passed, check.metadata["not_beaten"].value


def test_velib_forecast_station_and_at_risk(built, monkeypatch, capsys):
    root, _ = built
    monkeypatch.setenv("VELIB_DATA_DIR", str(root))
    assert main(["forecast", "--station", "16100"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("station 16100 Station (Paris 16e)") and "+60 min" in out
    assert main(["forecast", "--at-risk", "--top", "3", "--json"]) == 0
    ranked = json.loads(capsys.readouterr().out)
    assert len(ranked) == 3
    assert [r["risk"] for r in ranked] == sorted((r["risk"] for r in ranked), reverse=True)
    latest = store.latest_forecasts(root / "lake")
    risk = latest.group_by("station_code").agg(pl.max_horizontal("p_empty", "p_full").max().alias("r"))
    assert ranked[0]["risk"] == pytest.approx(risk["r"].max())


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["forecast", "--station", "99999"], "velib: no forecast for station '99999'"),
        (["forecast", "--station", " "], "velib: --station needs a station code"),
    ],
)
def test_velib_forecast_refuses_bad_input_in_one_line(built, monkeypatch, capsys, argv, message):
    monkeypatch.setenv("VELIB_DATA_DIR", str(built[0]))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1


def test_velib_forecast_before_any_forecast(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setenv("VELIB_DATA_DIR", str(tmp_path))
    assert main(["forecast", "--at-risk"]) == 2
    assert capsys.readouterr().err.startswith("velib: no forecasts built yet")
