"""Reference convolution and pooling layers in the CS231n protocol.

Each layer comes as a forward/backward pair: `*_forward_*(...) -> (out, cache)` and
`*_backward_*(dout, cache) -> gradients`. The `_naive` pairs are the readable reference,
written with explicit loops; the `_fast` pairs compute the same thing with strided views
and one matrix product (conv) or one vectorized operation per kernel offset (pooling).

Every layer follows the same steps: unpack params, compute, build cache, return.
Geometry follows PyTorch: zero padding on both sides, output sizes rounded down
(H' = 1 + (H + 2 * pad - HH) // stride), so input rows and columns past the last full
window take no part in the output and get zero gradient. `stride` and `pad` may each be
an int or an [h, w] pair. No function modifies its inputs; outputs and gradients have
the dtype of the inputs.

Max pooling sends the gradient of a window to its first maximum in row-major window
order (np.argmax's convention), in the naive and the fast layers alike, so the two agree
exactly even on tied inputs.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


# -- shared helpers -------------------------------------------------------------------


def _pair(v) -> tuple[int, int]:
    """`2` -> (2, 2); `[2, 1]` -> (2, 1): a stride or pad as (h, w)."""
    if np.ndim(v) == 0:
        return int(v), int(v)
    h, w = v
    return int(h), int(w)


def _out_size(size: int, kernel: int, stride: int, pad: int = 0) -> int:
    """1 + (size + 2 * pad - kernel) // stride, the floor PyTorch uses."""
    if stride < 1 or pad < 0:
        raise ValueError(f"stride must be >= 1 and pad >= 0, got stride {stride}, pad {pad}")
    if size + 2 * pad < kernel:
        raise ValueError(f"window of {kernel} does not fit in {size} + 2 * {pad} (padded input)")
    return 1 + (size + 2 * pad - kernel) // stride


def _pad(x: np.ndarray, ph: int, pw: int) -> np.ndarray:
    """Zero-pad the last two axes by ph rows and pw columns on each side (x itself if 0)."""
    if ph == 0 and pw == 0:
        return x
    N, C, H, W = x.shape
    x_pad = np.zeros((N, C, H + 2 * ph, W + 2 * pw), dtype=x.dtype)
    x_pad[:, :, ph:ph + H, pw:pw + W] = x
    return x_pad


def _window(a: np.ndarray, i: int, j: int, sh: int, sw: int, H_out: int, W_out: int) -> np.ndarray:
    """View of a[:, :, i + sh * y, j + sw * x] over all outputs (y, x): kernel offset (i, j)."""
    return a[:, :, i:i + sh * (H_out - 1) + 1:sh, j:j + sw * (W_out - 1) + 1:sw]


# -- convolution ----------------------------------------------------------------------


def conv_forward_naive(x, w, b, conv_param):
    """Forward pass of a convolutional layer, with a loop over output positions.

    The input has N samples, each with C channels, height H and width W. Each of the F
    filters spans all C channels and has height HH and width WW.

    Inputs:
    - x: input data, of shape (N, C, H, W)
    - w: filter weights, of shape (F, C, HH, WW)
    - b: biases, of shape (F,)
    - conv_param: dictionary with keys
      - 'stride': step between neighbouring windows, an int or an [h, w] pair
      - 'pad': zero rows/columns added on each side, an int or an [h, w] pair

    Returns a tuple of:
    - out: output data, of shape (N, F, H', W') where
        H' = 1 + (H + 2 * pad - HH) // stride
        W' = 1 + (W + 2 * pad - WW) // stride
    - cache: (x, w, b, conv_param)

    x, w, b and conv_param are not modified.
    """
    sh, sw = _pair(conv_param["stride"])
    ph, pw = _pair(conv_param["pad"])
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    H_out, W_out = _out_size(H, HH, sh, ph), _out_size(W, WW, sw, pw)

    x_pad = _pad(x, ph, pw)
    out = np.zeros((N, F, H_out, W_out), dtype=np.result_type(x, w, b))
    w_rows = w.reshape(F, C * HH * WW)
    for i in range(H_out):  # every output position: all samples and filters at once
        for j in range(W_out):
            window = x_pad[:, :, i * sh:i * sh + HH, j * sw:j * sw + WW]  # (N, C, HH, WW)
            out[:, :, i, j] = window.reshape(N, C * HH * WW) @ w_rows.T + b

    cache = (x, w, b, conv_param)
    return out, cache


