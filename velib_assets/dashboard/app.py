"""The dashboard's web app: the API app with the page, plotly.js and the daily reports mounted beside it.

plotly.js is served from the installed `plotly` wheel, so the page works with no network at all and
its version moves with the pinned Python package.
"""

import os
from collections.abc import Awaitable, Callable
from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from velib_assets.api.app import create_app

STATIC = Path(str(files("velib_assets.dashboard") / "static"))
PLOTLY_JS = Path(str(files("plotly") / "package_data" / "plotly.min.js"))


def create_dashboard_app(data_dir: Path) -> FastAPI:
    """The API's routes first, then the reports and the page: `/api/...` is never shadowed by a file."""
    app = create_app(data_dir)

    @app.get("/vendor/plotly.min.js", include_in_schema=False)
    def plotly_js(request: Request) -> Response:
        found = FileResponse(PLOTLY_JS, media_type="text/javascript", stat_result=os.stat(PLOTLY_JS))
        if request.headers.get("if-none-match") == found.headers["etag"]:
            return Response(status_code=304, headers={"etag": found.headers["etag"]})  # 4.8 MB not resent
        return found

    # check_dir=False: the reports folder appears with the first report; until then /reports/ is a 404.
    app.mount("/reports", StaticFiles(directory=Path(data_dir) / "reports", html=True, check_dir=False))
    app.mount("/", StaticFiles(directory=STATIC, html=True), name="dashboard")

    @app.middleware("http")
    async def revalidate(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        # Files carry an ETag: asking each time costs a 304, and an upgraded page never runs stale script.
        response = await call_next(request)
        response.headers.setdefault("Cache-Control", "no-cache")
        return response

    # plotly.js is 4.8 MB as shipped, 1.4 MB gzipped: it matters once the page is served past localhost.
    app.add_middleware(GZipMiddleware, minimum_size=1024)
    return app
