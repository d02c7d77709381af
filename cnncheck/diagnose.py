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

import io
import os
import re
import tokenize

from cnncheck.evidence import (ERROR, GRADS, Pattern, Sign, analytic_zero, is_shape, nonsquare_input,
                               nonsquare_kernel, numerical_zero, overlapping, ratio, source_line)
from cnncheck.gradcheck import CaseResult

PY2_DIVISION = ("Python 2 `/` gives a float in Python 3: use `//` for sizes and indices, "
                "e.g. H_out = 1 + (H + 2 * pad - HH) // stride")
REMOVED_NUMPY = {  # name -> (removed in, replacement)
    "int": ("1.24", "int"), "float": ("1.24", "float"), "bool": ("1.24", "bool"),
    "object": ("1.24", "object"), "str": ("1.24", "str"), "long": ("1.24", "int"),
    "unicode": ("1.24", "str"), "complex": ("1.24", "complex"),
    "float_": ("2.0", "np.float64"), "complex_": ("2.0", "np.complex128"),
    "asscalar": ("1.23", "a.item()"), "product": ("2.0", "np.prod"),
    "cumproduct": ("2.0", "np.cumprod"), "alltrue": ("2.0", "np.all"),
    "sometrue": ("2.0", "np.any"), "NaN": ("2.0", "np.nan"), "Inf": ("2.0", "np.inf"),
    "row_stack": ("2.0", "np.vstack"), "in1d": ("2.0", "np.isin"),
}
PYTHON2_NAMES = {"xrange": "range", "raw_input": "input", "unicode": "str", "basestring": "str",
                 "long": "int", "unichr": "chr", "reduce": "functools.reduce",
                 "izip": "zip", "imap": "map"}


def _numpy_hint(m):
    name = m.group(1)
    if name not in REMOVED_NUMPY:
        return None
    version, use = REMOVED_NUMPY[name]
    return f"np.{name} was removed in numpy {version}: use {use}"


# (pattern, hint or function of the match): first match wins
ERROR_HINTS = [
    (r"Missing parentheses in call to 'print'", "Python 2 print statement: use print(...)"),
    (r"Missing parentheses in call to 'exec'", "Python 2 exec statement: use exec(...)"),
    (r"multiple exception types must be parenthesized", "Python 2 `except E, e:`: use `except E as e:`"),
    (r"inconsistent use of tabs and spaces", "tabs and spaces mixed in the indentation: use spaces only"),
    (r"name '(\w+)' is not defined",
     lambda m: f"{m.group(1)} is Python 2: use {PYTHON2_NAMES[m.group(1)]}" if m.group(1) in PYTHON2_NAMES
     else "the Cython extension is not built: cd cs231n && python setup.py build_ext --inplace"
     if "cython" in m.group(1) else None),
    (r"module 'numpy' has no attribute '(\w+)'", _numpy_hint),
    (r"module 'numpy.lib' has no attribute 'pad'", "np.lib.pad was removed: use np.pad"),
    (r"'float' object cannot be interpreted as an integer", PY2_DIVISION),
    (r"slice indices must be integers", PY2_DIVISION),
    (r"Cannot cast array data from dtype\('float\d*'\) to dtype\('u?int\d*'\)", PY2_DIVISION),
    (r"only (0-dimensional|length-1) arrays can be converted to Python scalars",
     "`int()` of a 1-element array was allowed before NumPy 2 and is an error now: "
     "use `row[0]` or `.item()`"),
    (r"only integers, slices .* are valid indices", PY2_DIVISION),
    (r"No module named '(past|future)'",
     "`past` and `future` come from the `future` package: pip install future (or use range for xrange)"),
    (r"No module named '[\w.]*im2col_cython'",
     "the Cython extension is not built: cd cs231n && python setup.py build_ext --inplace"),
    (r"'dict' object has no attribute '(iteritems|itervalues|iterkeys|has_key)'",
     lambda m: f"dict.{m.group(1)} is Python 2: use "
               + ("`key in d`" if m.group(1) == "has_key" else f"d.{m.group(1)[4:]}()")),
    (r"cannot access local variable '(\w+)' where it is not associated with a value",
     lambda m: f"`{m.group(1)}` is assigned only on some paths (an `if` with no `else`?)"),
]


