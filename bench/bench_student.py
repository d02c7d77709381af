"""Time a four-loop student implementation through the default suites.

    python bench/bench_student.py [--repeats 3] [--jobs 1]

The student file is tests/students/good_loops.py (conv and pooling written with four nested
loops, as most students write them). Prints the seconds for the default conv suite and the
default max-pool suite through cnncheck's runner (the same path as `cnncheck conv --impl`),
the best of `repeats` runs, with the target: under 10 s each. As a peer in the same process,
the same suites on cnncheck's own vectorized layers.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from cnncheck.sandbox.detect import load  # noqa: E402
from cnncheck.runner import run_cases  # noqa: E402
from cnncheck.suites import default_suite  # noqa: E402

STUDENT = ROOT / "tests" / "students" / "good_loops.py"
TARGET = 10.0


def best(cases, impl, repeats: int, jobs) -> tuple[float, bool]:
    times, ok = [], True
    for _ in range(repeats):
        start = time.perf_counter()
        results = run_cases(cases, impl, jobs=jobs)
        times.append(time.perf_counter() - start)
        ok &= all(r.passed for r in results)
    return min(times), ok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--jobs", default="1")
    args = ap.parse_args()
    print(f"{'suite':<10} {'cases':>5} {'four-loop s':>12} {'built-in s':>11} {'ratio':>6}  verdict")
    for layer in ("conv", "max_pool"):
        cases = default_suite(layer)
        secs, ok = best(cases, load(str(STUDENT), layer), args.repeats, args.jobs)
        ref, _ = best(cases, None, args.repeats, args.jobs)
        verdict = f"{'passed' if ok else 'FAILED'}, {'under' if secs < TARGET else 'OVER'} {TARGET:g} s"
        print(f"{layer:<10} {len(cases):>5} {secs:>12.2f} {ref:>11.2f} {secs / ref:>6.1f}  {verdict}")


if __name__ == "__main__":
    main()
