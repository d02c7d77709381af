"""The Deep Learning Specialization's protocol: channels last, `conv_forward(A_prev, W, b,
hparameters)`, `pool_forward(A_prev, hparameters, mode)`.

Course 4, week 1 ("Convolutional Model: step by step") has its learners write
`conv_forward(A_prev, W, b, hparameters) -> (Z, cache)` with A_prev (m, n_H_prev, n_W_prev,
n_C_prev), W (f, f, n_C_prev, n_C), b (1, 1, 1, n_C) and hparameters {"stride", "pad"};
`conv_backward(dZ, cache) -> (dA_prev, dW, db)`; `pool_forward(A_prev, hparameters, mode) ->
(A, cache)` with hparameters {"f", "stride"} and mode "max" or "average"; `pool_backward(dA,
cache, mode) -> dA_prev`. The judge works in one layout (N, C, H, W): this adapter turns its
arrays into the learner's (views, so a learner's in-place change still shows), calls the
learner's functions, checks what they return against the learner's own shapes and names, and
turns the results back. Square windows, one stride, no pooling pad: a case outside that is an
ImplError saying so. The helpers (zero_pad, conv_single_step, create_mask_from_window,
distribute_value), when defined, are judged on their own against the course's formulas: a wrong
one is a note the judge makes the first hint of the cases it breaks.
"""
from __future__ import annotations

import re

import numpy as np

from cnncheck.protocols import ImplError, plain_array
from cnncheck.protocols.functions import FunctionPair, _name
from cnncheck.protocols.where import location

LABEL = "(Deep Learning Specialization, channels last)"  # ends the adapter's label
HELPER = "judged on its own"  # in a note on a helper that is wrong (the judge makes it a hint)


def _helper_cases() -> dict:
    """name -> [(arguments, reference result)]: each helper of the notebook on small inputs, with
    what dlai.md's protocol says it returns."""
    rng = np.random.RandomState(1)
    X, a, W, b = rng.randn(2, 3, 4, 2), rng.randn(3, 3, 2), rng.randn(3, 3, 2), rng.randn(1, 1, 1)
    window = rng.randn(3, 3)  # no ties: the course leaves several maxima open
    return {
        "zero_pad": [((X, p), np.pad(X, ((0, 0), (p, p), (p, p), (0, 0)))) for p in (0, 1, 2)],
        "conv_single_step": [((a, W, b), np.sum(a * W) + b.item())],
        "create_mask_from_window": [((window,), window == np.max(window))],
        "distribute_value": [((dz, shape), np.ones(shape) * dz / (shape[0] * shape[1]))
                             for dz, shape in ((2.0, (2, 2)), (3.0, (3, 3)), (1.5, (2, 3)))],
    }


def _described(args) -> str:
    return ", ".join(f"an array of shape {_shape(x.shape)}" if isinstance(x, np.ndarray) else repr(x) for x in args)


def protocol_of(label: str) -> str:
    """"dlai" for an adapter label this module wrote, else "" (the judge's side: the label is
    what crosses from the worker)."""
    return "dlai" if str(label).endswith(LABEL) else ""


def to_learner(name: str, a: np.ndarray) -> np.ndarray:
    """cnncheck's layout -> the learner's, as a view: x (N, C, H, W) -> (m, n_H, n_W, n_C),
    w (F, C, f, f) -> (f, f, n_C_prev, n_C), b (F,) -> (1, 1, 1, n_C)."""
    if name == "b":
        return a.reshape(1, 1, 1, -1)
    return a.transpose(2, 3, 1, 0) if name == "w" else a.transpose(0, 2, 3, 1)


def from_learner(name: str, a: np.ndarray) -> np.ndarray:
    """The learner's layout -> cnncheck's (the inverse of to_learner)."""
    if name == "b":
        return a.reshape(-1)
    return a.transpose(3, 2, 0, 1) if name == "w" else a.transpose(0, 3, 1, 2)


def _shape(t) -> str:
    return "(" + ", ".join(map(str, t)) + ")"


def _expected(name: str) -> str:
    return {"zero_pad": "`np.pad(X, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode='constant')`, zeros on axes 1 "
                        "and 2 only",
            "conv_single_step": "`np.sum(a_slice_prev * W) + b`: one number, b added once",
            "create_mask_from_window": "`x == np.max(x)`",
            "distribute_value": "`np.ones(shape) * dz / (n_H * n_W)`"}[name]


