"""The API application: JSON under `/api/`, read-only over the DuckDB serving file.

Handlers are plain functions, run in the server's thread pool, each with its own cursor: DuckDB
releases the GIL while it queries, so requests run side by side."""

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import duckdb
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from velib_assets.api import collection, queries
from velib_assets.api.connection import NoServingFile, NotInLake, Reader, ServingFile, first_line
from velib_assets.api.models import (
    Alert,
    Day,
    District,
    DistrictHour,
    Forecast,
    Health,
    Page,
    Problem,
    Ranking,
    RollingRanking,
    State,
    Station,
    StationDetail,
    StationHour,
)
from velib_assets.api.params import DAY_HELP, EndParam, StartParam, TimeRange, page, parse_day, time_range
from velib_assets.api.params import Page as PageParams
from velib_assets.serving import TOP_N
from velib_assets.settings import feed_down_minutes

SERVING_FILE = "warehouse.duckdb"
MAX_TOP = 2000
DistrictParam = Annotated[str | None, Query(description='e.g. "Paris 16e" or "Issy-les-Moulineaux"')]


def _envelope(rows: list[dict], total: int, paging: PageParams, note: str | None = None) -> dict:
    return {"items": rows, "total": total, "limit": paging.limit, "offset": paging.offset, "note": note}


def _unpublished_note(db: Reader, view: str) -> str | None:
    """Why a list is empty when `view` is not in the serving file yet; None when it is."""
    return None if db.has(view) else queries.NOT_PUBLISHED.format(view=view)


def _not_found(detail: str) -> HTTPException:
    return HTTPException(status_code=404, detail=detail)


def _one_line(exc: RequestValidationError) -> str:
    """FastAPI's validation errors as one line: `limit: Input should be less than or equal to 1000`."""
    parts = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error.get("loc", ()) if part not in ("query", "path", "body"))
        parts.append(f"{where}: {error.get('msg', 'invalid')}" if where else str(error.get("msg", "invalid")))
    return "; ".join(parts) or "invalid request"


def _unavailable(detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=503, headers={"Retry-After": "1"})


def _not_in_lake(exc: NotInLake) -> str:
    """Names the lake folder the pattern reads: `.../station_occupancy/day=*/part.parquet`."""
    folders = [part for part in Path(exc.pattern).parent.parts if "=" not in part and "*" not in part]
    return f"{folders[-1] if folders else exc.pattern} is not published yet: the lake holds none of its files"


