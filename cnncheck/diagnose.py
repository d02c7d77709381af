"""Diagnosis from evidence: a hint where the failures point to a known bug class, a heat map.

Three kinds of evidence, combined over the file so that two bugs give two hints. An error
message can name its cause outright (Python 2 habits, numpy names removed in 1.24 and 2.0):
`error_hint` maps it to a fix. A failing check can show its cause on its own (a `Sign`: a dx
with a zero dimension at pad 0, a gradient that stays all zeros, a numerical gradient of zero,
errors only on the border). And a quantity that fails exactly in the cases with pad 0, or
exactly those with stride > 1, has few explanations (a `Pattern`). Rules shared by every
layer live here; a layer's own come from its record (`case.kind.hints`). No evidence, no hint.
"""
from __future__ import annotations

import os
import re

from cnncheck.evidence import (ERROR, GRADS, Pattern, Sign, analytic_zero, is_shape, nonsquare_input,
                               nonsquare_kernel, numerical_zero, overlapping, ratio, source_line)
from cnncheck.gradcheck import CaseResult, Check
from cnncheck.i18n import msg, scoped
from cnncheck.protocols.hints import error_hint, python2_habits  # noqa: F401  (re-exported)

# -- evidence: each failing check's own, then the pattern over the file -----------------------
HW = "height and width mixed up (W' computed from H or HH, a window or argmax unravelled with the wrong size)"
SEP = "; "  # between the hints of one case (no hint text holds it)
PARAM_OF = {"dx": "x", "dw": "w", "db": "b"}

# Shared by every layer kind; a kind's own rules come from its record (case.kind.hints).
PATTERNS = [
    Pattern("overlap", overlapping,
            "fails only where windows overlap (stride < window): backward assigns (`dx[...] = ...`) "
            "where it must accumulate (`+=`)", grads=GRADS),
    Pattern("stride", lambda c: max(c.stride) > 1,
            "fails only at stride > 1: the stride is left out of the window indexing "
            "(use `i * stride`, not `i`)"),
    Pattern("non-square input", nonsquare_input, "fails only on non-square inputs: " + HW),
    Pattern("non-square kernel", nonsquare_kernel, "fails only with non-square kernels or pools: " + HW),
    Pattern("non-square", lambda c: nonsquare_input(c) or nonsquare_kernel(c),
            "fails only on non-square cases: " + HW),
    Pattern("non-square output", lambda c: c.out_hw()[0] != c.out_hw()[1],
            "fails only where the output is not square (H' != W'): out_h used where out_w is needed, "
            "e.g. in a flat index `i * out_h + j`"),
]


def _factor(r, c) -> str:
    k = ratio(c)
    if abs(k + 1) < 1e-6:
        return msg("{q} has the wrong sign everywhere: a `-=` where `+=` belongs, or a minus too many?", q=c.name)
    if abs(k - r.case.x_shape[0]) < 1e-6 * k:
        return msg("{q} is N times the numerical gradient everywhere (N, the batch size): a sum "
                   "over the batch counted once per sample?", q=c.name)
    return msg("{q} is {k} times the numerical gradient everywhere: a factor too many or missing "
               "(a sum counted once per sample, a mean for a sum, a division by the window size?)", q=c.name, k=f"{k:.4g}")


NOT_LINEAR = re.compile(r"not linear in dout \((\w+)")
SIGNS = [
    Sign("numpy 2", lambda r, c: bool(c is not None and c.message), lambda r, c: c.message,
         grads=("numpy 2",), backward=False),  # what NumPy 2 refuses, its line and fix (numpy2_findings)
    Sign("all zeros", analytic_zero,
         lambda r, c: msg("{q} is all zeros: is the gradient written into a local name "
                          "(`window = window + ...`) instead of into {q}?", q=c.name)),
    Sign("forward ignores its input", numerical_zero,
         lambda r, c: msg("the numerical {q} is zero: your forward's output does not change when "
                          "{p} does (does it read {p}, or an array computed before the call?)",
                          q=c.name, p=PARAM_OF[c.name]), backward=False),
    Sign("same output", lambda r, c: "same output for a different" in (c.message or ""),
         "your forward ignores changes to its input: does it read x (and w, b), or an array "
         "computed before the call?", grads=("out",), backward=False),
    Sign("factor", lambda r, c: ratio(c) is not None, _factor),
    Sign("not linear in dout", lambda r, c: bool(NOT_LINEAR.search(c.message or "")),
         lambda r, c: msg("{q} does not follow dout: is `* dout[...]` missing from its update, or something "
                          "added that does not depend on dout?", q=NOT_LINEAR.search(c.message).group(1)),
         grads=("contract",)),
]


def _failures(r: CaseResult):
    """(quantity, check) for every failing check of a case, (quantity, None) for its error:
    a forward's error counts as `out`, any other as `error`. A broken contract (dout or x
    changed in place) leaves the other checks no evidence."""
    broke = any(c.name == "contract" and "in place" in (c.message or "") for c in r.checks)
    for c in r.checks:
        if not c.passed and (c.name == "contract" or not broke):
            yield c.name, c
    if r.error:
        yield ("out" if "forward" in r.error and "backward" not in r.error else ERROR), None


