"""The HTML report: a single offline file for analysts who do not open the Dagster UI, and its index."""

from velib_assets.report.html import render_report, write_report
from velib_assets.report.index import find_reports, render_index, write_index

__all__ = ["find_reports", "render_index", "render_report", "write_index", "write_report"]
