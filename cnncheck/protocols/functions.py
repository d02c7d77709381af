"""The function-pair protocol: `forward(*arrays, param) -> (out, cache)`, `backward(dout, cache)`.

CS231n's layers (`conv_forward_naive(x, w, b, conv_param)` / `conv_backward_naive(dout,
cache)`), cnncheck's own reference layers and a notebook user's callables all take this
shape; the layer's record says which arrays go in and which gradients come out
(`layers.kind.Functions`). The adapter keeps the protocol's quirks: each forward gets its
own copy of the param dict (students write extra keys into it and read them back in
backward), the cache stays opaque, lists pass as tuples, and anything else - an exception,
a wrong return value, NaN or inf - becomes a one-line ImplError that says what happened and
where (the student's file and line), with a hint where one fits.
"""
from __future__ import annotations

import contextlib
import inspect
import re
import sys
import warnings

from cnncheck.protocols import ImplError, StudentTimeout, plain_array
from cnncheck.protocols.where import location, one_line, show, where, with_hint


class FunctionPair:
    """One layer's forward and backward functions, called as the record's protocol says.

    spec: the record's `Functions` (None: the case's CS231n one). root: the folder of the
    student's files (for error locations; "" for trusted code).
    """

    def __init__(self, forward, backward, label: str = "", spec=None, root: str = ""):
        self.forward, self.backward, self.label = forward, backward, label
        self.spec, self.root = spec, root
        self.notes: list[str] = []
        self._state = None
        self._starter = {}  # fn -> does it end with `return NAME` (the starter's `return dx`)?

    # -- the adapter ----------------------------------------------------------------------
    def run_forward(self, case, arrays: dict):
        spec = self._spec(case)
        param = None
        if spec.param:
            param = case.param()
            keys = set(param)
            case = _WithParam(case, param)
        res = self._call(self.forward, lambda: spec.call_forward(self.forward, arrays, case))
        if param is not None and set(param) - keys:
            self.note(f"{_name(self.forward)} writes keys {sorted(set(param) - keys)} into "
                      f"{spec.param}: allowed, each call gets its own copy")
        if isinstance(res, list):
            res = tuple(res)
        who = self._who(self.forward)
        if res is None:
            raise ImplError(f"{who} returned None, expected a tuple (out, cache): a missing return?")
        if not (isinstance(res, tuple) and len(res) == 2):
            got = f"a tuple of {len(res)}" if isinstance(res, tuple) else type(res).__name__
            raise ImplError(f"{who} returned {got}, expected a tuple (out, cache)")
        out, self._state = plain_array("out", res[0], who), res[1]
        return out

    def run_backward(self, case, dout) -> dict:
        spec = self._spec(case)
        res = self._call(self.backward, lambda: spec.call_backward(self.backward, dout, self._state, case))
        names, who = tuple(g for g in spec.grads if g[1:] in case.input_shapes()), self._who(self.backward)
        if isinstance(res, list):
            res = tuple(res)
        want = f"a tuple ({', '.join(names)})" if len(names) > 1 else f"the array {names[0]}"
        grads = res if len(names) > 1 else (res,)
        if res is None and len(names) == 1 and self._ends_with_name(self.backward):
            raise ImplError(f"{who} returned None, expected {want} (is {names[0]} set on every "
                            f"path, or still the starter's {names[0]} = None?)")
        if res is None:
            raise ImplError(f"{who} returned None, expected {want}: a missing return?")
        if not (isinstance(grads, tuple) and len(grads) == len(names)):
            got = f"a tuple of {len(res)}" if isinstance(res, tuple) else type(res).__name__
            raise ImplError(f"{who} returned {got}, expected {want}")
        return {n: plain_array(n, g, who) for n, g in zip(names, grads)}

    def take_notes(self) -> list:
        taken, self.notes[:] = list(self.notes), []
        return taken

    # -- helpers --------------------------------------------------------------------------
    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def _spec(self, case):
        return self.spec or case.kind.protocols["cs231n"]

    def _who(self, fn) -> str:
        return f"{_name(fn)} ({location(fn)})" if self.root else _name(fn)

    def _ends_with_name(self, fn) -> bool:
        if fn not in self._starter:
            self._starter[fn] = _returns_a_name(fn)
        return self._starter[fn]

    def _call(self, fn, call):
        """call(), the code under check's prints on stderr and warnings as notes; its
        exceptions as one-line ImplErrors naming the student's line."""
        try:  # cnncheck's own layers (no root) print nothing and warn of nothing: no capture
            with student_code(self, self.root) if self.root else contextlib.nullcontext():
                return call()
        except StudentTimeout as e:
            raise ImplError(f"{_name(fn)} timed out after {e}{where(e.__traceback__, self.root)}") from None
        except ImplError:
            raise
        except BaseException as e:  # noqa: BLE001 - SystemExit, KeyboardInterrupt: findings too
            raise ImplError(with_hint(f"{_name(fn)} raised {one_line(e)}{where(e.__traceback__, self.root)}")) from None


class _WithParam:
    """The case as a protocol call sees it: its param() is one dict, the call's own copy."""

    def __init__(self, case, param):
        self._case, self._param = case, param

    def param(self):
        return self._param

    def __getattr__(self, name):
        return getattr(self._case, name)


def _name(fn) -> str:
    return getattr(fn, "__name__", type(fn).__name__)


def _returns_a_name(fn) -> bool:
    """Does fn end with `return NAME` (the CS231n starter's `return dx`, dx still None)?"""
    try:
        code = [line.split("#")[0].strip() for line in inspect.getsource(fn).splitlines()]
    except (OSError, TypeError):
        return False
    code = [line for line in code if line]
    return bool(code) and re.fullmatch(r"return\s+\w+", code[-1]) is not None


@contextlib.contextmanager
def student_code(adapter, root: str):
    """Around student code: prints to stderr, warnings recorded as the adapter's notes."""
    from cnncheck.protocols.where import is_student
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(sys.stderr):
        warnings.simplefilter("always")
        yield
    if adapter is not None:
        for w in caught:
            at = f" at {show(w.filename)}:{w.lineno}" if is_student(w.filename, root) else ""
            adapter.note(f"warning{at}: {w.category.__name__}: {str(w.message).splitlines()[0]}")
