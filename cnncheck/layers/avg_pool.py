"""Average pooling: the reference layers (naive and fast) and the layer record."""
from __future__ import annotations

import numpy as np

from cnncheck.layers._geometry import _out_size, _pair, _window
from cnncheck.evidence import Sign, ratio
from cnncheck.layers.dlai import AVG_POOL_SPEC
from cnncheck.layers.kind import Functions, LayerKind
from cnncheck.layers.suites import POOL_DEFAULT, POOL_LINSPACE, POOL_SUITE

def avg_pool_forward_naive(x, pool_param):
    """Forward pass of an average-pooling layer, with loops.

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
                    out[n, c, i, j] = x[n, c, i * sh:i * sh + ph, j * sw:j * sw + pw].mean()

    cache = (x, pool_param)
    return out, cache


def avg_pool_backward_naive(dout, cache):
    """Backward pass of an average-pooling layer, with loops.

    Inputs:
    - dout: upstream derivatives, of shape (N, C, H', W')
    - cache: (x, pool_param) as returned by avg_pool_forward_naive

    Returns:
    - dx: gradient with respect to x, of shape (N, C, H, W); each window spreads its
      upstream derivative evenly, dout / (pool_height * pool_width), over its entries.
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
                    dx[n, c, i * sh:i * sh + ph, j * sw:j * sw + pw] += dout[n, c, i, j] / (ph * pw)

    return dx


def avg_pool_forward_fast(x, pool_param):
    """Forward pass of an average-pooling layer: a running sum over the kernel offsets.

    Same inputs, output and formula as avg_pool_forward_naive.

    Returns a tuple of:
    - out: output data, of shape (N, C, H', W')
    - cache: (x, pool_param)

    x and pool_param are not modified.
    """
    ph, pw = pool_param["pool_height"], pool_param["pool_width"]
    sh, sw = _pair(pool_param["stride"])
    N, C, H, W = x.shape
    H_out, W_out = _out_size(H, ph, sh), _out_size(W, pw, sw)

    out = _window(x, 0, 0, sh, sw, H_out, W_out).copy()
    for k in range(1, ph * pw):
        out += _window(x, *divmod(k, pw), sh, sw, H_out, W_out)
    out /= ph * pw

    cache = (x, pool_param)
    return out, cache


def avg_pool_backward_fast(dout, cache):
    """Backward pass of an average-pooling layer: one strided add per kernel offset.

    Inputs:
    - dout: upstream derivatives, of shape (N, C, H', W')
    - cache: (x, pool_param) as returned by avg_pool_forward_fast

    Returns:
    - dx: gradient with respect to x, of shape (N, C, H, W)
    """
    x, pool_param = cache
    ph, pw = pool_param["pool_height"], pool_param["pool_width"]
    sh, sw = _pair(pool_param["stride"])
    _, _, H_out, W_out = dout.shape

    share = dout / (ph * pw)
    dx = np.zeros(x.shape, dtype=x.dtype)
    for k in range(ph * pw):
        dx_window = _window(dx, *divmod(k, pw), sh, sw, H_out, W_out)
        dx_window += share

    return dx


# -- what its students get wrong (read by diagnose) ----------------------------------------
def _area_factor(r, c) -> bool:
    """dx off by the window's area, one way or the other: dout not divided, or divided twice."""
    k, area = ratio(c), r.case.kernel[0] * r.case.kernel[1]
    return k is not None and any(abs(k - f) <= 1e-6 * f for f in (area, 1 / area))


HINTS = (
    Sign("window area", _area_factor,
         lambda r, c: f"dx is {ratio(c):.4g} times the numerical gradient: each element of a window "
                      "gets dout / (pool_height * pool_width), divided once", grads=("dx",)),
)


# -- the record -----------------------------------------------------------------------
KIND = LayerKind(
    name="avg_pool", command="pool", inputs=("x",),
    param_key="pool_param", param_keys=("pool_height", "pool_width", "stride"),
    naive=(avg_pool_forward_naive, avg_pool_backward_naive), fast=(avg_pool_forward_fast, avg_pool_backward_fast),
    protocols={"cs231n": Functions("avg_pool_forward_naive", "avg_pool_backward_naive", param="pool_param"),
               "dlai": AVG_POOL_SPEC},
    linear_in=frozenset({"x"}),
    default={"name": "average-pool backward", **POOL_DEFAULT},
    suite=POOL_SUITE, linspace=POOL_LINSPACE,
    hints=HINTS,
    summary="average pooling: x (N, C, H, W) -> out (N, C, H', W')",
)
