"""A self-contained HTML report: where the critical stations are, which they are, how districts fill.

One file with inline SVG and CSS, no script and no external asset, so it opens offline, can be mailed
or archived next to the lake, and renders the same everywhere. Pure: frames in, a string out.
"""

import html
import math
import os
import tempfile
from datetime import date, datetime, timedelta
from pathlib import Path

import polars as pl

from velib_assets.coverage import DayCoverage
from velib_assets.settings import PARIS, TIMEZONE

TOP_STATIONS = 20
CHART_DISTRICTS = 8
HEATMAP_DISTRICTS = 20
MAP_WIDTH = 860
MAP_MAX_HEIGHT = 720
UNRANKED_COLOUR = "#c8c8c8"
# ColorBrewer YlOrRd: pale = few critical minutes, dark red = many; readable for most colour vision.
SEQUENTIAL = ("#ffffb2", "#fed976", "#feb24c", "#fd8d3c", "#f03b20", "#bd0026")
# Tableau 10: eight hues that stay distinguishable side by side.
CATEGORICAL = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#9c755f")

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1120px;
padding:16px 24px;color:#222;background:#fff}
h1{font-size:1.6em;margin:.2em 0}h2{font-size:1.25em;margin:1.6em 0 .4em;border-bottom:1px solid #ddd}
h3{font-size:1.05em;margin:1.2em 0 .3em}.muted{color:#666}.nodata{color:#8a5a00;font-style:italic}
table{border-collapse:collapse;font-size:.88em;margin:.4em 0}
th,td{padding:3px 8px;border-bottom:1px solid #eee;text-align:left}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
td{white-space:nowrap}td.name{white-space:normal}
thead th{background:#f4f4f4;position:sticky;top:0}
svg{max-width:100%;height:auto}
svg text{font-size:11px;fill:#333}.axis{stroke:#999;stroke-width:1}.grid{stroke:#eee;stroke-width:1}
.legend{display:flex;flex-wrap:wrap;gap:4px 16px;font-size:.88em;margin:.3em 0;padding:0;list-style:none}
.swatch{display:inline-block;width:14px;height:4px;margin-right:5px;vertical-align:middle}
table.heat td{padding:2px 3px;text-align:right;font-size:.8em;min-width:22px}
"""
FOOTER = (
    '<p class="muted">Data: Vélib\' Métropole / Ville de Paris open data. Critical minutes = minutes '
    "a station in service spent empty or full. Hours are shown in Europe/Paris time. "
    '<a href="index.html">Every daily report</a> (in the same folder).</p>'
)


def render_report(
    rankings: pl.DataFrame,
    district_occupancy: pl.DataFrame,
    stations: pl.DataFrame,
    title: str,
    coverage: DayCoverage | None = None,
) -> str:
    """The whole report as one HTML document (DESIGN §3 columns for each input frame)."""
    occupancy = _with_utc_hours(district_occupancy)
    sections = [
        f"<h1>{_e(title)}</h1>",
        _summary(rankings, occupancy),
        _coverage(coverage),
        "<h2>Where the critical stations are</h2>",
        _station_map(stations, _critical_by_station(rankings), _days(rankings)),
        f"<h2>Top {TOP_STATIONS} critical stations</h2>",
        _ranking_tables(rankings),
        "<h2>District occupancy by hour</h2>",
        _district_chart(occupancy),
        "<h3>Empty minutes by district and local hour of day</h3>",
        _empty_heatmap(occupancy),
        FOOTER,
    ]
    body = "\n".join(sections)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )


def write_report(html_text: str, path: Path) -> Path:
    """Write atomically (temporary file, then rename) so a reader never sees half a report."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(html_text)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _no_data(what: str) -> str:
    return f'<p class="nodata">No data: {_e(what)}</p>'


def _minutes(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def _sequential(t: float) -> str:
    """Colour at position t in [0, 1] of the sequential scale, interpolated in RGB."""
    position = min(max(t, 0.0), 1.0) * (len(SEQUENTIAL) - 1)
    i = min(int(position), len(SEQUENTIAL) - 2)
    f = position - i
    low, high = SEQUENTIAL[i], SEQUENTIAL[i + 1]
    rgb = (round(int(low[k : k + 2], 16) * (1 - f) + int(high[k : k + 2], 16) * f) for k in (1, 3, 5))
    return "#" + "".join(f"{c:02x}" for c in rgb)


def _with_utc_hours(occupancy: pl.DataFrame) -> pl.DataFrame:
    """Hour starts as UTC instants, whatever zone the frame carries (naive means UTC, per DESIGN §1)."""
    if occupancy.is_empty():
        return pl.DataFrame()
    hour = pl.col("hour_start")
    zone = occupancy.schema["hour_start"].time_zone
    utc = hour.dt.replace_time_zone("UTC") if zone is None else hour.dt.convert_time_zone("UTC")
    return occupancy.with_columns(utc)


def _days(rankings: pl.DataFrame) -> list[date]:
    return [] if rankings.is_empty() else sorted(rankings["day"].unique().to_list())


def _critical_by_station(rankings: pl.DataFrame) -> dict[str, float]:
    if rankings.is_empty():
        return {}
    totals = rankings.group_by("station_code").agg(pl.col("critical_minutes").fill_null(0).sum())
    return dict(zip(totals["station_code"].to_list(), totals["critical_minutes"].to_list(), strict=True))


def _summary(rankings: pl.DataFrame, occupancy: pl.DataFrame) -> str:
    if rankings.is_empty() and occupancy.is_empty():
        return _no_data("there are no rankings and no district occupancy for this period.")
    parts = []
    days = _days(rankings)
    if days:
        span = str(days[0]) if len(days) == 1 else f"{days[0]} to {days[-1]} ({len(days)} days)"
        parts.append(f"Days: {span}; {rankings['station_code'].n_unique()} stations ranked.")
    if not occupancy.is_empty():
        hours = occupancy["hour_start"]
        first, last = hours.min().astimezone(PARIS), (hours.max() + timedelta(hours=1)).astimezone(PARIS)
        parts.append(
            f"Hours: {first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} local time; "
            f"{occupancy['district'].n_unique()} districts."
        )
    return f'<p class="muted">{_e(" ".join(parts))}</p>'


def _coverage(coverage: DayCoverage | None) -> str:
    """How much of the day was captured, and which hours had no capture (their columns stay blank)."""
    if coverage is None:
        return ""
    text = (
        f"Collection: {coverage.captures:,} captures of {coverage.expected_captures:,} expected "
        f"({coverage.capture_share:.1%}); stations observed {coverage.observed_share:.0%} of the day."
    )
    missing = coverage.missing_hours
    if missing:
        text += (
            f" No capture in {len(missing)} of {coverage.hours} hours, local time "
            f"{coverage.missing_spans()}: they are blank below and count for nothing in the rankings."
        )
        return f'<p class="nodata">{_e(text)}</p>'
    return f'<p class="muted">{_e(text)}</p>'


def _station_map(stations: pl.DataFrame, critical: dict[str, float], days: list[date]) -> str:
    """Equirectangular projection, x shrunk by cos(mean latitude) so distances look right locally."""
    if stations.is_empty():
        return _no_data("no station reference to draw a map.")
    located = stations.filter(pl.col("lat").is_finite() & pl.col("lon").is_finite())
    if located.is_empty():
        return _no_data("no station has a position.")
    lat_min, lat_max = located["lat"].min(), located["lat"].max()
    lon_min, lon_max = located["lon"].min(), located["lon"].max()
    x_factor = math.cos(math.radians((lat_min + lat_max) / 2))
    span_x, span_y = (lon_max - lon_min) * x_factor, lat_max - lat_min
    pad = 10
    scale = min((MAP_WIDTH - 2 * pad) / (span_x or 1e-9), (MAP_MAX_HEIGHT - 2 * pad) / (span_y or 1e-9))
    height = max(span_y * scale + 2 * pad, 60)
    offset_x = (MAP_WIDTH - span_x * scale) / 2
    offset_y = (height - span_y * scale) / 2
    low, high = (min(critical.values()), max(critical.values())) if critical else (0.0, 0.0)

    def colour(minutes: float | None) -> str:
        if minutes is None:
            return UNRANKED_COLOUR
        return _sequential((minutes - low) / (high - low) if high > low else 1.0)

    rows = located.select("station_code", "name", "lat", "lon").to_dicts()
    # Unranked first, then by critical minutes, so the worst stations are drawn on top.
    rows.sort(key=lambda r: (r["station_code"] in critical, critical.get(r["station_code"], 0.0)))
    circles = []
    for row in rows:
        code, minutes = row["station_code"], critical.get(row["station_code"])
        x = offset_x + (row["lon"] - lon_min) * x_factor * scale
        y = offset_y + (lat_max - row["lat"]) * scale
        label = "not ranked" if minutes is None else f"{_minutes(minutes)} critical min"
        circles.append(
            f'<circle class="station" data-code="{_e(code)}" cx="{x:.1f}" cy="{y:.1f}" '
            f'r="{2.5 if minutes is None else 4}" fill="{colour(minutes)}" stroke="#555" stroke-width="0.3">'
            f"<title>{_e(row['name'] or '(no name)')} ({_e(code)}): {label}</title></circle>"
        )
    period = f"sum over {len(days)} days" if len(days) > 1 else "over the day"
    svg = (
        f'<svg class="map" width="{MAP_WIDTH}" height="{height:.0f}" viewBox="0 0 {MAP_WIDTH} {height:.0f}" '
        f'role="img" aria-label="Map of stations coloured by critical minutes">'
        f'<rect width="100%" height="100%" fill="#f8f8f6"/>{"".join(circles)}</svg>'
    )
    return svg + _map_legend(low, high, bool(critical), period)


def _map_legend(low: float, high: float, ranked: bool, period: str) -> str:
    stops = "".join(
        f'<stop offset="{i / (len(SEQUENTIAL) - 1):.2f}" stop-color="{c}"/>' for i, c in enumerate(SEQUENTIAL)
    )
    scale = (
        f'<rect x="0" y="4" width="200" height="12" fill="url(#critical-scale)"/>'
        f'<text x="0" y="30">{_minutes(low)}</text>'
        f'<text x="200" y="30" text-anchor="end">{_minutes(high)}</text>'
        f'<text x="210" y="14">critical minutes ({_e(period)})</text>'
        if ranked
        else '<text x="0" y="14">no ranked station</text>'
    )
    return (
        '<svg class="map-legend" width="560" height="36" role="img" aria-label="Colour scale">'
        f'<defs><linearGradient id="critical-scale">{stops}</linearGradient></defs>{scale}'
        f'<rect x="440" y="4" width="12" height="12" fill="{UNRANKED_COLOUR}"/>'
        '<text x="456" y="14">not ranked</text></svg>'
    )


def _ranking_tables(rankings: pl.DataFrame) -> str:
    if rankings.is_empty():
        return _no_data("no station was ranked.")
    header = (
        "<tr><th class='num'>Rank</th><th>Code</th><th>Name</th><th>District</th>"
        "<th class='num'>Critical min</th><th class='num'>Empty min</th><th class='num'>Full min</th>"
        "<th class='num'>In service min</th><th class='num'>Longest empty</th>"
        "<th class='num'>Longest full</th></tr>"
    )
    tables = []
    for day in _days(rankings):
        top = rankings.filter((pl.col("day") == day) & (pl.col("rank") <= TOP_STATIONS)).sort("rank")
        rows = "".join(
            f"<tr><td class='num'>{r['rank']}</td><td>{_e(r['station_code'])}</td>"
            f"<td class='name'>{_e(r['name'] or '—')}</td><td>{_e(r['district'])}</td>"
            f"<td class='num'><b>{_minutes(r['critical_minutes'])}</b></td>"
            f"<td class='num'>{_minutes(r['empty_minutes'])}</td>"
            f"<td class='num'>{_minutes(r['full_minutes'])}</td>"
            f"<td class='num'>{_minutes(r['in_service_minutes'])}</td>"
            f"<td class='num'>{_minutes(r['longest_empty_streak_minutes'])}</td>"
            f"<td class='num'>{_minutes(r['longest_full_streak_minutes'])}</td></tr>"
            for r in top.iter_rows(named=True)
        )
        tables.append(
            f'<h3>{day:%A %d %B %Y}</h3><table class="ranking" data-day="{day}">'
            f"<thead>{header}</thead><tbody>{rows}</tbody></table>"
        )
    return "\n".join(tables)


def _top_districts(occupancy: pl.DataFrame, count: int) -> list[str]:
    totals = occupancy.group_by("district").agg(pl.col("empty_minutes").fill_null(0).sum())
    ordered = totals.sort(["empty_minutes", "district"], descending=[True, False])
    return ordered["district"].head(count).to_list()


def _district_chart(occupancy: pl.DataFrame) -> str:
    """Mean fill rate per hour for the districts that spent the most minutes empty."""
    if occupancy.is_empty():
        return _no_data("no district occupancy.")
    chosen = _top_districts(occupancy, CHART_DISTRICTS)
    hours: list[datetime] = occupancy["hour_start"].unique().sort().to_list()
    width, height, left, right, top, bottom = 860, 320, 48, 12, 12, 46
    plot_w, plot_h = width - left - right, height - top - bottom
    first, span_s = hours[0], (hours[-1] - hours[0]).total_seconds()

    def x_of(hour: datetime) -> float:
        return left + (plot_w * (hour - first).total_seconds() / span_s if span_s else plot_w / 2)

    def y_of(rate: float) -> float:
        return top + plot_h * (1 - rate)

    grid = "".join(
        f'<line class="grid" x1="{left}" x2="{left + plot_w}" y1="{y_of(v):.1f}" y2="{y_of(v):.1f}"/>'
        f'<text x="{left - 6}" y="{y_of(v) + 4:.1f}" text-anchor="end">{v:.0%}</text>'
        for v in (0, 0.25, 0.5, 0.75, 1)
    )
    step = math.ceil(len(hours) / 12)
    one_day = len({h.astimezone(PARIS).date() for h in hours}) == 1
    ticks = "".join(
        f'<line class="axis" x1="{x_of(h):.1f}" x2="{x_of(h):.1f}" '
        f'y1="{top + plot_h}" y2="{top + plot_h + 4}"/>'
        f'<text x="{x_of(h):.1f}" y="{top + plot_h + 17}" text-anchor="middle">'
        f"{h.astimezone(PARIS).strftime('%H:%M' if one_day else '%d/%m %Hh')}</text>"
        for h in hours[::step]
    )
    lines, legend = [], []
    for district, colour in zip(chosen, CATEGORICAL, strict=False):
        series = occupancy.filter(pl.col("district") == district).sort("hour_start")
        path, previous = [], None
        for hour, rate in zip(series["hour_start"], series["mean_fill_rate"], strict=True):
            if rate is None:
                previous = None
                continue
            # A missing hour or null rate breaks the line rather than drawing across the gap.
            joined = previous is not None and hour - previous == timedelta(hours=1)
            path.append(f"{'L' if joined else 'M'}{x_of(hour):.1f},{y_of(rate):.1f}")
            previous = hour
        lines.append(
            f'<path class="series" data-district="{_e(district)}" d="{" ".join(path)}" fill="none" '
            f'stroke="{colour}" stroke-width="2"><title>{_e(district)}</title></path>'
        )
        legend.append(f'<li><span class="swatch" style="background:{colour}"></span>{_e(district)}</li>')
    axis = (
        f'<line class="axis" x1="{left}" x2="{left + plot_w}" y1="{top + plot_h}" y2="{top + plot_h}"/>'
        f'<text x="{left + plot_w / 2}" y="{height - 4}" text-anchor="middle">hour (Europe/Paris)</text>'
    )
    return (
        f'<p class="muted">Mean fill rate (bikes / (bikes + docks)) of the {len(chosen)} districts with the '
        "most empty minutes.</p>"
        f'<svg class="district-chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="Mean fill rate by hour and district">'
        f"{grid}{ticks}{axis}{''.join(lines)}</svg>"
        f'<ul class="legend">{"".join(legend)}</ul>'
    )


def _empty_heatmap(occupancy: pl.DataFrame) -> str:
    """Summed by local hour of day so a week stays 24 columns wide."""
    if occupancy.is_empty():
        return _no_data("no district occupancy.")
    chosen = _top_districts(occupancy, HEATMAP_DISTRICTS)
    cells = (
        occupancy.filter(pl.col("district").is_in(chosen))
        .group_by("district", pl.col("hour_start").dt.convert_time_zone(TIMEZONE).dt.hour().alias("hour"))
        .agg(pl.col("empty_minutes").fill_null(0).sum())
    )
    value = {(r["district"], r["hour"]): r["empty_minutes"] for r in cells.iter_rows(named=True)}
    peak = max(value.values()) or 1.0
    header = "".join(f"<th class='num'>{h:02d}</th>" for h in range(24))
    rows = []
    for district in chosen:
        tds = []
        for hour in range(24):
            minutes = value.get((district, hour))
            if minutes is None:
                tds.append("<td></td>")
                continue
            t = minutes / peak
            ink = "#fff" if t > 0.6 else "#222"
            tds.append(
                f'<td style="background:{_sequential(t)};color:{ink}" '
                f'title="{_e(district)} {hour:02d}h: {_minutes(minutes)} empty min">{_minutes(minutes)}</td>'
            )
        rows.append(f"<tr><th>{_e(district)}</th>{''.join(tds)}</tr>")
    return (
        f'<table class="heat"><thead><tr><th>District</th>{header}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )
