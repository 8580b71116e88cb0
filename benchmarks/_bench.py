"""The harness every benchmark with a peer uses, so that no reading flatters us:

- ours and the peer run alternately, repeat by repeat, in the same process (the order flips every repeat: A B, B A,
  A B, ...), so that load and cache state hit both alike;
- the minimum over the repeats is reported next to the median (the minimum is the least disturbed run);
- the machine is described at the start and at the end: CPU model (/proc/cpuinfo), cores (os.cpu_count()), torch's
  threads, OMP_NUM_THREADS and the load average;
- a goal line says "NOT a valid reading" instead of "met" / "NOT met" when the 1-minute load average, at the start or
  at the end, exceeded half the cores.

    from _bench import Machine, compare
    machine = Machine()               # prints the machine line and the load at the start
    stats = compare(ours, peer, repeats=5)
    machine.finish()                  # prints the load at the end
    print(machine.goal_line("ours/skimage", stats["ours"], stats["peer"], goal=1 / 30))
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

LOAD_LIMIT = 0.5  # of the cores: above it, a reading is not valid


@dataclass
class Stats:
    """Seconds of each timed repeat of one callable."""

    times: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def min(self) -> float:
        return min(self.times)

    def per_item(self, n: int) -> Stats:
        """The same runs as seconds per item, for runs of `n` items each."""
        return Stats([t / n for t in self.times])

    def __str__(self) -> str:
        return f"median {self.median * 1e3:.1f} ms, min {self.min * 1e3:.1f} ms of {len(self.times)}"


def interleave(fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 1,
               clock: Callable[[], float] = time.perf_counter) -> dict[str, Stats]:
    """Runs every callable `warmup` times untimed, then `repeats` rounds in which each runs once, the order reversed
    on every other round. Returns the seconds of each run per name."""
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    stats = {name: Stats() for name in names}
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            start = clock()
            fns[name]()
            stats[name].times.append(clock() - start)
    return stats


def compare(ours: Callable[[], object], peer: Callable[[], object], repeats: int, warmup: int = 1,
            clock: Callable[[], float] = time.perf_counter) -> dict[str, Stats]:
    """`interleave` of two callables: {"ours": Stats, "peer": Stats}."""
    return interleave({"ours": ours, "peer": peer}, repeats, warmup, clock)


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (platform.processor() where that file is missing)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("model name", "Model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def verdict(ratio: float, goal: float, load: float, cores: int | None = None, higher_is_better: bool = False,
            timing: bool = True) -> str:
    """'met' or 'NOT met' for `ratio` against `goal` (ratio <= goal, or >= with higher_is_better), or 'NOT a valid
    reading' when `ratio` is a `timing` and `load` (the highest 1-minute load average seen) exceeds LOAD_LIMIT of
    `cores` (default: this machine's). Memory and other untimed ratios pass timing=False."""
    if timing and load > LOAD_LIMIT * (cores or os.cpu_count() or 1):
        return "NOT a valid reading"
    return "met" if (ratio >= goal if higher_is_better else ratio <= goal) else "NOT met"


def _threads() -> int | None:
    try:
        import torch
    except ImportError:
        return None
    return torch.get_num_threads()


class Machine:
    """The machine a reading was taken on: prints the CPU model, cores, threads and load average when made, the load
    again at `finish()`, and judges goals by the highest 1-minute load seen. `loadavg`, `cores` and `out` are
    injectable (tests)."""

    def __init__(self, loadavg: Callable[[], tuple[float, float, float]] = os.getloadavg, cores: int | None = None,
                 out: Callable[[str], None] = print):
        self.loadavg, self.cores, self.out = loadavg, cores or os.cpu_count() or 1, out
        self.loads: list[float] = []
        self.out(f"machine: {cpu_model()}; {self.cores} cores; torch threads {_threads()}; "
                 f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
        self._record("start")

    def _record(self, when: str) -> None:
        load = self.loadavg()
        self.loads.append(load[0])
        self.out(f"load average at {when}: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (1, 5, 15 min; a reading is valid "
                 f"up to {LOAD_LIMIT * self.cores:.1f})")

    def finish(self, when: str = "end") -> None:
        """Records and prints the load average at the end (or at the end of the part named by `when`)."""
        self._record(when)

    @property
    def load(self) -> float:
        """The highest 1-minute load average recorded so far."""
        return max(self.loads)

    @property
    def quiet(self) -> bool:
        return self.load <= LOAD_LIMIT * self.cores

    def verdict(self, ratio: float, goal: float, higher_is_better: bool = False, timing: bool = True) -> str:
        """`verdict` with this machine's load and cores (call `finish()` first, so the end load counts)."""
        return verdict(ratio, goal, self.load, self.cores, higher_is_better, timing)

    def goal_line(self, name: str, ours: Stats, peer: Stats, goal: float) -> str:
        """A goal line for a time ratio ours/peer (lower is better): medians and minima, both ratios, and the
        verdict, met only when both the median and the min-of-N ratio meet the goal."""
        med, low = ours.median / peer.median, ours.min / peer.min
        text = self.verdict(max(med, low), goal)
        return (f"goal {name}: ours {ours.median * 1e3:.2f} ms (median), {ours.min * 1e3:.2f} ms (min of "
                f"{len(ours.times)}); peer {peer.median * 1e3:.2f} / {peer.min * 1e3:.2f} ms; ratio median "
                f"{med:.4f} ({_fraction(med)}), min-of-N {low:.4f} ({_fraction(low)}); "
                f"goal <= {_fraction(goal)}: {text}")


def _fraction(goal: float) -> str:
    return f"1/{1 / goal:.1f}" if goal < 1 else f"{goal:.2f}x"
