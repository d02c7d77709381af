"""What a layer kind is: the record every generic part of cnncheck reads.

A `LayerKind` holds, for one kind of layer (conv, max_pool, ...): its inputs and gradients,
its config keys, its geometry (input shapes, output shape, kernel), its reference
implementations, which inputs it is linear in and which gradients can have kinks, the
receptive-field structure of each gradient (its colours), how each protocol names and calls
it, and its default suite. Config loading, the gradient check, diagnosis, reports and the
command line ask the record; no other module branches on a layer's name (the model is
PyTorch's OpInfo).

Colours: conv and pooling outputs depend on an input element only through its receptive
field, so elements whose output footprints do not overlap are perturbed in the same
forward call and their derivatives read apart (Curtis, Powell and Reid, 1974).
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from cnncheck.i18n import msg
from cnncheck.layers._geometry import Grid, grid, span

DEFAULT_H = {"float64": 1e-5, "float32": 1e-2}
LINEAR_FLOAT32_H = 1.0  # layers linear in x: a large step only divides the rounding noise


@dataclass(frozen=True)
class Functions:
    """A protocol's pair of functions for one layer: `forward(*args, param) -> (out, cache)`
    and `backward(dout, cache) -> grads` (CS231n's style; the book's im2col/col2im too)."""

    forward: str
    backward: str
    args: tuple = ("x",)  # arrays passed first, in order
    param: str | None = None  # the param dict's name ("conv_param"); None: no dict
    grads: tuple = ("dx",)  # what backward returns, in order

    def call_forward(self, fn, arrays: dict, case):
        """(out, state for backward)."""
        return fn(*(arrays.get(a) for a in self.args), case.param())  # a conv without bias: b None

    def call_backward(self, fn, dout, state, case):
        return fn(dout, state)


@dataclass(frozen=True)
class Classes:
    """A layer class in the book's protocol: built with its parameters, `forward(x)`,
    `backward(dout) -> dx`, the other gradients read from attributes afterwards."""

    names: tuple  # class names, the book's first
    build: Callable  # (case, arrays) -> constructor keyword arguments
    grads: dict  # gradient -> attribute holding it (None: returned by backward)


@dataclass(frozen=True)
class ChannelsLast:
    """The Deep Learning Specialization's functions for one layer, channels last:
    `conv_forward(A_prev, W, b, hparameters) -> (Z, cache)`, `conv_backward(dZ, cache) ->
    (dA_prev, dW, db)`, `pool_forward(A_prev, hparameters, mode) -> (A, cache)`,
    `pool_backward(dA, cache, mode) -> dA_prev`, with A_prev (m, n_H, n_W, n_C), W (f, f,
    n_C_prev, n_C) and b (1, 1, 1, n_C). The adapter (protocols.dlai) converts the layout;
    reports show the learner's names and shapes (`names`, `learner_shape`)."""

    forward: str
    backward: str
    names: dict  # cnncheck's name -> the learner's: x -> A_prev, dx -> dA_prev, param -> hparameters
    mode: str | None = None  # pool_forward's mode: "max" or "average"
    suite: tuple = ()  # (name, config fields) rows of this protocol's default suite
    hints: tuple = ()  # bug classes of this population (read by diagnose instead of the record's)
    helpers: tuple = ()  # the learner's helper functions judged on their own (protocols.dlai)

    def learner_shape(self, name: str, shape: tuple) -> tuple:
        """A shape in the learner's layout: x, out (N, C, H, W) -> (m, n_H, n_W, n_C); w (F, C,
        HH, WW) -> (f, f, n_C_prev, n_C); b (F,) -> (1, 1, 1, n_C)."""
        shape = tuple(shape)
        if name.lstrip("d") == "b" and len(shape) == 1:
            return (1, 1, 1, *shape)
        if len(shape) != 4:
            return shape
        return (*shape[2:], shape[1], shape[0]) if name.lstrip("d") == "w" else (shape[0], *shape[2:], shape[1])


@dataclass(frozen=True)
class Colour:
    index: tuple  # numpy index of the elements in the parameter
    read: Callable  # weighted output difference -> derivative of each element
    covered: np.ndarray | None = None  # outputs some element reaches (None: all)


def single(shape, flat: int) -> Colour:
    """One element, read by summing every output (plain element-by-element differences)."""
    return Colour(np.unravel_index(flat, shape), lambda D: D.sum())


