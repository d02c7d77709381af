"""Load a student's layer functions, and wrap them so broken code fails a case, not the run.

`load("assignment2/cs231n/layers.py", "conv")` imports the file as its package would be imported
from the assignment's root (so `from cs231n.im2col import *` and `from .fast_layers import *`
resolve) and returns an Impl whose forward and backward:
- get their own copy of conv_param / pool_param on every call (students may write extra keys
  into it and read them back in backward: the dict forward got is the one its cache holds);
- send whatever the student prints to stderr, never stdout, and turn warnings into notes;
- turn any exception, a wrong return value, NaN or inf into a one-line ImplError that says
  what happened and where (the student's file and line), with a hint where one fits.
A file that cannot be loaded raises ImplLoadError with a one-line message.
"""
from __future__ import annotations

import contextlib
import difflib
import importlib
import importlib.util
import inspect
import os
import re
import sys
import sysconfig
import traceback
import types
import warnings
from dataclasses import dataclass, field

import numpy as np

from cnncheck.diagnose import error_hint, habits_note, relative_import_hint
from cnncheck.gradcheck import Impl, ImplError

NAMES = {  # layer -> the CS231n function names
    "conv": ("conv_forward_naive", "conv_backward_naive"),
    "max_pool": ("max_pool_forward_naive", "max_pool_backward_naive"),
    "avg_pool": ("avg_pool_forward_naive", "avg_pool_backward_naive"),
}
LIBRARY_DIRS = tuple(os.path.realpath(sysconfig.get_paths()[k]) for k in ("stdlib", "purelib", "platlib"))


class ImplLoadError(Exception):
    """The student's code cannot be loaded; str(e) is the one-line user-facing message."""


class StudentTimeout(BaseException):
    """Raised (by the runner's alarm) inside student code that runs past its time."""


@dataclass
class StudentImpl(Impl):
    notes: list = field(default_factory=list)  # notes gathered since the last take_notes()

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def take_notes(self) -> list:
        taken, self.notes[:] = list(self.notes), []
        return taken


# -- where: the student's files ------------------------------------------------------------
def _show(path: str) -> str:
    """A path as the user would write it: relative to the working directory when inside it."""
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def _is_student(path: str, root: str) -> bool:
    path = os.path.realpath(path)
    return (path.startswith(root + os.sep) and not path.startswith(LIBRARY_DIRS)
            and path != os.path.realpath(__file__))


def _where(tb, root: str) -> str:
    """'file.py:12' for the innermost traceback frame inside the student's files."""
    frames = [f for f in traceback.extract_tb(tb) if _is_student(f.filename, root)]
    if not frames:
        return ""
    f = frames[-1]
    return f" at {_show(f.filename)}:{f.lineno}" + (f" in {f.name}" if f.name != "<module>" else "")


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


def _with_hint(text: str) -> str:
    hint = error_hint(text)
    return f"{text} (hint: {hint})" if hint else text


# -- loading -------------------------------------------------------------------------------
@contextlib.contextmanager
def _student_code(impl: StudentImpl | None, root: str):
    """Around student code: prints to stderr, warnings recorded as notes."""
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(sys.stderr):
        warnings.simplefilter("always")
        yield
    if impl is not None:
        for w in caught:
            at = f" at {_show(w.filename)}:{w.lineno}" if _is_student(w.filename, root) else ""
            impl.note(f"warning{at}: {w.category.__name__}: {str(w.message).splitlines()[0]}")


def _package_root(path: str) -> tuple[str, str]:
    """(root directory, dotted module name): walk up while the directory is a package."""
    folder, name = os.path.split(path)
    parts = [os.path.splitext(name)[0]]
    while os.path.isfile(os.path.join(folder, "__init__.py")):
        folder, pkg = os.path.split(folder)
        parts.insert(0, pkg)
    return folder, ".".join(parts)


def _forget(top: str, root: str) -> None:
    """Drop modules of package `top` imported from elsewhere (another assignment's tree)."""
    for name in [n for n in sys.modules if n == top or n.startswith(top + ".")]:
        where = getattr(sys.modules[name], "__file__", None) or ""
        if not os.path.realpath(where).startswith(root + os.sep):
            del sys.modules[name]


def _import_file(path: str) -> types.ModuleType:
    root, dotted = _package_root(path)
    top = dotted.split(".")[0]
    _first_on_path(root)
    if "." in dotted:  # inside a package: import by dotted name, as from the assignment's root
        _forget(top, root)
        return importlib.import_module(dotted)
    name = f"cnncheck_student_{top}_{abs(hash(path)):x}"  # never collides with a real module
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _first_on_path(folder: str) -> None:
    if folder in sys.path:
        sys.path.remove(folder)
    sys.path.insert(0, folder)


