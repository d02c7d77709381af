"""The Taylor test: a step-free verdict on a gradient, from how its residual converges.

For a random direction u and steps h = 0.1, 0.05, ..., with L(p) = sum(f(p) * dout) and g the
analytic gradient,
    r(h) = |L(p + h u) - L(p) - <g, d>|,   d = (p + h u) - p as rounded in the layer's dtype.
A correct gradient makes r shrink like h^2 until rounding takes over; a wrong one leaves the
first-order term, so r shrinks like h (observed order 1). Conv and pooling are piecewise linear:
between kinks L is exactly linear along u, so for a correct gradient r is rounding at every
kink-free step ("exact to rounding"), and for a wrong one r / h is constant (order 1.00).

A step is kink-free when the one-sided slopes agree:
    |L(p + h u) - 2 L(p) + L(p - h u)| <= 2 * floor
Only kink-free steps enter the verdict. Max-pool inputs within 4 * STEPS[-4] of their window's
maximum, in windows holding another such input, are left out of u, so the smallest steps are
kink-free.
floor estimates the rounding error of one evaluation of L, with T = |dout| * sqrt(K) * |f|:
    floor = noise_factor * eps * ||T||_2
and a residual stands above rounding when r > 2 * floor (correct layers measure about 1% of that).
"""
from __future__ import annotations

import math

import numpy as np

STEPS = tuple(0.1 / 2**k for k in range(10))  # 0.1 down to 2e-4, halving
MIN_ORDER = 1.5  # a residual shrinking slower than h^1.5 keeps a first-order error
SEED_OFFSET = 2  # the direction's generator: RandomState(seed + 2), apart from the checker's


def taylor(f, case, gname, analytic, base, dout, T, tied) -> dict:
    """Residuals at STEPS along a random direction, the observed order and a verdict.

    f: the Evaluator (layer forward with one parameter replaced); base, dout, T: float64
    arrays of the output's shape; analytic: the gradient of the parameter behind gname;
    tied(case, p): the elements of p near a max-pool tie (kept out of the direction).
    """
    pname = gname[1:]  # dx -> x
    p = f.arrays[pname]
    p64, g = p.astype(np.float64), np.asarray(analytic, np.float64)
    u = np.random.RandomState(case.seed + SEED_OFFSET).randn(*p.shape)
    if "d" + pname in case.kind.kinks:  # keep the smallest steps kink-free
        u *= ~tied(case.with_(h=STEPS[-4]), p64)
    L0 = np.sum(base * dout)
    floor = case.noise_factor * np.finfo(case.dtype).eps * math.sqrt(np.sum(T * T))
    L = lambda q: np.sum(f(pname, q) * dout)  # noqa: E731
    residuals, kinks = [], []
    for h in STEPS:
        up, down = (p64 + h * u).astype(p.dtype), (p64 - h * u).astype(p.dtype)
        Lp, Lm = L(up), L(down)
        residuals.append(float(abs(Lp - L0 - np.sum(g * (up.astype(np.float64) - p64)))))
        kinks.append(bool(abs(Lp - 2 * L0 + Lm) > 2 * floor))
    order, verdict, passed = judge(residuals, kinks, floor)
    return {"steps": list(STEPS), "residuals": residuals, "kinks": kinks, "floor": float(floor),
            "order": order, "verdict": verdict, "passed": passed}


def judge(residuals, kinks, floor) -> tuple[float | None, str, bool]:
    """(observed order, verdict, passed) from the kink-free steps.

    The order of a pair of neighbouring kink-free steps is log(r_i / r_i+1) / log(h_i / h_i+1),
    taken where r_i stands above 2 * floor; the lowest such order is the observed one.
    """
    clean = [i for i, k in enumerate(kinks) if not k]
    if not clean:
        return None, "kinks at every step: no verdict", True
    above = [i for i in clean if residuals[i] > 2 * floor]
    if not above:
        return None, "exact to rounding", True
    orders = [_order(residuals, i) for i in above if i + 1 in clean]
    if not orders:  # only the smallest clean step stands out: compare with its neighbour
        orders = [_order(residuals, i - 1) for i in above if i - 1 in clean]
    if not orders:
        return None, "a lone residual above rounding: no verdict", True
    order = min(orders)
    if order < MIN_ORDER:
        return order, f"order {order:.2f}: a first-order error, the gradient is wrong", False
    return order, f"order {order:.2f}", True


def _order(residuals, i) -> float:
    ratio = residuals[i] / max(residuals[i + 1], np.finfo(np.float64).tiny)
    return float(math.log(ratio) / math.log(STEPS[i] / STEPS[i + 1]))


def add_taylor(chk, *args) -> None:
    """Run the Taylor test for a gradient check; its verdict joins the check's."""
    chk.taylor = taylor(*args)
    if chk.passed and not chk.taylor["passed"]:
        chk.message = (f"Taylor test: the residual shrinks like h^{chk.taylor['order']:.2f}"
                       " along a random direction (a correct gradient is exact to rounding)")
    chk.passed = chk.passed and chk.taylor["passed"]


def summary(t: dict | None) -> str:
    """A few words for the table: 'exact', 'order 1.00 FAIL', ..."""
    if t is None:
        return ""
    if t["order"] is None:
        return "exact" if t["verdict"].startswith("exact") else "no verdict"
    return f"order {t['order']:.2f}" + ("" if t["passed"] else " FAIL")
