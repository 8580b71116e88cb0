"""benchmarks/_bench.py: alternation of ours and the peer, min-of-N next to the median, and goal lines that refuse
"met" on a loaded machine (load figures stubbed; nothing here is timed)."""

import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("bench_harness", REPO / "benchmarks" / "_bench.py")
bench = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = bench
spec.loader.exec_module(bench)


def fake_clock(step=1.0):
    """A clock that advances by `step` on every read, so each timed call takes `step` seconds."""
    now = [0.0]

    def clock():
        now[0] += step
        return now[0]

    return clock


def test_compare_alternates_ours_and_peer_repeat_by_repeat():
    calls = []
    stats = bench.compare(lambda: calls.append("ours"), lambda: calls.append("peer"), repeats=4, warmup=1,
                          clock=fake_clock())
    assert calls == ["ours", "peer", "ours", "peer", "peer", "ours", "ours", "peer", "peer", "ours"]
    assert len(stats["ours"].times) == len(stats["peer"].times) == 4


def test_stats_report_min_and_median_per_run_and_per_item():
    s = bench.Stats([3.0, 1.0, 2.0, 10.0, 4.0])
    assert (s.min, s.median) == (1.0, 3.0)
    assert (s.per_item(2).min, s.per_item(2).median) == (0.5, 1.5)


def test_verdict_under_load_is_not_a_valid_reading():
    assert bench.verdict(0.01, 1 / 30, load=1.5, cores=2) == "NOT a valid reading"
    assert bench.verdict(0.5, 1 / 30, load=1.5, cores=2) == "NOT a valid reading"
    assert bench.verdict(0.9, 0.8, load=5.0, cores=8, higher_is_better=True) == "NOT a valid reading"
    assert bench.verdict(0.2, 0.25, load=5.0, cores=2, timing=False) == "met"


def test_verdict_on_a_quiet_machine_is_met_or_not_met():
    assert bench.verdict(0.01, 1 / 30, load=0.2, cores=2) == "met"
    assert bench.verdict(0.05, 1 / 30, load=0.2, cores=2) == "NOT met"
    assert bench.verdict(0.9, 0.8, load=1.0, cores=2, higher_is_better=True) == "met"
    assert bench.verdict(0.7, 0.8, load=1.0, cores=2, higher_is_better=True) == "NOT met"


def machine(loads, cores=2):
    lines, readings = [], iter(loads)
    m = bench.Machine(loadavg=lambda: (next(readings), 0.0, 0.0), cores=cores, out=lines.append)
    m.finish()
    return m, lines


def test_machine_prints_cpu_threads_and_load_at_start_and_end():
    m, lines = machine([0.3, 0.4])
    assert lines[0].startswith("machine: ") and "torch threads" in lines[0] and "OMP_NUM_THREADS" in lines[0]
    assert lines[1].startswith("load average at start: 0.30") and lines[2].startswith("load average at end: 0.40")
    assert m.load == 0.4 and m.quiet


def test_goal_line_says_not_valid_when_loaded_at_start_or_at_end():
    ours, peer = bench.Stats([1.0, 1.2]), bench.Stats([100.0, 90.0])
    for loads in ([1.5, 0.1], [0.1, 1.5]):
        m, _ = machine(loads)
        line = m.goal_line("ours/peer", ours, peer, goal=1 / 30)
        assert line.endswith("NOT a valid reading") and " met" not in line
    m, _ = machine([0.1, 0.2])
    assert m.goal_line("ours/peer", ours, peer, goal=1 / 30).endswith(": met")


def test_goal_line_needs_both_median_and_min_to_meet_the_goal():
    m, _ = machine([0.1, 0.1])
    ours, peer = bench.Stats([1.0, 1.0, 1.0]), bench.Stats([40.0, 40.0, 20.0])
    assert m.goal_line("ours/peer", ours, peer, goal=1 / 30).endswith(": NOT met")
