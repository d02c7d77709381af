"""im2col and col2im as a layer: the reference layers (naive and fast) and the layer record.

The forward is im2col, the backward col2im (its adjoint: each column entry goes back to the
input element it was copied from, and entries of overlapping windows add up). Both the book
(`common/util.py`: `im2col(input_data, filter_h, filter_w, stride, pad)`) and the course
(`cs231n/im2col.py`: `im2col_indices(x, field_height, field_width, padding, stride)`) have
students write them, in two column layouts. The canonical layout is the book's:

    cols[n * H' * W' + i * W' + j, c * FH * FW + di * FW + dj] = x_pad[n, c, i * stride + di, j * stride + dj]

of shape (N * H' * W', C * FH * FW), one row per window. The course's is its transpose with
the sample index last: course[c * FH * FW + di * FW + dj, (i * W' + j) * N + n].
"""
from __future__ import annotations

import numpy as np

from cnncheck.layers._geometry import _at, _crop, _pad, _window, _window_geometry, windows
from cnncheck.layers.kind import Functions, LayerKind, _plain, spatial_colours
from cnncheck.protocols import ImplError


def im2col_forward_naive(x, im2col_param):
    """im2col with loops: every window of the zero-padded input as one row.

    Inputs:
    - x: input data, of shape (N, C, H, W)
    - im2col_param: dictionary with keys
      - 'pool_height': filter height FH
      - 'pool_width': filter width FW
      - 'stride': step between neighbouring windows, an int or an [h, w] pair
      - 'pad' (optional, default 0): zero rows/columns added on each side, an int or an
        [h, w] pair

    Returns a tuple of:
    - cols: of shape (N * H' * W', C * FH * FW), row n * H' * W' + i * W' + j holding the
      window at output (i, j) of sample n, channels first, where
        H' = 1 + (H + 2 * pad - FH) // stride
        W' = 1 + (W + 2 * pad - FW) // stride
    - cache: (x.shape, im2col_param)

    x and im2col_param are not modified.
    """
    g = _window_geometry(im2col_param, x.shape)
    (fh, fw), (H_out, W_out) = g.kernel, g.out
    N, C, H, W = x.shape

    x_pad = _pad(x, g)
    cols = np.zeros((N * H_out * W_out, C * fh * fw), dtype=x.dtype)
    for n in range(N):
        for i in range(H_out):
            for j in range(W_out):
                cols[(n * H_out + i) * W_out + j] = x_pad[n][(slice(None), *_at(g, i, j))].ravel()

    cache = (x.shape, im2col_param)
    return cols, cache


def im2col_backward_naive(dcols, cache):
    """col2im with loops: every row of dcols added back onto its window.

    Inputs:
    - dcols: upstream derivatives, of shape (N * H' * W', C * FH * FW)
    - cache: (x.shape, im2col_param) as returned by im2col_forward_naive

    Returns:
    - dx: gradient with respect to x, of shape (N, C, H, W); an element in several windows
      gets the sum of their entries, padding's entries are dropped.
    """
    x_shape, im2col_param = cache
    g = _window_geometry(im2col_param, x_shape)
    (fh, fw), (H_out, W_out) = g.kernel, g.out
    N, C, H, W = x_shape

    dx_pad = np.zeros((N, C, H + g.pad[0] + g.end[0], W + g.pad[1] + g.end[1]), dtype=dcols.dtype)
    for n in range(N):
        for i in range(H_out):
            for j in range(W_out):
                row = dcols[(n * H_out + i) * W_out + j].reshape(C, fh, fw)
                dx_pad[n][(slice(None), *_at(g, i, j))] += row
    dx = _crop(dx_pad, g, H, W)

    return dx


def im2col_forward_fast(x, im2col_param):
    """im2col by a strided view of the padded input and one copy.

    Same inputs, output and formula as im2col_forward_naive: the view holds
    x_pad[n, c, i * stride + di, j * stride + dj] at (n, c, i, j, di, dj), and
    (n, i, j) x (c, di, dj) is the column layout.

    Returns a tuple of:
    - cols: of shape (N * H' * W', C * FH * FW)
    - cache: (x.shape, im2col_param)

    x and im2col_param are not modified.
    """
    g = _window_geometry(im2col_param, x.shape)
    (fh, fw), (H_out, W_out) = g.kernel, g.out
    N, C, H, W = x.shape

    cols = windows(_pad(x, g), g).transpose(0, 2, 3, 1, 4, 5).reshape(N * H_out * W_out, C * fh * fw)

    cache = (x.shape, im2col_param)
    return cols, cache


def im2col_backward_fast(dcols, cache):
    """col2im by one strided add per filter offset (the order of the naive loops' sums
    differs, so the two agree to rounding).

    Inputs:
    - dcols: upstream derivatives, of shape (N * H' * W', C * FH * FW)
    - cache: (x.shape, im2col_param) as returned by im2col_forward_fast

    Returns:
    - dx: gradient with respect to x, of shape (N, C, H, W)
    """
    x_shape, im2col_param = cache
    g = _window_geometry(im2col_param, x_shape)
    (fh, fw), (H_out, W_out) = g.kernel, g.out
    N, C, H, W = x_shape

    d = dcols.reshape(N, H_out, W_out, C, fh, fw).transpose(0, 3, 4, 5, 1, 2)  # (N, C, FH, FW, H', W')
    dx_pad = np.zeros((N, C, H + g.pad[0] + g.end[0], W + g.pad[1] + g.end[1]), dtype=dcols.dtype)
    for k in range(fh * fw):
        di, dj = divmod(k, fw)
        dx_window = _window(dx_pad, di, dj, g)
        dx_window += d[:, :, di, dj]
    dx = np.ascontiguousarray(_crop(dx_pad, g, H, W))

    return dx