def _forward_ok(r: CaseResult) -> bool:
    return all(c.passed for c in r.checks if c.name == "out") and not (
        r.error and "forward" in r.error and "backward" not in r.error)


def _groups(runs: list[CaseResult]):
    """(quantity, cases where it was checked, cases where it failed) for each way a quantity
    can fail: its values, its shape, an error (errors grouped by their text, digits aside).
    A gradient's values count only where the forward passed: a forward fault is not the
    backward's."""
    quantities = dict.fromkeys(c.name for r in runs for c in r.checks)
    for q in quantities:
        have = [(r, next(c for c in r.checks if c.name == q)) for r in runs if any(c.name == q for c in r.checks)]
        yield q, {id(r) for r, _ in have}, {id(r) for r, c in have if not c.passed and is_shape(c)}
        values = [(r, c) for r, c in have if not is_shape(c) and (q == "out" or _forward_ok(r))]
        yield q, {id(r) for r, _ in values}, {id(r) for r, c in values if not c.passed}
    texts, raised = {}, {}
    for r in runs:
        for q, c in _failures(r):
            if c is None:
                texts.setdefault((q, re.sub(r"\d+", "#", r.error)), set()).add(id(r))
                raised[id(r)] = q
    for (q, _), failing in texts.items():
        yield q, {id(r) for r in runs}, failing
    if ERROR in raised.values():  # every error of the backward, whatever its text
        yield ERROR, {id(r) for r in runs}, {rid for rid, q in raised.items() if q == ERROR}
    if "out" in raised.values():  # out failing in its values here, raising there
        have = [r for r in runs if raised.get(id(r)) == "out" or any(c.name == "out" for c in r.checks)]
        yield "out", {id(r) for r in have}, {id(r) for r in have if not _forward_ok(r)}


def _explain(patterns: list, q: str, runs: list, universe: set, failing: set) -> list:
    """The pattern whose cases (among those checked) are exactly the failing ones; else the one
    pair of patterns whose cases together are (two bugs in one quantity); else none. As
    (pattern, its failing cases) pairs."""
    if not failing or failing == universe:
        return []
    sets = []
    for p in patterns:
        s = {id(r) for r in runs if id(r) in universe and p.holds(r.case)}
        if q in p.grads and s and s != universe:
            sets.append((p, frozenset(s)))
    exact = [(p, s) for p, s in sets if s == failing]
    if exact:
        return exact[:1]
    inside = [(p, s) for p, s in sets if s <= failing]
    pairs = {}
    for i, (p, s) in enumerate(inside):
        for p2, s2 in inside[i + 1:]:
            if s | s2 == failing and not (s <= s2 or s2 <= s):
                pairs.setdefault(frozenset((s, s2)), [(p, s), (p2, s2)])
    return next(iter(pairs.values())) if len(pairs) == 1 else []


def source_of(results: list[CaseResult]) -> str | None:
    """The student's file, as an error names it ("at layers.py:42", "(layers.py:22)")."""
    for r in results:
        m = re.search(r"([^\s()'\"]+\.py):\d+", r.error or "")
        if m and os.path.isfile(m.group(1)):
            return m.group(1)
    return None


def diagnose(results: list[CaseResult], source: str | None = None) -> list[CaseResult]:
    """Attach CaseResult.hint to failed cases: every bug class their own evidence or the
    file's pattern of failures points to, joined by SEP. `source`: the student's file, to
    point at its lines (else the file an error names)."""
    source = source or source_of(results)
    numpy2_findings(results)
    for layer in dict.fromkeys(r.case.layer for r in results):
        _Hints([r for r in results if r.case.layer == layer], source).attach()
    helper_hints(results)
    learner_indices(results)
    return results


def learner_indices(results: list[CaseResult]) -> None:
    """The worst elements' indices in the layout of the user's protocol (the Deep Learning
    Specialization's A_prev[n, h, w, c], W[i, j, c, f], b[0, 0, 0, f]), once the hints have read
    them in cnncheck's."""
    for r in results:
        spec = r.case.kind.protocols.get(r.case.protocol)
        for c in r.checks if hasattr(spec, "learner_shape") else ():
            for w in c.worst if c.name in ("out", *GRADS) else ():
                if "index" in w and not w.get("learner"):
                    index = list(spec.learner_shape(c.name, tuple(w["index"])))
                    w["index"], w["learner"] = [0, 0, 0, index[-1]] if c.name == "db" else index, True


def helper_hints(results: list[CaseResult]) -> None:
    """A helper the adapter judged wrong on its own (`zero_pad`, `distribute_value`: a note of
    protocols.dlai): the first hint of each failing case that heard of it."""
    from cnncheck.protocols.dlai import HELPER
    for r in results:
        said = [n for n in r.notes if HELPER in n]
        if said and not r.passed:
            r.notes = [n for n in r.notes if HELPER not in n]
            r.hint = SEP.join(dict.fromkeys([*said, *hints_of(r)]))


