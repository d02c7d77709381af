"""The book's protocol: a layer class built with its parameters, `forward(x)`, `backward(dout)`.

"Deep Learning from Scratch" writes each layer as a class (`Convolution(W, b, stride=1,
pad=0)`, `Pooling(pool_h, pool_w, stride=1, pad=0)`): forward stores what backward needs on
the instance, backward returns dx and leaves the other gradients in attributes (`self.dW`,
`self.db`). The layer's record says which class names, which constructor arguments and
which attributes (`layers.kind.Classes`). The adapter builds a fresh instance for every
forward/backward pair, from copies of the parameter arrays, and turns anything else - an
exception, a missing return, a gradient stored under another name - into a one-line
ImplError naming the student's file and line, as the function protocol does.
"""
from __future__ import annotations

import difflib
import inspect

import numpy as np

from cnncheck.protocols import ImplError, plain_array
from cnncheck.protocols.functions import FunctionPair
from cnncheck.protocols.where import location


class LayerClass(FunctionPair):
    """One layer class of the book's protocol, called as the record's `Classes` says.

    cls: the class. spec: the record's `Classes` (None: the case's "dlfs" one). root: the
    folder of the student's files ("" for trusted code). Notes, prints, warnings and
    exceptions are handled as for a FunctionPair.
    """

    def __init__(self, cls, label: str = "", spec=None, root: str = ""):
        super().__init__(None, None, label or cls.__name__, spec, root)
        self.cls = cls
        self._layer, self._shapes = None, {}

    # -- the adapter ----------------------------------------------------------------------
    def run_forward(self, case, arrays: dict):
        spec = self._spec(case)
        kwargs = spec.build(case, {k: np.array(v, copy=True) for k, v in arrays.items()})
        self._one_value_per_axis(case, kwargs)
        args, kw = self._arguments(kwargs)
        self._layer = None
        layer = self._call(self._named("__init__"), lambda: self.cls(*args, **kw))
        forward = self._method(layer, "forward")
        out = self._call(self._named("forward"), lambda: forward(arrays["x"]))
        if out is None:
            raise ImplError(f"{self._who('forward')} returned None, expected the array out: a missing return?")
        out = plain_array("out", out, self._who("forward"))
        self._layer, self._shapes = layer, {k: np.shape(v) for k, v in arrays.items()}
        return out

    def run_backward(self, case, dout) -> dict:
        spec, layer = self._spec(case), self._layer
        if layer is None:
            raise ImplError(f"{self.cls.__name__}.backward called with no forward before it")
        before = _arrays_of(layer)
        backward = self._method(layer, "backward")
        res = self._call(self._named("backward"), lambda: backward(dout))
        who = self._who("backward")
        grads = {}
        for name, attr in spec.grads.items():
            if attr is None:  # returned by backward
                if isinstance(res, tuple) and len(res) >= 1:
                    raise ImplError(f"{who} returned a tuple of {len(res)}, expected the array {name}"
                                    f" (the book keeps the other gradients in attributes)")
                if res is None:
                    raise ImplError(f"{who} returned None, expected the array {name}: a missing return?")
                grads[name] = plain_array(name, res, who)
            else:
                shape = self._shapes.get(name[1:])
                taken = set(filter(None, spec.grads.values()))
                grads[name] = plain_array(attr, self._stored(layer, attr, before, shape, taken), who)
        return grads

    # -- helpers --------------------------------------------------------------------------
    def _spec(self, case):
        return self.spec or case.kind.protocols["dlfs"]

    def _named(self, method: str):
        return _Named(f"{self.cls.__name__}.{method}")

    def _who(self, method) -> str:
        method = getattr(method, "__name__", method).rpartition(".")[2]
        name = f"{self.cls.__name__}.{method}"
        fn = getattr(self.cls, method, None)
        return f"{name} ({location(fn)})" if self.root and fn is not None else name

    def _method(self, layer, name: str):
        fn = getattr(layer, name, None)
        if not callable(fn):
            more = " (a forward-only transcription?)" if name == "backward" else ""
            raise ImplError(f"{self.cls.__name__} has no {name} method{more}")
        return fn

    def _arguments(self, kwargs: dict) -> tuple[tuple, dict]:
        """The constructor's arguments: by keyword as the book names them, or by position
        when the class names its parameters otherwise (`Conv(weight, bias, stride, padding)`)."""
        try:
            sig = inspect.signature(self.cls)
        except (TypeError, ValueError):
            return (), kwargs
        try:
            sig.bind(**kwargs)
            return (), kwargs
        except TypeError:
            pass
        try:
            sig.bind(*kwargs.values())
        except TypeError:
            takes = ", ".join(sig.parameters) or "nothing"
            raise ImplError(f"{self.cls.__name__}({takes}) cannot be built with the book's arguments "
                            f"({', '.join(kwargs)})") from None
        names = [p for p in sig.parameters][:len(kwargs)]
        self.note(f"{self.cls.__name__} takes ({', '.join(names)}): given the book's "
                  f"{', '.join(kwargs)} in that order")
        return tuple(kwargs.values()), {}

    def _one_value_per_axis(self, case, kwargs: dict) -> None:
        for key in ("stride", "pad"):
            pair = tuple(getattr(case, key, ()) or ())
            if key in kwargs and len(set(pair)) > 1:
                raise ImplError(f"{self.cls.__name__} takes one {key} for both axes (the book's "
                                f"protocol); this case has {key} {list(pair)}")

    def _stored(self, layer, attr: str, before: dict, shape, taken: set):
        """The gradient backward left in `attr`, or an ImplError naming where it went."""
        value = getattr(layer, attr, None)
        if value is not None:
            return value
        changed = [n for n, a in _arrays_of(layer).items()
                   if n not in taken and (n not in before or before[n] is not a)]

        def likeness(n):  # same shape as the parameter, a gradient's name, close to attr
            return (np.shape(getattr(layer, n)) == shape, n.lower().startswith(("d", "grad")),
                    difflib.SequenceMatcher(None, n.lower(), attr.lower()).ratio())
        likely = sorted((n for n in changed if likeness(n)[0] or likeness(n)[2] >= 0.5), key=likeness)
        name = self.cls.__name__
        if likely:
            raise ImplError(f"{name}.backward stored no {attr} (it set {likely[-1]}: the book reads {attr})")
        why = "still None" if hasattr(layer, attr) else "no such attribute"
        raise ImplError(f"{name}.backward stored no {attr} ({why}): the book reads the gradient from "
                        f"self.{attr} after backward")


class _Named:
    """What FunctionPair's messages call a method: `Convolution.forward`."""

    def __init__(self, name: str):
        self.__name__ = name


def _arrays_of(layer) -> dict:
    """The instance's array attributes (what backward may have stored gradients in)."""
    try:
        return {n: v for n, v in vars(layer).items() if isinstance(v, np.ndarray)}
    except TypeError:  # __slots__
        return {}
