"""`velib dashboard`: the API and the dashboard's page on one uvicorn server."""

import socket
import sys

import uvicorn

from velib_assets.api.app import SERVING_FILE
from velib_assets.cli import UsageError
from velib_assets.settings import data_dir


def listening_socket(host: str, port: int) -> socket.socket:
    """Bound before the server starts, so a taken port is one clear line rather than uvicorn's log."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise UsageError(f"cannot resolve --host {host!r}: {exc.strerror}") from exc
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port} ({exc.strerror}): choose another --port") from exc
    return sock


def cmd_dashboard(host: str, port: int) -> int:
    """Serve until Ctrl-C or SIGTERM (both end it normally, exit 0)."""
    from velib_assets.dashboard.app import create_dashboard_app

    root = data_dir()
    serving_file = root / SERVING_FILE
    if not serving_file.is_file():
        raise UsageError(f"no serving file at {serving_file} yet: run `velib demo` or `velib run` first")
    sock = listening_socket(host, port)
    server = uvicorn.Server(uvicorn.Config(create_dashboard_app(root), log_level="warning"))
    shown = f"[{host}]" if ":" in host else host
    print(f"dashboard on http://{shown}:{port}/  (data: {root}; Ctrl-C stops it)", flush=True)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass  # uvicorn shut down gracefully, then re-raised the signal it caught: the normal end
    finally:
        sock.close()
    print("dashboard stopped", file=sys.stderr)
    return 0
