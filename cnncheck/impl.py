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

import difflib
import importlib
import importlib.util
import inspect
import os
import sys
import traceback
import types


from cnncheck import layers
from cnncheck.diagnose import habits_note, relative_import_hint
from cnncheck.protocols.functions import FunctionPair, student_code
from cnncheck.protocols.where import is_student as _is_student, one_line as _one_line, show as _show
from cnncheck.protocols.where import where as _where, with_hint as _with_hint



class ImplLoadError(Exception):
    """The student's code cannot be loaded; str(e) is the one-line user-facing message."""


# -- loading -------------------------------------------------------------------------------
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


def import_spec(spec: str | types.ModuleType, notes=None) -> tuple[types.ModuleType, str]:
    """(module, root of the student's files) for a path, a dotted module name or a module.
    Raises ImplLoadError with a one-line message when it cannot be loaded."""
    if isinstance(spec, types.ModuleType):
        root = _package_root(os.path.realpath(spec.__file__))[0] if getattr(spec, "__file__", None) else ""
        return spec, root
    with student_code(notes, os.getcwd()):
        return _import(spec)


def load(spec: str | types.ModuleType, layer: str, forward: str | None = None,
         backward: str | None = None) -> FunctionPair:
    """The student's forward/backward pair for `layer` ("conv", "max_pool", "avg_pool"), to
    run in this process (the judge runs student code in a worker: cnncheck.worker).

    spec: a path to a .py file (or a directory holding layers.py), a dotted module name, or a
    module. forward/backward: function names; defaults are the CS231n ones, and a forward
    named *_forward_* alone implies the matching *_backward_*.
    Raises ImplLoadError when the code cannot be loaded or lacks a function.
    """
    kind = layers.get(layer)
    impl = FunctionPair(None, None)
    module, root = import_spec(spec, impl)
    label = spec.__name__ if isinstance(spec, types.ModuleType) else spec
    impl.root = root
    return functions_of(module, kind, label, forward, backward, impl)


def functions_of(module, kind, label, forward=None, backward=None, impl=None) -> FunctionPair:
    """The FunctionPair of `kind` in module (CS231n names unless given)."""
    impl = impl or FunctionPair(None, None, root=_module_root(module))
    names = kind.protocols["cs231n"]
    if backward is None and forward and "forward" in forward:
        implied = forward.replace("forward", "backward")
        backward = implied if callable(getattr(module, implied, None)) else None
    fname, bname = forward or names.forward, backward or names.backward
    impl.forward = _function(module, fname, label, "--forward")
    impl.backward = _function(module, bname, label, "--backward")
    impl.label = f"{label}: {fname} / {bname}"
    habits = _habits(getattr(module, "__file__", None))
    if habits:
        impl.note(habits)
    return impl


def _module_root(module) -> str:
    path = getattr(module, "__file__", None)
    return _package_root(os.path.realpath(path))[0] if path else ""
