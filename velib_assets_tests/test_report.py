"""The HTML report and its index on small hand-built frames: structure, content, escaping, geometry."""

import re
from datetime import UTC, date, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import polars as pl
import pytest

from velib_assets.kpis.occupancy import DISTRICT_OCCUPANCY_SCHEMA
from velib_assets.kpis.rankings import RANKINGS_SCHEMA
from velib_assets.report import render_report, write_index, write_report
from velib_assets.report.html import CHART_DISTRICTS, TOP_STATIONS, UNRANKED_COLOUR
from velib_assets.report.index import BAR_WIDTH
from velib_assets.schema import REFERENCE_SCHEMA

DAY = date(2024, 11, 4)
VOID_TAGS = {"meta", "br", "hr", "img", "input", "link", "stop", "col", "wbr", "source"}
SVG_SELF_CLOSING = {"circle", "rect", "line", "path", "stop", "polyline"}

# The report reads the assets' own frames: build the test frames with the assets' own schemas.
RANKING_SCHEMA = RANKINGS_SCHEMA
OCCUPANCY_SCHEMA = DISTRICT_OCCUPANCY_SCHEMA
STATION_SCHEMA = REFERENCE_SCHEMA


def ranking_row(
    code: str, rank: int, empty: float, full: float, day: date = DAY, name: str | None = None
) -> dict:
    return {
        "day": day,
        "station_code": code,
        "name": name if name is not None else f"Station {code}",
        "district": "Paris 16e",
        "in_service_minutes": 1440.0,
        "empty_minutes": empty,
        "full_minutes": full,
        "critical_minutes": empty + full,
        "longest_empty_streak_minutes": empty / 2,
        "longest_full_streak_minutes": full / 2,
        "rank": rank,
    }


def station_row(code: str, lat: float | None, lon: float | None, name: str | None = None) -> dict:
    return {
        "station_code": code,
        "name": name or f"Station {code}",
        "lat": lat,
        "lon": lon,
        "capacity": 20,
        "commune": "Paris",
        "code_insee": "75116",
        "arrondissement": 16,
    }


def occupancy_row(district: str, hour_start: datetime, empty: float, rate: float | None) -> dict:
    return {
        "district": district,
        "hour_start": hour_start,
        "stations": 10,
        "observed_minutes": 600.0,
        "in_service_minutes": 590.0,
        "empty_minutes": empty,
        "full_minutes": 5.0,
        "nearly_empty_minutes": 20.0,
        "nearly_full_minutes": 8.0,
        "mean_fill_rate": rate,
    }


def frame(rows: list[dict], schema: dict) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=schema, orient="row") if rows else pl.DataFrame(schema=schema)


@pytest.fixture
def rankings() -> pl.DataFrame:
    # Deliberately not in rank order: the report must sort.
    return frame(
        [
            ranking_row("16107", 3, 10.0, 5.0),
            ranking_row("10001", 1, 400.0, 100.0, name="<Gare & Co>"),
            ranking_row("5018", 2, 100.0, 50.0),
        ],
        RANKING_SCHEMA,
    )


@pytest.fixture
def stations() -> pl.DataFrame:
    return frame(
        [
            station_row("16107", 48.866, 2.276),  # west
            station_row("10001", 48.876, 2.357, name="<Gare & Co>"),  # north-east
            station_row("5018", 48.843, 2.351),  # south
            station_row("12001", 48.845, 2.380),  # not ranked
            station_row("99999", None, None),  # no position: cannot be drawn
        ],
        STATION_SCHEMA,
    )


@pytest.fixture
def occupancy() -> pl.DataFrame:
    start = datetime(2024, 11, 4, 7, tzinfo=UTC)  # 08:00 in Paris (UTC+1 in November)
    rows = []
    for i in range(10):
        for h in range(4):
            # District 0 misses its fill rate at hour 2: its line must break there.
            rate = None if (i == 0 and h == 2) else 0.2 + 0.05 * i + 0.01 * h
            rows.append(occupancy_row(f"District {i:02d}", start + timedelta(hours=h), 10.0 * i, rate))
    return frame(rows, OCCUPANCY_SCHEMA)


@pytest.fixture
def page(rankings: pl.DataFrame, occupancy: pl.DataFrame, stations: pl.DataFrame) -> str:
    return render_report(rankings, occupancy, stations, "Critical stations & districts")