def relative_import_hint(name: str, folder: str, package: str) -> str | None:
    """The Python 2 implicit relative import `import name` from a file in `folder`, inside
    `package` (dotted, "" for none): a hint when name.py (or a package name/) sits in folder."""
    top = name.split(".")[0]
    if not package or not (os.path.isfile(os.path.join(folder, top + ".py"))
                           or os.path.isfile(os.path.join(folder, top, "__init__.py"))):
        return None
    return f"Python 2 implicit relative import: use `from . import {top}` (or `from {package} import {top}`)"


def error_hint(message: str) -> str | None:
    """A fix for an error message that names its own cause, else None."""
    for pattern, hint in ERROR_HINTS:
        m = re.search(pattern, message)
        if m:
            found = hint(m) if callable(hint) else hint
            if found:
                return found
    return None


# -- Python 2 habits in the source: all of them at once, not one symptom per run -------------
HABIT_FIX = {"xrange": "range", "`/` for a size": "//", ".iteritems()": ".items()",
             ".itervalues()": ".values()", ".iterkeys()": ".keys()", ".has_key()": "`in`"}
FLOORING = {"int", "floor", "ceil", "round"}  # a `/` inside these calls is meant as division


def _operand(tokens: list, i: int) -> tuple[str, int]:
    """The simple operand starting at tokens[i] (name, .attr, ['key'] ...): (its text, end)."""
    words = []
    while i < len(tokens) and (tokens[i].type in (tokenize.NAME, tokenize.STRING)
                               or tokens[i].string in (".", "[", "]")):
        words.append(tokens[i].string)
        i += 1
    return "".join(words), i


def _size_division(tokens: list, i: int) -> bool:
    """Is the `/` at tokens[i] an output size: `... / stride`, or `1 + (A - B) / X` or
    `(A - B) / X + 1` with any simple operand X?"""
    right, end = _operand(tokens, i + 1)
    if not right:
        return False
    if right == "S" or "stride" in right.lower():
        return True
    if tokens[i - 1].string != ")":
        return False
    depth, k = 0, i - 1
    while k >= 0:  # back to the matching "("
        depth += {")": 1, "(": -1}.get(tokens[k].string, 0)
        if depth == 0:
            break
        k -= 1
    group = {t.string for t in tokens[k:i]}
    before = [t.string for t in tokens[max(k - 2, 0):k]]
    after = [t.string for t in tokens[end:end + 2]]
    return "-" in group and (before == ["1", "+"] or after == ["+", "1"])


def python2_habits(source: str) -> dict[str, list[int]]:
    """{habit: line numbers} for Python 2 habits that load fine in Python 3 and fail at run
    time: xrange (unless the file defines or imports it), dict.iteritems() and its kin, and a
    `/` computing an output size (`1 + (H + 2 * pad - HH) / stride`, `(H - ph) / s + 1`) that
    is not floored: neither inside int()/floor() nor assigned to a name later given to int()."""
    try:
        tokens = [t for t in tokenize.generate_tokens(io.StringIO(source).readline)
                  if t.type not in (tokenize.COMMENT, tokenize.NL)]
    except (tokenize.TokenError, SyntaxError):
        tokens = []
    found, divisions, defines_xrange, calls, line_start = {}, [], False, [], 0
    for i, t in enumerate(tokens):
        prev = tokens[i - 1] if i else None
        if t.type in (tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT):
            calls, line_start = [], i + 1
        elif t.string == "(":
            calls.append(prev.string if prev is not None and prev.type == tokenize.NAME else "")
        elif t.string == ")" and calls:
            calls.pop()
        elif t.string == "xrange" and (prev is None or prev.string != "."):
            nxt = tokens[i + 1].string if i + 1 < len(tokens) else ""
            defines_xrange |= nxt == "=" or tokens[line_start].string in ("from", "import", "def")
            found.setdefault("xrange", []).append(t.start[0])
        elif f".{t.string}()" in HABIT_FIX and prev is not None and prev.string == ".":
            found.setdefault(f".{t.string}()", []).append(t.start[0])
        elif t.string == "/" and not FLOORING & set(calls) and _size_division(tokens, i):
            target = tokens[line_start].string if tokens[line_start + 1].string == "=" else ""
            divisions.append((t.start[0], target))
    floored = {tokens[i + 2].string for i in range(len(tokens) - 3)  # h_out = int(h_out) later
               if tokens[i].string in FLOORING and tokens[i + 1].string == "(" and tokens[i + 3].string == ")"}
    lines = [line for line, target in divisions if target not in floored]
    if lines:
        found["`/` for a size"] = lines
    if defines_xrange:
        found.pop("xrange", None)
    return found


