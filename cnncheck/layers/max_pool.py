"""Max pooling: the reference layers (naive and fast) and the layer record."""
from __future__ import annotations

import numpy as np

from cnncheck.layers._geometry import _at, _crop, _lowest, _pad, _window, _window_geometry, windows
from cnncheck.evidence import ALL_ZEROS, Sign, is_shape, overlapping
from cnncheck.i18n import msg
from cnncheck.layers.dlai import MAX_POOL_SPEC
from cnncheck.layers.kind import Classes, Functions, LayerKind, pad_over_half
from cnncheck.layers.suites import POOL_DEFAULT, POOL_LINSPACE, POOL_SUITE


def max_pool_forward_naive(x, pool_param):
    """Forward pass of a max-pooling layer, with loops.

    Inputs:
    - x: input data, of shape (N, C, H, W)
    - pool_param: dictionary with keys
      - 'pool_height': height of each pooling window
      - 'pool_width': width of each pooling window
      - 'stride': step between neighbouring windows, an int or an [h, w] pair
      - 'pad' (optional, default 0): rows/columns added on each side, an int or an
        [h, w] pair. Padding holds -inf, so it never wins a window (PyTorch's
        max_pool2d(padding=...)) and gets no gradient.
      - 'dilation' (optional, default 1): step between a window's elements, an int or a pair
      - 'ceil_mode' (optional, default False): round output sizes up, as PyTorch does (a
        last window that would start in the padding after the input is dropped)

    Returns a tuple of:
    - out: output data, of shape (N, C, H', W') where
        H' = 1 + (H + 2 * pad - dilation * (pool_height - 1) - 1) // stride
        W' = 1 + (W + 2 * pad - dilation * (pool_width - 1) - 1) // stride
      (rounded up with ceil_mode). A window holding NaN outputs NaN.
    - cache: (x, pool_param)

    x and pool_param are not modified.
    """
    g = _window_geometry(pool_param, x.shape)
    N, C, H, W = x.shape

    x_pad = _pad(x, g, _lowest(x.dtype))
    out = np.zeros((N, C, *g.out), dtype=x.dtype)
    for n in range(N):
        for c in range(C):
            for i in range(g.out[0]):
                for j in range(g.out[1]):
                    out[n, c, i, j] = x_pad[n, c][_at(g, i, j)].max()

    cache = (x, pool_param)
    return out, cache


def max_pool_backward_naive(dout, cache):
    """Backward pass of a max-pooling layer, with loops.

    Inputs:
    - dout: upstream derivatives, of shape (N, C, H', W')
    - cache: (x, pool_param) as returned by max_pool_forward_naive

    Returns:
    - dx: gradient with respect to x, of shape (N, C, H, W). Each window's gradient goes
      to its first maximum in row-major order (np.argmax), ties included, or to its first
      NaN; never to padding, not even when the window's elements are all -inf.
    """
    x, pool_param = cache
    g = _window_geometry(pool_param, x.shape)
    N, C, H, W = x.shape
    _, _, H_out, W_out = dout.shape

    x_pad = _pad(x, g, _lowest(x.dtype))
    inside = _pad(np.ones((1, 1, H, W), bool), g, False)[0, 0]
    dx_pad = np.zeros(x_pad.shape, dtype=x.dtype)
    for n in range(N):
        for c in range(C):
            for i in range(H_out):
                for j in range(W_out):
                    at = _at(g, i, j)
                    window = x_pad[n, c][at]
                    wins = inside[at] & ((window == window.max()) | np.isnan(window))
                    di, dj = divmod(int(np.flatnonzero(wins)[0]), g.kernel[1])
                    dx_pad[n, c, at[0].start + di * g.dilation[0], at[1].start + dj * g.dilation[1]] += dout[n, c, i, j]
    dx = _crop(dx_pad, g, H, W)

    return dx


