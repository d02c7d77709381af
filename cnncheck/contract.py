"""Contract checks: what any correct layer does, whatever its numbers.

- forward and backward leave x, w, b and dout unchanged;
- backward gives the same answer twice for the same forward;
- backward is linear in dout: zero dout gives zero gradients,
  backward(2 dout) = 2 backward(dout) and backward(d1 + d2) = backward(d1) + backward(d2),
  each within tolerance * the largest gradient magnitude.
"""
from __future__ import annotations

import numpy as np

from cnncheck.case import Case, make_arrays
from cnncheck.gradcheck import Check, ImplError, backward, forward
from cnncheck.i18n import msg

CRITERION = ("inputs unchanged; backward repeatable and linear in dout: "
             "|g - g'| <= tolerance * max(|g|)")


def _changed(arrays: dict, saved: dict, who: str) -> list[str]:
    return [msg("{who} changed {name} in place", who=who, name=name) for name, a in arrays.items()
            if not np.array_equal(a, saved[name], equal_nan=True)]


def _differs(g: dict, h: dict, scale: dict, tol: float) -> list[str]:
    """Names of the gradients where g and h differ by more than tol * scale."""
    return [n for n in g if g[n].shape != h[n].shape or np.any(
        np.abs(g[n].astype(np.float64) - h[n]) > tol * scale[n])]


def _combine(a: float, g: dict, b: float = 0.0, h: dict | None = None) -> dict:
    return {n: a * g[n].astype(np.float64) + (b * h[n] if h else 0.0) for n in g}


def properties(impl, case: Case) -> list[str]:
    """The contract's violations, one phrase each (empty: the layer keeps the contract)."""
    arrays = make_arrays(case)
    dout = arrays.pop("dout")
    saved = {k: v.copy() for k, v in arrays.items()}
    pristine = dout.copy()
    problems = []
    forward(impl, case, arrays)
    problems += _changed(arrays, saved, "forward")
    g = backward(impl, case, dout)
    problems += _changed({**arrays, "dout": dout}, {**saved, "dout": pristine}, "backward")
    dout = pristine
    scale = {n: max(float(np.abs(v).max(initial=0.0)), np.finfo(v.dtype).tiny)
             for n, v in g.items() if np.issubdtype(v.dtype, np.floating)}
    if len(scale) < len(g):
        return problems + [msg("backward returned gradients that are not floating-point arrays")]
    tol = case.rtol()
    d2 = np.random.RandomState(case.seed + 2).randn(*dout.shape).astype(dout.dtype)
    tests = [  # (what, expected gradients, dout to call backward with)
        (msg("backward gives a different answer when called twice with the same cache"), g, dout.copy()),
        (msg("backward of a zero dout is not zero"), _combine(0.0, g), np.zeros_like(dout)),
        (msg("backward(2 * dout) != 2 * backward(dout): not linear in dout"), _combine(2.0, g), 2 * dout),
        (msg("backward(d1 + d2) != backward(d1) + backward(d2): not linear in dout"),
         _combine(1.0, g, 1.0, backward(impl, case, d2.copy())), dout + d2),
    ]
    for what, want, d in tests:
        bad = _differs(want, backward(impl, case, d), scale, tol * (2 if "d2" in what else 1))
        if bad:
            problems.append(msg("{hint} ({names})", hint=what, names=", ".join(bad)))
    return problems


def check(impl, case: Case) -> Check:
    """The contract as one Check named "contract"; its message lists what is broken."""
    try:
        problems = properties(impl, case)
    except ImplError as e:
        problems = [msg("a call with the same inputs failed: {error}", error=e)]
    return Check("contract", passed=not problems, criterion=CRITERION, noise=0.0,
                 method="unchanged, repeatable, linear",
                 message="; ".join(problems) or None)
