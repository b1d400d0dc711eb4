"""Run a command as a child process and measure its wall time and the peak memory of its process tree.

Two figures, because neither alone is exact for a tree: a sampler thread sums the RSS of the child
and all its descendants 20 times a second (sees the whole tree, may miss a spike shorter than
50 ms), and `wait4` reports the kernel's `ru_maxrss` (exact, but for the largest single process of
the tree only). The peak reported is the larger of the two.

Also the CPU seconds of the tree (`wait4`'s user + system time, which takes in the descendants the
child waited for, such as its worker processes), steadier than wall time on a shared machine, and
the share of the machine's CPU time the hypervisor gave to other guests while the command ran
(`steal` in /proc/stat; None where the system does not report it).
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
    cpu_s: float
    steal_share: float | None
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


def _steal_and_total() -> tuple[float | None, float]:
    times = psutil.cpu_times()
    # guest time is already counted in user time
    total = sum(getattr(times, name) for name in times._fields if not name.startswith("guest"))
    return getattr(times, "steal", None), total


def measure(command: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> Measured:
    """Run `command` to completion; output goes to temporary files so a chatty child never blocks."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        steal_before, total_before = _steal_and_total()
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
        steal_after, total_after = _steal_and_total()
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
            cpu_s=usage.ru_utime + usage.ru_stime,
            steal_share=(
                (steal_after - steal_before) / (total_after - total_before)
                if steal_before is not None and steal_after is not None and total_after > total_before
                else None
            ),
            stdout=out.read().decode(errors="replace"),
            stderr=err.read().decode(errors="replace"),
        )
