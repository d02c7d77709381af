"""Code kept in notebooks: the imports and definitions of an .ipynb's code cells (or of an
nbconvert .py export), loaded as a module, nothing else run.

A learner's notebook holds the functions under check between test cells, magics, shell lines and
plots. `load_definitions(source, filename)` keeps one cell's top-level imports, functions and
classes, in order (magics, `!shell` lines, a bare `cd` and `get_ipython()` lines skipped, every
other statement left out: test cells are not run); a cell that does not parse is a finding naming
the cell, the line and the character. `definitions(path)` does it for every code cell of a
notebook (read with nbformat) or every `# In[ ]:` cell of an export, and `load_notebook(path)`
runs what was kept, top to bottom (later definitions override earlier ones), in a fresh module:
an import that fails (a course helper such as public_tests, h5py, matplotlib) is bound to a
stand-in that refuses to be used, with a note. Pure functions of the text, for the worker
process that runs the learner's code.

The learner's namespace also gets stand-ins for what NumPy 2 took away (cnncheck.sandbox.numpy2):
each use is reported as a `NumPy2Warning` naming the learner's line and the fix, and the maths
behind it still runs, so one run shows every fault.
"""
from __future__ import annotations

import ast
import linecache
import os
import re
import sys
import types
import unicodedata
from dataclasses import dataclass, field

CELL_MARK = re.compile(r"^# In\[[ \d]*\]:[ \t]*$", re.M)  # nbconvert's cell separator in a .py export
# lines IPython would not hand to Python: magics, shell, help (unindented), get_ipython() anywhere
SHELL = re.compile(r"^(%|!|cd\s|cd$|pip\s|[\w.]+\?{1,2}\s*$)|^\s*get_ipython\(\)")
PYTHON_CELL_MAGICS = ("%%time", "%%timeit", "%%capture", "%%prun")  # their cells' bodies are Python
KEPT = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


@dataclass
class Definitions:
    """What a cell (or a whole notebook) keeps: top-level statements as (code, is an import,
    where), findings (one line each), and the global names the skipped statements assign
    (what a function may wrongly read from the notebook instead of its arguments)."""

    statements: list = field(default_factory=list)
    findings: list = field(default_factory=list)
    skipped: dict = field(default_factory=dict)  # name -> where it was assigned

    def extend(self, other: "Definitions") -> None:
        self.statements += other.statements
        self.findings += other.findings
        self.skipped.update(other.skipped)


def _blank_shell(source: str) -> str:
    """Magics and shell lines as blank lines (line numbers kept); a `%%` cell magic blanks its cell."""
    lines = source.splitlines()
    if lines and lines[0].lstrip().startswith("%%") and not lines[0].split()[0] in PYTHON_CELL_MAGICS:
        return ""  # %%bash, %%writefile, ...: not Python
    return "\n".join("" if SHELL.match(line) else line for line in lines) + "\n"


def at(where: str | None, line: int) -> str:
    """'cell 7, line 3' in a notebook, 'line 3' in a file."""
    return f"{where}, line {line}" if where else f"line {line}"


def _syntax_finding(e: SyntaxError, where: str | None, source: str, first_line: int) -> str:
    """'cell 7, line 3, character 5 does not parse (invalid non-printable character U+00A0: U+00A0
    (NO-BREAK SPACE), replace it with a plain space)'."""
    lineno = e.lineno or 1
    line = (source.splitlines() or [""])[min(lineno, len(source.splitlines()) or 1) - 1]
    col = e.offset or 0
    odd = next(((i + 1, ch) for i, ch in enumerate(line) if ord(ch) > 127 and not ch.isalnum()), None)
    what = e.msg
    if odd:
        col, ch = odd
        what = f"{e.msg}: U+{ord(ch):04X} ({unicodedata.name(ch, 'unnamed')}), replace it with a plain space"
    where = at(where, lineno + first_line - 1)
    return f"{where}, character {col} does not parse ({what}): its definitions are left out"


def load_definitions(source: str, filename: str, where: str | None = None, first_line: int = 1) -> Definitions:
    """The imports and definitions of one cell's source, compiled for `filename` (line numbers
    start at first_line). where: how findings name the cell ("cell 7"; None: by line alone). A
    filename that is no file on disk is registered with linecache, so tracebacks and
    inspect.getsource show the learner's lines."""
    defs = Definitions()
    text = _blank_shell(source)
    try:
        tree = ast.parse(text, filename)
    except SyntaxError as e:
        defs.findings.append(_syntax_finding(e, where, text, first_line))
        return defs
    if first_line != 1:
        ast.increment_lineno(tree, first_line - 1)
    if not os.path.isfile(filename):
        lines = source.splitlines(keepends=True)
        linecache.cache[filename] = (len(source), None, lines, filename)
    for node in tree.body:
        if isinstance(node, KEPT):
            code = compile(ast.Module([node], type_ignores=[]), filename, "exec")
            defs.statements.append((code, isinstance(node, (ast.Import, ast.ImportFrom)), at(where, node.lineno)))
        else:
            for target in ast.walk(node):
                if isinstance(target, ast.Name) and isinstance(target.ctx, ast.Store):
                    defs.skipped.setdefault(target.id, at(where, target.lineno))
    return defs


