"""Availability forecasts: features from the lake, a LightGBM model per horizon, honest baselines and
a rolling-origin backtest. Plain functions of paths and frames; `velib_assets.defs.forecasts` wires
them into Dagster assets."""
