"""The Deep Learning Specialization's protocol in the layer records: names, default suites and
the faults of its learners (course 4, week 1, "Convolutional Model: step by step").

Each record's "dlai" entry (`ChannelsLast`) says how the learner's functions are named, which of
cnncheck's names the learner calls what (x is A_prev, dx is dA_prev, ...), its default suite and
its hints. The suites find what the course's own tests cannot (they never run conv_backward at
pad 0, and test pool_backward at stride 1 and f 2 only): pad 0, 1 and 2, stride 1 and 2,
non-square inputs, f 2 and 3, overlapping and non-overlapping pools, and a size where
(n_H_prev + 2 pad - f) % stride != 0. Each bug class fails a different set of cases: the pad-0
unpad only the two pad-0 conv cases, a backward without `* stride` only the stride-2 ones, square-
only indexing only the non-square ones, `distribute_value` dividing by n_H + n_W only f = 3.
"""
from __future__ import annotations

import numpy as np

from cnncheck.evidence import ERROR, GRADS, Pattern, Sign, is_shape, nonsquare_input, overlapping, ratio
from cnncheck.i18n import msg
from cnncheck.layers.kind import ChannelsLast

CONV_NAMES = {"x": "A_prev", "w": "W", "b": "b", "out": "Z", "dx": "dA_prev", "dw": "dW", "db": "db",
              "param": "hparameters"}
POOL_NAMES = {"x": "A_prev", "out": "A", "dx": "dA_prev", "param": "hparameters"}

# name, x_shape (N, C, H, W: A_prev is (m, H, W, C)), w_shape (F, C, f, f), stride, pad
CONV = [
    ("pad 1 stride 2, non-square (v2a's test)", (2, 4, 5, 7), (3, 4, 3, 3), 2, 1),
    ("pad 2 stride 2, f 2 (v2's test)", (2, 3, 4, 4), (4, 3, 2, 2), 2, 2),
    ("pad 0 stride 1", (2, 3, 5, 5), (2, 3, 3, 3), 1, 0),
    ("pad 0 stride 2, f 2", (2, 2, 6, 6), (3, 2, 2, 2), 2, 0),
    ("pad 2 stride 1", (2, 2, 4, 4), (2, 2, 3, 3), 1, 2),
    ("pad 1 stride 1, non-square", (2, 3, 4, 6), (2, 3, 3, 3), 1, 1),
    ("(n_H_prev + 2 pad - f) % stride != 0", (2, 2, 6, 5), (2, 2, 3, 3), 2, 1),
]
CONV_SUITE = tuple((f"dlai {name}", {"x_shape": x, "w_shape": w, "stride": s, "pad": p})
                   for name, x, w, s, p in CONV)
# name, x_shape, f, stride
POOL = [
    ("f 2 stride 1 (the course's backward test)", (2, 3, 4, 4), 2, 1),
    ("f 2 stride 2, no overlap", (2, 3, 4, 4), 2, 2),
    ("f 3 stride 1", (2, 2, 5, 5), 3, 1),
    ("f 3 stride 3, no overlap", (2, 2, 6, 6), 3, 3),
    ("f 3 stride 2, non-square", (2, 2, 7, 5), 3, 2),
    ("f 2 stride 1, non-square", (2, 2, 3, 5), 2, 1),
    ("(n_H_prev - f) % stride != 0", (2, 2, 6, 5), 2, 2),
]
POOL_SUITE = tuple((f"dlai {name}", {"x_shape": x, "pool_height": f, "pool_width": f, "stride": s})
                   for name, x, f, s in POOL)


# -- what its learners get wrong (read by diagnose) -----------------------------------------
UNPAD = r"pad\s*:\s*-\s*pad"
NO_STRIDE = r"(vert|horiz)_start\s*=\s*[hw]\s*$"
UNPAD_TEXT = ("at pad 0 the notebook's own unpad hint `X[pad:-pad, pad:-pad, :]` is empty (`0:-0` is "
              "`0:0`): take `da_prev_pad[pad:pad + n_H_prev, pad:pad + n_W_prev, :]`, right at every pad")
