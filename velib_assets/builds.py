"""Building one day partition of a derived asset: read its inputs from the lake, transform, write, summarise.

Plain functions of paths and frames, without Dagster, so that the worker processes of a backfill
can run them (`velib_assets.workers`). The assets in `velib_assets.defs` check that the inputs
exist, fan the days out and report what comes back; each function returns only what the report
needs, so a month of rows never travels back to the run.

Raw snapshots and the coverage take `now`: today's partitions are built on their closed hours only.
"""

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import NamedTuple

import msgspec
import polars as pl

from velib_assets import lake, landing, quality, schema, snapshots
from velib_assets.coverage import DayCoverage, day_coverage
from velib_assets.days import closed_through, day_hours
from velib_assets.kpis.clean import CLEAN_SCHEMA, QUARANTINE_SCHEMA, clean_snapshots
from velib_assets.kpis.occupancy import (
    DISTRICT_OCCUPANCY_SCHEMA,
    OCCUPANCY_INPUT,
    STATION_OCCUPANCY_SCHEMA,
    district_occupancy,
    station_occupancy_hours,
)
from velib_assets.kpis.rankings import critical_station_rankings
from velib_assets.kpis.stations import (
    CLEAN_MINUTE_SCHEMA,
    SPELL_SCHEMA,
    STATION_ATTRIBUTES,
    join_spells,
    split_clean,
    station_versions,
)
from velib_assets.schema import RAW_SCHEMA
from velib_assets.settings import KpiThresholds
from velib_assets.sources import formats, parsers, typed

RAW = "raw_station_snapshots"
CLEAN = "clean_stations"
QUARANTINE = "clean_stations_quarantine"
STATION_OCCUPANCY = "station_occupancy"
DISTRICT_OCCUPANCY = "district_occupancy"
RANKINGS = "critical_station_rankings"
SPELLS_FILE = "spells.parquet"
OCCUPANCY_LOOKUP_ROWS = 2048
HOUR = timedelta(hours=1)

CLEAN_VERDICTS = (
    quality.clean_unique_keys,
    quality.clean_non_null_keys,
    quality.clean_counts_non_negative,
    quality.arrondissement_rule,
    quality.clean_bike_types_add_up,
    quality.clean_capacity_mismatch_share,
    quality.clean_stale_share,
    quality.clean_station_count,
)
"""The per-day checks of `clean_stations`, in the order of its check specs."""
OCCUPANCY_VERDICTS = (quality.occupancy_minutes_in_range, quality.occupancy_fill_rate_in_range)
"""The checks of `station_occupancy`, in the order of its check specs."""
VERDICT_MINUTES = (
    "station_code", "snapshot_ts", "bikes", "docks", "mechanical", "ebike", "is_stale", "capacity_mismatch"
)
VERDICT_ATTRIBUTES = ("capacity", "commune", "arrondissement")
"""The columns those checks read: a day of them is a fifth of the clean rows' size."""


def _unchanged_json(tail: snapshots.Unchanged) -> dict[str, str]:
    return {"content": tail.content, "since": tail.since.isoformat()}


def _unchanged(fields: dict[str, str]) -> snapshots.Unchanged:
    return snapshots.Unchanged(fields["content"], datetime.fromisoformat(fields["since"]))


@dataclass(frozen=True)
class RawHour:
    """What parsing an hour gave, kept beside its file: the next build of the day reuses the hour as
    long as `sources` (a digest of its captures' names, the station information they use and the
    parser's version) is the same, and parses only the hours that changed.

    An hour is parsed alone; `longest_frozen_s` and `tail` are its spells stitched to the hour
    before (`snapshots.Spells.carry`), so a frozen feed is measured across hours."""

    sources: str
    captures: int
    parsed: int
    rows: int
    bytes_read: int
    errors: list[tuple[str, str]]
    spells: snapshots.Spells | None
    longest_frozen_s: float = 0.0
    tail: snapshots.Unchanged | None = None

    def carried_from(self, carried: snapshots.Unchanged | None) -> "RawHour":
        """This hour with its spells stitched to the tail of the hour before."""
        if self.spells is None:
            return replace(self, longest_frozen_s=0.0, tail=carried)
        longest, tail = self.spells.carry(carried)
        return replace(self, longest_frozen_s=longest, tail=tail)

    def to_json(self) -> str:
        fields = asdict(self)
        fields["tail"] = _unchanged_json(self.tail) if self.tail else None
        if self.spells:
            spells = self.spells
            fields["spells"] = {
                "first": spells.first,
                "first_at": spells.first_at.isoformat(),
                "first_until": spells.first_until.isoformat(),
                "longest_after_first_s": spells.longest_after_first_s,
                "last": _unchanged_json(spells.last),
                "one_run": spells.one_run,
            }
        return json.dumps(fields)

    @classmethod
    def read(cls, path: Path) -> "RawHour | None":
        """The sidecar at `path`; None when it is missing or unreadable (the hour is parsed again)."""
        try:
            fields = json.loads(path.read_text())
            tail, spells = fields.pop("tail"), fields.pop("spells")
            errors = [(str(name), str(reason)) for name, reason in fields.pop("errors")]
            if spells:
                spells = snapshots.Spells(
                    str(spells["first"]),
                    datetime.fromisoformat(spells["first_at"]),
                    datetime.fromisoformat(spells["first_until"]),
                    float(spells["longest_after_first_s"]),
                    _unchanged(spells["last"]),
                    bool(spells["one_run"]),
                )
            return cls(**fields, errors=errors, spells=spells, tail=_unchanged(tail) if tail else None)
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            return None