def is_notebook(path) -> bool:
    return isinstance(path, str) and path.endswith(".ipynb")


def is_export(path: str) -> bool:
    """A .py file that nbconvert wrote from a notebook (cell marks, get_ipython() calls), or a
    Deep Learning Specialization file (`def conv_forward(A_prev, ...)` beside its test code):
    loaded as a notebook, imports and definitions only."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        return False
    return bool(CELL_MARK.search(text) or "get_ipython()" in text
                or re.search(r"^def (conv|pool)_forward\(\s*A_prev\b", text, re.M))


def cell_filename(path: str, index: int) -> str:
    """What tracebacks name a notebook cell: `NB.ipynb cell 7` (cells counted from 1, markdown too)."""
    return f"{path} cell {index}"


def cells(path: str) -> list[tuple[str, str, str | None, int]]:
    """(source, filename, where, first line) of each code cell of a notebook, or of each
    `# In[ ]:` cell of an export (one cell when it has no marks). Raises ValueError for a
    notebook nbformat cannot read."""
    if is_notebook(path):
        import nbformat
        try:
            nb = nbformat.read(path, as_version=4)
        except Exception as e:  # noqa: BLE001 - nbformat raises several kinds for a bad file
            raise ValueError(f"{os.path.basename(path)} is not a notebook nbformat can read: "
                             f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
        return [(c.source, cell_filename(path, i), f"cell {i}", 1)
                for i, c in enumerate(nb.cells, 1) if c.cell_type == "code"]
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    starts = [0] + [m.end() for m in CELL_MARK.finditer(text)]
    out = []
    for k, start in enumerate(starts):
        end = starts[k + 1] if k + 1 < len(starts) else len(text)
        chunk = text[start:end]
        first = text.count("\n", 0, start) + 1
        out.append((chunk, path, None, first))
    return out


def definitions(path: str) -> Definitions:
    """Every cell's imports and definitions, in order."""
    defs = Definitions()
    for source, filename, where, first in cells(path):
        defs.extend(load_definitions(source, filename, where, first))
    return defs


def source_lines(path: str) -> list[tuple[str, str]]:
    """(where, text) of every line of the learner's code: `NB.ipynb cell 7:12` for a notebook,
    `file.py:12` for a file."""
    if not is_notebook(path):
        with open(path, encoding="utf-8", errors="replace") as f:
            return [(f"{path}:{n}", line) for n, line in enumerate(f.read().splitlines(), 1)]
    return [(f"{filename}:{n}", line) for source, filename, _, _ in cells(path)
            for n, line in enumerate(source.splitlines(), 1)]


def run_definitions(defs: Definitions, namespace: dict, who: str) -> list[str]:
    """Run the kept statements in namespace, in order; notes for what went wrong. An import that
    fails is bound to a stand-in (any use of it raises, naming the module); a definition that
    raises is a note and the rest still runs."""
    from cnncheck.sandbox.standins import StandIns
    notes = []
    standins = StandIns()
    try:
        for code, is_import, where in defs.statements:
            try:
                exec(code, namespace)
            except Exception as e:  # noqa: BLE001 - the learner's code: a finding, not a crash
                if not is_import:
                    notes.append(f"{who} {where}: the definition raised {type(e).__name__}: {e}; left out")
                    continue
                top = (getattr(e, "name", None) or _imported_top(code)).split(".")[0]
                standins.add(top, f"{type(e).__name__}: {e}", who)
                try:
                    with standins.loading():
                        exec(code, namespace)
                except Exception as again:  # noqa: BLE001 - still failing: left out
                    notes.append(f"{who} {where}: the import raised {type(again).__name__}: {again}; left out")
                    continue
                notes.append(f"{who} {where} imports {top}, which cannot be imported here "
                             f"({type(e).__name__}: {e}): a stand-in took its place (the checked "
                             "functions must not use it)")
    finally:
        standins.done()
    return notes


def _imported_top(code) -> str:
    """The top-level module name an import statement's code imports (the first one)."""
    for const in code.co_names:
        return const.split(".")[0]
    return "?"


def load_notebook(path: str) -> types.ModuleType:
    """The notebook's (or export's) imports and definitions as a module. Its folder comes first
    on sys.path (the learner runs it from there). Notes (findings, stand-ins) are kept in
    `module.__cnncheck_notebook_notes__`. Raises ValueError for a notebook that cannot be read."""
    from cnncheck.sandbox import numpy2
    path = os.path.realpath(path)
    folder = os.path.dirname(path)
    if folder in sys.path:
        sys.path.remove(folder)
    sys.path.insert(0, folder)
    defs = definitions(path)
    stem = re.sub(r"\W", "_", os.path.splitext(os.path.basename(path))[0])
    module = types.ModuleType(f"cnncheck_student_{stem}_{abs(hash(path)):x}")
    module.__file__ = path
    sys.modules[module.__name__] = module
    who = os.path.relpath(path) if not os.path.relpath(path).startswith("..") else path
    notes = [f"{who} {f}" for f in defs.findings]
    notes += run_definitions(defs, module.__dict__, who)
    numpy2.stand_in(module)
    module.__cnncheck_notebook_notes__ = notes
    module.__cnncheck_skipped__ = dict(defs.skipped)
    return module