def create_app(data_dir: Path) -> FastAPI:
    serving = ServingFile(data_dir / SERVING_FILE)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        serving.close()

    def reader() -> Iterator[Reader]:
        with serving.reader() as opened:
            assert opened is not None  # missing_ok is off: a missing file raised NoServingFile
            yield opened

    def reader_or_none() -> Iterator[Reader | None]:
        with serving.reader(missing_ok=True) as opened:
            yield opened

    Db = Annotated[Reader, Depends(reader)]
    Paging = Annotated[PageParams, Depends(page)]

    def range_of(
        db: Reader, view: str, start: str | None, end: str | None, code: str | None = None
    ) -> TimeRange | None:
        latest = queries.latest_hour(db, view, code) if start is None and end is None else None
        return time_range(start, end, latest)

    router = APIRouter(prefix="/api", responses={422: {"model": Problem}})

    @router.get(
        "/health", response_model=Health, summary="the newest capture, its age and the collection's health"
    )
    def health(db: Annotated[Reader | None, Depends(reader_or_none)]) -> dict:
        """Answers without a serving file too: the capture figures come from the landing zone."""
        now = datetime.now(UTC)
        latest = collection.latest_capture(data_dir)
        return {
            "latest_capture_at": latest,
            "latest_capture_age_seconds": None if latest is None else (now - latest).total_seconds(),
            "feed_down_after_seconds": feed_down_minutes() * 60,
            "stations": None if db is None else queries.network_stations(db),
            "serving_file": str(serving.path),
            "collection": None if latest is None else collection.collection(data_dir, latest, now),
            "note": None if db is not None else (
                f"no serving file at {serving.path} yet: run `velib demo` or `velib run` first"
            ),
        }

    @router.get("/stations", response_model=Page[Station], summary="every station with its state now")
    def stations(
        db: Db,
        paging: Paging,
        district: DistrictParam = None,
        state: Annotated[State | None, Query(description="state at the latest capture")] = None,  # type: ignore[valid-type]
        q: Annotated[
            str | None, Query(max_length=200, description="part of the code or name (any case or accents)")
        ] = None,
    ) -> dict:
        if district is not None and not queries.known_district(db, district):
            raise _not_found(f"unknown district {district!r}: see /api/districts")
        rows, total = queries.stations(db, district, state, q, paging)
        return _envelope(rows, total, paging, queries.stations_note(db))

    @router.get(
        "/stations/{code}",
        response_model=StationDetail,
        responses={404: {"model": Problem}},
        summary="one station: its state now and its version in the station dimension",
    )
    def station(db: Db, code: Annotated[str, PathParam(description="station code, e.g. 16107")]) -> dict:
        found = queries.station(db, code)
        if found is None:
            raise _not_found(f"unknown station {code!r}")
        return found

    @router.get(
        "/stations/{code}/occupancy",
        response_model=Page[StationHour],
        responses={404: {"model": Problem}},
        summary="a station's hourly occupancy over a range (default: its own last day with data; at most "
        "31 days)",
    )
    def station_occupancy(
        db: Db, paging: Paging, code: str, start: StartParam = None, end: EndParam = None
    ) -> dict:
        default = start is None and end is None
        if default and not queries.known_station(db, code):  # before looking for its hours in every day
            raise _not_found(f"unknown station {code!r}")
        span = range_of(db, "marts.station_occupancy", start, end, code)
        if not db.has("marts.station_occupancy"):
            rows, total, note = [], 0, queries.NOT_PUBLISHED.format(view="marts.station_occupancy")
        elif span is None:
            rows, total, note = [], 0, f"no occupancy for station {code!r} in the lake yet"
        else:
            (rows, total), note = queries.station_occupancy(db, code, span, paging), None
        if total == 0 and not default and not queries.known_station(db, code):  # most answers have rows
            raise _not_found(f"unknown station {code!r}")
        return _envelope(rows, total, paging, note)

    @router.get("/districts", response_model=Page[District], summary="every district and its stations")
    def districts(db: Db, paging: Paging) -> dict:
        rows, total = queries.districts(db, paging)
        return _envelope(rows, total, paging, _unpublished_note(db, "staging.stations"))

    @router.get(
        "/districts/occupancy",
        response_model=Page[DistrictHour],
        responses={404: {"model": Problem}},
        summary="hourly occupancy of the districts (or one) over a range (default: the last day)",
    )
    def district_occupancy(
        db: Db,
        paging: Paging,
        start: StartParam = None,
        end: EndParam = None,
        district: DistrictParam = None,
    ) -> dict:
        span = range_of(db, "marts.district_occupancy", start, end)
        if district is not None and not queries.known_district(db, district):
            raise _not_found(f"unknown district {district!r}: see /api/districts")
        if span is None or not db.has("marts.district_occupancy"):
            return _envelope([], 0, paging, queries.NOT_PUBLISHED.format(view="marts.district_occupancy"))
        rows, total = queries.district_occupancy(db, district, span, paging)
        return _envelope(rows, total, paging)

    @router.get("/days", response_model=Page[Day], summary="the local days that have rankings")
    def days(db: Db, paging: Paging) -> dict:
        rows, total = queries.days(db, paging)
        return _envelope(rows, total, paging, _unpublished_note(db, "marts.critical_station_rankings"))

    @router.get(
        "/rankings/rolling-2h",
        response_model=Page[RollingRanking],
        summary="the 10 most critical stations of the two newest hours in the lake",
    )
    def rolling_ranking(db: Db) -> dict:
        paging = PageParams(limit=TOP_N, offset=0)
        try:
            rows, total = queries.rolling_ranking(db, paging)
        except NotInLake as exc:
            return _envelope([], 0, paging, _not_in_lake(exc))
        return _envelope(rows, total, paging, _unpublished_note(db, "marts.critical_stations_2h"))

    @router.get(
        "/rankings/{day}",
        response_model=Page[Ranking],
        responses={404: {"model": Problem}},
        summary="a day's critical-station ranking, most critical first",
    )
    def ranking(
        db: Db,
        day: Annotated[str, PathParam(description=DAY_HELP)],
        top: Annotated[int, Query(ge=1, le=MAX_TOP, description="how many stations, from rank 1")] = 20,
        offset: Annotated[int, Query(ge=0, le=10**9, description="ranks skipped before this page")] = 0,
    ) -> dict:
        paging = PageParams(limit=top, offset=offset)
        local_day = parse_day(day)
        rows, total = queries.ranking(db, local_day, paging)
        if total == 0:
            listed = ", ".join(str(day) for day in reversed(queries.latest_days(db, 5))) or "none yet"
            raise _not_found(f"no rankings for {local_day}; latest days with rankings: {listed}")
        return _envelope(rows, total, paging)

    @router.get("/alerts", response_model=Page[Alert], summary="alert episodes and their deliveries")
    def alerts(
        db: Db,
        paging: Paging,
        open: Annotated[bool | None, Query(description="true: open episodes, false: resolved ones")] = None,
    ) -> dict:
        rows, total = queries.alerts(db, open, paging)
        note = None if db.has("marts.alerts") else "no alerts recorded yet"
        return _envelope(rows, total, paging, note)

    @router.get(
        "/forecasts",
        response_model=Page[Forecast],
        responses={404: {"model": Problem}},
        summary="the newest forecast issue: every station's rows of it (or one station's)",
    )
    def forecasts(
        db: Db,
        paging: Paging,
        station: Annotated[str | None, Query(description="station code, e.g. 16107")] = None,
    ) -> dict:
        if station is not None and not queries.known_station(db, station):
            raise _not_found(f"unknown station {station!r}")
        if not db.has("marts.availability_forecast"):
            return _envelope([], 0, paging, queries.NO_FORECASTS)
        rows, total = queries.forecasts(db, station, paging)
        note = None
        if total == 0:
            issued = queries.newest_issue(db)
            if issued is None:
                note = queries.NO_FORECASTS
            elif station is not None:
                note = f"station {station!r} is not in the newest forecast (issued {issued.isoformat()})"
        return _envelope(rows, total, paging, note)

    @router.get(
        "/forecasts/at-risk",
        response_model=Page[Forecast],
        summary="the stations most likely to be empty or full within the hour, by the newest issue",
    )
    def forecasts_at_risk(db: Db, paging: Paging) -> dict:
        if not db.has("marts.availability_forecast"):
            return _envelope([], 0, paging, queries.NO_FORECASTS)
        rows, total = queries.forecasts_at_risk(db, paging)
        return _envelope(rows, total, paging)

    app = FastAPI(
        title="Vélib' KPI API",
        lifespan=lifespan,
        version="1",
        description=(
            "Read-only JSON over the DuckDB serving layer. Times are UTC with an offset; days are local "
            "(Europe/Paris); minutes, bikes and docks are counts; fill rates are fractions 0..1."
        ),
    )
    app.include_router(router)
    app.state.serving = serving

    @app.exception_handler(RequestValidationError)
    def validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _one_line(exc)}, status_code=422)

    @app.exception_handler(NoServingFile)
    def no_file(_request: Request, exc: NoServingFile) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503)

    @app.exception_handler(NotInLake)
    def not_in_lake(request: Request, exc: NotInLake) -> JSONResponse:
        """A view whose lake folder is empty or gone (a rebuild under way) reads as not published."""
        note = _not_in_lake(exc)
        route = request.scope.get("route")
        model = getattr(route, "response_model", None)
        if isinstance(model, type) and issubclass(model, Page):
            limit = int(request.query_params.get("limit") or request.query_params.get("top") or 100)
            offset = int(request.query_params.get("offset") or 0)
            return JSONResponse(_envelope([], 0, PageParams(limit, offset), note))
        return _unavailable(note)

    @app.exception_handler(duckdb.Error)
    def database_error(_request: Request, exc: duckdb.Error) -> JSONResponse:
        """Still failing after `Reader.query`'s tries: a one-line 503 the client may retry."""
        return _unavailable(f"the serving layer could not be read: {first_line(exc)}")

    return app