@dataclass(frozen=True)
class RawDay:
    hours: list[RawHour]
    reparsed: int
    stations: int
    preview: pl.DataFrame

    @property
    def captures(self) -> int:
        return sum(h.captures for h in self.hours)

    @property
    def parsed(self) -> int:
        return sum(h.parsed for h in self.hours)

    @property
    def rows(self) -> int:
        return sum(h.rows for h in self.hours)

    @property
    def errors(self) -> list[tuple[str, str]]:
        return [error for hour in self.hours for error in hour.errors]

    @property
    def longest_frozen_s(self) -> float:
        return max((h.longest_frozen_s for h in self.hours), default=0.0)


def _parser_version() -> str:
    """What makes the same captures parse into other rows: the parsing code and the Polars and
    msgspec releases. Any change to them parses every hour again, so a day rebuilt after an upgrade
    is never stitched from hours of two parsers."""
    digest = hashlib.sha256(f"{pl.__version__} {msgspec.__version__}".encode())
    for module in (formats, typed, parsers, snapshots, schema):
        digest.update(Path(module.__file__ or "").read_bytes())
    return digest.hexdigest()


PARSER_VERSION = _parser_version()


def _sources(landing_root: Path, hour: datetime, infos: list[landing.Capture]) -> str:
    """The key of an hour's raw file: its captures, the station information they use, and the
    parser's version."""
    captures = landing.captures_in_window(landing_root, hour, hour + HOUR)
    chosen = (landing.information_for(landing_root, c.capture_time, infos) for c in captures)
    used = {info.path.name for info in chosen if info}
    key = [PARSER_VERSION, [c.path.name for c in captures], sorted(used)]
    return hashlib.sha256(json.dumps(key).encode()).hexdigest()


HourTask = tuple[datetime, str]
"""An hour to parse and the key of its sources."""
HourMapper = Callable[[Callable[[HourTask], RawHour], list[HourTask]], list[RawHour]]


def parse_hour(lake_root: Path, landing_root: Path, day: date, task: HourTask) -> RawHour:
    """Parse one hour alone into its file (its spells not yet stitched to the hour before)."""
    hour, sources = task
    parsed = snapshots.parse_window(landing_root, hour, hour + HOUR)
    lake.write_parquet_file(parsed.frame, lake.hour_file(lake_root, RAW, day, hour))
    return RawHour(
        sources, parsed.captures, parsed.parsed, parsed.frame.height, parsed.bytes_read, parsed.errors,
        parsed.spells,
    )