class TagBalance(HTMLParser):
    """Records tags left open or closed out of order: a well-formed page leaves both lists empty."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag not in VOID_TAGS:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list) -> None:
        if tag not in VOID_TAGS | SVG_SELF_CLOSING:
            self.errors.append(f"self-closed <{tag}/>")

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(f"unexpected </{tag}>")


def assert_complete_document(text: str) -> None:
    assert text.startswith("<!DOCTYPE html>")
    assert text.rstrip().endswith("</html>")
    for part in ("<html", "<head>", '<meta charset="utf-8">', "<title>", "<body>", "</body>"):
        assert part in text
    checker = TagBalance()
    checker.feed(text)
    checker.close()
    assert checker.errors == []
    assert checker.stack == []


def ranking_codes(text: str) -> list[list[str]]:
    tables = re.findall(r'<table class="ranking".*?</table>', text, flags=re.DOTALL)
    return [re.findall(r"<tr><td class='num'>\d+</td><td>([^<]*)</td>", table) for table in tables]


def circle_attributes(text: str) -> dict[str, dict[str, str]]:
    circles = re.findall(r'<circle class="station" ([^>]*)>', text)
    parsed = [dict(re.findall(r'([\w-]+)="([^"]*)"', attrs)) for attrs in circles]
    return {attrs["data-code"]: attrs for attrs in parsed}


def test_page_is_a_complete_self_contained_document(page: str) -> None:
    assert_complete_document(page)
    assert "<title>Critical stations &amp; districts</title>" in page
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, flags=re.IGNORECASE)
    assert "<script" not in page and "<link" not in page and "@import" not in page
    assert "http://" not in page and "https://" not in page


def test_ranking_rows_follow_rank_order(page: str) -> None:
    assert ranking_codes(page) == [["10001", "5018", "16107"]]
    assert "<td class='num'><b>500</b></td>" in page  # critical minutes of rank 1


def test_ranking_table_stops_at_top_n_and_splits_days(stations: pl.DataFrame) -> None:
    day_two = DAY + timedelta(days=1)
    rows = [ranking_row(f"{100 + r}", r, 100.0 - r, 0.0) for r in range(1, TOP_STATIONS + 3)]
    rows += [ranking_row("16107", 1, 10.0, 0.0, day=day_two)]
    page = render_report(frame(rows, RANKING_SCHEMA), frame([], OCCUPANCY_SCHEMA), stations, "t")
    first_day, second_day = ranking_codes(page)
    assert first_day == [f"{100 + r}" for r in range(1, TOP_STATIONS + 1)]
    assert second_day == ["16107"]
    assert page.index(f'data-day="{DAY}"') < page.index(f'data-day="{day_two}"')


def test_text_is_escaped(page: str) -> None:
    assert "<Gare & Co>" not in page
    assert "&lt;Gare &amp; Co&gt;" in page


def test_map_has_one_circle_per_located_station_in_projection(page: str) -> None:
    circles = circle_attributes(page)
    assert set(circles) == {"16107", "10001", "5018", "12001"}
    assert page.count('<circle class="station"') == 4
    x = {code: float(attrs["cx"]) for code, attrs in circles.items()}
    y = {code: float(attrs["cy"]) for code, attrs in circles.items()}
    assert x["16107"] < x["5018"] < x["12001"]  # west to east
    assert y["10001"] < y["16107"] < y["5018"]  # north is up
    # The east-west span is shrunk by cos(lat) relative to the north-south span.
    lon_span, lat_span = 2.380 - 2.276, 48.876 - 48.843
    ratio = (x["12001"] - x["16107"]) / (y["5018"] - y["10001"])
    assert ratio == pytest.approx(lon_span * 0.6575 / lat_span, rel=0.01)


def test_map_colours_follow_critical_minutes(page: str) -> None:
    circles = circle_attributes(page)
    most, least = circles["10001"]["fill"], circles["16107"]["fill"]
    assert most != least
    assert circles["12001"]["fill"] == UNRANKED_COLOUR
    assert UNRANKED_COLOUR not in (most, least)
    assert "<title>&lt;Gare &amp; Co&gt; (10001): 500 critical min</title>" in page


def test_map_sums_critical_minutes_over_days(stations: pl.DataFrame) -> None:
    rows = [
        ranking_row("5018", 1, 30.0, 10.0),
        ranking_row("5018", 1, 60.0, 0.0, day=DAY + timedelta(days=1)),
    ]
    page = render_report(frame(rows, RANKING_SCHEMA), frame([], OCCUPANCY_SCHEMA), stations, "t")
    assert "(5018): 100 critical min</title>" in page
    assert "sum over 2 days" in page


def test_district_chart_draws_the_districts_with_most_empty_minutes(page: str) -> None:
    paths = re.findall(r'<path class="series" data-district="([^"]*)" d="([^"]*)"', page)
    expected = {f"District {i:02d}" for i in range(10 - CHART_DISTRICTS, 10)}
    assert {district for district, _ in paths} == expected
    assert len(paths) == CHART_DISTRICTS
    for _, d in paths:
        assert d.count("M") == 1 and d.count("L") == 3  # four hours, one unbroken line


def test_district_chart_breaks_lines_on_missing_rate(occupancy: pl.DataFrame) -> None:
    only_first = occupancy.filter(pl.col("district") == "District 00")
    page = render_report(frame([], RANKING_SCHEMA), only_first, frame([], STATION_SCHEMA), "t")
    (d,) = re.findall(r'<path class="series" data-district="District 00" d="([^"]*)"', page)
    assert d.count("M") == 2 and d.count("L") == 1


def test_hours_are_shown_in_paris_time(page: str) -> None:
    chart = re.search(r'<svg class="district-chart".*?</svg>', page, flags=re.DOTALL).group(0)
    labels = re.findall(r'text-anchor="middle">(\d\d:\d\d)</text>', chart)
    assert labels == ["08:00", "09:00", "10:00", "11:00"]
    heat_header = re.search(r'<table class="heat"><thead>(.*?)</thead>', page).group(1)
    assert "<th class='num'>08</th>" in heat_header


def test_empty_inputs_give_a_valid_page_saying_no_data() -> None:
    page = render_report(
        frame([], RANKING_SCHEMA), frame([], OCCUPANCY_SCHEMA), frame([], STATION_SCHEMA), "Nothing yet"
    )
    assert_complete_document(page)
    assert "No data" in page
    assert "<circle" not in page and '<table class="ranking"' not in page and 'class="series"' not in page


def test_write_report_replaces_the_file_atomically(tmp_path: Path) -> None:
    target = tmp_path / "reports" / "report.html"
    assert write_report("<p>old</p>", target) == target
    write_report("<p>new é</p>", target)
    assert target.read_text(encoding="utf-8") == "<p>new é</p>"
    assert [p.name for p in target.parent.iterdir()] == ["report.html"]


def index_rows(text: str) -> list[tuple[str, list[str]]]:
    """(day, cell texts) of each row of the index table, in page order."""
    rows = re.findall(r'<tr data-day="([^"]*)">(.*?)</tr>', text, flags=re.DOTALL)
    return [
        (day, [re.sub(r"<[^>]*>", "", cell) for cell in re.findall(r"<td[^>]*>(.*?)</td>", row)])
        for day, row in rows
    ]


def test_index_lists_the_reports_on_disk_newest_first(tmp_path: Path, stations: pl.DataFrame) -> None:
    day_two = DAY + timedelta(days=1)
    empty = frame([], OCCUPANCY_SCHEMA)
    provisional = f"Report {day_two} (so far: through 14:00, provisional)"
    for day, title in ((DAY, f"Report {DAY}"), (day_two, provisional)):
        ranked = frame([ranking_row("16107", 1, 10.0, 0.0, day=day)], RANKING_SCHEMA)
        write_report(render_report(ranked, empty, stations, title), tmp_path / f"velib-report-{day}.html")
    (tmp_path / "notes.html").write_text("<title>not a report</title>")
    (tmp_path / "velib-report-2024-13-40.html").write_text("<title>no such day</title>")
    rankings = frame(
        [ranking_row("10001", 1, 400.0, 100.0, name="<Gare & Co>"), ranking_row("5018", 2, 100.0, 50.0)],
        RANKING_SCHEMA,
    )

    path = write_index(tmp_path, rankings)

    page = path.read_text(encoding="utf-8")
    assert path == tmp_path / "index.html"
    assert_complete_document(page)
    assert "http://" not in page and "https://" not in page and "<script" not in page
    rows = index_rows(page)
    assert [day for day, _ in rows] == [str(day_two), str(DAY)]
    assert f'<a href="velib-report-{DAY}.html">{DAY}</a>' in page
    (_, newest), (_, oldest) = rows
    assert newest[2] == "so far" and newest[-1] == "not ranked"  # no rankings given for that day
    assert oldest[1] == "Monday" and oldest[2] == "final"
    # stations ranked, mean hours in service, the network's critical minutes, the worst station
    assert oldest[3:6] == ["2", "24.0", "650"]
    assert oldest[-1] == "&lt;Gare &amp; Co&gt; (10001): 500 min"


def test_index_bars_compare_the_days(tmp_path: Path, stations: pl.DataFrame) -> None:
    empty = frame([], OCCUPANCY_SCHEMA)
    rows = []
    for offset, minutes in ((0, 300.0), (1, 150.0)):
        day = DAY + timedelta(days=offset)
        rows.append(ranking_row("16107", 1, minutes, 0.0, day=day))
        report = render_report(frame([], RANKING_SCHEMA), empty, stations, "t")
        write_report(report, tmp_path / f"velib-report-{day}.html")
    page = write_index(tmp_path, frame(rows, RANKING_SCHEMA)).read_text(encoding="utf-8")
    widths = [float(w) for w in re.findall(r'<rect width="([\d.]+)" height="12"', page)]
    assert widths == [BAR_WIDTH / 2, BAR_WIDTH]  # newest first: half the busiest day's minutes


def test_index_without_reports_says_so(tmp_path: Path) -> None:
    page = write_index(tmp_path, frame([], RANKING_SCHEMA)).read_text(encoding="utf-8")
    assert_complete_document(page)
    assert "No data" in page and "<table" not in page


def test_report_links_to_the_index(page: str) -> None:
    assert '<a href="index.html">' in page