def _ancestor_with(path: str, top: str) -> str | None:
    """The nearest directory above path holding a module or package named top."""
    folder = os.path.dirname(path)
    while folder != os.path.dirname(folder):
        folder = os.path.dirname(folder)
        if os.path.isdir(os.path.join(folder, top)) or os.path.isfile(os.path.join(folder, top + ".py")):
            return folder
    return None


def _resolve(spec: str) -> str | None:
    """The .py file a path-like spec names (a directory: its layers.py), else None."""
    if os.path.isdir(spec):
        for cand in ("layers.py", os.path.join("cs231n", "layers.py")):
            if os.path.isfile(os.path.join(spec, cand)):
                return os.path.realpath(os.path.join(spec, cand))
        raise ImplLoadError(f"{spec} is a directory with no layers.py: give the .py file that "
                            "defines your layer functions")
    if os.path.isfile(spec):
        if spec.endswith(".ipynb"):
            raise ImplLoadError(f"{spec} is a notebook: give the .py file that defines your layer "
                                "functions (usually cs231n/layers.py)")
        return os.path.realpath(spec)
    if spec.endswith(".py") or os.sep in spec or "/" in spec:
        raise ImplLoadError(f"{spec}: no such file")
    return None


def _import(spec: str) -> tuple[types.ModuleType, str]:
    """(module, root of the student's files) for a path or a dotted module name."""
    path = _resolve(spec)
    try:
        if path is None:
            if os.getcwd() not in sys.path:
                sys.path.append(os.getcwd())
            module = importlib.import_module(spec)
        else:
            try:
                module = _import_file(path)
            except ModuleNotFoundError as e:  # a namespace package above the file
                extra = e.name and _ancestor_with(path, e.name.split(".")[0])
                if not extra or extra in sys.path:
                    raise
                _first_on_path(extra)
                module = _import_file(path)
    except ImplLoadError:
        raise
    except ModuleNotFoundError as e:
        if path is None and e.name and spec.startswith(e.name):
            raise ImplLoadError(f"{spec}: no such file, and no module of that name") from None
        raise _load_error(spec, e) from None
    except (Exception, SystemExit) as e:
        raise _load_error(spec, e) from None
    root = _package_root(os.path.realpath(module.__file__))[0] if getattr(module, "__file__", None) else ""
    return module, root


def _relative_import(e: BaseException, root: str) -> str | None:
    """The Python 2 implicit relative import hint for `import im2col` in a package's file
    (the innermost of the student's frames) when im2col.py sits beside that file."""
    frames = [f for f in traceback.extract_tb(e.__traceback__) if _is_student(f.filename, root)]
    if not isinstance(e, ModuleNotFoundError) or not e.name or not frames:
        return None
    importer = os.path.realpath(frames[-1].filename)
    package = _package_root(importer)[1].rpartition(".")[0]
    return relative_import_hint(e.name, os.path.dirname(importer), package)


