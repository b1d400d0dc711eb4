"""Forecasts: features per station and time, a model per day trained on the days before it, the
forecasts issued at each day's latest news, and a rolling-origin backtest against baselines.

Each day D has its own model, trained on the `VELIB_FORECAST_WINDOW_DAYS` (28) days before D only,
so the model that forecasts D has never seen D: the same model is what the backtest scores on D.
Today's partitions refresh with the hourly refresh of the day's chain; the model of today is
trained once (its inputs, the days before today, do not change) and reused by later refreshes.
"""

import warnings
from functools import partial

import dagster as dg
import polars as pl
import polars.selectors as cs

from velib_assets import lake
from velib_assets.builds import CLEAN, RANKINGS
from velib_assets.defs.ingestion import OWNERS
from velib_assets.defs.metadata import markdown_table, spec_metadata
from velib_assets.defs.partitions import daily_partitions, local_day
from velib_assets.defs.resources import KpiResource, LakeResource
from velib_assets.defs.windows import require_upstream
from velib_assets.forecast import backtest, build, store
from velib_assets.forecast.config import ForecastSettings
from velib_assets.forecast.features import FEATURE_SCHEMA, TARGET_SCHEMA
from velib_assets.workers import map_parallel

# A model's window of past days maps to partitions before the first one; Dagster marks that beta.
warnings.filterwarnings(
    "ignore", message="Parameter `allow_nonexistent_upstream_partitions`", category=dg.BetaWarning
)
SETTINGS = ForecastSettings.from_env()
CHECK_BEATS_BASELINES = "forecast_beats_baselines"


def _window(days: int, offset: int = -1) -> dg.TimeWindowPartitionMapping:
    return dg.TimeWindowPartitionMapping(
        start_offset=-days, end_offset=offset, allow_nonexistent_upstream_partitions=True
    )


@dg.asset(
    name=store.FEATURES,
    # After the day's rankings, not only after its clean rows: in a run of the day's chain the
    # forecasts would otherwise share the cores with occupancy and rankings and delay them (a
    # 30-day rebuild's rankings came 3x later).
    deps=[dg.AssetDep(CLEAN, partition_mapping=_window(1, 0)), RANKINGS],
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="marts",
    kinds={"polars", "parquet"},
    owners=OWNERS,
    metadata=spec_metadata({**FEATURE_SCHEMA, **TARGET_SCHEMA}),
    description=(
        "Per station and origin (every VELIB_FORECAST_STEP_MINUTES, 15, of the local day): bikes, docks "
        "and fill now, changes over 5/15/60 minutes, minutes in the current state, local hour and "
        "weekday, district, capacity, and what was observed 15, 30 and 60 minutes later (within the "
        "day). Built only from observations at or before each origin, reading the day before for "
        "context; a capture repeating the one before it for every station is no observation. Beside "
        "it, the day's sums for the stations' hour-of-week profile."
    ),
)
def forecast_features(context: dg.AssetExecutionContext, lake_store: LakeResource, kpi: KpiResource):
    keys = context.partition_keys
    days = [local_day(key) for key in keys]
    require_upstream(lake_store.lake, CLEAN, days)
    built = map_parallel(
        partial(build.features_day, lake_store.lake, kpi.thresholds().max_gap, SETTINGS), days
    )
    for key, day in zip(keys, built, strict=True):
        context.add_asset_metadata(
            {
                "dagster/row_count": day.rows,
                "stations": day.stations,
                "origins": day.origins,
                "rows_with_target": dg.MetadataValue.json(day.with_targets),
                "step_minutes": SETTINGS.step_minutes,
            },
            partition_key=key,
        )
    return dg.MaterializeResult(metadata={"run_days": len(days)})


@dg.asset(
    name=store.MODEL,
    deps=[dg.AssetDep(store.FEATURES, partition_mapping=_window(SETTINGS.window_days))],
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="marts",
    kinds={"lightgbm"},
    owners=OWNERS,
    description=(
        "The model that forecasts the day: per horizon (15, 30, 60 min) a LightGBM regressor of the "
        "change in bikes and classifiers of empty and full, trained on the feature rows of the "
        "VELIB_FORECAST_WINDOW_DAYS (28) days before the day (fewer when fewer exist; none below two). "
        "Stored as `model.json` with its version, training range, rows and in-sample fit; deterministic "
        "(fixed seed, one thread), and reused while its inputs are unchanged."
    ),
)
def forecast_model(context: dg.AssetExecutionContext, lake_store: LakeResource) -> dg.MaterializeResult:
    keys = context.partition_keys
    built = map_parallel(partial(build.model_day, lake_store.lake, SETTINGS), [local_day(k) for k in keys])
    for key, day in zip(keys, built, strict=True):
        meta = day.meta
        context.add_asset_metadata(
            {
                "status": day.status,
                "model_version": str(meta.get("version", "none")),
                "training_range": " .. ".join(meta.get("training_range", [])) or "none",  # type: ignore[arg-type]
                "training_days": len(meta.get("trained_on", [])),  # type: ignore[arg-type]
                "training_rows": dg.MetadataValue.json(meta.get("training_rows", {})),
                "training_fit": dg.MetadataValue.json(meta.get("training_fit", {})),
                "window_days": SETTINGS.window_days,
                "seed": SETTINGS.seed,
            },
            partition_key=key,
        )
    return dg.MaterializeResult(metadata={"run_days": len(keys)})


