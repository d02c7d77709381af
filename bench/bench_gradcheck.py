"""Time cnncheck's gradient checks against torch.autograd.gradcheck and the CS231n loop.

    python bench/bench_gradcheck.py [--repeats 3] [--skip-slow]

cnncheck runs as its command line (`cnncheck conv ... --format json`) in a subprocess
and is timed by the JSON's per-case `seconds`; the subprocess also reports its peak
memory (ru_maxrss). torch runs in this process on the same machine, same threads.
torch is optional: without it only cnncheck's figures are printed. `--skip-slow`
skips torch's slow-mode gradcheck (about 15-50 s) and the CS231n loop (a few s).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from bench_core import blas_threads  # noqa: E402
from cnncheck import layers  # noqa: E402
from cnncheck.case import Case  # noqa: E402
from cnncheck.gradcheck import builtin, check_case  # noqa: E402

try:
    import torch
    import torch.nn.functional as TF
except ImportError:
    torch = None

SMALL = ((4, 3, 16, 16), (8, 3, 3, 3))
LARGE = ((8, 16, 32, 32), (16, 16, 3, 3))

# Runs the CLI and reports peak memory on stderr, whatever the exit code.
CHILD = """import resource, sys
from cnncheck.cli import main
try:
    main(sys.argv[1:], prog_name="cnncheck")
finally:
    print("maxrss_kib", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
"""


def cnncheck(shapes, mode: str, with_calls: bool = False) -> tuple:
    """(seconds from the JSON, peak MiB of the process, checks) of one CLI run, stride 1 pad 1;
    with_calls: the JSON's calls and colour minimum too."""
    (x, w) = shapes
    args = ["conv", "--x-shape", ",".join(map(str, x)), "--w-shape", ",".join(map(str, w)),
            "--stride", "1", "--pad", "1", "--mode", mode, "--format", "json"]
    run = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True,
                         cwd=ROOT)
    case = json.loads(run.stdout)["cases"][0]
    rss = next(int(line.split()[1]) for line in run.stderr.splitlines() if line.startswith("maxrss_kib"))
    checks = [(c["name"], c["passed"], c.get("method", "")) for c in case["checks"]]
    if with_calls:
        return case["seconds"], rss / 1024, checks, case["calls"], case["colour_minimum"]
    return case["seconds"], rss / 1024, checks


def in_process(shapes, mode: str, repeats: int) -> float:
    """check_case seconds with the fast layer as the out check's reference (the CLI checks the
    built-in fast layer against the naive loops, which alone take about 1 s on the large case)."""
    case = Case("conv", shapes[0], shapes[1], stride=(1, 1), pad=(1, 1), mode=mode)
    return min(check_case(case, reference=builtin("conv")).seconds for _ in range(repeats))