STRIDE_TEXT = ("fails only at stride 2: the backward's windows start without the stride "
               "(`vert_start = h`): use `vert_start = h * stride`, `horiz_start = w * stride`")
RANDOM_TEXT = ("the gradients change from run to run: an accumulator started from random numbers "
               "(`np.random.randn`)? start dA_prev, dW and db from `np.zeros`")
NONE_TEXT = ("a value is still None: a part of the template left unfinished (`... = None` where "
             "code belongs)?")


def _arrays(case) -> dict:
    return case.arrays()  # the case's own inputs, drawn again from its seed


def _empty_at_pad0(r, c) -> bool:
    """dA_prev came back empty, or storing it raised, at pad 0."""
    text = r.error or ""
    return r.case.pad == (0, 0) and ("from shape (0," in text or "of shape (0," in text
                                     or ", 0, 0, " in text.split("returned dA_prev of shape")[-1][:20])


def _yours(c) -> list:
    """(index, yours, reference) of the out check's worst elements."""
    return [(tuple(w["index"]), w["analytic"], w["numerical"]) for w in c.worst]


def _bias_in_sum(r, c) -> bool:
    """Z - reference = b * (f * f * n_C_prev - 1) at the worst elements (b * f * f * n_C_prev
    where b is added once more after the sum): b added to every product."""
    if c is None or is_shape(c) or not c.worst:
        return False
    b, K = _arrays(r.case)["b"], r.case.kind.reduction(r.case)
    return any(all(np.isclose(mine - ref, b[i[1]] * k, rtol=1e-6, atol=1e-9) for i, mine, ref in _yours(c))
               for k in (K - 1, K))


def _pooled_over(how: str):
    """A's worst elements equal the max (mean) over the whole channel, over all channels in the
    window, or over the batch."""
    def test(r, c) -> bool:
        if c is None or is_shape(c) or not c.worst:
            return False
        x, (f, _), (s, _) = _arrays(r.case)["x"], r.case.kernel, r.case.stride
        reduce = np.max if r.case.kind.name == "max_pool" else np.mean
        for (n, ch, i, j), mine, _ in _yours(c):
            rows, cols = slice(i * s, i * s + f), slice(j * s, j * s + f)
            window = {"channel": x[n, ch], "channels": x[n, :, rows, cols], "batch": x[:, ch, rows, cols]}[how]
            if not np.isclose(mine, reduce(window), rtol=1e-9, atol=1e-12):
                return False
        return True
    return test


def _mask_times_input(r, c) -> bool:
    """dA_prev at the worst elements is a whole multiple of A_prev there: the mask multiplied by
    the input slice, not by dA[i, h, w, c]."""
    if c is None or is_shape(c) or not c.worst:
        return False
    x = _arrays(r.case)["x"]
    for w in c.worst:
        k = w["analytic"] / x[tuple(w["index"])] if x[tuple(w["index"])] else 0
        if w["analytic"] == 0 or abs(k - round(k)) > 1e-6 or round(k) < 1:
            return False
    return True


def _divides_by_sum(r, c) -> bool:
    """dA_prev is f * f / (f + f) times the numerical gradient: distribute_value divides by n_H + n_W."""
    k, (f, g) = ratio(c), r.case.kernel
    return k is not None and f * g != f + g and abs(k - f * g / (f + g)) <= 1e-6 * k


def _random_start(r, c) -> bool:
    return "different answer when called twice" in (c.message or "") if c is not None else False


def _unfinished(r, c) -> bool:
    return "NoneType" in (r.error or "") or "returned None" in (r.error or "")


def _signs(backward: str, forward: str) -> tuple:
    """The signs every layer of this protocol shares."""
    return (
        Sign("random start", _random_start, RANDOM_TEXT, grads=("contract",), line=r"np\.random\.randn",
             within=(backward,)),
        Sign("unfinished", _unfinished, NONE_TEXT, grads=("out", ERROR), line=r"=\s*None\b",
             within=(forward, backward), backward=False),
    )


