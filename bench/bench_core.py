"""Time cnncheck's fast layers against PyTorch's CPU float64 layers, forward + backward.

    python bench/bench_core.py [--repeats 20]

Both libraries run in this process on the same arrays; each figure is the best of
`repeats` runs. torch gets as many threads as numpy's BLAS (threadpoolctl when installed,
else OMP_NUM_THREADS / OPENBLAS_NUM_THREADS / the CPU count). torch is optional.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cnncheck import layers  # noqa: E402
from cnncheck.sandbox import process as worker  # noqa: E402

worker.keep_freed_memory()  # every bench process keeps freed memory, as the command line does

try:
    import torch
    import torch.nn.functional as TF
except ImportError:
    torch = None


def blas_threads() -> tuple[int, str]:
    """Threads numpy's BLAS uses, and how we know."""
    try:
        from threadpoolctl import threadpool_info

        counts = [p["num_threads"] for p in threadpool_info() if p.get("user_api") == "blas"]
        if counts:
            return max(counts), "threadpoolctl"
    except ImportError:
        pass
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var]), var
    return os.cpu_count() or 1, "cpu count (OpenBLAS default)"


ROUNDS = 3


def best_ms(fns, repeats: int) -> list[float]:
    """Best time of each function in ms over ROUNDS rounds of `repeats` calls each.

    The functions take turns by blocks, not call by call: numpy's BLAS and torch each keep
    a thread pool that spins for a while after returning, and on a small machine calls
    interleaved one by one would mostly time the two pools fighting over the cores. The
    first round doubles as warm-up (threads, torch kernels, and glibc's malloc, which
    serves big arrays from fresh, page-faulting memory until it has seen that size freed).
    """
    best = [float("inf")] * len(fns)
    for _ in range(ROUNDS):
        for k, fn in enumerate(fns):
            for _ in range(repeats):
                start = time.perf_counter()
                fn()
                best[k] = min(best[k], time.perf_counter() - start)
    return [1e3 * t for t in best]


# -- the cases: (label, cnncheck fwd+bwd, torch fwd+bwd or None) ----------------------


def conv_case(x_shape, w_shape, stride, pad, rng, dilation=1, groups=1):
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    b = rng.standard_normal(w_shape[0])
    conv_param = {"stride": stride, "pad": pad, "dilation": dilation, "groups": groups}
    out, _ = layers.conv_forward_fast(x, w, b, conv_param)
    dout = rng.standard_normal(out.shape)

    def ours():
        _, cache = layers.conv_forward_fast(x, w, b, conv_param)
        layers.conv_backward_fast(dout, cache)

    theirs = None
    if torch is not None:
        xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
        dt = torch.tensor(dout)

        def theirs():
            xt.grad = wt.grad = bt.grad = None
            TF.conv2d(xt, wt, bt, stride=stride, padding=pad, dilation=dilation, groups=groups).backward(dt)

    extra = (f" d{dilation}" if dilation != 1 else "") + (f" g{groups}" if groups != 1 else "")
    label = f"conv x{x_shape} w{w_shape} s{stride} p{pad}{extra}"
    return label, ours, theirs


def max_pool_case(x_shape, pool, stride, rng):
    x = rng.standard_normal(x_shape)
    pool_param = {"pool_height": pool, "pool_width": pool, "stride": stride}
    out, _ = layers.max_pool_forward_fast(x, pool_param)
    dout = rng.standard_normal(out.shape)

    def ours():
        _, cache = layers.max_pool_forward_fast(x, pool_param)
        layers.max_pool_backward_fast(dout, cache)

    theirs = None
    if torch is not None:
        xt, dt = torch.tensor(x, requires_grad=True), torch.tensor(dout)

        def theirs():
            xt.grad = None
            TF.max_pool2d(xt, pool, stride).backward(dt)

    label = f"max_pool x{x_shape} {pool}x{pool} s{stride}"
    return label, ours, theirs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()

    threads, source = blas_threads()
    print(f"numpy {np.__version__}, BLAS threads {threads} ({source}), "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}")
    if torch is None:
        print("torch is not installed: timing cnncheck only")
    else:
        torch.set_num_threads(threads)
        print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, float64 CPU")

    rng = np.random.default_rng(0)
    cases = [
        conv_case((8, 16, 32, 32), (16, 16, 3, 3), 1, 1, rng),
        conv_case((100, 3, 31, 31), (25, 3, 3, 3), 2, 1, rng),  # the notebook's timing case
        conv_case((8, 16, 32, 32), (16, 16, 3, 3), 1, 2, rng, dilation=2),  # dilated
        conv_case((8, 16, 32, 32), (16, 1, 3, 3), 1, 1, rng, groups=16),  # depthwise
        max_pool_case((8, 16, 32, 32), 2, 2, rng),
        max_pool_case((8, 16, 32, 32), 3, 1, rng),
        max_pool_case((100, 3, 32, 32), 2, 2, rng),  # the notebook's timing case
    ]
    width = max(len(label) for label, _, _ in cases)
    print(f"\n{'forward + backward':<{width}}  {'cnncheck ms':>11}  {'torch ms':>9}  {'ratio':>6}")
    for label, ours, theirs in cases:
        if theirs is None:
            (ours_ms,) = best_ms([ours], args.repeats)
            print(f"{label:<{width}}  {ours_ms:11.3f}  {'-':>9}  {'-':>6}")
        else:
            ours_ms, theirs_ms = best_ms([ours, theirs], args.repeats)
            print(f"{label:<{width}}  {ours_ms:11.3f}  {theirs_ms:9.3f}  {ours_ms / theirs_ms:6.2f}")

if __name__ == "__main__":
    main()
