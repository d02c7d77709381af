"""Max pooling: the reference layers (naive and fast) and the layer record."""
from __future__ import annotations

import numpy as np

from cnncheck.layers._geometry import _out_size, _pair, _window
from cnncheck.layers.kind import Classes, Functions, LayerKind
from cnncheck.layers.suites import POOL_DEFAULT, POOL_LINSPACE, POOL_SUITE

def max_pool_forward_naive(x, pool_param):
    """Forward pass of a max-pooling layer, with loops.

    Inputs:
    - x: input data, of shape (N, C, H, W)
    - pool_param: dictionary with keys
      - 'pool_height': height of each pooling window
      - 'pool_width': width of each pooling window
      - 'stride': step between neighbouring windows, an int or an [h, w] pair

    Returns a tuple of:
    - out: output data, of shape (N, C, H', W') where
        H' = 1 + (H - pool_height) // stride
        W' = 1 + (W - pool_width) // stride
    - cache: (x, pool_param)

    x and pool_param are not modified.
    """
    ph, pw = pool_param["pool_height"], pool_param["pool_width"]
    sh, sw = _pair(pool_param["stride"])
    N, C, H, W = x.shape
    H_out, W_out = _out_size(H, ph, sh), _out_size(W, pw, sw)

    out = np.zeros((N, C, H_out, W_out), dtype=x.dtype)
    for n in range(N):
        for c in range(C):
            for i in range(H_out):
                for j in range(W_out):
                    out[n, c, i, j] = x[n, c, i * sh:i * sh + ph, j * sw:j * sw + pw].max()

    cache = (x, pool_param)
    return out, cache


def max_pool_backward_naive(dout, cache):
    """Backward pass of a max-pooling layer, with loops.

    Inputs:
    - dout: upstream derivatives, of shape (N, C, H', W')
    - cache: (x, pool_param) as returned by max_pool_forward_naive

    Returns:
    - dx: gradient with respect to x, of shape (N, C, H, W). Each window's gradient goes
      to its first maximum in row-major order (np.argmax), ties included.
    """
    x, pool_param = cache
    ph, pw = pool_param["pool_height"], pool_param["pool_width"]
    sh, sw = _pair(pool_param["stride"])
    N, C, H, W = x.shape
    _, _, H_out, W_out = dout.shape

    dx = np.zeros(x.shape, dtype=x.dtype)
    for n in range(N):
        for c in range(C):
            for i in range(H_out):
                for j in range(W_out):
                    window = x[n, c, i * sh:i * sh + ph, j * sw:j * sw + pw]
                    di, dj = np.unravel_index(np.argmax(window), window.shape)
                    dx[n, c, i * sh + di, j * sw + dj] += dout[n, c, i, j]

    return dx


def max_pool_forward_fast(x, pool_param):
    """Forward pass of a max-pooling layer: a running maximum over the kernel offsets.

    Same inputs, output and formula as max_pool_forward_naive; any pool size and stride,
    overlapping windows included. Each step is one np.maximum over a strided view of x
    holding offset (di, dj) of every window (when windows tile x, these views are exactly
    x.reshape(N, C, H', pool_height, W', pool_width)[:, :, :, di, :, dj]).

    Returns a tuple of:
    - out: output data, of shape (N, C, H', W')
    - cache: (x, out, pool_param)

    x and pool_param are not modified.
    """
    ph, pw = pool_param["pool_height"], pool_param["pool_width"]
    sh, sw = _pair(pool_param["stride"])
    N, C, H, W = x.shape
    H_out, W_out = _out_size(H, ph, sh), _out_size(W, pw, sw)

    out = _window(x, 0, 0, sh, sw, H_out, W_out).copy()
    for k in range(1, ph * pw):
        np.maximum(out, _window(x, *divmod(k, pw), sh, sw, H_out, W_out), out=out)

    cache = (x, out, pool_param)
    return out, cache


def max_pool_backward_fast(dout, cache):
    """Backward pass of a max-pooling layer, vectorized.

    Finds each window's first maximum (row-major, as np.argmax) by scanning the kernel
    offsets from last to first, then scatters dout to those positions with one
    np.bincount, which adds overlapping contributions in the same order as the loops of
    max_pool_backward_naive.

    Inputs:
    - dout: upstream derivatives, of shape (N, C, H', W')
    - cache: (x, out, pool_param) as returned by max_pool_forward_fast

    Returns:
    - dx: gradient with respect to x, of shape (N, C, H, W)
    """
    x, out, pool_param = cache
    ph, pw = pool_param["pool_height"], pool_param["pool_width"]
    sh, sw = _pair(pool_param["stride"])
    N, C, H, W = x.shape
    _, _, H_out, W_out = dout.shape

    # flat index in x of each window's first maximum: window corner + offset
    offset = np.full(out.shape, (ph - 1) * W + pw - 1, dtype=np.intp)
    for k in range(ph * pw - 2, -1, -1):
        di, dj = divmod(k, pw)
        is_max = _window(x, di, dj, sh, sw, H_out, W_out) == out
        offset = np.where(is_max, di * W + dj, offset)
    corner = (np.arange(N * C).reshape(N, C, 1, 1) * (H * W)
              + np.arange(0, sh * H_out, sh).reshape(H_out, 1) * W
              + np.arange(0, sw * W_out, sw))
    dx = np.bincount((corner + offset).ravel(), weights=dout.ravel(), minlength=x.size)
    dx = dx.reshape(x.shape).astype(x.dtype, copy=False)

    return dx




# -- the record -----------------------------------------------------------------------


class MaxPool(LayerKind):
    def finish(self, case, checks: dict, grads: dict, dout) -> None:
        if "dx" in checks:
            conserve(case, checks["dx"], grads["dx"], dout)


def conserve(case, chk, dx, dout) -> None:
    """Max pooling hands each window's dout to its maxima, however ties are split, so for
    every sample and channel sum(dx) = sum(dout). Kinks are left out of the element-wise
    verdict; this catches a backward that gives every tied maximum the full dout."""
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
        chk.message = (f"sum(dx) - sum(dout) = {excess[n, c]:.4g} at sample {n}, channel {c}: "
                       "each window's dout must be shared among its maxima, not given to each "
                       "of several tied maxima in full")


KIND = MaxPool(
    name="max_pool", command="pool", inputs=("x",),
    param_key="pool_param", param_keys=("pool_height", "pool_width", "stride", "pad"),
    naive=(max_pool_forward_naive, max_pool_backward_naive), fast=(max_pool_forward_fast, max_pool_backward_fast),
    protocols={
        "cs231n": Functions("max_pool_forward_naive", "max_pool_backward_naive", param="pool_param"),
        "dlfs": Classes(("Pooling",), lambda case, a: {"pool_h": case.pool[0], "pool_w": case.pool[1],
                                                       "stride": case.stride[0], "pad": case.pad[0]},
                        {"dx": None}),
    },
    kinks=frozenset({"dx"}),
    default={"name": "cs231n max-pool backward", **POOL_DEFAULT},
    suite=POOL_SUITE, linspace=POOL_LINSPACE,
    summary="max pooling: x (N, C, H, W) -> out (N, C, H', W')",
)