@dg.asset(
    name=store.FORECASTS,
    deps=[
        store.MODEL,
        CLEAN,
        dg.AssetDep(store.FEATURES, partition_mapping=_window(SETTINGS.window_days)),
    ],
    partitions_def=daily_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="marts",
    kinds={"lightgbm", "parquet"},
    owners=OWNERS,
    metadata=spec_metadata(store.FORECAST_SCHEMA),
    description=(
        "For every station in service at the day's latest news, its newest capture that does not "
        "repeat the one before (today: within the hours closed so far), bikes and docks predicted at "
        "+15, +30 and +60 minutes and the probability of being empty, and full, then, by the day's "
        "model. Empty for a day without a model. "
        "`velib forecast` and `marts.availability_forecast` serve it."
    ),
)
def availability_forecast(
    context: dg.AssetExecutionContext, lake_store: LakeResource, kpi: KpiResource
) -> dg.MaterializeResult:
    keys = context.partition_keys
    days = [local_day(key) for key in keys]
    require_upstream(lake_store.lake, CLEAN, days)
    made = map_parallel(
        partial(build.forecast_day, lake_store.lake, kpi.thresholds().max_gap, SETTINGS), days
    )
    for key, day in zip(keys, made, strict=True):
        context.add_asset_metadata(
            {
                "dagster/row_count": day.rows,
                "stations": day.stations,
                "issued_at": day.issued_at.isoformat() if day.issued_at else "no model for this day",
                "model_version": day.model_version or "none",
                "most_at_risk_60_min": dg.MetadataValue.md(markdown_table(day.preview)),
            },
            partition_key=key,
        )
    return dg.MaterializeResult(metadata={"run_days": len(days)})


def _table(frame: pl.DataFrame) -> dg.TableMetadataValue:
    schema = dg.TableSchema(
        columns=[dg.TableColumn(name, str(dtype)) for name, dtype in frame.schema.items()]
    )
    plain = frame.with_columns(cs.date().cast(pl.String))
    records = [dg.TableRecord(row) for row in plain.iter_rows(named=True)]
    return dg.MetadataValue.table(records=records, schema=schema)


@dg.asset(
    name=store.BACKTEST,
    deps=[store.MODEL, store.FEATURES],
    group_name="marts",
    kinds={"polars", "parquet"},
    owners=OWNERS,
    metadata=spec_metadata(backtest.BACKTEST_SCHEMA),
    check_specs=[
        dg.AssetCheckSpec(
            CHECK_BEATS_BASELINES,
            asset=store.BACKTEST,
            description=(
                "Warns when the model does not beat both baselines (persistence, hour-of-week profile) "
                "on MAE of bikes and the Brier scores of empty and full, at every horizon."
            ),
        )
    ],
    description=(
        "Rolling-origin backtest: each of the last VELIB_FORECAST_WINDOW_DAYS (28) days with a model is "
        "forecast by the model trained on the days before it only, beside persistence and the "
        "hour-of-week profile, on the same rows. One row per "
        "model, horizon and metric (MAE and RMSE of bikes, Brier score and ROC AUC of empty and full), "
        "with the days evaluated; the calibration (observed frequency against predicted probability, "
        "ten bins) goes to `forecast_calibration`."
    ),
)
def forecast_backtest(context: dg.AssetExecutionContext, lake_store: LakeResource):
    days = build.backtest_days(lake_store.lake, SETTINGS.window_days)
    scored_days = map_parallel(partial(build.scored_day, lake_store.lake, SETTINGS), days)
    scored = pl.concat(scored_days) if scored_days else pl.DataFrame(schema=backtest.SCORED_SCHEMA)
    table = backtest.metrics(scored)
    calibration = backtest.calibration(scored)
    lake.write_parquet(table, lake_store.lake / store.BACKTEST)
    lake.write_parquet(calibration, lake_store.lake / store.CALIBRATION)
    wide = (
        table.pivot("model", index=["horizon_minutes", "metric"], values="value") if table.height else table
    )
    yield dg.MaterializeResult(
        metadata={
            "dagster/row_count": table.height,
            "days_evaluated": len(days),
            "days": ", ".join(day.isoformat() for day in days) or "none",
            "scored_rows": scored.height,
            "backtest": _table(table.drop("days")),
            "comparison": dg.MetadataValue.md(markdown_table(wide.with_columns(cs.float().round(4)), 20)),
        }
    )
    if not days:
        passed, lost = False, ["no day has a model yet (a model needs at least two past days)"]
    else:
        passed, lost = backtest.beats_baselines(table)
    yield dg.AssetCheckResult(
        check_name=CHECK_BEATS_BASELINES,
        passed=passed,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"days_evaluated": len(days), "not_beaten": "\n".join(lost) or "none"},
    )
