"""The serving file, opened read-only and reopened when the pipeline renames a rebuilt one into place.

`velib_assets.serving.publish_views` builds the new file aside and renames it over the old one. A
connection keeps reading the file it opened (the old inode) undisturbed, so requests in flight
never fail; the next request sees a new identity (device, inode, mtime, size) and opens the new file.

DuckDB caches database instances by path inside a process: connecting to the same path again would
hand back the old, still-open instance. Each open is therefore a fresh in-memory instance that
ATTACHes the file read-only. The old instance is dropped once the last request using it has ended.

The views read the lake's Parquet at query time, and the pipeline replaces some of those files
often (`stations_now` after every capture, today's occupancy every hour). The replacement is an
atomic rename, but DuckDB opens a path more than once in a query, so a query can read the new file
with the old one's footer and fail, or (rarely) find no rows. `Reader.query` runs every query and
tries again after a short pause when that happens.
"""

import glob
import logging
import os
import re
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

log = logging.getLogger(__name__)

CATALOG = "serving"
RETRIES = 4
PAUSE_S = 0.05
# A replaced file's ctime is the rename's; the kernel stamps it from a clock a few ms coarse.
CLOCK_SLACK_NS = 20_000_000
MAX_CACHED_SQL = 2000
NO_FILES = "No files found that match the pattern"
# Errors of the query itself, not of the files it read: trying again cannot help.
_NOT_THE_LAKE = (duckdb.ParserException, duckdb.CatalogException, duckdb.BinderException)
_LAKE_PATHS = re.compile(r"'((?:[^']|'')*\.parquet)'")


class NoServingFile(Exception):
    """There is no serving file yet: the pipeline has not published its views."""


class NotInLake(Exception):
    """A view's lake folder holds no file (removed, or not built yet): the view reads as not published."""

    def __init__(self, pattern: str) -> None:
        super().__init__(pattern)
        self.pattern = pattern


@dataclass(frozen=True)
class Reader:
    """A request's cursor, with what the very file it reads holds: its views' SQL and its tables."""

    cursor: duckdb.DuckDBPyConnection
    relations: dict[str, str]
    """`schema.name` -> the view's SQL ("" for a table)."""
    lake_patterns: dict[str, list[str]] = field(default_factory=dict)
    """SQL -> the lake files it reads, as globs: found once per serving file, shared by its readers."""

    def has(self, name: str) -> bool:
        return name in self.relations

    def query(self, sql: str, params: Sequence[object] = ()) -> list[dict]:
        """`sql`'s rows, read again when a lake file it reads was replaced under it.

        A failure that comes from the files (anything but a parse, binder or catalog error) is tried
        again. So is an answer when a file the query reads (directly or through the views it names)
        was renamed into place while it ran: such an answer may mix two files, and come back empty
        or short without any error. A stat per file tells, a few microseconds against the query's
        milliseconds."""
        for attempt in range(RETRIES + 1):
            started = time.time_ns() - CLOCK_SLACK_NS
            try:
                result = self.cursor.execute(sql, list(params))
                names = [column[0] for column in result.description]
                rows = [dict(zip(names, row, strict=True)) for row in result.fetchall()]
            except duckdb.Error as exc:
                if NO_FILES in str(exc):
                    raise NotInLake(_pattern(str(exc))) from exc
                if attempt == RETRIES or isinstance(exc, _NOT_THE_LAKE):
                    raise
                log.info("a lake file changed under a query, reading again: %s", first_line(exc))
            else:
                if attempt == RETRIES or not self._replaced_since(sql, started):
                    return rows
            time.sleep(PAUSE_S * (attempt + 1))
        raise AssertionError("unreachable")  # the loop returns or raises on its last attempt

    def _replaced_since(self, sql: str, started_ns: int) -> bool:
        """Whether a lake file `sql` reads (directly or through the views it names) was renamed into
        place since `started_ns`: a rename sets the file's ctime."""
        patterns = self.lake_patterns.get(sql)
        if patterns is None:
            if len(self.lake_patterns) > MAX_CACHED_SQL:  # ranges asked make new SQL: keep it bounded
                self.lake_patterns.clear()
            patterns = self.lake_patterns[sql] = self._lake_patterns(sql, set())
        for pattern in patterns:
            for path in glob.glob(pattern):
                try:
                    if os.stat(path).st_ctime_ns >= started_ns:
                        return True
                except FileNotFoundError:
                    return True  # removed meanwhile: the answer may be stale too
        return False

    def _lake_patterns(self, sql: str, seen: set[str]) -> list[str]:
        patterns = [found.replace("''", "'") for found in _LAKE_PATHS.findall(sql)]
        for name, view_sql in self.relations.items():
            if view_sql and name not in seen and re.search(rf"\b{re.escape(name)}\b", sql):
                seen.add(name)
                patterns += self._lake_patterns(view_sql, seen)
        return patterns


