"""Average pooling: the reference layers (naive and fast) and the layer record."""
from __future__ import annotations

import numpy as np

from cnncheck.layers._geometry import _at, _crop, _pad, _window, _window_geometry
from cnncheck.evidence import Sign, ratio
from cnncheck.i18n import msg
from cnncheck.layers.dlai import AVG_POOL_SPEC
from cnncheck.layers.kind import Functions, LayerKind, pad_over_half
from cnncheck.layers.suites import POOL_DEFAULT, POOL_LINSPACE, POOL_SUITE

def avg_pool_forward_naive(x, pool_param):
    """Forward pass of an average-pooling layer, with loops.

    Inputs:
    - x: input data, of shape (N, C, H, W)
    - pool_param: dictionary with keys
      - 'pool_height': height of each pooling window
      - 'pool_width': width of each pooling window
      - 'stride': step between neighbouring windows, an int or an [h, w] pair
      - 'pad' (optional, default 0): zero rows/columns added on each side, an int or a pair
      - 'ceil_mode' (optional, default False): round output sizes up, as PyTorch does
      - 'count_include_pad' (optional, default True): padding counts in a window's size
      - 'divisor_override' (optional, default None): divide every window's sum by this

    Returns a tuple of:
    - out: output data, of shape (N, C, H', W') where
        H' = 1 + (H + 2 * pad - pool_height) // stride
        W' = 1 + (W + 2 * pad - pool_width) // stride
      (rounded up with ceil_mode); each output is its window's sum over the window's size
      (see _divisors).
    - cache: (x, pool_param)

    x and pool_param are not modified.
    """
    g = _window_geometry(pool_param, x.shape)
    N, C, H, W = x.shape

    x_pad = _pad(x, g)
    divisor = _divisors(g, (H, W), pool_param, x.dtype)
    out = np.zeros((N, C, *g.out), dtype=x.dtype)
    for n in range(N):
        for c in range(C):
            for i in range(g.out[0]):
                for j in range(g.out[1]):
                    out[n, c, i, j] = x_pad[n, c][_at(g, i, j)].sum() / divisor[i, j]

    cache = (x, pool_param)
    return out, cache


def avg_pool_backward_naive(dout, cache):
    """Backward pass of an average-pooling layer, with loops.

    Inputs:
    - dout: upstream derivatives, of shape (N, C, H', W')
    - cache: (x, pool_param) as returned by avg_pool_forward_naive

    Returns:
    - dx: gradient with respect to x, of shape (N, C, H, W); each window spreads its
      upstream derivative evenly, dout / its divisor (pool_height * pool_width inside the
      input), over its entries.
    """
    x, pool_param = cache
    g = _window_geometry(pool_param, x.shape)
    N, C, H, W = x.shape
    _, _, H_out, W_out = dout.shape

    divisor = _divisors(g, (H, W), pool_param, x.dtype)
    dx_pad = np.zeros(_pad(x, g).shape, dtype=x.dtype)
    for n in range(N):
        for c in range(C):
            for i in range(H_out):
                for j in range(W_out):
                    dx_pad[n, c][_at(g, i, j)] += dout[n, c, i, j] / divisor[i, j]
    dx = _crop(dx_pad, g, H, W)

    return dx


def avg_pool_forward_fast(x, pool_param):
    """Forward pass of an average-pooling layer: a running sum over the kernel offsets.

    Same inputs, output and formula as avg_pool_forward_naive.

    Returns a tuple of:
    - out: output data, of shape (N, C, H', W')
    - cache: (x, pool_param)

    x and pool_param are not modified.
    """
    g = _window_geometry(pool_param, x.shape)
    kh, kw = g.kernel

    x_pad = _pad(x, g)
    out = _window(x_pad, 0, 0, g).copy()
    for k in range(1, kh * kw):
        out += _window(x_pad, *divmod(k, kw), g)
    out /= _divisors(g, x.shape[2:], pool_param, x.dtype)

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
    g = _window_geometry(pool_param, x.shape)
    (kh, kw), (H, W) = g.kernel, x.shape[2:]

    share = dout / _divisors(g, (H, W), pool_param, x.dtype)
    dx_pad = np.zeros((*x.shape[:2], H + g.pad[0] + g.end[0], W + g.pad[1] + g.end[1]), dtype=x.dtype)
    for k in range(kh * kw):
        dx_window = _window(dx_pad, *divmod(k, kw), g)
        dx_window += share

    return np.ascontiguousarray(_crop(dx_pad, g, H, W))


def _divisors(g, size, pool_param, dtype) -> np.ndarray:
    """(H', W') divisor of each window's sum, as PyTorch's avg_pool2d: divisor_override if
    given; else the window's size clipped to the padded input (count_include_pad, the
    default), or to the input itself."""
    if pool_param.get("divisor_override"):
        return np.full(g.out, pool_param["divisor_override"], dtype=dtype)
    counts = []
    for n, k, s, p, o in zip(size, g.kernel, g.stride, g.pad, g.out):
        start = np.arange(o) * s - p
        stop = np.minimum(start + k, n + p)
        inside = np.minimum(stop, n) - np.maximum(start, 0)
        counts.append(stop - start if pool_param.get("count_include_pad", True) else inside)
    return np.outer(*counts).astype(dtype)


# -- what its students get wrong (read by diagnose) ----------------------------------------
def _area_factor(r, c) -> bool:
    """dx off by the window's area, one way or the other: dout not divided, or divided twice."""
    k, area = ratio(c), r.case.kernel[0] * r.case.kernel[1]
    return k is not None and any(abs(k - f) <= 1e-6 * f for f in (area, 1 / area))


HINTS = (
    Sign("window area", _area_factor,
         lambda r, c: msg("dx is {k} times the numerical gradient: each element of a window "
                          "gets dout / (pool_height * pool_width), divided once", k=f"{ratio(c):.4g}"), grads=("dx",)),
)


# -- the record -----------------------------------------------------------------------
class AvgPool(LayerKind):
    def mismatch(self, case):
        return pad_over_half(case)


KIND = AvgPool(
    name="avg_pool", command="pool", inputs=("x",), window_stride=True,
    param_key="pool_param", param_keys=("pool_height", "pool_width", "stride", "pad", "ceil_mode",
                                        "count_include_pad", "divisor_override"),
    naive=(avg_pool_forward_naive, avg_pool_backward_naive), fast=(avg_pool_forward_fast, avg_pool_backward_fast),
    protocols={"cs231n": Functions("avg_pool_forward_naive", "avg_pool_backward_naive", param="pool_param"),
               "dlai": AVG_POOL_SPEC},
    linear_in=frozenset({"x"}),
    default={"name": "average-pool backward", **POOL_DEFAULT},
    suite=POOL_SUITE, linspace=POOL_LINSPACE,
    hints=HINTS,
    summary="average pooling: x (N, C, H, W) -> out (N, C, H', W')",
)