def max_pool_forward_fast(x, pool_param):
    """Forward pass of a max-pooling layer: a running maximum over the kernel offsets.

    Same inputs, output and formula as max_pool_forward_naive; any pool size, stride, pad
    and dilation, overlapping windows included. Each step is one np.maximum (which keeps
    NaN) over a strided view of the (-inf padded) x holding offset (di, dj) of every window
    (when windows tile x, these views are exactly
    x.reshape(N, C, H', pool_height, W', pool_width)[:, :, :, di, :, dj]).

    Returns a tuple of:
    - out: output data, of shape (N, C, H', W')
    - cache: (x, out, pool_param)

    x and pool_param are not modified.
    """
    g = _window_geometry(pool_param, x.shape)
    kh, kw = g.kernel

    x_pad = _pad(x, g, _lowest(x.dtype))
    out = _window(x_pad, 0, 0, g).copy()
    for k in range(1, kh * kw):
        np.maximum(out, _window(x_pad, *divmod(k, kw), g), out=out)

    cache = (x, out, pool_param)
    return out, cache


def max_pool_backward_fast(dout, cache):
    """Backward pass of a max-pooling layer, vectorized.

    Finds each window's first maximum or NaN (row-major, as np.argmax) among the elements
    inside the input by scanning the kernel offsets from last to first, then scatters dout
    to those positions of the padded input with one np.bincount, which adds overlapping
    contributions in the same order as the loops of max_pool_backward_naive, and crops the
    padding (which never wins) away.

    Inputs:
    - dout: upstream derivatives, of shape (N, C, H', W')
    - cache: (x, out, pool_param) as returned by max_pool_forward_fast

    Returns:
    - dx: gradient with respect to x, of shape (N, C, H, W)
    """
    x, out, pool_param = cache
    g = _window_geometry(pool_param, x.shape)
    (kh, kw), (sh, sw), (dh, dw), (H_out, W_out) = g.kernel, g.stride, g.dilation, g.out
    N, C, H, W = x.shape

    x_pad = _pad(x, g, _lowest(x.dtype))
    inside = _pad(np.ones((1, 1, H, W), bool), g, False)
    Hp, Wp = x_pad.shape[2:]
    # flat index in x_pad of each window's first maximum: window corner + offset
    offset = np.zeros(out.shape, dtype=np.intp)
    for k in range(kh * kw - 1, -1, -1):
        di, dj = divmod(k, kw)
        window = _window(x_pad, di, dj, g)
        wins = ((window == out) | np.isnan(window)) & _window(inside, di, dj, g)
        offset = np.where(wins, di * dh * Wp + dj * dw, offset)
    corner = (np.arange(N * C).reshape(N, C, 1, 1) * (Hp * Wp)
              + np.arange(0, sh * H_out, sh).reshape(H_out, 1) * Wp
              + np.arange(0, sw * W_out, sw))
    dx_pad = np.bincount((corner + offset).ravel(), weights=dout.ravel(), minlength=x_pad.size)
    dx = np.ascontiguousarray(_crop(dx_pad.reshape(x_pad.shape), g, H, W), dtype=x.dtype)

    return dx


# -- the record -----------------------------------------------------------------------


class MaxPool(LayerKind):
    def mismatch(self, case):
        return pad_over_half(case) or padding_alone(case)

    def finish(self, case, checks: dict, grads: dict, dout) -> None:
        if "dx" in checks:
            conserve(case, checks["dx"], grads["dx"], dout)


def padding_alone(case):
    """A dilated window whose taps all fall in the padding (PyTorch's max_pool2d outputs -inf
    there and sends its gradient outside the input): (config keys, message), else None."""
    g = case.kind.grid(case)
    for key, n, k, s, p, d, o in zip(("pool_height", "pool_width"), case.x_shape[2:], g.kernel, g.stride, g.pad,
                                     g.dilation, g.out):
        taps = np.arange(o)[:, None] * s - p + np.arange(k) * d
        if not ((taps >= 0) & (taps < n)).any(axis=1).all():
            return (("dilation", "pad", key), f"with dilation {d} and pad {p}, a window's taps all fall in "
                                              f"the padding ({key} {k}): it has no maximum to send its gradient to")
    return None


