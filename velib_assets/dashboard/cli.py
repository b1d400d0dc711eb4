"""`velib dashboard`: the API and the dashboard's page on one uvicorn server."""

from velib_assets.api.cli import serve, serving_file


def cmd_dashboard(host: str, port: int) -> int:
    """Serve until Ctrl-C or SIGTERM (both end it normally, exit 0)."""
    from velib_assets.dashboard.app import create_dashboard_app

    root = serving_file().parent
    banner = f"dashboard on {{url}}/  (data: {root}; Ctrl-C stops it)"
    return serve(create_dashboard_app(root), host, port, banner, "dashboard")
