"""The worker's cost, side by side in one process (issue: student code runs apart from the judge).

1. A dense check of conv x(8,16,32,32) w(16,16,3,3) with cnncheck's fast conv loaded as a
   student file through the worker, against the same check in this process. Target: <= 1.3x.
2. The default conv and pool suites on a loop-based student file through the worker, against
   the same suites in this process. Target: <= 1.3x.

    python bench/bench_worker.py
"""
import time
from pathlib import Path

from cnncheck.sandbox import process as worker
from cnncheck.case import Case
from cnncheck.gradcheck import check_case
from cnncheck.sandbox.detect import load
from cnncheck.suites import default_suite

worker.keep_freed_memory()  # the in-process side keeps freed memory, as the command line does

ROOT = Path(__file__).resolve().parents[1]
FAST = "cnncheck.layers"
LOOPS = str(ROOT / "tests" / "students" / "good_loops.py")
CONV32 = Case("conv", (8, 16, 32, 32), (16, 16, 3, 3), pad=(1, 1), mode="dense", name="conv-32")


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def through_worker(spec, forward, cases):
    w = worker.Worker(spec, load={"wanted": sorted({c.layer for c in cases}), **forward})
    w.start()
    try:
        return [check_case(c, w.for_layer(c.layer)) for c in cases]
    finally:
        w.close()


def in_process(spec, forward, cases):
    impls = {layer: load(spec, layer, **forward) for layer in {c.layer for c in cases}}
    return [check_case(c, impls[c.layer]) for c in cases]


def compare(title, spec, forward, cases, rounds=5):
    best = {"in-process": float("inf"), "worker": float("inf")}
    for _ in range(rounds):
        for name, run in (("in-process", in_process), ("worker", through_worker)):
            secs, results = timed(lambda: run(spec, forward, cases))
            assert all(r.passed for r in results), [r.error for r in results]
            best[name] = min(best[name], secs)
    ratio = best["worker"] / best["in-process"]
    print(f"{title}: in-process {best['in-process']:.2f} s, worker {best['worker']:.2f} s, ratio {ratio:.2f}x")


if __name__ == "__main__":
    compare("dense conv-32, cnncheck's fast conv as a student module", FAST,
            {"forward": "conv_forward_fast", "backward": "conv_backward_fast"}, [CONV32])
    suites = default_suite("conv") + default_suite("max_pool")
    compare("default conv + max_pool suites, a loop-based student file", LOOPS, {}, suites)
