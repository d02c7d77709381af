"""Calling conventions: how the code under check is called, one adapter per convention.

An adapter answers two questions for one layer, whatever the convention:
- `run_forward(case, arrays) -> out`: the layer's output for these arrays ({'x': ..., ...});
- `run_backward(case, dout) -> {'dx': ..., ...}`: the gradients for the latest forward.
Nothing else crosses between the judge and the code under check: no cache, no instance, no
module. `functions` calls pairs of functions (CS231n's `conv_forward_naive(x, w, b,
conv_param)`, the book's `im2col`/`col2im`, or a user's callables); `classes` calls the book's
layer classes (`Convolution(W, b, stride, pad)`). Each layer's record says how each protocol
names and calls it (`LayerKind.protocols`). Adapters run inside the worker process
(cnncheck.sandbox.process) for code the judge does not trust, and in-process for cnncheck's own layers.
"""
from __future__ import annotations

import numpy as np


class ImplError(Exception):
    """The checked code broke the layer protocol or raised; the message is one line."""


class StudentTimeout(BaseException):
    """Raised (by the worker's alarm) inside code under check that runs past its time."""


def bad_values(name: str, a: np.ndarray) -> str | None:
    if not np.issubdtype(a.dtype, np.inexact):
        return None
    with np.errstate(over="ignore", invalid="ignore"):
        total = a.sum()
    if np.isfinite(total):  # NaN or inf make the sum so
        return None
    nan, inf = int(np.isnan(a).sum()), int(np.isinf(a).sum())
    if nan + inf == 0:  # the sum overflowed
        return None
    return f"{name} with {nan} NaN and {inf} inf values of {a.size}"


def plain_array(name: str, a, who: str) -> np.ndarray:
    """a as a plain ndarray (subclasses judged by their values), or an ImplError."""
    if not isinstance(a, np.ndarray):
        why = f" (is {name} set on every path, or still the starter's {name} = None?)" if a is None else ""
        raise ImplError(f"{who} returned {name} as {type(a).__name__}, expected a numpy array{why}")
    a = np.asarray(a).view(np.ndarray) if type(a) is not np.ndarray else a
    bad = bad_values(name, a)
    if bad:
        raise ImplError(f"{who} returned {bad}")
    return a