def conserve(case, chk, dx, dout) -> None:
    """Max pooling hands each window's dout to its maxima, however ties are split, so for
    every sample and channel sum(dx) = sum(dout). Kinks are left out of the element-wise
    verdict; this catches a backward that gives every tied maximum the full dout, and one
    that loses part of dout or counts it twice (`=` for `+=` where windows overlap). Ties are
    named only when the inputs hold some."""
    dx, dout = dx.astype(np.float64), dout.astype(np.float64)
    excess = dx.sum(axis=(2, 3)) - dout.sum(axis=(2, 3))
    scale = np.abs(dout).sum(axis=(2, 3))
    allowed = case.rtol() * scale + case.noise_factor * np.finfo(case.dtype).eps * scale
    bad = np.abs(excess) > allowed
    if bad.any():
        n, c = (int(i) for i in np.argwhere(bad)[0])
        if chk.passed:  # no element shows it, only the sum: its worst elements would mislead
            chk.worst, chk.error_map = [], None
        chk.passed = False
        why = f"dx {ALL_ZEROS}" if not dx.any() else TIED if has_ties(case) else NO_TIES
        chk.message = msg("sum(dx) - sum(dout) = {excess} at sample {n}, channel {c}: {hint}",
                          excess=f"{excess[n, c]:.4g}", n=n, c=c, hint=why)


NO_TIES = msg("no ties here: part of dout was lost or counted twice (overwritten windows?)")
TIED = msg("each window's dout must reach its maxima once in all: shared among tied maxima, not given "
           "to each in full, and neither lost nor counted twice (overwritten windows?)")


def has_ties(case) -> bool:
    """Does some window of the case's input hold its maximum twice?"""
    g = case.kind.grid(case)
    win = windows(_pad(case.arrays()["x"].astype(np.float64), g, -np.inf), g)
    top = win.max(axis=(4, 5), keepdims=True)
    return bool(((win == top).sum(axis=(4, 5)) > 1).any())


# -- what its students get wrong (read by diagnose) ----------------------------------------
def _overwritten(r, c) -> bool:
    """dout lost or counted twice with no ties to blame, where windows overlap."""
    return NO_TIES in (c.message or "") and overlapping(r.case)


def _crossed(r, c) -> bool:
    """dout lost or counted twice, no ties, and windows that do not overlap: the backward's do."""
    return NO_TIES in (c.message or "") and not overlapping(r.case)


def _misplaced(r, c) -> bool:
    """dx wrong in its values while every window's dout arrived in full: it went to the wrong
    element."""
    return not is_shape(c) and not c.message and c.failed > 0


HINTS = (
    Sign("overwritten windows", _overwritten,
         "windows overlap here, and backward assigns (`dx[...] = ...`) where it must accumulate "
         "(`+=`): a later window overwrites what an earlier one gave", grads=("dx",)),
    Sign("crossed windows", _crossed,
         "dout was lost or counted twice though these windows do not overlap: the backward's windows "
         "do (is the stride left out, `i` for `i * stride`?), and it assigns (`=`) where it must "
         "accumulate (`+=`)", grads=("dx",)),
    Sign("misplaced", _misplaced,
         "each window's dout reaches dx in full, but at the wrong element: check the window's start "
         "(`i * stride`, `j * stride`) and the argmax's offset within it (unravelled with the "
         "window's own shape)", grads=("dx",), fallback=True),
    Sign("out", lambda r, c: not is_shape(c), "out differs from the reference: each output is the max of its "
         "window `x[:, :, i * stride:i * stride + pool_height, j * stride:j * stride + pool_width]`",
         grads=("out",), backward=False, fallback=True),
)


KIND = MaxPool(
    name="max_pool", command="pool", inputs=("x",), window_stride=True,
    param_key="pool_param", param_keys=("pool_height", "pool_width", "stride", "pad", "dilation", "ceil_mode"),
    naive=(max_pool_forward_naive, max_pool_backward_naive), fast=(max_pool_forward_fast, max_pool_backward_fast),
    protocols={
        "cs231n": Functions("max_pool_forward_naive", "max_pool_backward_naive", param="pool_param"),
        "dlfs": Classes(("Pooling",), lambda case, a: {"pool_h": case.pool[0], "pool_w": case.pool[1],
                                                       "stride": case.stride[0], "pad": case.pad[0],
                                                       **KIND.extras(case)},
                        {"dx": None}),
        "dlai": MAX_POOL_SPEC,
    },
    kinks=frozenset({"dx"}),
    default={"name": "cs231n max-pool backward", **POOL_DEFAULT},
    suite=POOL_SUITE, linspace=POOL_LINSPACE,
    hints=HINTS,
    summary="max pooling: x (N, C, H, W) -> out (N, C, H', W')",
)
