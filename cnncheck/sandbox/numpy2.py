"""Stand-ins for what NumPy 2 took away, in a learner's namespace: each use is a finding, and the
maths behind it still runs.

Code written for the course's NumPy 1.18 stops under NumPy 2 before any maths: `float(b)` of a
(1, 1, 1) array (TypeError), a (1, 1, 1) array stored into one element `Z[i, h, w, c] = ...`
(ValueError), the removed `np.float`, `np.int` (1.24) and `np.asscalar` (1.23). `stand_in(module)`
gives the module a numpy with those names back, a `float()`/`int()` that take a size-1 array, and
arrays (from np.zeros & co.) that take a size-1 array into one element. Each use warns with a
`NumPy2Warning` at the learner's line, saying what NumPy 2 does and the fix; the adapter records
warnings as notes, and the judge turns these into a failing check of their own
(`NUMPY2_NOTE` marks them).
"""
from __future__ import annotations

import builtins
import linecache
import sys
import types
import warnings

import numpy as np

NUMPY2_NOTE = "NumPy2Warning"  # the category name in a note: a failing finding for the judge


class NumPy2Warning(UserWarning):
    """A use of something NumPy 2 removed or refuses, stood in for."""


# name -> (stand-in, removed in, the fix)
REMOVED = {
    "float": (builtins.float, "1.24", "use float (or np.float64)"),
    "int": (builtins.int, "1.24", "use int (or np.int64)"),
    "bool": (builtins.bool, "1.24", "use bool"),
    "object": (builtins.object, "1.24", "use object"),
    "complex": (builtins.complex, "1.24", "use complex"),
    "str": (builtins.str, "1.24", "use str"),
    "asscalar": (lambda a: np.asarray(a).item(), "1.23", "use a.item()"),
    "float_": (np.float64, "2.0", "use np.float64"),
    "product": (np.prod, "2.0", "use np.prod"),
    "alltrue": (np.all, "2.0", "use np.all"),
    "sometrue": (np.any, "2.0", "use np.any"),
    "NaN": (np.nan, "2.0", "use np.nan"),
    "Inf": (np.inf, "2.0", "use np.inf"),
}
CREATORS = ("zeros", "zeros_like", "empty", "empty_like", "ones", "ones_like", "full", "full_like")


def _warn(text: str) -> None:
    """Warn at the learner's line (the first frame outside this module)."""
    depth, frame = 1, sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__") == __name__:
        depth, frame = depth + 1, frame.f_back
    line = linecache.getline(frame.f_code.co_filename, frame.f_lineno).strip() if frame else ""
    warnings.warn(NumPy2Warning(f"{text}" + (f" (`{line}`)" if line else "")), stacklevel=depth + 1)


class _NumPy(types.ModuleType):
    """numpy, with the names NumPy 2 removed given back (each use warned) and array creators
    whose arrays take a size-1 array into one element."""

    def __init__(self):
        super().__init__("numpy")
        self.__dict__.update({k: v for k, v in vars(np).items() if k != "__getattr__"})
        for name in CREATORS:
            self.__dict__[name] = _creator(getattr(np, name))

    def __getattr__(self, name: str):
        if name in REMOVED:
            value, version, fix = REMOVED[name]
            _warn(f"np.{name} was removed in NumPy {version} (AttributeError under NumPy 2): {fix}")
            return value
        return getattr(np, name)


def _creator(fn):
    def create(*args, **kwargs):
        return fn(*args, **kwargs).view(Slots)
    create.__name__ = fn.__name__
    return create


def _size1(x) -> bool:
    return isinstance(x, np.ndarray) and x.ndim > 0 and x.size == 1


class Slots(np.ndarray):
    """An array that takes a size-1 array into one element, as NumPy 1 did (with a warning)."""

    def __setitem__(self, key, value):
        try:
            super().__setitem__(key, value)
        except (ValueError, TypeError):
            if not _size1(value):
                raise
            _warn(f"storing an array of shape {value.shape} into one element fails under NumPy 2 "
                  "(ValueError: setting an array element with a sequence): store a number, e.g. "
                  "`b.item()` for the bias, or `float(np.sum(...) + b.item())`")
            super().__setitem__(key, value.reshape(-1)[0])


class _Scalar:
    """float() or int() that takes a size-1 array, as NumPy 1 did (with a warning); an object,
    not a function, so that it is never taken for one of the learner's."""

    def __init__(self, convert):
        self.convert, self.__name__ = convert, convert.__name__

    def __call__(self, x=0, *args, **kwargs):
        if _size1(x):
            _warn(f"{self.__name__}() of an array of shape {x.shape} fails under NumPy 2 (TypeError: only "
                  f"0-dimensional arrays can be converted to Python scalars): use `.item()`, e.g. "
                  f"`{self.__name__}(b.item())` or `b.item()`")
            x = x.reshape(())
        return self.convert(x, *args, **kwargs)

    def __instancecheck__(self, obj) -> bool:  # isinstance(z, float) as before
        return isinstance(obj, self.convert)

    def __subclasscheck__(self, cls) -> bool:
        return issubclass(cls, self.convert)


def stand_in(module: types.ModuleType) -> None:
    """numpy, float() and int() in the module's namespace replaced by the stand-ins (names the
    learner defined are left alone)."""
    space = module.__dict__
    proxy = None
    for name, value in list(space.items()):
        if value is np:
            proxy = proxy or _NumPy()
            space[name] = proxy
    for convert in (builtins.float, builtins.int):
        space.setdefault(convert.__name__, _Scalar(convert))
