"""The wall's cost, side by side in one process: the sandboxed worker (exec'd, under the
strongest isolation here) against the same checks in-process and against the fork-based
worker it replaced (cnncheck/worker.py at 15d5fab, read from git history into a temporary
module). Worker start-up counts: each run starts its worker and ends it.

1. A dense check of conv x(8,16,32,32) w(16,16,3,3), cnncheck's fast conv loaded as a student
   module. Target: sandboxed / in-process <= 1.3.
2. `cnncheck check` on a loop-based student file: every layer it defines, each through its
   default suite. Target: sandboxed / fork-based <= 1.3.
(`grade --jobs 2` against the shell loop: bench/bench_grade.py --students 35.)

    python bench/bench_sandbox.py [--rounds 5]
"""
from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cnncheck.case import Case
from cnncheck.gradcheck import check_case
from cnncheck.sandbox import detect, impl, launch
from cnncheck.sandbox import process as sandboxed
from cnncheck.suites import default_suite

ROOT = Path(__file__).resolve().parents[1]
FORK_WORKER = "15d5fab:cnncheck/worker.py"
LOOPS = str(ROOT / "tests" / "students" / "good_loops.py")
CONV32 = Case("conv", (8, 16, 32, 32), (16, 16, 3, 3), pad=(1, 1), mode="dense", name="conv-32")
FAST = ("cnncheck.layers", {"forward": "conv_forward_fast", "backward": "conv_backward_fast"})


def fork_worker_module():
    """The fork-based worker of 15d5fab, its imports pointed at where those modules live now."""
    source = subprocess.run(["git", "-C", str(ROOT), "show", FORK_WORKER], capture_output=True,
                            text=True, check=True).stdout
    sys.modules.setdefault("cnncheck.impl", impl)
    sys.modules.setdefault("cnncheck.protocols.detect", detect)
    path = Path(tempfile.mkdtemp()) / "fork_worker.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("fork_worker", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def through(worker_module, source, load, cases):
    w = worker_module.Worker(source, load={"wanted": sorted({c.layer for c in cases}), **load})
    w.start()
    try:
        return [check_case(c, w.for_layer(c.layer)) for c in cases]
    finally:
        w.close()


def in_process(source, load, cases):
    impls = {layer: detect.load(source, layer, **load) for layer in {c.layer for c in cases}}
    return [check_case(c, impls[c.layer]) for c in cases]


def best(run, rounds) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        results = run()
        times.append(time.perf_counter() - start)
        assert all(r.passed for r in results), [r.error for r in results if not r.passed]
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    rounds = ap.parse_args().rounds
    fork = fork_worker_module()
    print(f"isolation here: {launch.available()}; best of {rounds} rounds, interleaved per round")
    suites = [c for layer in ("conv", "max_pool", "avg_pool") for c in default_suite(layer)]
    loops = sorted(detect.adapters(*impl.import_spec(LOOPS), LOOPS))
    for title, source, load, cases, target in (
            ("dense conv-32, fast conv as a student module", *FAST, [CONV32], "in-process"),
            ("check on a loop-based file (" + ", ".join(loops) + ")", LOOPS, {},
             [c for c in suites if c.layer in loops], "fork-based")):
        figures = {"in-process": float("inf"), "fork-based": float("inf"), "sandboxed": float("inf")}
        runs = {"in-process": lambda: in_process(source, load, cases),
                "fork-based": lambda: through(fork, source, load, cases),
                "sandboxed": lambda: through(sandboxed, source, load, cases)}
        for _ in range(rounds):
            for name, run in runs.items():
                figures[name] = min(figures[name], best(run, 1))
        ratio = figures["sandboxed"] / figures[target]
        print(f"{title}: in-process {figures['in-process']:.2f} s, fork-based {figures['fork-based']:.2f} s, "
              f"sandboxed {figures['sandboxed']:.2f} s; sandboxed / {target} {ratio:.2f}x "
              f"({'within' if ratio <= 1.3 else 'OVER'} the target 1.3)")


if __name__ == "__main__":
    main()
