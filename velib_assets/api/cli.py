"""`velib serve`: the API under uvicorn, on 127.0.0.1 unless told otherwise; and the serving helpers
`velib dashboard` shares.

The socket is bound here, before uvicorn starts, so a busy port or an unknown host is the usual
one-line `velib:` error rather than a server log. uvicorn shuts down gracefully on Ctrl-C and on
SIGTERM (`velib` turns SIGTERM into KeyboardInterrupt), then hands the signal back: that is how a
server is meant to stop (`docker stop`), so it ends with one line and exit 0, not as an interruption."""

import socket
import sys
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from velib_assets.api.app import SERVING_FILE, create_app
from velib_assets.cli import UsageError
from velib_assets.settings import data_dir


def serving_file() -> Path:
    """The serving file of the configured data dir; a UsageError when the pipeline has not built it."""
    path = data_dir() / SERVING_FILE
    if not path.is_file():
        raise UsageError(f"no serving file at {path} yet: run `velib demo` or `velib run` first")
    return path


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to `host:port`, or a UsageError saying why not."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise UsageError(f"cannot resolve --host {host!r}: {exc.strerror}") from exc
    listener = socket.socket(family, kind, proto)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(address)
    except OSError as exc:
        listener.close()
        raise UsageError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc} (choose another --host or --port)"
        ) from exc
    return listener


def serve(app: FastAPI, host: str, port: int, banner: str, name: str) -> int:
    """Run `app` until Ctrl-C or SIGTERM, after printing `banner` with `{url}` filled in; then say
    `{name} stopped` on stderr and return 0."""
    listener = listen(host, port)
    shown = f"[{host}]" if ":" in host else host
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    try:
        print(banner.format(url=f"http://{shown}:{port}"), flush=True)
        server.run(sockets=[listener])
    except KeyboardInterrupt:
        pass  # uvicorn shut down gracefully, then re-raised the signal it caught: the normal end
    finally:
        listener.close()
    print(f"{name} stopped", file=sys.stderr, flush=True)
    return 0


def cmd_serve(host: str, port: int) -> int:
    path = serving_file()
    banner = f"API on {{url}}/api/ (OpenAPI at {{url}}/openapi.json) over {path}; Ctrl-C stops it"
    return serve(create_app(path.parent), host, port, banner, "API")