def period(k: int, s: int, d: int = 1) -> int:
    """A spacing of input rows whose output windows never overlap: a multiple of the stride
    past the window's span; with dilation d, also the first spacing from k on that is prime
    to d (two rows share a window only when d divides their distance, which is then at least
    d * k, past the span)."""
    P = s * -(-span(k, d) // s)
    return min(P, next(q for q in itertools.count(k) if math.gcd(q, d) == 1)) if d > 1 else P


def _owners(n_in, n_out, k, s, p, d, start, step):
    """R[i, o] = 1 where input row start + i*step is one of output row o's window's taps."""
    offset = np.arange(start, n_in, step)[:, None] - (np.arange(n_out) * s - p)
    return ((offset >= 0) & (offset < span(k, d)) & (offset % d == 0)).astype(np.float64)


def spatial_colours(case, leading: tuple, fold: Callable, cover: Callable = lambda c: c):
    """Colours of an input laid out (N, C, H, W) whose footprints are windows.

    fold(D) brings an output difference to (..., H', W') window sums; cover maps the
    (H', W') mask of reached windows to a mask over the output."""
    (H, W), (Ho, Wo) = case.x_shape[2:], case.out_hw()
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = case.kernel, case.stride, case.padding, case.dilation
    Ph, Pw = period(kh, sh, dh), period(kw, sw, dw)
    rows = [_owners(H, Ho, kh, sh, ph, dh, rh, Ph) for rh in range(min(Ph, H))]  # the same for every lead
    cols = [_owners(W, Wo, kw, sw, pw, dw, rw, Pw) for rw in range(min(Pw, W))]
    covers = [[_some(cover(R.any(0)[:, None] & Cm.any(0)[None, :])) for Cm in cols] for R in rows]
    for lead in leading:
        for rh, R in enumerate(rows):
            for rw, Cm in enumerate(cols):
                index = (slice(None), *lead, slice(rh, None, Ph), slice(rw, None, Pw))
                yield Colour(index, lambda D, R=R, Cm=Cm: R @ fold(D) @ Cm.T, covers[rh][rw])


def _some(covered: np.ndarray):
    """The mask, or None when it covers every output."""
    return None if covered.all() else covered


def spatial_count(case) -> int:
    (H, W), (kh, kw), (sh, sw), (dh, dw) = case.x_shape[2:], case.kernel, case.stride, case.dilation
    return min(period(kh, sh, dh), H) * min(period(kw, sw, dw), W)


@dataclass(frozen=True)
class LayerKind:
    """The record of one layer kind. Geometry methods take a `Case`."""

    name: str
    command: str  # the CLI command that checks it
    inputs: tuple  # its arrays, x first
    param_key: str  # its config mapping (conv_param, pool_param, ...)
    param_keys: tuple  # the keys allowed in it
    naive: tuple  # (forward, backward) in the CS231n protocol
    fast: tuple
    protocols: dict  # protocol name -> Functions | Classes
    always: tuple = ("pool_height", "pool_width", "stride")  # keys its CS231n param dict always holds
    shape_keys: tuple = ("x_shape",)  # config keys of its shapes
    shape_dims: tuple = ("N, C, H, W",)
    window: str = "pool window"  # what messages call its window
    window_stride: bool = False  # is its default stride the window (pooling), not 1?
    linear_in: frozenset = frozenset()  # inputs the output is linear in (others fixed)
    kinks: frozenset = frozenset()  # gradients that can have kinks
    default: dict = field(default_factory=dict)  # the notebook's case, as config fields
    suite: tuple = ()  # (name, config fields) rows of the default suite
    linspace: dict = field(default_factory=dict)  # the notebook's forward-test input ranges
    hints: tuple = ()  # bug classes this layer's students make (read by diagnose)
    summary: str = ""

    # -- geometry -------------------------------------------------------------------------
    @property
    def grads(self) -> tuple:
        return tuple("d" + n for n in self.inputs)

    def kernel(self, case) -> tuple:
        return tuple(case.pool)

    def pads(self, case) -> tuple:
        """(before, after) the input, each an (h, w) pair."""
        return case.pad, case.pad

    def grid(self, case) -> Grid:
        """The case's windows (see layers._geometry), its output size not checked."""
        pad, end = self.pads(case)
        return grid(case.x_shape[2:], self.kernel(case), case.stride, pad, case.dilation, case.ceil_mode,
                    end, check=False)

    def out_hw(self, case) -> tuple:
        """H' = 1 + (H + 2*pad - dilation*(HH - 1) - 1) // stride, and the same for W (floor,
        as PyTorch; its ceiling with ceil_mode)."""
        return self.grid(case).out

    def exact(self, case) -> bool:
        """True when every output-size division is exact (CS231n's contract)."""
        pad, end = self.pads(case)
        return not case.ceil_mode and all((n + p + e - span(k, d)) % s == 0 for n, p, e, k, d, s in
                                          zip(case.x_shape[2:], pad, end, self.kernel(case), case.dilation, case.stride))

    def input_shapes(self, case) -> dict:
        return {"x": case.x_shape}

    def output_shape(self, case) -> tuple:
        return (*case.x_shape[:2], *self.out_hw(case))

    def geometry(self, case) -> dict:
        """Every parameter of the case's geometry, as its config spells it (the report's)."""
        return {key: VALUES[key](case) for key in self.param_keys}

    def extras(self, case) -> dict:
        """The parameters beyond `always` that are not their default: what a config asked for."""
        return {k: v for k, v in self.geometry(case).items()
                if k not in self.always and k != "bias" and v != DEFAULTS[k]}

    def param(self, case) -> dict:
        """A fresh param dict as the CS231n functions take it: the `always` keys, and the
        others only where the case's value is not the default (a student's dict stays as
        the course has it unless a config asks for more). No bias is b = None, not a key."""
        full = self.geometry(case)
        return {**{k: full[k] for k in self.always}, **self.extras(case)}

    def describe(self, case) -> str:
        """A short label: `max_pool 2x2 s2`."""
        kh, kw = self.kernel(case)
        return f"{self.name} {kh}x{kw} s{_label(case.stride)}{extras_label(self.extras(case))}"

    def reduction(self, case) -> int:
        """Terms summed into one output: how far rounding can reach."""
        return int(np.prod(self.kernel(case)))

    def mismatch(self, case):
        """(config keys, message) when the shapes disagree with each other, else None."""
        return None

    def work_elements(self, case) -> int:
        """Elements of temporary arrays beyond inputs and outputs."""
        return 0

    def step(self, dtype: str) -> float:
        linear = "x" in self.linear_in
        return LINEAR_FLOAT32_H if dtype == "float32" and linear else DEFAULT_H[dtype]

    def reference_spec(self) -> Functions:
        """How cnncheck's own reference functions are called: (*inputs, param) -> (out, cache)."""
        return Functions(f"{self.name}_forward", f"{self.name}_backward", args=self.inputs,
                         param=self.param_key, grads=self.grads)

    # -- receptive fields -----------------------------------------------------------------
    def colours(self, case, gname: str) -> list:
        """Structured perturbations for one gradient. Pooling: samples and channels are
        independent, so one spatial colouring serves them all."""
        return list(spatial_colours(case, [(slice(None),)], lambda D: D))

    def colour_count(self, case, gname: str) -> int:
        return spatial_count(case)

    def error_grid(self, gname: str) -> str:
        """What a gradient's error map is summed over (for the report)."""
        return msg("(H, W), summed over N and C")

    # -- extra verdicts -------------------------------------------------------------------
    def finish(self, case, checks: dict, grads: dict, dout) -> None:
        """Checks the element-wise verdict cannot make (max pooling: conservation)."""


def pad_over_half(case):
    """Padding of at most half the window (PyTorch's rule for pooling): no window is all
    padding. (config keys, message) when broken, else None."""
    for key, size, p in zip(("pool_height", "pool_width"), case.pool, case.pad):
        if 2 * p > size:
            return (("pad", key), f"pad {p} is more than half the {key} {size}: a window "
                                  "could hold padding alone (PyTorch requires pad <= pool / 2)")
    return None


def _plain(p: tuple):
    """The form a CS231n layer expects: an int when both sides agree."""
    return p[0] if p[0] == p[1] else list(p)


# Each geometry parameter: its value in a case, and PyTorch's default (the one rule: a
# parameter left out takes its default; stride's is the kind's own, see config).
VALUES = {
    "pool_height": lambda c: c.pool[0], "pool_width": lambda c: c.pool[1],
    "stride": lambda c: _plain(c.stride), "pad": lambda c: c.pad_mode or _plain(c.pad),
    "dilation": lambda c: _plain(c.dilation), "groups": lambda c: c.groups, "bias": lambda c: c.bias,
    "ceil_mode": lambda c: c.ceil_mode, "count_include_pad": lambda c: c.count_include_pad,
    "divisor_override": lambda c: c.divisor_override,
}
DEFAULTS = {"pad": 0, "dilation": 1, "groups": 1, "bias": True, "ceil_mode": False,
            "count_include_pad": True, "divisor_override": None}
LABELS = {"pad": "p{}", "dilation": "d{}", "groups": "g{}", "ceil_mode": "ceil",
          "count_include_pad": "pad-uncounted", "divisor_override": "div{}", "bias": "no-bias"}


def extras_label(extras: dict) -> str:
    """` p1 d2 ceil` for a describe() label."""
    show = lambda v: "x".join(map(str, v)) if isinstance(v, list) else v  # noqa: E731
    return "".join(f" {LABELS[k].format(show(v))}" for k, v in extras.items())


def _label(p: tuple) -> str:
    return str(p[0]) if p[0] == p[1] else "x".join(map(str, p))