# -- layouts --------------------------------------------------------------------------


def window_sums(D, case):
    """(N, C, H', W') window sums of an output-layout array (N * H' * W', C * FH * FW)."""
    N, C = case.x_shape[:2]
    return D.reshape(N, *case.out_hw(), C, int(np.prod(case.kernel))).sum(axis=4).transpose(0, 3, 1, 2)


def from_course(cols, case):
    """The course's (C * FH * FW, H' * W' * N), column (i * W' + j) * N + n, to canonical."""
    N, K = case.x_shape[0], KIND.output_shape(case)[1]
    return cols.reshape(K, -1, N).transpose(2, 1, 0).reshape(-1, K)


def to_course(cols, case):
    """Canonical (N * H' * W', C * FH * FW) to the course's layout (from_course's inverse)."""
    N, K = case.x_shape[0], cols.shape[1]
    return np.ascontiguousarray(cols.reshape(N, -1, K).transpose(2, 1, 0).reshape(K, -1))


# -- the record -----------------------------------------------------------------------


class Book(Functions):
    """The book's `im2col(input_data, filter_h, filter_w, stride, pad) -> col` and
    `col2im(col, input_shape, filter_h, filter_w, stride, pad) -> dx`, canonical layout."""

    def call_forward(self, fn, arrays, case):
        x = arrays["x"]
        return fn(x, *case.kernel, _plain(case.stride), _plain(case.pad)), x.shape

    def call_backward(self, fn, dout, state, case):
        return fn(dout, state, *case.kernel, _plain(case.stride), _plain(case.pad))


class Course(Functions):
    """The course's `im2col_indices(x, field_height, field_width, padding, stride) -> cols`
    and `col2im_indices(cols, x_shape, field_height, field_width, padding, stride) -> dx`,
    cols in the course's layout, turned to the canonical one here and back."""

    def call_forward(self, fn, arrays, case):
        x = arrays["x"]
        cols = fn(x, *case.kernel, _plain(case.pad), _plain(case.stride))
        want = KIND.output_shape(case)[::-1]
        if isinstance(cols, np.ndarray) and cols.shape != want:
            raise ImplError(f"{fn.__name__} returned cols of shape {cols.shape}, expected "
                            f"(C * FH * FW, H' * W' * N) = {want}")
        return (from_course(cols, case) if isinstance(cols, np.ndarray) else cols), x.shape

    def call_backward(self, fn, dout, state, case):
        return fn(to_course(dout, case), state, *case.kernel, _plain(case.pad), _plain(case.stride))


class Im2col(LayerKind):
    def output_shape(self, case) -> tuple:
        N, C = case.x_shape[:2]
        return (N * int(np.prod(self.out_hw(case))), C * int(np.prod(self.kernel(case))))

    def reduction(self, case) -> int:
        return 1  # every output is a copy of one input element

    def colours(self, case, gname: str) -> list:
        """Samples and channels are independent, as in pooling; an output row is a window."""
        shape, N = self.output_shape(case), case.x_shape[0]

        def cover(mask):  # (H', W') windows reached -> the output rows holding them, every sample
            return np.broadcast_to(np.tile(mask.ravel(), N)[:, None], shape)

        return list(spatial_colours(case, [(slice(None),)], lambda D: window_sums(D, case), cover))


KIND = Im2col(
    name="im2col", command="im2col", inputs=("x",),
    param_key="im2col_param", param_keys=("pool_height", "pool_width", "stride", "pad", "dilation"),
    window="filter",
    naive=(im2col_forward_naive, im2col_backward_naive), fast=(im2col_forward_fast, im2col_backward_fast),
    protocols={
        "cs231n": Course("im2col_indices", "col2im_indices"),
        "dlfs": Book("im2col", "col2im"),
    },
    linear_in=frozenset({"x"}),
    default={"name": "im2col 3x3 s1 p1", "x_shape": (2, 3, 5, 5), "pool_height": 3, "pool_width": 3,
             "stride": 1, "pad": 1, "seed": 231},
    # Every division exact (the course's code asserts it); stride 1 windows overlap, where
    # a col2im that assigns (=) instead of adding (+=) loses entries.
    suite=tuple((name, {"x_shape": x, "pool_height": f[0], "pool_width": f[1], "stride": s, "pad": p})
                for name, x, f, s, p in [
                    ("3x3 stride 1 pad 1", (2, 3, 5, 5), (3, 3), 1, 1),
                    ("3x3 stride 1 pad 0", (2, 2, 6, 6), (3, 3), 1, 0),
                    ("3x3 stride 2 pad 1", (2, 2, 7, 7), (3, 3), 2, 1),
                    ("2x2 stride 2, no overlap", (2, 3, 4, 6), (2, 2), 2, 0),
                    ("3x2 filter on 5x7, pad 1", (2, 2, 5, 7), (3, 2), 1, 1),
                ]),
    linspace={"x": (-0.3, 0.4)},
    summary="im2col: x (N, C, H, W) -> cols (N * H' * W', C * FH * FW); backward col2im",
)
