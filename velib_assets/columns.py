"""What each column of the lake means, as the Dagster UI shows it in the assets' column schemas.

One description per column name, shared by every asset that has the column: a name means one thing
throughout the lake (DESIGN §3 defines most of them). Where an asset aggregates a column further,
the description says how. Times are UTC; days are Europe/Paris local days.
"""

COLUMNS: dict[str, str] = {
    # Keys and times
    "snapshot_ts": (
        "Capture time of the snapshot in UTC: the GBFS feed timestamp (`last_updated` or "
        "`lastUpdatedOther`) when present, else the fetch time; for recorded files, the time in the file "
        "name (local Europe/Paris unless it carries an offset). Never a station's own `last_reported` / "
        "`duedate`, which is kept as `reported_at`."
    ),
    "station_code": "Station code, a string as published (no zero padding; some carry a suffix).",
    "station_id": "GBFS station id (int64); null for other sources.",
    "reported_at": (
        "The station's own last report (GBFS `last_reported`, Opendatasoft `duedate`), UTC; may lag the "
        "snapshot by hours or years."
    ),
    "source": "Feed the row was parsed from: `gbfs` or `opendata`.",
    "hour_start": "Start of the hourly window `[hour_start, hour_start + 1 h)`, UTC.",
    "day": "Local Europe/Paris day of the ranking (a DATE).",
    # Station description
    "name": "Station name (from the station reference when the capture lacks it; the latest in the window).",
    "lat": "Latitude, WGS 84 degrees.",
    "lon": "Longitude, WGS 84 degrees.",
    "capacity": "Number of docks the station is built with, as published (sometimes 0).",
    "commune": (
        "Commune of the station (Opendatasoft `nom_arrondissement_communes`, e.g. `Paris`, "
        "`Boulogne-Billancourt`), from the station reference; for a station it does not know, the "
        "commune of the nearest known station."
    ),
    "code_insee": "INSEE code of the commune (Opendatasoft `code_insee_commune`); often null.",
    "arrondissement": (
        "Paris arrondissement, 1..20 (the station code without its last three digits); null outside Paris."
    ),
    "district": "Paris arrondissement as `Paris 1er` .. `Paris 20e`, else the commune, else `Unknown`.",
    # Counts and service flags
    "bikes": (
        "Bikes available, all types (a check verifies `mechanical + ebike = bikes`); in "
        "`availability_forecast`, the bikes predicted at `target_at`."
    ),
    "mechanical": "Mechanical bikes available.",
    "ebike": "Electric bikes available.",
    "docks": "Free docks available; in `availability_forecast`, predicted at `target_at`.",
    "is_installed": "The station is installed (boolean).",
    "is_renting": "The station is renting bikes out (boolean).",
    "is_returning": "The station accepts returned bikes (boolean).",
    "is_stale": "`reported_at` older than 24 h (VELIB_STALE_HOURS) before `snapshot_ts`; false when null.",
    "in_service": (
        "`is_installed and is_renting and is_returning and not is_stale and bikes + docks > 0` (a station "
        "with no working dock is broken, not both empty and full)."
    ),
    "status": (
        "`closed` (not installed), `out_of_service` (installed, not `in_service`), `in_service`."
    ),
    "fill_rate": "`bikes / (bikes + docks)`; null when `bikes + docks = 0`.",
    "is_empty": "`in_service and bikes = 0`.",
    "is_full": "`in_service and docks = 0`.",
    "is_nearly_empty": "`in_service and fill_rate <= 0.10` (VELIB_NEARLY_EMPTY_RATE).",
    "is_nearly_full": "`in_service and fill_rate >= 0.90` (VELIB_NEARLY_FULL_RATE).",
    "capacity_mismatch": "`bikes + docks` exceeds `capacity`: the row is kept and flagged.",
    "reason": (
        "Why cleaning rejected the row: missing station_code, missing snapshot_ts, missing count, "
        "negative count or absurd count."
    ),
    # Time-weighted occupancy (DESIGN §3): observation i lasts min(t(i+1), t(i) + MAX_GAP, window end) - t(i)
    "observed_minutes": (
        "Minutes covered by the station's observations in the hour, each lasting until the next one, at "
        "most MAX_GAP (15 min), never past the hour; summed over the stations in district_occupancy."
    ),
    "in_service_minutes": (
        "Time-weighted minutes `in_service`: per station and hour; summed over the district's stations "
        "in district_occupancy and over the day's hours in the rankings."
    ),
    "empty_minutes": (
        "Time-weighted minutes `is_empty`: per station and hour; summed over the district's stations in "
        "district_occupancy and over the day's hours in the rankings."
    ),
    "full_minutes": (
        "Time-weighted minutes `is_full`: per station and hour; summed over the district's stations in "
        "district_occupancy and over the day's hours in the rankings."
    ),
    "nearly_empty_minutes": (
        "Time-weighted minutes `is_nearly_empty`; summed over the stations in district_occupancy."
    ),
    "nearly_full_minutes": (
        "Time-weighted minutes `is_nearly_full`; summed over the stations in district_occupancy."
    ),
    "mean_fill_rate": (
        "Time-weighted mean `fill_rate` over the hour's observations that have one; in "
        "district_occupancy the mean over the district's stations (each station weighs the same)."
    ),
    "min_bikes": "Fewest bikes seen in the hour.",
    "max_bikes": "Most bikes seen in the hour.",
    "min_docks": "Fewest free docks seen in the hour.",
    "max_docks": "Most free docks seen in the hour.",
    "mean_ebike": (
        "Mean e-bikes over the hour's snapshots (a plain mean: stock, not time in a state); in "
        "district_occupancy the mean over the district's stations."
    ),
    "snapshots": (
        "Snapshots counted in the hour (summed over the stations in district_occupancy); in `stations`, "
        "the snapshots of the version."
    ),
    "stations": "Stations of the district observed in the hour.",
    "first_snapshot_ts": "The station's first snapshot in the hour, UTC.",
    "last_snapshot_ts": "The station's last snapshot in the hour, UTC.",
    # Streaks: maximal runs of consecutive observations (at most MAX_GAP apart) all empty (resp. full)
    "leading_empty_minutes": (
        "Minutes of the empty streak that starts at the hour's first observation (0 when that one is not "
        "empty): the daily rankings chain streaks across hours from it."
    ),
    "trailing_empty_minutes": (
        "Minutes of the empty streak that ends at the hour's last observation (0 when that one is not "
        "empty): the daily rankings chain streaks across hours from it."
    ),
    "longest_empty_streak_minutes": (
        "Longest run of consecutive empty observations (at most MAX_GAP apart), in minutes: inside the hour "
        "in station_occupancy; over the whole day, chained across its hours, in the rankings."
    ),
    "leading_full_minutes": (
        "Minutes of the full streak that starts at the hour's first observation (0 when that one is not "
        "full): the daily rankings chain streaks across hours from it."
    ),
    "trailing_full_minutes": (
        "Minutes of the full streak that ends at the hour's last observation (0 when that one is not "
        "full): the daily rankings chain streaks across hours from it."
    ),
    "longest_full_streak_minutes": (
        "Longest run of consecutive full observations (at most MAX_GAP apart), in minutes: inside the hour "
        "in station_occupancy; over the whole day, chained across its hours, in the rankings."
    ),
    # Station dimension
    "version": "1 for the station's first attributes seen, then one more at each change.",
    "valid_from": "First snapshot with this version's attributes (UTC).",
    "valid_to": "First snapshot of the next version (UTC); null for the station's current version.",
    "last_seen": "Last snapshot with this version's attributes (UTC).",
    "changed": "Attributes that differ from the previous version, comma-separated; null on version 1.",
    "changed_at": "When the change was seen (UTC): the new version's first snapshot; a closing's last one.",
    "change": "`opened`, `closed`, `relocated` (moved more than 50 m), `capacity` or `renamed`.",
    "before": "The value before the change (`lat,lon` for a relocation); the name for a closing.",
    "after": "The value after the change (`lat,lon` for a relocation); the name for an opening.",
    "distance_m": "How far the station moved, in metres (relocations only).",
    # Rankings
    "critical_minutes": "`empty_minutes + full_minutes` over the day.",
    "rank": (
        "1 = most critical: by `critical_minutes` desc, then `empty_minutes` desc, then `station_code` asc; "
        "only stations with `in_service_minutes > 0`."
    ),
    # The network now (`stations_now`)
    "state": (
        "The station's state at its latest capture, the most specific first: closed (not installed), "
        "out_of_service, empty, full, nearly_empty, nearly_full, ok (DESIGN §3's flags)."
    ),
    "since": (
        "UTC capture time of the first capture of the station's current run of that state (capture "
        "times, never the station's own report)."
    ),
    "since_at_least": (
        "True when the station held its state through the whole look-back of a table started afresh: "
        "it may have held it longer."
    ),
    "minutes_in_state": (
        "Minutes the station has held its current state: from `since` to `through` (`stations_now`); "
        "in the forecast features, from the first observation of the state's run to the origin, at most 720."
    ),
    "latest_capture": "UTC time of the newest capture that held this station.",
    "in_latest_capture": "Whether the network's newest capture held this station.",
    "through": "UTC time of the network's newest capture the table is built through.",
    # The collection's health (`collection_health`)
    "captures": "Captures landed in the hour (by capture time).",
    "polls": "Polls of the capture sensor logged in the hour, whatever their outcome.",
    "polls_failed": "Polls that lost the hour a capture: feed unavailable, broken answer, landing failed.",
    "lag_median_s": "Median seconds from a landed capture's own feed time to its landing.",
    "lag_p95_s": "95th percentile of those seconds.",
    "longest_frozen_s": (
        "Longest spell, in seconds, of captures repeating the same station data under new times, as the "
        "hour's raw file recorded it; null before the raw hour is built."
    ),
    # Forecasts (`forecast_features`, `availability_forecast`, `forecast_backtest`)
    "origin": "UTC time a forecast is made at: features use only observations at or before it.",
    "observed_at": "UTC time of the station's last observation at or before the origin (within MAX_GAP).",
    "district_code": "INSEE code of the station's commune or Paris arrondissement, as a number.",
    "bikes_now": "Bikes at the station at the origin or issue time (its last observation then).",
    "docks_now": "Free docks at the station at the origin or issue time.",
    "total_now": "`bikes_now + docks_now`: the docks working then; a forecast never exceeds it.",
    "fill_now": "`bikes_now / total_now`, null when it is 0.",
    "state_now": "State code at the origin: 0 out of service or closed, 1 empty, 2 nearly empty, 3 ok, "
    "4 nearly full, 5 full.",
    "in_service_now": "Whether the station was in service at the origin (DESIGN §3).",
    "age_minutes": "Minutes from `observed_at` to the origin.",
    "delta_5": "Bikes now minus bikes 5 minutes before the origin (null: not observed then).",
    "delta_15": "Bikes now minus bikes 15 minutes before the origin.",
    "delta_60": "Bikes now minus bikes 60 minutes before the origin.",
    "local_hour": "Europe/Paris hour of the origin, with minutes as a fraction (8.5 = 08:30).",
    "weekday": "Europe/Paris weekday of the origin, 0 = Monday.",
    **{
        f"{what}_{h}": text.format(h=h)
        for h in (15, 30, 60)
        for what, text in (
            ("bikes", "Bikes observed {h} minutes after the origin (within MAX_GAP, same day; else null)."),
            ("docks", "Free docks observed {h} minutes after the origin."),
            ("empty", "Whether the station was empty (in service, 0 bikes) {h} minutes after the origin."),
            ("full", "Whether the station was full (in service, 0 free docks) {h} minutes after the origin."),
        )
    },
    "issued_at": "UTC time the forecast was issued: the day's latest observation when it was built.",
    "horizon_minutes": "How far ahead the forecast looks: 15, 30 or 60 minutes.",
    "target_at": "UTC time the forecast is for: `issued_at + horizon_minutes`.",
    "p_empty": "Probability that the station is empty (in service, 0 bikes) at `target_at`.",
    "p_full": "Probability that the station is full (in service, 0 free docks) at `target_at`.",
    "model_version": "Version of the model that made the forecast (`lgbm-<last training day>-<digest>`).",
    "model": "`model` (the LightGBM forecaster), `persistence` (nothing changes) or `profile` (the "
    "station's hour-of-week mean).",
    "metric": "`mae_bikes`, `rmse_bikes`, `brier_empty`, `brier_full`, `auc_empty` or `auc_full`.",
    "value": "The metric's value over every scored row of the days evaluated (lower is better but for AUC).",
    "rows": "Scored rows: stations in service at an origin whose state at the target was observed.",
    "days_evaluated": "Days scored, each by the model trained on the days before it only.",
    "first_day": "First local day scored.",
    "last_day": "Last local day scored.",
    "days": "The local days scored, comma-separated.",
}


def describe(column: str) -> str | None:
    """The description of a lake column, None for a column not described yet (a test lists those)."""
    return COLUMNS.get(column)
