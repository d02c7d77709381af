"""Hint rules: the bug classes a failing check's evidence points to.

Two kinds of rule, both plain records so that a layer module can define its own and pass them
as `hints=` to its LayerKind (diagnose reads `case.kind.hints` plus the shared rules there):

- a `Sign` reads one failing check on its own: the shape it returned, whether its analytic or
  numerical side is all zeros, a constant ratio between them, where its errors sit on the grid,
  the case's geometry, the error's text. Two bugs leave two signs.
- a `Pattern` reads the whole file: a quantity (dx, dw, ...) fails exactly in the cases where
  the pattern's geometry holds (all pad-0 cases, all stride > 1 cases) and passes elsewhere.

This module imports nothing from cnncheck, so layer modules can import it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

GRADS = ("dx", "dw", "db")
ALL_ZEROS = "is all zeros"  # a check's message that saw the whole gradient zero
ERROR = "error"  # the quantity of a case's error (the layer raised or returned nonsense)


@dataclass(frozen=True)
class Sign:
    """A bug class one failing check shows on its own: `test(result, check)` (check None for
    the case's error). `line`: a regex for the student's source line the bug sits on."""

    name: str
    test: Callable
    hint: str | Callable  # or (result, check) -> str
    grads: tuple = GRADS  # the quantities it reads (out, dx, dw, db, error)
    line: str | None = None
    backward: bool = True  # it blames the backward: not read where the forward is wrong
    fallback: bool = False  # read only where nothing else gave the case a hint
    within: tuple = ()  # functions to look for `line` in, in order (none: the whole file)

    def text(self, r, c) -> str:
        return self.hint(r, c) if callable(self.hint) else self.hint


@dataclass(frozen=True)
class Pattern:
    """A bug class known by where it fails: a quantity fails exactly in the cases where
    `holds(case)` is true, and passes in some where it is not."""

    name: str
    holds: Callable
    hint: str
    grads: tuple = ("out", *GRADS, ERROR)  # the quantities it can explain
    line: str | None = None
    within: tuple = ()  # functions to look for `line` in, in order (none: the whole file)


# -- what one check shows ----------------------------------------------------------------
def shape_of(c) -> tuple | None:
    """The shape a wrong-shaped gradient had, from its message ("dx has shape (2, 3, 0, 0), ...")."""
    m = re.search(r"has shape \(([\d, ]*)\)", (c.message or "") if c is not None else "")
    return tuple(int(v) for v in m.group(1).replace(" ", "").split(",") if v) if m else None


def is_shape(c) -> bool:
    """A check that failed on the shape of what the layer returned, not on its values."""
    return c.method == "shape" or (c.message or "").startswith("output shape")


def _sides(c) -> list[tuple[float, float]]:
    return [(w["analytic"], w["numerical"]) for w in c.worst]


def mostly_failed(c) -> bool:
    return c.elements > 0 and c.failed >= c.elements / 2


def analytic_zero(r, c) -> bool:
    """Every worst element's analytic value is 0 while the numerical one is not, and most
    elements fail (or the check saw it whole): a gradient that stays all zeros."""
    pairs = _sides(c) if c is not None and not is_shape(c) else []
    whole = mostly_failed(c) or ALL_ZEROS in (c.message or "") if pairs else False
    return whole and all(a == 0 and n != 0 for a, n in pairs)


def numerical_zero(r, c) -> bool:
    """The numerical side is 0 where the analytic one is not: the forward ignores the input
    (unless the case broke its contract: a backward that zeroes dout zeroes the numerical side)."""
    broke = any(k.name == "contract" and "in place" in (k.message or "") for k in r.checks)
    pairs = _sides(c) if c is not None and not is_shape(c) and not broke else []
    return bool(pairs) and mostly_failed(c) and all(n == 0 and a != 0 for a, n in pairs)


def ratio(c) -> float | None:
    """analytic / numerical when every worst element has the same ratio (not 1), else None."""
    pairs = _sides(c) if c is not None and not is_shape(c) and mostly_failed(c) else []
    if len(pairs) < 2 or any(n == 0 for _, n in pairs):
        return None
    ratios = [a / n for a, n in pairs]
    k = ratios[0]
    if abs(k - 1) < 1e-3 or any(abs(q - k) > 1e-6 * abs(k) for q in ratios):
        return None
    return k


def border_only(r, c) -> bool:
    """Errors only in the outer ring of the (H, W) error map (as wide as the padding, at
    least 1), none inside it."""
    grid = c.error_map if c is not None else None
    if not grid:
        return False
    k = max(1, *r.case.padding)
    rows, cols = len(grid), len(grid[0])
    if rows <= 2 * k or cols <= 2 * k:
        return False
    top = max(max(row) for row in grid)
    inner = max(max(row[k:cols - k]) for row in grid[k:rows - k])
    return top > 0 and inner <= 1e-6 * top


def overlapping(case) -> bool:
    return any(s < k for s, k in zip(case.stride, case.kernel))


def nonsquare_input(case) -> bool:
    return case.x_shape[2] != case.x_shape[3]


def nonsquare_kernel(case) -> bool:
    return case.kernel[0] != case.kernel[1]


def source_line(path: str | None, pattern: str | None, within: tuple = ()) -> str | None:
    """'file.py:LINE: `text`' for the first line of the student's file matching pattern (in a
    notebook 'NB.ipynb cell 7:LINE: ...'); within: look in the last definition of each of these
    functions in turn (none: the whole file)."""
    if not path or not pattern:
        return None
    from cnncheck.sandbox.notebook import source_lines  # reads notebooks too; imports no judge
    try:
        lines = source_lines(path)
    except (OSError, ValueError):
        return None
    for block in [_body(lines, fn) for fn in within] if within else [lines]:
        for where, text in block:
            code = text.split("#")[0]
            if re.search(pattern, code):
                return f"{where}: `{code.strip()}`"
    return None


def _body(lines: list, fn: str) -> list:
    """The lines of the last `def fn(` in lines (up to the next line that is not indented)."""
    starts = [i for i, (_, text) in enumerate(lines) if re.match(rf"def {fn}\b", text)]
    if not starts:
        return []
    body = [lines[starts[-1]]]
    for where, text in lines[starts[-1] + 1:]:
        if text.strip() and not text[0].isspace() and not text.lstrip().startswith("#"):
            break
        body.append((where, text))
    return body