CONV_HINTS = (
    Sign("unpad at pad 0", _empty_at_pad0, UNPAD_TEXT, grads=(ERROR,), line=UNPAD, within=("conv_backward",)),
    Sign("bias in the sum", _bias_in_sum,
         "Z adds b to every product of the window (b counted f * f * n_C_prev times), as the 2017 "
         "notebook's \"Element-wise product ... Add bias\" said and its expected output shows: add b once, "
         "`Z = np.sum(a_slice_prev * W) + b.item()`", grads=("out",), backward=False,
         line=r"W\s*\)?\s*\+\s*b\b", within=("conv_single_step", "conv_forward")),
    *_signs("conv_backward", "conv_forward"),
    Pattern("pad 0", lambda c: c.pad == (0, 0), UNPAD_TEXT, grads=("dx", ERROR), line=UNPAD, within=("conv_backward",)),
    Pattern("stride", lambda c: max(c.stride) > 1, STRIDE_TEXT, grads=GRADS, line=NO_STRIDE,
            within=("conv_backward",)),
    Pattern("non-square output", lambda c: c.out_hw()[0] != c.out_hw()[1],
            "fails only where n_H != n_W: n_W computed from n_H_prev (or h and w swapped)",
            line=r"n_W\w*\s*=.*n_H_prev", within=("conv_forward",)),
    Pattern("non-square input", nonsquare_input,
            "fails only on non-square inputs: n_H and n_W, or h and w, mixed up (n_W computed from "
            "n_H_prev, a loop over range(n_H) for w?)", line=r"n_W\w*\s*=.*n_H_prev", within=("conv_forward",)),
)


def _pool_hints(mode: str) -> tuple:
    what = "max" if mode == "max" else "mean"
    over = [
        Sign(f"pooled over the {how}", _pooled_over(how),
         f"A takes the {what} {text}: the window is `A_prev[i, vert_start:vert_end, horiz_start:horiz_end, c]`",
         grads=("out",), backward=False, within=("pool_forward",))
        for how, text in (("channel", "of the whole channel"), ("channels", "over all channels of the window"),
                          ("batch", "over the whole batch"))]
    own = ([Sign("mask times the input", _mask_times_input,
                 "dA_prev holds A_prev's values: the mask is multiplied by the input slice, not by "
                 "the output gradient: `dA_prev[i, vs:ve, hs:he, c] += mask * dA[i, h, w, c]`",
                 grads=("dx",), line=r"mask\s*\*\s*a_prev|multiply\(\s*mask\s*,\s*a_prev", within=("pool_backward",)),
            Sign("mask", lambda r, c: not is_shape(c),
                 "each max window's gradient is `create_mask_from_window(a_prev_slice) * dA[i, h, w, c]`, "
                 "added (`+=`) into dA_prev at the window", grads=("dx",), fallback=True)]
           if mode == "max" else
           [Sign("n_H + n_W", _divides_by_sum,
                 lambda r, c: msg("dA_prev is {k} times the numerical gradient: distribute_value divides by "
                                  "n_H + n_W (right only at f = 2, the course's test size): divide by n_H * n_W",
                                  k=f"{ratio(c):.4g}"), grads=("dx",), line=r"n_H\s*\+\s*n_W", within=("distribute_value",))])
    return (*over, *own, *_signs("pool_backward", "pool_forward"),
            Pattern("stride", lambda c: max(c.stride) > 1, STRIDE_TEXT, grads=GRADS, line=NO_STRIDE,
                    within=("pool_backward",)),
            Pattern("overlap", overlapping,
                    "fails only where windows overlap (stride < f): dA_prev is assigned (`=`) where it must "
                    "be accumulated (`+=`)", grads=GRADS, within=("pool_backward",)))


CONV_SPEC = ChannelsLast("conv_forward", "conv_backward", CONV_NAMES, suite=CONV_SUITE, hints=CONV_HINTS,
                         helpers=("zero_pad", "conv_single_step"))
MAX_POOL_SPEC = ChannelsLast("pool_forward", "pool_backward", POOL_NAMES, mode="max", suite=POOL_SUITE,
                             hints=_pool_hints("max"), helpers=("create_mask_from_window",))
AVG_POOL_SPEC = ChannelsLast("pool_forward", "pool_backward", POOL_NAMES, mode="average", suite=POOL_SUITE,
                             hints=_pool_hints("average"), helpers=("distribute_value",))