def first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _pattern(message: str) -> str:
    found = re.search(r'pattern "([^"]*)"', message)
    return found.group(1) if found else message


@dataclass(frozen=True)
class _Opened:
    identity: tuple[int, int, int, int]
    connection: duckdb.DuckDBPyConnection
    relations: dict[str, str]
    lake_patterns: dict[str, list[str]] = field(default_factory=dict)


_RELATIONS = f"""SELECT schema_name || '.' || view_name, sql FROM duckdb_views()
  WHERE database_name = '{CATALOG}' AND NOT internal
UNION ALL SELECT schema_name || '.' || table_name, '' FROM duckdb_tables()
  WHERE database_name = '{CATALOG}'"""


def _identity(path: Path) -> tuple[int, int, int, int]:
    info = os.stat(path)
    return info.st_dev, info.st_ino, info.st_mtime_ns, info.st_size


def _open(path: Path) -> duckdb.DuckDBPyConnection:
    """A fresh instance with the file attached; closed again when the file will not open."""
    connection = duckdb.connect(":memory:")
    try:
        quoted = str(path).replace("'", "''")
        connection.execute(f"ATTACH '{quoted}' AS {CATALOG} (READ_ONLY)")
        # Views read the lake's Parquet at query time: keep their footers cached between requests.
        connection.execute("SET GLOBAL parquet_metadata_cache = true")
        connection.execute("SET GLOBAL TimeZone = 'UTC'")
        # Requests are small and many run at once, each on its own thread: one DuckDB thread per query
        # halves a station's day (measured) instead of queueing every query's tasks behind the others'.
        connection.execute("SET GLOBAL threads = 1")
    except BaseException:
        connection.close()
        raise
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
        self._failed: tuple[tuple[int, int, int, int], str] | None = None
        """The identity of a file that would not open, and why: tried again only once it changes."""
        self.reopened = 0
        """How many times a new file was opened after the first (the tests watch it)."""
        self.failed_opens = 0
        """How many times a file would not open (the tests watch it)."""

    def _current(self) -> Reader:
        try:
            identity = _identity(self.path)
        except FileNotFoundError:
            identity = None
        with self._lock:
            opened = self._opened
            fresh = identity is not None and (opened is None or opened.identity != identity)
            if fresh and (self._failed is None or self._failed[0] != identity):
                self._try_open(identity)  # type: ignore[arg-type]
            if self._opened is None:
                if self._failed is not None and self._failed[0] == identity:
                    raise NoServingFile(f"{self.path} cannot be opened: {self._failed[1]}")
                raise NoServingFile(
                    f"no serving file at {self.path} yet: run `velib demo` or `velib run` first"
                )
            opened = self._opened
            return Reader(opened.connection.cursor(), opened.relations, opened.lake_patterns)

    def _try_open(self, identity: tuple[int, int, int, int]) -> None:
        """Open the file of `identity` in place of the current one, or remember that it would not open
        (logged once: every request would otherwise try it again, and log it, under the lock)."""
        try:
            connection = _open(self.path)
            try:
                relations = _relations(connection)
            except BaseException:
                connection.close()
                raise
        except duckdb.Error as exc:
            self._failed = (identity, first_line(exc))
            self.failed_opens += 1
            if self._opened is not None:
                log.warning("keeping the previous serving file: %s will not open: %s", self.path, exc)
            else:
                log.warning("%s will not open: %s", self.path, exc)
            return
        previous, self._failed = self._opened, None
        self._opened = _Opened(identity, connection, relations)
        self.reopened += previous is not None

    def close(self) -> None:
        with self._lock:
            if self._opened is not None:
                self._opened.connection.close()
                self._opened = None

    @contextmanager
    def reader(self, missing_ok: bool = False) -> Iterator[Reader | None]:
        """A reader of the current file; None with `missing_ok` when there is no file to read."""
        try:
            reader = self._current()
        except NoServingFile:
            if not missing_ok:
                raise
            yield None
            return
        try:
            reader.cursor.execute(f"USE {CATALOG}")
            yield reader
        finally:
            reader.cursor.close()
