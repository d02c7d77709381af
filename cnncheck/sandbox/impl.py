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
import importlib.abc
import importlib.util
import inspect
import os
import sys
import traceback
import types


from cnncheck.protocols.hints import habits_note, relative_import_hint
from cnncheck.protocols.functions import FunctionPair, student_code
from cnncheck.protocols.where import is_student as _is_student, one_line as _one_line, show as _show
from cnncheck.protocols.where import LIBRARY_DIRS, PACKAGE
from cnncheck.protocols.where import where as _where, with_hint as _with_hint
from cnncheck.sandbox import notebook
from cnncheck.sandbox.standins import StandIns



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


_ADDED: list[str] = []  # folders put on sys.path for earlier files
_LOADED: dict[str, str] = {}  # modules a student's file brought in -> where from


def _first_on_path(folder: str) -> None:
    if folder in sys.path:
        sys.path.remove(folder)
    sys.path.insert(0, folder)
    if folder not in _ADDED:
        _ADDED.append(folder)


def _leave_earlier_trees(keep: tuple) -> None:
    """Take the folders of files loaded before off sys.path: a regular package there (an
    earlier `common/__init__.py`) would win over this tree's namespace package."""
    earlier = tuple(f + os.sep for f in _ADDED if f not in keep)
    for folder in earlier:
        _ADDED.remove(folder[:-1])
        if folder[:-1] in sys.path:
            sys.path.remove(folder[:-1])
    kept = tuple(f + os.sep for f in keep if f)
    for name, origin in list(_LOADED.items()):  # and the modules earlier files brought in
        if not origin.startswith(kept):
            del _LOADED[name]
            sys.modules.pop(name, None)


def _origin(module) -> str:
    """The file (or a namespace package's first folder) a module came from, or ""."""
    origin = getattr(module, "__file__", None) or next(iter(getattr(module, "__path__", None) or []), "")
    return os.path.realpath(origin) if isinstance(origin, str) and origin else ""


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
        return os.path.realpath(spec)
    if spec.endswith(".py") or os.sep in spec or "/" in spec:
        raise ImplLoadError(f"{spec}: no such file")
    return None


def _import(spec: str) -> tuple[types.ModuleType, str]:
    """(module, root of the student's files) for a path or a dotted module name."""
    path = _resolve(spec)
    standins = StandIns()
    try:
        if path is not None and (notebook.is_notebook(path) or notebook.is_export(path)):
            module = _import_notebook(spec, path)
        elif path is None:
            if os.getcwd() not in sys.path:
                sys.path.append(os.getcwd())
            module = importlib.import_module(spec)
        else:
            module = _import_with_retries(spec, path, standins)
    except ImplLoadError:
        raise
    except ModuleNotFoundError as e:
        if path is None and e.name and spec.startswith(e.name):
            raise ImplLoadError(f"{spec}: no such file, and no module of that name") from None
        raise _load_error(spec, e) from None
    except (Exception, SystemExit) as e:
        raise _load_error(spec, e) from None
    finally:
        standins.done()
    root = _package_root(os.path.realpath(module.__file__))[0] if getattr(module, "__file__", None) else ""
    if standins.missing:
        _load_info(module, keep=True).update(standins=standins.missing, notes=standins.notes())
    return module, root


def _import_notebook(spec: str, path: str) -> types.ModuleType:
    """A notebook's (or nbconvert export's) imports and definitions, with its findings as notes."""
    try:
        module = notebook.load_notebook(path)
    except (ValueError, OSError) as e:
        raise ImplLoadError(f"cannot load {spec}: {e}") from None
    _load_info(module, keep=True)["notes"].extend(module.__cnncheck_notebook_notes__)
    return module


def _import_with_retries(spec: str, path: str, standins: "StandIns") -> types.ModuleType:
    """Import the file; on a missing module, load again with what it lacks: the folder above
    that holds it (a namespace package, the book's `common/` seen from a chapter folder), or,
    for a third-party module that is not installed, a stand-in."""
    root = _package_root(path)[0]
    book = _book_root(path)
    _leave_earlier_trees((root, book))
    if book and book != root:
        _first_on_path(book)
        _forget_foreign(book)
    _first_on_path(root)
    _forget_foreign(root)
    tried, before = set(), set(sys.modules)
    while True:
        try:
            with standins.loading(), _remember(before):
                return _import_file(path)
        except ModuleNotFoundError as e:
            top = (e.name or "").split(".")[0]
            if not top or top in tried:
                raise
            tried.add(top)
            extra = _ancestor_with(path, top)
            if extra and extra not in sys.path:
                _first_on_path(extra)
                _forget(top, extra)
            elif _third_party(e, root):
                standins.add(top, str(_load_error(spec, e)), _importer(e, root))
            else:
                raise


@contextlib.contextmanager
def _remember(before: set):
    """Note the modules the student's files import (the student's own, not the libraries')."""
    try:
        yield
    finally:
        for name in set(sys.modules) - before:
            origin = _origin(sys.modules[name])
            if origin and not origin.startswith(LIBRARY_DIRS + (PACKAGE + os.sep,)):
                _LOADED[name] = origin


