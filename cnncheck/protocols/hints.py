"""Hints from the code's own text and error messages, before any number is compared: Python 2
habits, numpy names removed in 1.23-2.0, a relative import run as a script. They run where the
code is loaded (the worker, cnncheck.sandbox.impl) and in the judge's diagnosis (cnncheck.diagnose).
"""
from __future__ import annotations

import io
import os
import re
import tokenize

from cnncheck.i18n import msg

PY2_DIVISION = msg("Python 2 `/` gives a float in Python 3: use `//` for sizes and indices, "
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
    return msg("np.{name} was removed in numpy {version}: use {use}", name=name, version=version, use=use)


CYTHON = msg("the Cython extension is not built: cd cs231n && python setup.py build_ext --inplace")
# (pattern, hint or function of the match): first match wins
ERROR_HINTS = [
    (r"Missing parentheses in call to 'print'", msg("Python 2 print statement: use print(...)")),
    (r"Missing parentheses in call to 'exec'", msg("Python 2 exec statement: use exec(...)")),
    (r"multiple exception types must be parenthesized", msg("Python 2 `except E, e:`: use `except E as e:`")),
    (r"inconsistent use of tabs and spaces", msg("tabs and spaces mixed in the indentation: use spaces only")),
    (r"name '(\w+)' is not defined",
     lambda m: msg("{name} is Python 2: use {use}", name=m.group(1), use=PYTHON2_NAMES[m.group(1)])
     if m.group(1) in PYTHON2_NAMES else CYTHON if "cython" in m.group(1) else None),
    (r"module 'numpy' has no attribute '(\w+)'", _numpy_hint),
    (r"module 'numpy.lib' has no attribute 'pad'", msg("np.lib.pad was removed: use np.pad")),
    (r"'float' object cannot be interpreted as an integer", PY2_DIVISION),
    (r"slice indices must be integers", PY2_DIVISION),
    (r"Cannot cast array data from dtype\('float\d*'\) to dtype\('u?int\d*'\)", PY2_DIVISION),
    (r"only (0-dimensional|length-1) arrays can be converted to Python scalars",
     msg("`int()` of a 1-element array was allowed before NumPy 2 and is an error now: "
         "use `row[0]` or `.item()`")),
    (r"only integers, slices .* are valid indices", PY2_DIVISION),
    (r"No module named '(past|future)'",
     msg("`past` and `future` come from the `future` package: pip install future (or use range for xrange)")),
    (r"No module named '[\w.]*im2col_cython'", CYTHON),
    (r"'dict' object has no attribute '(iteritems|itervalues|iterkeys|has_key)'",
     lambda m: msg("dict.{name} is Python 2: use {use}", name=m.group(1),
                   use="`key in d`" if m.group(1) == "has_key" else f"d.{m.group(1)[4:]}()")),
    (r"cannot access local variable '(\w+)' where it is not associated with a value",
     lambda m: msg("`{name}` is assigned only on some paths (an `if` with no `else`?)", name=m.group(1))),
]


def relative_import_hint(name: str, folder: str, package: str) -> str | None:
    """The Python 2 implicit relative import `import name` from a file in `folder`, inside
    `package` (dotted, "" for none): a hint when name.py (or a package name/) sits in folder."""
    top = name.split(".")[0]
    if not package or not (os.path.isfile(os.path.join(folder, top + ".py"))
                           or os.path.isfile(os.path.join(folder, top, "__init__.py"))):
        return None
    return msg("Python 2 implicit relative import: use `from . import {top}` (or `from {package} import {top}`)",
               top=top, package=package)


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
    return msg("Python 2 habits in {file}: {where}: use {use}", file=os.path.basename(filename), where=where, use=use)
