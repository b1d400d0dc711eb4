"""`velib serve`: the API under uvicorn, on 127.0.0.1 unless told otherwise.

The socket is bound here, before uvicorn starts, so a busy port or an unknown host is the usual
one-line `velib:` error rather than a server log. uvicorn shuts down gracefully on Ctrl-C and on
SIGTERM, then hands the signal back to `velib`, which reports the interruption."""

import socket
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
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        listener = socket.socket(family, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    return listener


def serve(app: FastAPI, host: str, port: int, banner: str) -> int:
    """Run `app` until Ctrl-C or SIGTERM, after printing `banner` with `{url}` filled in."""
    listener = listen(host, port)
    shown = f"[{host}]" if ":" in host else host
    print(banner.format(url=f"http://{shown}:{port}"), flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    try:
        server.run(sockets=[listener])
    finally:
        listener.close()
    return 0


def cmd_serve(host: str, port: int) -> int:
    path = serving_file()
    banner = f"API on {{url}}/api/ (OpenAPI at {{url}}/openapi.json) over {path}; Ctrl-C stops it"
    return serve(create_app(path.parent), host, port, banner)