def best(fn, repeats: int) -> float:
    """Best of `repeats` calls, seconds (the first call warms up and counts too)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def torch_conv(shapes):
    x, w = shapes
    g = torch.Generator().manual_seed(0)
    xt, wt, bt = (torch.randn(s, dtype=torch.float64, generator=g, requires_grad=True)
                  for s in (x, w, (w[0],)))
    return (lambda a, b_, c: TF.conv2d(a, b_, c, stride=1, padding=1)), (xt, wt, bt)


def torch_gradcheck(shapes, fast: bool) -> float:
    f, inputs = torch_conv(shapes)
    start = time.perf_counter()
    assert torch.autograd.gradcheck(f, inputs, fast_mode=fast)
    return time.perf_counter() - start


def torch_fwd_bwd(shapes, repeats: int) -> float:
    f, inputs = torch_conv(shapes)

    def once():
        for t in inputs:
            t.grad = None
        out = f(*inputs)
        out.backward(torch.ones_like(out))

    return best(once, repeats)


def cs231n_loop(shapes) -> float:
    """eval_numerical_gradient_array over x, w and b of the fast conv, as the notebook runs it."""
    rng = np.random.RandomState(231)
    x, w = rng.randn(*shapes[0]), rng.randn(*shapes[1])
    b = rng.randn(shapes[1][0])
    param = {"stride": 1, "pad": 1}
    dout = rng.randn(*layers.conv_forward_fast(x, w, b, param)[0].shape)

    def eval_numerical_gradient_array(f, x, df, h=1e-5):
        grad = np.zeros_like(x)
        it = np.nditer(x, flags=["multi_index"], op_flags=["readwrite"])
        while not it.finished:
            ix = it.multi_index
            oldval = x[ix]
            x[ix] = oldval + h
            pos = f(x).copy()
            x[ix] = oldval - h
            neg = f(x).copy()
            x[ix] = oldval
            grad[ix] = np.sum((pos - neg) * df) / (2 * h)
            it.iternext()
        return grad

    start = time.perf_counter()
    eval_numerical_gradient_array(lambda x: layers.conv_forward_fast(x, w, b, param)[0], x, dout)
    eval_numerical_gradient_array(lambda w: layers.conv_forward_fast(x, w, b, param)[0], w, dout)
    eval_numerical_gradient_array(lambda b: layers.conv_forward_fast(x, w, b, param)[0], b, dout)
    return time.perf_counter() - start


def row(label, ours, peer, peer_label, target):
    ratio = f"{peer / ours:8.1f}x faster" if peer else ""
    print(f"{label:<44} {ours:9.3f} s   {peer_label:<30} {peer:9.3f} s  {ratio}  ({target})"
          if peer else f"{label:<44} {ours:9.3f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-slow", action="store_true")
    args = parser.parse_args()
    threads, source = blas_threads()
    print(f"numpy {np.__version__}, BLAS threads {threads} ({source})")
    if torch is None:
        print("torch is not installed: timing cnncheck only, no ratios")
    else:
        torch.set_num_threads(threads)
        print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, float64 CPU")

    runs, fast_runs = {}, {}
    for name, shapes, mode in (("small dense", SMALL, "dense"), ("large dense", LARGE, "dense"),
                               ("small projection", SMALL, "projection"),
                               ("large projection", LARGE, "projection")):
        results = [cnncheck(shapes, mode) for _ in range(args.repeats)]
        secs, rss, checks = min(results)
        runs[name] = secs
        bad = [c for c in checks if not c[1]]
        fast_ref = fast_runs[name] = in_process(shapes, mode, args.repeats)
        print(f"cnncheck {name}: {secs:.3f} s ({fast_ref:.3f} s with the fast reference), peak {rss:.0f} MiB, "
              f"{'all checks passed' if not bad else f'FAILED {bad}'}; "
              f"{'; '.join(f'{n}: {m}' for n, _, m in checks if n.startswith('d'))}")

    print()
    small_conv = "x (4,3,16,16) w (8,3,3,3)"
    large_conv = "x (8,16,32,32) w (16,16,3,3)"
    if not args.skip_slow:
        loop = cs231n_loop(SMALL)
        row(f"dense {small_conv}", runs["small dense"], loop, "CS231n element loop", "for reference")
    if torch is None:
        for name, secs in runs.items():
            row(f"cnncheck {name}", secs, 0.0, "", "")
        return
    if not args.skip_slow:
        slow = torch_gradcheck(SMALL, fast=False)
        row(f"dense {small_conv}", runs["small dense"], slow, "torch gradcheck (slow mode)",
            f"target >= 500x; {slow / fast_runs['small dense']:.0f}x with the fast reference")
    fb = torch_fwd_bwd(LARGE, 20)
    print(f"{'dense ' + large_conv:<44} {runs['large dense']:9.3f} s   torch forward+backward "
          f"{1e3 * fb:9.3f} ms  = {runs['large dense'] / fb:6.0f}x one fwd+bwd  (target <= 200x; "
          f"{fast_runs['large dense'] / fb:.0f}x with the fast reference)")
    for name, shapes, label in (("small projection", SMALL, small_conv),
                                ("large projection", LARGE, large_conv)):
        fast = min(torch_gradcheck(shapes, fast=True) for _ in range(max(3, args.repeats)))
        print(f"{'projection ' + label:<44} {runs[name]:9.3f} s   torch gradcheck(fast_mode) "
              f"{fast:9.3f} s   = {runs[name] / fast:6.2f}x its time  (target <= 3x; "
              f"{fast_runs[name] / fast:.2f}x with the fast reference)")


if __name__ == "__main__":
    main()