def _book_root(path: str) -> str | None:
    """The folder holding the book's `common/` package, for a file inside it or in a
    chapter folder beside it (`ch07/layers.py` importing `common.util`)."""
    folder = os.path.dirname(path)
    for _ in range(3):
        if os.path.basename(folder) == "common" or os.path.isdir(os.path.join(folder, "common")):
            return os.path.dirname(folder) if os.path.basename(folder) == "common" else folder
        folder = os.path.dirname(folder)
    return None


def _forget_foreign(folder: str) -> None:
    """Drop the student's modules named as files in folder but imported from another tree
    (an earlier submission's `common`), never the libraries'."""
    try:
        names = {os.path.splitext(n)[0] for n in os.listdir(folder)} - set(sys.stdlib_module_names)
    except OSError:
        return
    for name in [n for n in sys.modules if n.split(".")[0] in names]:
        origin = _origin(sys.modules[name])
        if not origin.startswith(LIBRARY_DIRS + (PACKAGE + os.sep, folder + os.sep)):
            del sys.modules[name]


def _importer(e: BaseException, root: str) -> str:
    """The student's file whose import failed (as the user would write its path)."""
    frames = [f for f in traceback.extract_tb(e.__traceback__) if _is_student(f.filename, root)]
    return _show(frames[-1].filename) if frames else "the file"


# The courses' own files, which a student's file imports as its siblings (CS231n's package,
# the book's `common`): missing, they are the student's to restore, not to stand in for.
COURSE_MODULES = frozenset({"im2col", "im2col_cython", "fast_layers", "layers", "layer_utils", "data_utils",
                            "gradient_check", "optim", "solver", "vis_utils", "classifiers", "cs231n",
                            "common"})


def _third_party(e: ModuleNotFoundError, root: str) -> bool:
    """Is the missing module someone else's (not installed), rather than the student's own
    missing file? The import must be the student's own statement, of a top-level module
    that is not installed, and no file of the student's tree may be close to its name."""
    top = e.name.split(".")[0]
    frames = [f for f in traceback.extract_tb(e.__traceback__) if not f.filename.startswith("<frozen")]
    if (not frames or not _is_student(frames[-1].filename, root) or _relative_import(e, root)
            or top in COURSE_MODULES):
        return False
    try:
        if importlib.util.find_spec(top) is not None:
            return False
    except (ImportError, ValueError):
        return False
    own = {os.path.splitext(n)[0] for _, dirs, files in _walk(root) for n in dirs + files}
    return not difflib.get_close_matches(top, own, n=1, cutoff=0.8)


def _walk(root: str, depth: int = 2):
    """os.walk to a small depth (a student's tree, not their home directory)."""
    base = root.rstrip(os.sep).count(os.sep)
    for entry in os.walk(root):
        yield entry
        if entry[0].count(os.sep) - base >= depth:
            entry[1][:] = []


def _load_info(module, keep: bool = False) -> dict:
    """What loading the module found out: stand-ins used ({top: (error, file)}) and notes
    (kept with the module when `keep`: only for modules loaded here)."""
    info = getattr(module, "__cnncheck_load__", None)
    if info is None:
        info = {"standins": {}, "notes": []}
        if keep:
            with contextlib.suppress(AttributeError, TypeError):
                module.__cnncheck_load__ = info
    return info


def load_notes(module) -> list[str]:
    """Notes from loading the module (stand-ins for modules that are not installed)."""
    return list(_load_info(module)["notes"])


def load_error(module) -> str | None:
    """The error loading stopped at before a stand-in replaced a missing module, if any:
    what to report when the module, loaded with it, turns out to define no layer."""
    standins = _load_info(module)["standins"]
    return next(iter(standins.values()))[0] if standins else None


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
    if notebook.is_notebook(path):  # its cells' lines are not the file's
        return None
    try:
        source = "\n".join(text for _, text in notebook.source_lines(path))
        return habits_note(path, source)
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
    Raises ImplLoadError with a one-line message when it cannot be loaded.

    What loading found out (warnings, stand-ins for modules that are not installed) is kept
    with the module (`load_notes`), for the adapters detect builds; `notes` (an adapter)
    gets it too."""
    if isinstance(spec, types.ModuleType):
        root = _package_root(os.path.realpath(spec.__file__))[0] if getattr(spec, "__file__", None) else ""
        return spec, root
    heard, path = _Notes(), _resolve(spec)
    with student_code(heard, _package_root(path)[0] if path else os.getcwd()):
        module, root = _import(spec)
    info = _load_info(module, keep=bool(heard.notes))
    info["notes"] = list(dict.fromkeys([*heard.notes, *info["notes"]]))
    for n in info["notes"] if notes is not None else ():
        notes.note(n)
    return module, root


class _Notes:
    def __init__(self):
        self.notes = []

    def note(self, text: str) -> None:
        self.notes.append(text)


def functions_of(module, kind, label, forward=None, backward=None, impl=None, spec=None) -> FunctionPair:
    """The FunctionPair of `kind` in module: the functions the protocol `spec` names (default:
    CS231n's), unless forward/backward name others."""
    impl = impl or FunctionPair(None, None, root=_module_root(module))
    names = spec or kind.protocols["cs231n"]
    impl.spec = spec
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
