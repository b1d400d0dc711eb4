"""Worker processes for the partitions of a single-run backfill.

A month-long backfill is hundreds of independent partitions, each with its own input and output
files. Threads share one interpreter lock across the many small Polars calls an hour takes (two
threads gave 1.2x on two cores); spawned processes with a one-thread Polars pool each give ~1.8x.
The pool starts once per process (about a second) and every step of the run reuses it.
"""

import multiprocessing
import multiprocessing.util
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from functools import cache
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def worker_count() -> int:
    """`VELIB_WORKERS`, else one per core; 1 runs everything in the calling process."""
    configured = os.environ.get("VELIB_WORKERS", "").strip()
    return max(1, int(configured)) if configured else max(1, os.cpu_count() or 1)


@cache
def _pool(workers: int) -> ProcessPoolExecutor:
    """Spawned, not forked (a fork copies Polars' thread pool in an unknown state). Polars sizes its
    own pool from POLARS_MAX_THREADS when a worker imports it, before any initializer could run, so
    the variable is set while the workers start (they start on the first submissions)."""
    saved = os.environ.get("POLARS_MAX_THREADS")
    os.environ["POLARS_MAX_THREADS"] = "1"
    try:
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
        for started in [pool.submit(os.getpid) for _ in range(workers)]:
            started.result()
    finally:
        if saved is None:
            os.environ.pop("POLARS_MAX_THREADS", None)
        else:
            os.environ["POLARS_MAX_THREADS"] = saved
    # A process started by multiprocessing (a step of Dagster's multiprocess executor) joins its
    # children when it ends, before the interpreter would shut an executor down: stop the workers
    # first. Finalizers with an exit priority run at that point, and at a normal interpreter exit.
    multiprocessing.util.Finalize(pool, pool.shutdown, exitpriority=10)
    return pool


def map_parallel(work: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """`work` on every item, in input order, in worker processes; the first exception propagates and
    the items not started yet are cancelled.

    `work` and the items must pickle (a module-level function, or a `functools.partial` of one).
    """
    items = list(items)
    workers = min(worker_count(), len(items))
    if workers < 2:
        return [work(item) for item in items]
    try:
        return list(_pool(worker_count()).map(work, items))
    except BrokenProcessPool:
        _pool.cache_clear()  # a killed worker breaks the pool for good: the next run starts a new one
        raise
