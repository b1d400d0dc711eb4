"""The reports' index page: every daily report in one table, newest first, with the trend across days.

Rewritten whenever a report is written, from the report files actually on disk (a day whose report was
deleted drops out) and the rankings of those days. Like the reports it is one offline file: inline CSS
and SVG, no script, so the folder can be mailed, archived or served as it is.
"""

import html
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import polars as pl

from velib_assets.report.html import CSS, write_report

INDEX_NAME = "index.html"
REPORT_NAME = re.compile(r"^velib-report-(\d{4}-\d{2}-\d{2})\.html$")
TITLE = re.compile(r"<title>(.*?)</title>", flags=re.DOTALL)
BAR_WIDTH = 160
BAR_COLOUR = "#f03b20"
INDEX_CSS = ".bar{vertical-align:middle}td.provisional{color:#8a5a00}"


@dataclass(frozen=True)
class DayReport:
    day: date
    file: str
    title: str


@dataclass(frozen=True)
class DaySummary:
    stations_ranked: int
    in_service_hours: float
    """Mean hours a ranked station was seen in service: below 24 the day was only partly captured."""
    critical_minutes: float
    """The network's total: minutes stations in service spent empty or full, summed over stations."""
    top_code: str | None
    top_name: str | None
    top_minutes: float | None


def report_day(path: Path) -> date | None:
    match = REPORT_NAME.match(path.name)
    if match is None:
        return None
    try:
        return date.fromisoformat(match.group(1))
    except ValueError:
        return None


def find_reports(directory: Path) -> list[DayReport]:
    """The daily reports in `directory`, oldest first, each with the title it was written with."""
    found = []
    for path in directory.glob("velib-report-*.html"):
        day = report_day(path)
        if day is None:
            continue
        with path.open(encoding="utf-8", errors="replace") as handle:
            match = TITLE.search(handle.read(4096))
        title = html.unescape(match.group(1)) if match else f"Report {day}"
        found.append(DayReport(day, path.name, title))
    return sorted(found, key=lambda r: r.day)


def summarize(rankings: pl.DataFrame) -> dict[date, DaySummary]:
    """One summary per day of `rankings` (the `critical_station_rankings` columns)."""
    summaries = {}
    for (day,), rows in rankings.group_by("day"):
        top = rows.sort("rank").row(0, named=True)
        summaries[day] = DaySummary(
            stations_ranked=rows.height,
            in_service_hours=float(rows["in_service_minutes"].fill_null(0).mean() or 0.0) / 60,
            critical_minutes=float(rows["critical_minutes"].fill_null(0).sum()),
            top_code=top["station_code"],
            top_name=top["name"],
            top_minutes=top["critical_minutes"],
        )
    return summaries


def render_index(reports: list[DayReport], summaries: dict[date, DaySummary]) -> str:
    """The index as one HTML document: a row per report, newest first."""
    e = _escape
    peak = max((s.critical_minutes for s in summaries.values()), default=0.0)
    rows = []
    for report in reversed(reports):
        summary = summaries.get(report.day)
        provisional = "provisional" in report.title
        figures = (
            "<td class='num'>—</td><td class='num'>—</td><td class='num'>—</td><td></td><td>not ranked</td>"
            if summary is None
            else (
                f"<td class='num'>{summary.stations_ranked:,}</td>"
                f"<td class='num'>{summary.in_service_hours:.1f}</td>"
                f"<td class='num'>{summary.critical_minutes:,.0f}</td>"
                f"<td>{_bar(summary.critical_minutes, peak)}</td>"
                f"<td class='name'>{e(summary.top_name or '—')} ({e(summary.top_code)}): "
                f"{summary.top_minutes or 0:,.0f} min</td>"
            )
        )
        rows.append(
            f'<tr data-day="{report.day}"><td><a href="{e(report.file)}">{report.day}</a></td>'
            f"<td>{report.day:%A}</td>"
            f"<td class='{'provisional' if provisional else ''}'>{'so far' if provisional else 'final'}</td>"
            f"{figures}</tr>"
        )
    if rows:
        body = (
            "<table class='index'><thead><tr><th>Day</th><th></th><th>Report</th>"
            "<th class='num'>Stations ranked</th><th class='num'>Hours in service</th>"
            "<th class='num'>Critical min (network)</th><th></th>"
            f"<th>Most critical station</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        )
    else:
        body = '<p class="nodata">No data: no daily report has been written yet.</p>'
    span = f"{len(reports)} days, {reports[0].day} to {reports[-1].day}" if reports else "no report yet"
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>Vélib' daily reports</title>\n<style>{CSS}{INDEX_CSS}</style>\n</head>\n<body>\n"
        "<h1>Vélib' daily reports</h1>\n"
        f'<p class="muted">{e(span)}. Critical minutes: minutes stations in service spent empty or full, '
        "summed over the network; the bar compares the days. Hours in service: the mean per ranked "
        "station, below 24 when the day was only partly captured.</p>\n"
        f"{body}\n</body>\n</html>\n"
    )


def write_index(directory: Path, rankings: pl.DataFrame) -> Path:
    """Rewrite `directory/index.html` from the reports in it and the `rankings` of their days."""
    reports = find_reports(directory)
    return write_report(render_index(reports, summarize(rankings)), directory / INDEX_NAME)


def _bar(value: float, peak: float) -> str:
    width = BAR_WIDTH * value / peak if peak > 0 else 0.0
    return (
        f'<svg class="bar" width="{BAR_WIDTH}" height="12" role="img" '
        f'aria-label="{value:,.0f} critical minutes">'
        f'<rect width="{width:.1f}" height="12" fill="{BAR_COLOUR}"/></svg>'
    )


def _escape(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)