def conv_backward_naive(dout, cache):
    """Backward pass of a convolutional layer, with a loop over output positions.

    Inputs:
    - dout: upstream derivatives, of shape (N, F, H', W')
    - cache: (x, w, b, conv_param) as returned by conv_forward_naive

    Returns a tuple of:
    - dx: gradient with respect to x, of shape (N, C, H, W)
    - dw: gradient with respect to w, of shape (F, C, HH, WW)
    - db: gradient with respect to b, of shape (F,)
    """
    x, w, b, conv_param = cache
    sh, sw = _pair(conv_param["stride"])
    ph, pw = _pair(conv_param["pad"])
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    _, _, H_out, W_out = dout.shape

    x_pad = _pad(x, ph, pw)
    dx_pad = np.zeros(x_pad.shape, dtype=x.dtype)
    dw = np.zeros(w.shape, dtype=w.dtype)
    for i in range(H_out):
        for j in range(W_out):
            rows, cols = slice(i * sh, i * sh + HH), slice(j * sw, j * sw + WW)
            d = dout[:, :, i, j]  # (N, F)
            dw += np.tensordot(d, x_pad[:, :, rows, cols], axes=([0], [0]))  # (F, C, HH, WW)
            dx_pad[:, :, rows, cols] += np.tensordot(d, w, axes=([1], [0]))  # (N, C, HH, WW)
    dx = dx_pad[:, :, ph:ph + H, pw:pw + W]
    db = dout.sum(axis=(0, 2, 3)).astype(b.dtype, copy=False)

    return dx, dw, db


def conv_forward_fast(x, w, b, conv_param):
    """Forward pass of a convolutional layer: im2col by strided view, then one GEMM.

    Same inputs, output and formula as conv_forward_naive. The columns are
    cols[(c, di, dj), (n, i, j)] = x_pad[n, c, i * stride + di, j * stride + dj],
    of shape (C * HH * WW, N * H' * W'), and out = w.reshape(F, -1) @ cols + b.

    Returns a tuple of:
    - out: output data, of shape (N, F, H', W')
    - cache: (x, w, b, conv_param, cols)

    x, w, b and conv_param are not modified.
    """
    sh, sw = _pair(conv_param["stride"])
    ph, pw = _pair(conv_param["pad"])
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    H_out, W_out = _out_size(H, HH, sh, ph), _out_size(W, WW, sw, pw)

    windows = sliding_window_view(_pad(x, ph, pw), (HH, WW), axis=(2, 3))[:, :, ::sh, ::sw]
    cols = windows.transpose(1, 4, 5, 0, 2, 3).reshape(C * HH * WW, N * H_out * W_out)
    out_fn = (w.reshape(F, -1) @ cols).reshape(F, N, H_out, W_out)
    out = np.empty((N, F, H_out, W_out), dtype=np.result_type(x, w, b))
    np.add(out_fn.transpose(1, 0, 2, 3), b.reshape(1, F, 1, 1), out=out)

    cache = (x, w, b, conv_param, cols)
    return out, cache


def conv_backward_fast(dout, cache):
    """Backward pass of a convolutional layer: GEMMs, and a col2im over kernel offsets.

    dw is one GEMM of dout against the cached columns. dx is col2im done offset by offset:
    for each kernel offset (di, dj), one GEMM w[:, :, di, dj].T @ dout gives its (C, N, H', W')
    contribution, added to a strided view of the padded gradient. Working one offset at a
    time keeps the temporary small (a C * HH * WW times larger dcols costs more in
    memory traffic and fresh pages than the extra GEMM calls do).

    Inputs:
    - dout: upstream derivatives, of shape (N, F, H', W')
    - cache: (x, w, b, conv_param, cols) as returned by conv_forward_fast

    Returns a tuple of:
    - dx: gradient with respect to x, of shape (N, C, H, W)
    - dw: gradient with respect to w, of shape (F, C, HH, WW)
    - db: gradient with respect to b, of shape (F,)
    """
    x, w, b, conv_param, cols = cache
    sh, sw = _pair(conv_param["stride"])
    ph, pw = _pair(conv_param["pad"])
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    _, _, H_out, W_out = dout.shape

    dout_fn = dout.transpose(1, 0, 2, 3).reshape(F, N * H_out * W_out).astype(x.dtype, copy=False)
    db = dout.sum(axis=(0, 2, 3)).astype(b.dtype, copy=False)
    dw = (dout_fn @ cols.T).reshape(w.shape).astype(w.dtype, copy=False)
    # channel-first (C, N, ...) so each GEMM result is added without a transpose
    dx_pad = np.zeros((C, N, H + 2 * ph, W + 2 * pw), dtype=x.dtype)
    dx_offset = np.empty((C, N, H_out, W_out), dtype=x.dtype)
    for i in range(HH):
        for j in range(WW):
            np.matmul(w[:, :, i, j].T, dout_fn, out=dx_offset.reshape(C, -1))
            dx_window = _window(dx_pad, i, j, sh, sw, H_out, W_out)
            dx_window += dx_offset
    dx = np.ascontiguousarray(dx_pad[:, :, ph:ph + H, pw:pw + W].transpose(1, 0, 2, 3))

    return dx, dw, db


# -- max pooling ----------------------------------------------------------------------


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


# -- average pooling ------------------------------------------------------------------


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