def raw_day(
    lake_root: Path,
    landing_root: Path,
    now: datetime,
    day: date,
    mapper: HourMapper | None = None,
) -> RawDay:
    """Parse the day's closed hours at `now` into one file each, reusing the hours whose sources did
    not change; hour files of later hours (a clock that stepped back) are removed.

    The hours to parse go through `mapper` (`workers.map_parallel` parses them in parallel when
    the run builds a single day); their spells are then stitched in order and each sidecar written
    after its file, so an interrupted build leaves hours that are parsed again, never a stale one."""
    through = closed_through(day, now)
    infos = landing.information_captures(landing_root)
    lake.day_dir(lake_root, RAW, day).mkdir(parents=True, exist_ok=True)
    closed: list[tuple[datetime, str, RawHour | None]] = []
    for hour in day_hours(day):
        target = lake.hour_file(lake_root, RAW, day, hour)
        sidecar = target.with_suffix(".json")
        if hour + HOUR > through:
            target.unlink(missing_ok=True)
            sidecar.unlink(missing_ok=True)
            continue
        sources = _sources(landing_root, hour, infos)
        built = RawHour.read(sidecar) if target.is_file() else None
        closed.append((hour, sources, built if built and built.sources == sources else None))
    stale = [(hour, sources) for hour, sources, built in closed if built is None]
    parse = partial(parse_hour, lake_root, landing_root, day)
    fresh = iter(mapper(parse, stale) if mapper else [parse(task) for task in stale])
    hours: list[RawHour] = []
    carried: snapshots.Unchanged | None = None
    for hour, _, built in closed:
        parsed = built or next(fresh)
        stitched = parsed.carried_from(carried)
        if stitched != built:
            sidecar = lake.hour_file(lake_root, RAW, day, hour).with_suffix(".json")
            lake.write_text(stitched.to_json(), sidecar)
        hours.append(stitched)
        carried = stitched.tail
    files = lake.hour_files(lake_root, RAW, day)
    frame = lake.scan_files(files, RAW_SCHEMA)
    stations = frame.select(pl.col("station_code").drop_nulls().n_unique()).collect().item() if files else 0
    return RawDay(hours, len(stale), stations, frame.head(10).collect())


@dataclass(frozen=True)
class CleanedDay:
    rows: int
    in_service: int
    stations: int
    versions: int
    reasons: dict[str, int]
    verdicts: list[quality.Verdict]
    preview: pl.DataFrame


class CleanHour(NamedTuple):
    minutes: pl.DataFrame
    spells: pl.DataFrame
    quarantine: pl.DataFrame
    preview: pl.DataFrame


def clean_hour(reference: pl.DataFrame, thresholds: KpiThresholds, path: Path) -> CleanHour:
    """One raw hour file cleaned: its minute columns, its spells, its quarantine and a preview."""
    result = clean_snapshots(pl.scan_parquet(path), reference, thresholds)
    hour_minutes, hour_spells = split_clean(result.clean)
    return CleanHour(hour_minutes, hour_spells, result.quarantine, result.clean.head(10))


def clean_day(
    lake_root: Path,
    reference: pl.DataFrame,
    thresholds: KpiThresholds,
    day: date,
    mapper: Callable[[Callable[[Path], CleanHour], list[Path]], list[CleanHour]] | None = None,
) -> CleanedDay:
    """Clean the day's raw rows hour by hour (a day of minute captures is 2 M wide rows: cleaning it
    whole took three times the memory); the minute columns and the station attributes' spells are
    written apart (`velib_assets.kpis.stations`), the quarantine beside them. Rows stay in
    (hour, station_code, snapshot_ts) order, the order the occupancy reads them in. The hours go
    through `mapper` (`workers.map_parallel` cleans them in parallel when a run builds one day)."""
    clean = partial(clean_hour, reference, thresholds)
    paths = lake.hour_files(lake_root, RAW, day)
    hours = mapper(clean, paths) if mapper else [clean(path) for path in paths]
    previews = [hour.preview for hour in hours]
    day_minutes = pl.concat([h.minutes for h in hours]) if hours else pl.DataFrame(schema=CLEAN_MINUTE_SCHEMA)
    day_spells = pl.concat([h.spells for h in hours]) if hours else pl.DataFrame(schema=SPELL_SCHEMA)
    day_quarantine = (
        pl.concat([h.quarantine for h in hours]) if hours else pl.DataFrame(schema=QUARANTINE_SCHEMA)
    )
    folder = lake.day_dir(lake_root, CLEAN, day)
    lake.write_parquet_file(day_spells, folder / SPELLS_FILE)
    lake.write_parquet(day_minutes, folder)
    lake.write_parquet(day_quarantine, lake.day_dir(lake_root, QUARANTINE, day))
    checked = join_spells(
        day_minutes.select(VERDICT_MINUTES), day_spells.select("station_code", *VERDICT_ATTRIBUTES, "rows")
    )
    return CleanedDay(
        rows=day_minutes.height,
        in_service=int(day_minutes["in_service"].sum() or 0),
        stations=day_minutes["station_code"].n_unique(),
        versions=station_versions(day_spells).height,
        reasons=dict(day_quarantine["reason"].value_counts().iter_rows()),
        verdicts=[verdict(checked) for verdict in CLEAN_VERDICTS],
        preview=next((p for p in previews if p.height), previews[0] if previews else pl.DataFrame()),
    )