def _habits(path: str | None) -> str | None:
    """The note on Python 2 habits in the file at path (None: no file, or no habits)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return habits_note(path, f.read())
    except (OSError, TypeError, ValueError):
        return None


def _load_error(spec: str, e: BaseException) -> ImplLoadError:
    path = _resolve(spec) if os.path.exists(spec) else None
    if isinstance(e, SyntaxError):
        where = f" at {_show(e.filename)}:{e.lineno}" if e.filename else ""
        text = _with_hint(f"cannot load {spec}: {type(e).__name__}{where}: {e.msg}")
        habits = _habits(e.filename)  # a load that stops at a print statement: name the rest too
        return ImplLoadError(f"{text}; {habits}" if habits else text)
    # the student's files: the file's package tree, or anything outside the libraries
    root = _package_root(path)[0] if path else ""
    text = f"cannot load {spec}: {_one_line(e)}{_where(e.__traceback__, root)}"
    hint = _relative_import(e, root)
    return ImplLoadError(f"{text} (hint: {hint})" if hint else _with_hint(text))


def _function(module, name: str, spec: str, flag: str):
    fn = getattr(module, name, None)
    if callable(fn):
        return fn
    found = [n for n, v in vars(module).items() if inspect.isfunction(v) and not n.startswith("_")]
    layer = name.split("_forward")[0].split("_backward")[0]  # a typo, not another layer's function
    close = difflib.get_close_matches(name, [n for n in found if n.startswith(layer)], n=1)
    did = f"; did you mean {close[0]}?" if close else f"; it defines {', '.join(found[:8]) or 'none'}"
    raise ImplLoadError(f"{spec} has no function {name}{did} (pick another with {flag} NAME)")


def _location(fn) -> str:
    try:
        return f"{_show(inspect.getsourcefile(fn))}:{inspect.getsourcelines(fn)[1]}"
    except (OSError, TypeError):
        return getattr(fn, "__module__", "?")


# -- calling -------------------------------------------------------------------------------
def _bad_values(name: str, a: np.ndarray) -> str | None:
    if not np.issubdtype(a.dtype, np.number) or np.isfinite(a).all():
        return None
    nan, inf = int(np.isnan(a).sum()), int(np.isinf(a).sum())
    return f"{name} with {nan} NaN and {inf} inf values of {a.size}"


def _returns_a_name(fn) -> bool:
    """Does fn end with `return NAME` (the CS231n starter's `return dx`, dx still None)?"""
    try:
        code = [line.split("#")[0].strip() for line in inspect.getsource(fn).splitlines()]
    except (OSError, TypeError):
        return False
    code = [line for line in code if line]
    return bool(code) and re.fullmatch(r"return\s+\w+", code[-1]) is not None


def _returned(name: str, at: str, res, role: str, layer: str, starter: bool = False):
    """res as the protocol wants it (lists accepted as tuples), or an ImplError.
    starter: fn ends with `return NAME`, so a None is that name left unset."""
    if isinstance(res, list):
        res = tuple(res)
    if role == "forward":
        want, names = "a tuple (out, cache)", ("out",)
        arrays = res[:1] if isinstance(res, tuple) and len(res) == 2 else None
    elif layer == "conv":
        want, names = "a tuple (dx, dw, db)", ("dx", "dw", "db")
        arrays = res if isinstance(res, tuple) and len(res) == 3 else None
    else:
        want, names, arrays = "the array dx", ("dx",), (res,)
    if res is None and starter and len(names) == 1 and arrays is not None:
        raise ImplError(f"{name} ({at}) returned None, expected {want} "
                        f"(is {names[0]} set on every path, or still the starter's {names[0]} = None?)")
    if res is None:
        raise ImplError(f"{name} ({at}) returned None, expected {want}: a missing return?")
    if arrays is None:
        got = f"a tuple of {len(res)}" if isinstance(res, tuple) else type(res).__name__
        raise ImplError(f"{name} ({at}) returned {got}, expected {want}")
    for n, a in zip(names, arrays):
        if not isinstance(a, np.ndarray):
            why = f" (is {n} set on every path, or still the starter's {n} = None?)" if a is None else ""
            raise ImplError(f"{name} ({at}) returned {n} as {type(a).__name__}, expected a numpy array{why}")
        bad = _bad_values(n, a)
        if bad:
            raise ImplError(f"{name} ({at}) returned {bad}")
    return res


def _guarded(fn, role: str, layer: str, impl: StudentImpl, root: str):
    """fn wrapped: own param dict per call, prints to stderr, errors as one-line ImplError."""
    at, starter = _location(fn), _returns_a_name(fn)

    def call(*args):
        if role == "forward":
            param = dict(args[-1])
            keys = set(param)
            args = (*args[:-1], param)
        try:
            with _student_code(impl, root):
                res = fn(*args)
        except StudentTimeout as e:
            raise ImplError(f"{fn.__name__} timed out after {e}{_where(e.__traceback__, root)}") from None
        except (Exception, SystemExit) as e:
            where = _where(e.__traceback__, root)
            raise ImplError(_with_hint(f"{fn.__name__} raised {_one_line(e)}{where}")) from None
        if role == "forward" and set(param) - keys:
            pname = "conv_param" if layer == "conv" else "pool_param"
            impl.note(f"{fn.__name__} writes keys {sorted(set(param) - keys)} into {pname}: "
                      "allowed, each call gets its own copy")
        return _returned(fn.__name__, at, res, role, layer, starter)

    call.__name__ = fn.__name__
    return call


def load(spec: str | types.ModuleType, layer: str, forward: str | None = None,
         backward: str | None = None) -> Impl:
    """The student's forward/backward pair for `layer` ("conv", "max_pool", "avg_pool").

    spec: a path to a .py file (or a directory holding layers.py), a dotted module name, or a
    module. forward/backward: function names; defaults are the CS231n ones, and a forward
    named *_forward_* alone implies the matching *_backward_*.
    Raises ImplLoadError when the code cannot be loaded or lacks a function.
    """
    if layer not in NAMES:
        raise ValueError(f"unknown layer {layer!r}")
    impl = StudentImpl(None, None, "")
    if isinstance(spec, types.ModuleType):
        module, label = spec, spec.__name__
        root = _package_root(os.path.realpath(spec.__file__))[0] if getattr(spec, "__file__", None) else ""
    else:
        with _student_code(impl, os.getcwd()):
            module, root = _import(spec)
        label = spec
    if backward is None and forward and "forward" in forward:
        implied = forward.replace("forward", "backward")
        backward = implied if callable(getattr(module, implied, None)) else None
    fname, bname = forward or NAMES[layer][0], backward or NAMES[layer][1]
    f = _function(module, fname, label, "--forward")
    b = _function(module, bname, label, "--backward")
    impl.forward = _guarded(f, "forward", layer, impl, root)
    impl.backward = _guarded(b, "backward", layer, impl, root)
    impl.label = f"{label}: {fname} / {bname}"
    habits = _habits(getattr(module, "__file__", None))
    if habits:
        impl.note(habits)
    return impl