class ChannelsLastPair(FunctionPair):
    """One layer's learner functions in the channels-last protocol (spec: the record's
    `ChannelsLast`)."""

    def __init__(self, forward, backward, label: str, spec, root: str = "", skipped=None, helpers=None):
        super().__init__(forward, backward, f"{label} {LABEL}", spec, root)
        self.skipped = dict(skipped or {})  # notebook globals the loader left out -> where
        self.helpers = dict(helpers or {})  # the learner's helpers of this layer, judged once
        self._helper_notes = None

    # -- the adapter ----------------------------------------------------------------------
    def run_forward(self, case, arrays: dict):
        spec, names = self.spec, self.spec.names
        if self._helper_notes is None:
            self._helper_notes = [n for name, fn in self.helpers.items() for n in self._judge_helper(name, fn)]
        for n in self._helper_notes:
            self.note(n)
        hparameters = self._hparameters(case)
        inputs = [to_learner(k, arrays[k]) for k in case.kind.inputs]
        args = (*inputs, hparameters) + ((spec.mode,) if spec.mode else ())
        res = self._call(self.forward, lambda: self.forward(*args))
        who, out = self._who(self.forward), names["out"]
        if isinstance(res, list):
            res = tuple(res)
        if not (isinstance(res, tuple) and len(res) == 2):
            got = "None" if res is None else f"a tuple of {len(res)}" if isinstance(res, tuple) else type(res).__name__
            raise ImplError(f"{who} returned {got}, expected a tuple ({out}, cache)"
                            + (": a missing return, or a body still unfinished?" if res is None else ""))
        value = plain_array(out, res[0], who)
        self._state = res[1]
        expected = spec.learner_shape("out", case.output_shape())
        if value.shape != expected:
            dims = "m, n_H, n_W, n_C"
            raise ImplError(f"{who} returned {out} of shape {_shape(value.shape)}, expected "
                            f"{_shape(expected)} = ({dims}), n_H = int((n_H_prev - f + 2 * pad) / stride) + 1")
        return from_learner("out", value)

    def run_backward(self, case, dout) -> dict:
        spec, names = self.spec, self.spec.names
        if self.backward is None:
            raise ImplError(f"no function {spec.backward} is defined (the backward is still to write?)")
        args = (to_learner("out", dout), self._state) + ((spec.mode,) if spec.mode else ())
        res = self._call(self.backward, lambda: self.backward(*args))
        who, grads = self._who(self.backward), case.kind.grads
        learner = [names[g] for g in grads]
        if isinstance(res, list):
            res = tuple(res)
        got = res if len(grads) > 1 else (res,)
        want = f"a tuple ({', '.join(learner)})" if len(grads) > 1 else f"the array {learner[0]}"
        if res is None:
            raise ImplError(f"{who} returned None, expected {want}: a missing return, or a body still "
                            "unfinished (the template's `None`)?")
        if not (isinstance(got, tuple) and len(got) == len(grads)):
            n = f"a tuple of {len(res)}" if isinstance(res, tuple) else type(res).__name__
            raise ImplError(f"{who} returned {n}, expected {want}")
        shapes = case.input_shapes()
        out = {}
        for g, mine, value in zip(grads, learner, got):
            value = plain_array(mine, value, who)
            expected = spec.learner_shape(g, shapes[g[1:]])
            if g == "db" and value.size == expected[-1] and value.shape != expected:
                self.note(f"{who} returns {mine} of shape {_shape(value.shape)}: the course's b is "
                          f"{_shape(expected)}, db should be too")
                value = value.reshape(expected)
            if value.shape != expected:
                raise ImplError(f"{who} returned {mine} of shape {_shape(value.shape)}, expected "
                                f"{_shape(expected)}, the shape of {names[g[1:]]}")
            out[g] = from_learner(g[1:], value)
        return out

    # -- helpers --------------------------------------------------------------------------
    def _judge_helper(self, name: str, fn) -> list[str]:
        """A note when the helper, on its own, differs from what the course says it returns."""
        for args, want in _helper_cases()[name]:
            try:
                got = self._call(fn, lambda: fn(*[np.array(x, copy=True) if isinstance(x, np.ndarray) else x for x in args]))
            except ImplError as e:
                return [f"{name}, {HELPER}, fails: {e}"]
            got_a = np.asarray(got) if got is not None else None
            ok = got_a is not None and got_a.size == np.size(want) and (
                got_a.shape == np.shape(want) or np.size(want) == 1) and np.allclose(
                got_a.reshape(np.shape(want)).astype(np.float64), np.asarray(want, np.float64), rtol=1e-9, atol=1e-12)
            if not ok:
                what = "None" if got_a is None else f"shape {_shape(got_a.shape)}" if got_a.shape != np.shape(want) \
                    else "values different from the course's"
                return [f"{name} (defined at {location(fn)}), {HELPER}, is wrong: {name}({_described(args)}) "
                        f"returned {what}, where the course expects {_expected(name)}"]
        return []

    def _call(self, fn, call):
        """FunctionPair's, and a NameError of a notebook global named for what it is."""
        try:
            return super()._call(fn, call)
        except ImplError as e:
            m = re.search(r"NameError: name '(\w+)' is not defined", str(e))
            if not m or m.group(1) not in self.skipped:
                raise
            name = m.group(1)
            raise ImplError(f"{e} (hint: {name} is a global of the notebook, set at "
                            f"{self.skipped[name]} outside any function, which cnncheck does not run: "
                            f"{_name(fn)} must use its own arguments (its cache, not {name}))") from None

    def _hparameters(self, case) -> dict:
        """{"stride", "pad"} for conv, {"f", "stride"} for pooling, ints: the protocol has no
        [h, w] pairs, no non-square window and no pooling pad."""
        who = self._who(self.forward)
        kernel = case.kernel
        if len(set(case.stride)) > 1 or len(set(kernel)) > 1 or len(set(case.pad)) > 1:
            raise ImplError(f"{who} takes one stride, one pad and square windows (the course's protocol); "
                            f"this case has stride {list(case.stride)}, pad {list(case.pad)} and a {kernel[0]}x{kernel[1]} window")
        if self.spec.mode:
            if any(case.pad):
                raise ImplError(f"{who} takes no pad (the course's pooling); this case has pad {list(case.pad)}")
            return {"f": int(kernel[0]), "stride": int(case.stride[0])}
        return {"stride": int(case.stride[0]), "pad": int(case.pad[0])}
