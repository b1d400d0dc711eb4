"""The HTML report: a single offline file for analysts who do not open the Dagster UI."""

from velib_assets.report.html import render_report, write_report

__all__ = ["render_report", "write_report"]
