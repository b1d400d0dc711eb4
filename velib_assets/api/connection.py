"""The serving file, opened read-only and reopened when the pipeline renames a rebuilt one into place.

`velib_assets.serving.publish_views` builds the new file aside and renames it over the old one. A
connection keeps reading the file it opened (the old inode) undisturbed, so requests in flight
never fail; the next request sees a new identity (device, inode, mtime, size) and opens the new file.

DuckDB caches database instances by path inside a process: connecting to the same path again would
hand back the old, still-open instance. Each open is therefore a fresh in-memory instance that
ATTACHes the file read-only. The old instance is dropped once the last request using it has ended.
"""

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb

log = logging.getLogger(__name__)

CATALOG = "serving"


class NoServingFile(Exception):
    """There is no serving file yet: the pipeline has not published its views."""


@dataclass(frozen=True)
class Reader:
    """A request's cursor, with what the very file it reads holds: its views' SQL and its tables."""

    cursor: duckdb.DuckDBPyConnection
    relations: dict[str, str]
    """`schema.name` -> the view's SQL ("" for a table)."""

    def has(self, name: str) -> bool:
        return name in self.relations


@dataclass(frozen=True)
class _Opened:
    identity: tuple[int, int, int, int]
    connection: duckdb.DuckDBPyConnection
    relations: dict[str, str]


_RELATIONS = f"""SELECT schema_name || '.' || view_name, sql FROM duckdb_views()
  WHERE database_name = '{CATALOG}' AND NOT internal
UNION ALL SELECT schema_name || '.' || table_name, '' FROM duckdb_tables()
  WHERE database_name = '{CATALOG}'"""


def _identity(path: Path) -> tuple[int, int, int, int]:
    info = os.stat(path)
    return info.st_dev, info.st_ino, info.st_mtime_ns, info.st_size


def _open(path: Path) -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect(":memory:")
    quoted = str(path).replace("'", "''")
    connection.execute(f"ATTACH '{quoted}' AS {CATALOG} (READ_ONLY)")
    # Views read the lake's Parquet at query time: keep their footers cached between requests.
    connection.execute("SET GLOBAL parquet_metadata_cache = true")
    connection.execute("SET GLOBAL TimeZone = 'UTC'")
    # Requests are small and many run at once, each on its own thread: one DuckDB thread per query
    # halves a station's day (measured) instead of queueing every query's tasks behind the others'.
    connection.execute("SET GLOBAL threads = 1")
    return connection


def _relations(connection: duckdb.DuckDBPyConnection) -> dict[str, str]:
    return dict(connection.execute(_RELATIONS).fetchall())


class ServingFile:
    """Hands out one reader per request, each with its own cursor (DuckDB connections are not
    thread-safe; a cursor per thread is)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._opened: _Opened | None = None
        self.reopened = 0
        """How many times a new file was opened after the first (the tests watch it)."""

    def _current(self) -> Reader:
        try:
            identity = _identity(self.path)
        except FileNotFoundError:
            identity = None
        with self._lock:
            opened = self._opened
            if identity is not None and (opened is None or opened.identity != identity):
                try:
                    connection = _open(self.path)
                    self._opened = _Opened(identity, connection, _relations(connection))
                    self.reopened += opened is not None
                except duckdb.Error as exc:
                    if opened is None:
                        raise NoServingFile(f"{self.path} cannot be opened: {exc}") from exc
                    log.warning("keeping the previous serving file: %s", exc)
            if self._opened is None:
                raise NoServingFile(
                    f"no serving file at {self.path} yet: run `velib demo` or `velib run` first"
                )
            return Reader(self._opened.connection.cursor(), self._opened.relations)

    def close(self) -> None:
        with self._lock:
            if self._opened is not None:
                self._opened.connection.close()
                self._opened = None

    @contextmanager
    def reader(self) -> Iterator[Reader]:
        reader = self._current()
        try:
            reader.cursor.execute(f"USE {CATALOG}")
            yield reader
        finally:
            reader.cursor.close()