NUMPY2 = "NumPy2Warning: "  # what a note of cnncheck.sandbox.numpy2's stand-ins holds


def numpy2_findings(results: list[CaseResult]) -> None:
    """What NumPy 2 refuses and the stand-ins let run (`float(b)` of a (1, 1, 1) array, np.float,
    ...): a failing check of its own ("numpy 2") in each case it happened, naming the line and
    the fix; the other checks judge the maths behind it."""
    for r in results:
        found = [n for n in r.notes if NUMPY2 in n]
        if found and not any(c.name == "numpy 2" for c in r.checks):
            r.notes = [n for n in r.notes if NUMPY2 not in n]
            text = " | ".join(dict.fromkeys(n.replace("warning at ", "", 1).replace(NUMPY2, "") for n in found))
            r.checks.append(Check("numpy 2", False, method="runs under NumPy 2", message=text))


class _Hints:
    """The hints of one layer's cases: signs first (the layer's own, then the shared ones),
    then patterns where signs did not already say it, then fallback signs where nothing spoke."""

    def __init__(self, runs: list[CaseResult], source: str | None):
        self.runs, self.source = runs, source
        case = runs[0].case
        own = getattr(case.kind.protocols.get(case.protocol), "hints", None) or case.kind.hints
        self.signs = [h for h in own if isinstance(h, Sign)] + SIGNS
        self.patterns = [h for h in own if isinstance(h, Pattern)] + PATTERNS
        self.found = {id(r): [r.hint] if r.hint else [] for r in runs}
        self.names = getattr(case.kind.protocols.get(case.protocol), "names", {})  # the user's: dx is dA_prev
        self.signed = set()  # (case, quantity) a sign explained

    def add(self, rid: int, text: str, line: str | None = None, within: tuple = ()) -> None:
        where = source_line(self.source, line, within)
        text = msg("{hint} (see {where})", hint=text, where=where) if where else text
        if text not in self.found[rid]:
            self.found[rid].append(text)

    def sign(self, r: CaseResult, fallback: bool) -> None:
        for q, c in _failures(r):
            s = next((s for s in self.signs if s.fallback == fallback and q in s.grads
                      and (c is not None or ERROR in s.grads)
                      and (not s.backward or _forward_ok(r)) and s.test(r, c)), None)
            if s:
                self.add(id(r), s.text(r, c), s.line, s.within)
                self.signed.add((id(r), q))

    def attach(self) -> None:
        for r in self.runs:
            self.sign(r, fallback=False)
            if r.error and (h := error_hint(r.error)):
                self.add(id(r), h)
        for q, universe, failing in _groups(self.runs):
            for p, cases in _explain(self.patterns, q, self.runs, universe, failing):
                if all((rid, q) in self.signed for rid in cases):
                    continue  # their own evidence said it already
                where = msg("the forward") if q == "out" else self.names.get(q, q)  # "..., in dw: ..."
                for rid in cases:
                    self.add(rid, p.hint if q == ERROR else scoped(p.hint, where), p.line, p.within)
        for r in self.runs:
            if not self.found[id(r)]:
                self.sign(r, fallback=True)
            r.hint = SEP.join(self.found[id(r)]) or None


def hints_of(r: CaseResult) -> list[str]:
    """A case's hints, one by one."""
    return r.hint.split(SEP) if r.hint else []


# -- the heat map --------------------------------------------------------------------------
SHADES = " ░▒▓█"
MAX_CELLS = 24  # rows and columns shown; larger grids are pooled by their maximum


def heat_map(error_map, cells: int | None = None) -> list[str]:
    """Rows of shade characters for |a - n| over the spatial grid, darkest = largest; grids
    larger than `cells` (default MAX_CELLS) a side are pooled."""
    import numpy as np

    cells = cells or MAX_CELLS
    grid = np.asarray(error_map, dtype=np.float64)  # a figure JSON could not hold (null) is NaN here
    bad = ~np.isfinite(grid)  # non-finite errors shade darkest
    grid = np.where(bad, 0.0, grid)
    grid[bad] = max(float(grid.max(initial=0.0)), 1.0)
    for axis in (0, 1):  # pool large grids block-wise, keeping each block's maximum
        step = -(-grid.shape[axis] // cells)
        if step > 1:
            pad = [(0, 0), (0, 0)]
            pad[axis] = (0, -grid.shape[axis] % step)
            grid = np.pad(grid, pad)
            shape = (-1, step, grid.shape[1]) if axis == 0 else (grid.shape[0], -1, step)
            grid = grid.reshape(shape).max(axis=axis + 1)
    top = grid.max(initial=0.0)
    if top <= 0:
        return []
    levels = np.clip(np.rint(grid / top * (len(SHADES) - 1)), 0, len(SHADES) - 1).astype(int)  # under 1/8: blank
    return ["".join(SHADES[k] * 2 for k in row) for row in levels]