def read_clean_day(lake_root: Path, day: date, columns: Sequence[str] | None = None) -> pl.DataFrame:
    """The day's clean rows with their station attributes joined back (only `columns`, if given)."""
    folder = lake.day_dir(lake_root, CLEAN, day)
    wanted = list(CLEAN_SCHEMA) if columns is None else list(columns)
    minute_columns = [c for c in wanted if c in CLEAN_MINUTE_SCHEMA]
    minutes = lake.scan([folder], CLEAN_MINUTE_SCHEMA).select(minute_columns).collect()
    spells_file = folder / SPELLS_FILE
    spells = pl.scan_parquet(spells_file) if spells_file.is_file() else pl.LazyFrame(schema=SPELL_SCHEMA)
    attributes = [c for c in wanted if c in STATION_ATTRIBUTES]
    try:
        return join_spells(minutes, spells.select("station_code", *attributes, "rows").collect())
    except ValueError as exc:
        raise ValueError(
            f"clean_stations of {day}: its minutes and spells are from two builds (one was interrupted: "
            f"{exc}); materialize clean_stations for {day} again"
        ) from exc


@dataclass(frozen=True)
class OccupiedDay:
    """A day of station occupancy as its materialization reports it: a year of days is a year of
    these in the run's process, not a year of station-hours."""

    rows: int
    stations: int
    hours: int
    minutes: dict[str, float]
    verdicts: list[quality.Verdict]
    preview: pl.DataFrame


def occupancy_day(lake_root: Path, thresholds: KpiThresholds, day: date) -> OccupiedDay:
    occupancy = station_occupancy_hours(read_clean_day(lake_root, day, OCCUPANCY_INPUT), thresholds)
    # By station, in small row groups: the API reads one station's hours of a day without the rest.
    occupancy = occupancy.sort("station_code", "hour_start")
    lake.write_parquet(occupancy, lake.day_dir(lake_root, STATION_OCCUPANCY, day), OCCUPANCY_LOOKUP_ROWS)
    return OccupiedDay(
        rows=occupancy.height,
        stations=occupancy["station_code"].n_unique(),
        hours=occupancy["hour_start"].n_unique(),
        minutes={
            name: round(float(occupancy[name].sum()), 1)
            for name in ("empty_minutes", "full_minutes", "observed_minutes")
        },
        verdicts=[check(occupancy) for check in OCCUPANCY_VERDICTS],
        preview=occupancy.head(10),
    )


def read_occupancy_day(lake_root: Path, day: date) -> pl.LazyFrame:
    return lake.scan([lake.day_dir(lake_root, STATION_OCCUPANCY, day)], STATION_OCCUPANCY_SCHEMA)


def districts_day(lake_root: Path, day: date) -> tuple[int, int, pl.DataFrame]:
    """Rows, districts, and the ten district-hours with the most empty minutes."""
    districts = district_occupancy(read_occupancy_day(lake_root, day))  # in (hour_start, district) order
    lake.write_parquet(districts, lake.day_dir(lake_root, DISTRICT_OCCUPANCY, day))
    worst = districts.sort("empty_minutes", descending=True).head(10)
    return districts.height, districts["district"].n_unique(), worst


def read_districts_day(lake_root: Path, day: date) -> pl.LazyFrame:
    return lake.scan([lake.day_dir(lake_root, DISTRICT_OCCUPANCY, day)], DISTRICT_OCCUPANCY_SCHEMA)


@dataclass(frozen=True)
class RankedDay:
    ranking: pl.DataFrame
    hours_with_occupancy: int
    coverage: DayCoverage


def ranking_day(
    lake_root: Path, landing_root: Path, thresholds: KpiThresholds, cadence_s: float, now: datetime, day: date
) -> RankedDay:
    """The day's ranking (on the hours it has: hours never captured have no occupancy), how many of
    its hours had occupancy, and how much of the day's elapsed part at `now` the collection saw."""
    through = closed_through(day, now)
    occupancy = read_occupancy_day(lake_root, day)
    ranking = critical_station_rankings(occupancy, day, thresholds)
    lake.write_parquet(ranking, lake.day_dir(lake_root, RANKINGS, day))
    observed = occupancy.select("station_code", "observed_minutes", "hour_start").collect()
    coverage = day_coverage(landing_root, observed, day, cadence_s, through)
    return RankedDay(ranking, observed["hour_start"].n_unique(), coverage)
