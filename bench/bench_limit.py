"""Checks at the physical limit: forward calls against the colour minimum, the overhead, and
the ratios against torch, measured side by side in one process (issue 12).

    python bench/bench_limit.py [--repeats 3] [--skip-slow] [--skip-wide]

For each dense conv check: its forward calls and the colour minimum (the base call and one per
colour, the fewest any dense check can make), and the overhead
    seconds / (calls x one forward call)
where one forward call is the mean of the built-in fast forward on the case's own arrays,
timed just before and just after the check (1.0 would mean nothing but the calls costs).
The check runs in this process with the fast reference (`check_case`), and once as the command
line (`cnncheck conv --format json`, the built-in layer against the naive loops on the first
sample), whose JSON gives `seconds` and `calls`. Then the ratios against torch (float64 CPU,
the same threads): dense conv-32 against one torch forward+backward, torch.autograd.gradcheck
(slow mode) against dense conv-16, projection against gradcheck(fast_mode=True).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from bench_core import blas_threads  # noqa: E402
from bench_gradcheck import LARGE, SMALL, cnncheck, torch, torch_fwd_bwd, torch_gradcheck  # noqa: E402
from cnncheck.case import Case, make_arrays  # noqa: E402
from cnncheck.gradcheck import builtin, check_case  # noqa: E402

WIDE = ((4, 64, 28, 28), (64, 64, 3, 3))
FORWARDS = 20  # forward calls timed for "one forward call", before and after each check


def conv(shapes, mode="dense") -> Case:
    return Case("conv", shapes[0], shapes[1], stride=(1, 1), pad=(1, 1), mode=mode)


def one_forward(case: Case) -> float:
    """Mean seconds of one built-in fast forward call on the case's arrays (after a warm-up)."""
    impl, arrays = builtin("conv"), make_arrays(case)
    arrays.pop("dout")
    impl.run_forward(case, arrays)
    start = time.perf_counter()
    for _ in range(FORWARDS):
        impl.run_forward(case, arrays)
    return (time.perf_counter() - start) / FORWARDS


def dense_row(label, shapes, repeats) -> dict:
    """The best of `repeats` in-process dense checks, with its calls and overhead."""
    case, runs = conv(shapes), []
    for _ in range(repeats):
        before = one_forward(case)
        r = check_case(case, reference=builtin("conv"))
        fwd = statistics.mean([before, one_forward(case)])
        runs.append((r.seconds, r, fwd))
    secs, r, fwd = min(runs, key=lambda t: t[0])
    n = r.calls["forward"]
    row = {"label": label, "seconds": secs, "calls": n, "minimum": r.colour_minimum,
           "forward_ms": 1e3 * fwd, "overhead": secs / (n * fwd), "passed": r.passed}
    print(f"{label:<34} {secs:8.3f} s  calls {n:5d}  minimum {r.colour_minimum:5d}  "
          f"= {n / r.colour_minimum:5.3f}x (target <= 1.1)  one forward {1e3 * fwd:7.2f} ms  "
          f"overhead {row['overhead']:5.2f} (target <= 1.3)  {'passed' if r.passed else 'FAILED'}")
    return row


def json_row(label, shapes, mode="dense") -> float:
    secs, _, _, calls, minimum = cnncheck(shapes, mode, with_calls=True)
    print(f"{label:<34} {secs:8.3f} s  calls {calls['forward']:5d}  minimum {minimum:5d}  "
          f"(the command line's JSON)")
    return secs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-slow", action="store_true", help="no torch slow-mode gradcheck")
    parser.add_argument("--skip-wide", action="store_true", help="no wide case (about 20 s a check)")
    args = parser.parse_args()
    threads, source = blas_threads()
    print(f"numpy {np.__version__}, BLAS threads {threads} ({source})")
    if torch is not None:
        torch.set_num_threads(threads)
        print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, float64 CPU")

    print("\n-- calls and overhead, dense checks in this process (fast reference)")
    large = dense_row("dense conv-32 x(8,16,32,32)", LARGE, args.repeats)
    small = dense_row("dense conv-16 x(4,3,16,16)", SMALL, max(args.repeats, 5))
    if not args.skip_wide:
        dense_row("dense wide x(4,64,28,28) w64", WIDE, 1)
    large_json = min(json_row("dense conv-32, CLI", LARGE) for _ in range(args.repeats))
    small_json = min(json_row("dense conv-16, CLI", SMALL) for _ in range(args.repeats))
    if torch is None:
        print("torch is not installed: no ratios")
        return

    print("\n-- against torch, side by side")
    fb = torch_fwd_bwd(LARGE, 20)
    print(f"dense conv-32 / one torch forward+backward ({1e3 * fb:.2f} ms): "
          f"{large['seconds'] / fb:6.0f}x in process, {large_json / fb:6.0f}x CLI JSON  (target <= 200x)")
    if not args.skip_slow:
        slow = torch_gradcheck(SMALL, fast=False)
        print(f"torch gradcheck slow ({slow:.2f} s) / dense conv-16: {slow / small['seconds']:6.0f}x in "
              f"process, {slow / small_json:6.0f}x CLI JSON  (target >= 500x)")
    for label, shapes in (("conv-16", SMALL), ("conv-32", LARGE)):
        case = conv(shapes, "projection")
        ours = min(check_case(case, reference=builtin("conv")).seconds for _ in range(args.repeats))
        fast = min(torch_gradcheck(shapes, fast=True) for _ in range(max(3, args.repeats)))
        print(f"projection {label} ({ours:.3f} s) / torch gradcheck fast_mode ({fast:.3f} s): "
              f"{ours / fast:5.2f}x its time")


if __name__ == "__main__":
    main()
