"""Run a command as a child process and measure its wall time and the peak memory of its process tree.

Two figures, because neither alone is exact for a tree: a sampler thread sums the RSS of the child
and all its descendants 20 times a second (sees the whole tree, may miss a spike shorter than
50 ms), and `wait4` reports the kernel's `ru_maxrss` (exact, but for the largest single process of
the tree only). The peak reported is the larger of the two.
"""

import os
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

SAMPLE_PERIOD_S = 0.05


@dataclass(frozen=True)
class Measured:
    returncode: int
    process_wall_s: float
    sampled_tree_peak_mib: float
    ru_maxrss_mib: float
    stdout: str
    stderr: str

    @property
    def peak_rss_mib(self) -> float:
        return max(self.sampled_tree_peak_mib, self.ru_maxrss_mib)


def _tree_rss(root: psutil.Process) -> int:
    total = 0
    for process in [root, *root.children(recursive=True)]:
        try:
            total += process.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total


def measure(command: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> Measured:
    """Run `command` to completion; output goes to temporary files so a chatty child never blocks."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        began = time.perf_counter()
        child = subprocess.Popen(command, stdout=out, stderr=err, env=env, cwd=cwd)
        peak = 0
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            try:
                root = psutil.Process(child.pid)
                while not done.is_set():
                    peak = max(peak, _tree_rss(root))
                    done.wait(SAMPLE_PERIOD_S)
            except psutil.NoSuchProcess:
                return

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - began
        done.set()
        sampler.join()
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Measured(
            returncode=child.returncode,
            process_wall_s=wall,
            sampled_tree_peak_mib=peak / 2**20,
            ru_maxrss_mib=usage.ru_maxrss / 1024,
            stdout=out.read().decode(errors="replace"),
            stderr=err.read().decode(errors="replace"),
        )