def habits_note(filename: str, source: str) -> str | None:
    """'Python 2 habits in layers.py: xrange (line 12), `/` for a size (line 40): use range
    and //', or None when the source shows none."""
    found = python2_habits(source)
    if not found:
        return None
    lines = dict(sorted(((h, sorted(set(ls))) for h, ls in found.items()), key=lambda hl: hl[1][0]))
    more = {h: f" and {len(ls) - 4} more" if len(ls) > 4 else "" for h, ls in lines.items()}
    where = ", ".join(f"{h} (line{'s' if len(ls) > 1 else ''} {', '.join(map(str, ls[:4]))}{more[h]})"
                      for h, ls in lines.items())
    fixes = [HABIT_FIX[h] for h in lines]
    use = ", ".join(fixes[:-1]) + " and " + fixes[-1] if len(fixes) > 1 else fixes[0]
    return f"Python 2 habits in {os.path.basename(filename)}: {where}: use {use}"


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
        return f"{c.name} has the wrong sign everywhere: a `-=` where `+=` belongs, or a minus too many?"
    if abs(k - r.case.x_shape[0]) < 1e-6 * k:
        return (f"{c.name} is N times the numerical gradient everywhere (N, the batch size): a sum "
                "over the batch counted once per sample?")
    return (f"{c.name} is {k:.4g} times the numerical gradient everywhere: a factor too many or missing "
            f"(a sum counted once per sample, a mean for a sum, a division by the window size?)")


NOT_LINEAR = re.compile(r"not linear in dout \((\w+)")
SIGNS = [
    Sign("all zeros", analytic_zero,
         lambda r, c: f"{c.name} is all zeros: is the gradient written into a local name "
                      f"(`window = window + ...`) instead of into {c.name}?"),
    Sign("forward ignores its input", numerical_zero,
         lambda r, c: f"the numerical {c.name} is zero: your forward's output does not change when "
                      f"{PARAM_OF[c.name]} does (does it read {PARAM_OF[c.name]}, or an array computed "
                      f"before the call?)", backward=False),
    Sign("same output", lambda r, c: "same output for a different" in (c.message or ""),
         "your forward ignores changes to its input: does it read x (and w, b), or an array "
         "computed before the call?", grads=("out",), backward=False),
    Sign("factor", lambda r, c: ratio(c) is not None, _factor),
    Sign("not linear in dout", lambda r, c: bool(NOT_LINEAR.search(c.message or "")),
         lambda r, c: (f"{NOT_LINEAR.search(c.message).group(1)} does not follow dout: is `* dout[...]` "
                       "missing from its update, or something added that does not depend on dout?"),
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
    for layer in dict.fromkeys(r.case.layer for r in results):
        _Hints([r for r in results if r.case.layer == layer], source).attach()
    return results


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
        self.signed = set()  # (case, quantity) a sign explained

    def add(self, rid: int, text: str, line: str | None = None, within: tuple = ()) -> None:
        where = source_line(self.source, line, within)
        text = f"{text} (see {where})" if where else text
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
                where = "the forward" if q == "out" else q  # "fails only at stride > 1, in dw: ..."
                for rid in cases:
                    self.add(rid, p.hint if q == ERROR else p.hint.replace(": ", f", in {where}: ", 1), p.line, p.within)
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
    grid = np.asarray(error_map, dtype=np.float64)
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
    levels = np.rint(grid / top * (len(SHADES) - 1)).astype(int)  # under 1/8 of the top: blank
    return ["".join(SHADES[k] * 2 for k in row) for row in levels]
