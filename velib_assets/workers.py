"""Worker processes for the partitions of a single-run backfill.

A month-long backfill is hundreds of independent partitions, each with its own input and output
files. Threads share one interpreter lock across the many small Polars calls an hour takes (two
threads gave 1.2x on two cores); spawned processes with a one-thread Polars pool each give ~1.8x.
The pool starts once per process and every step of the run reuses it.
"""

import multiprocessing
import multiprocessing.util
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def worker_count() -> int:
    """`VELIB_WORKERS`, else one per core; 1 runs everything in the calling process."""
    configured = os.environ.get("VELIB_WORKERS", "").strip()
    return max(1, int(configured)) if configured else max(1, os.cpu_count() or 1)


@contextmanager
def _main_module_unnamed() -> Iterator[None]:
    """While workers start, hide which module or file `__main__` is, so they do not import it.

    A spawned process first re-imports its parent's main module, whatever it is: the `dagster` CLI
    of a run worker, a benchmark, a user's script. That cost each worker about a second, and a
    script without an `if __name__ == "__main__":` guard would start its work again in every worker
    and break the pool. The work only needs `velib_assets`, which the tasks import by name.
    """
    main = sys.modules["__main__"]
    saved = {name: vars(main)[name] for name in ("__spec__", "__file__") if name in vars(main)}
    main.__spec__ = None
    vars(main).pop("__file__", None)
    try:
        yield
    finally:
        vars(main).pop("__spec__", None)
        vars(main).update(saved)


def _exit_with_parent(parent: int) -> None:
    """Worker initializer. A worker waits on its task queue, which a parent killed with SIGKILL never
    closes: a watcher thread ends the worker once its parent is gone. Ctrl-C in a terminal reaches
    the whole process group; the parent alone handles it and stops the workers."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="velib-parent-watch", daemon=True).start()


_POOLS: dict[int, ProcessPoolExecutor] = {}


def _pool(workers: int) -> ProcessPoolExecutor:
    """The process's pool of `workers` workers, started on first use.

    Spawned, not forked (a fork copies Polars' thread pool in an unknown state). Polars sizes its
    own pool from POLARS_MAX_THREADS when a worker imports it, before any initializer could run, so
    the variable is set while the workers start (they start on the first submissions)."""
    if workers in _POOLS:
        return _POOLS[workers]
    saved = os.environ.get("POLARS_MAX_THREADS")
    os.environ["POLARS_MAX_THREADS"] = "1"
    try:
        pool = ProcessPoolExecutor(
            workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_exit_with_parent,
            initargs=(os.getpid(),),
        )
        with _main_module_unnamed():
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
    _POOLS[workers] = pool
    return pool


def shutdown() -> None:
    """Stop the workers (an interrupted run): queued items are dropped, running ones end on their own."""
    while _POOLS:
        _POOLS.popitem()[1].shutdown(wait=False, cancel_futures=True)


def map_parallel(work: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """`work` on every item, in input order, in worker processes; the first exception propagates and
    the items not started yet are cancelled.

    `work` and the items must pickle: a function of an importable module (not of `__main__`, which
    the workers do not import), or a `functools.partial` of one.
    """
    items = list(items)
    workers = min(worker_count(), len(items))
    if workers < 2:
        return [work(item) for item in items]
    try:
        return list(_pool(worker_count()).map(work, items))
    except BrokenProcessPool:
        _POOLS.pop(worker_count(), None)  # a killed worker breaks the pool for good: the next run starts anew
        raise
