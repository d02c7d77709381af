"""Convolution: the reference layers (naive and fast) and the layer record."""
from __future__ import annotations

import numpy as np

from cnncheck.layers._geometry import Grid, _at, _crop, _pad, _pair, _window, conv_pads, grid
from cnncheck.evidence import ERROR, Pattern, Sign, border_only, is_shape, shape_of
from cnncheck.i18n import msg
from cnncheck.layers.dlai import CONV_SPEC
from cnncheck.layers.kind import (Classes, Colour, Functions, LayerKind, _label, extras_label, spatial_colours,
                                  spatial_count)

NOTEBOOK_FORWARD = {"x": "linspace", "w": "linspace", "b": "linspace"}
# The default suite: small cases inside CS231n's contract (exact divisions, one stride and
# pad for both axes), chosen so that each bug class fails a set of cases no other class
# fails (see diagnose). name, x_shape, w_shape, stride, pad, inputs
SUITE = [
    ("notebook backward", (4, 3, 5, 5), (2, 3, 3, 3), 1, 1, {}),
    ("notebook forward", (2, 3, 4, 4), (3, 3, 4, 4), 2, 1, NOTEBOOK_FORWARD),
    ("pad 0", (2, 3, 6, 6), (2, 3, 3, 3), 1, 0, {}),
    ("pad 2", (2, 2, 5, 5), (3, 2, 3, 3), 1, 2, {}),
    ("stride 2", (2, 3, 7, 7), (2, 3, 3, 3), 2, 1, {}),
    ("2x2 kernel stride 2, no overlap", (2, 2, 6, 6), (3, 2, 2, 2), 2, 0, {}),
    ("non-square input", (2, 3, 5, 7), (2, 3, 3, 3), 1, 1, {}),
    ("3x1 kernel", (2, 2, 6, 6), (2, 2, 3, 1), 1, 1, {}),
    ("non-square input, stride 2, pad 2", (2, 2, 7, 5), (2, 2, 3, 3), 2, 2, {}),
    ("3x2 kernel on 7x8, stride 2, pad 0", (2, 2, 7, 8), (3, 2, 3, 2), 2, 0, {}),
    ("3x5 kernel on 5x7, square output", (2, 2, 5, 7), (2, 2, 3, 5), 1, 1, {}),
]

def _conv_grid(x_shape, w_shape, conv_param) -> Grid:
    """The windows of a conv: kernel (HH, WW), and the param's stride, pad and dilation."""
    kernel, dilation = tuple(w_shape[2:]), _pair(conv_param.get("dilation", 1))
    pad, end = conv_pads(conv_param.get("pad", 0), kernel, dilation)
    return grid(x_shape[2:], kernel, conv_param["stride"], pad, dilation, pad_end=end)


def _out_dtype(x, w, b):
    return np.result_type(x, w) if b is None else np.result_type(x, w, b)


def conv_forward_naive(x, w, b, conv_param):
    """Forward pass of a convolutional layer, with a loop over filter taps (HH x WW).

    The input has N samples, each with C channels, height H and width W. The F filters
    fall into `groups` groups; filter f of group g spans the C / groups channels of group g
    (all C channels when groups is 1; depthwise when groups is C) and has height HH and
    width WW.

    Inputs:
    - x: input data, of shape (N, C, H, W)
    - w: filter weights, of shape (F, C / groups, HH, WW)
    - b: biases, of shape (F,), or None for a conv without bias
    - conv_param: dictionary with keys
      - 'stride': step between neighbouring windows, an int or an [h, w] pair
      - 'pad': zero rows/columns added on each side, an int or an [h, w] pair, or
        'valid' (0) or 'same' (output as large as the input at stride 1; an odd total
        padding puts the extra row or column after the input, as PyTorch does)
      - 'dilation' (optional, default 1): step between a window's taps, an int or a pair
      - 'groups' (optional, default 1): F and C are both multiples of it

    Returns a tuple of:
    - out: output data, of shape (N, F, H', W') where
        H' = 1 + (H + 2 * pad - dilation * (HH - 1) - 1) // stride
        W' = 1 + (W + 2 * pad - dilation * (WW - 1) - 1) // stride
    - cache: (x, w, b, conv_param)

    x, w, b and conv_param are not modified.
    """
    g = _conv_grid(x.shape, w.shape, conv_param)
    G = conv_param.get("groups", 1)
    N, C, H, W = x.shape
    F, Cg, HH, WW = w.shape

    x_pad = _pad(x, g)
    out = np.zeros((N, F, *g.out), dtype=_out_dtype(x, w, b))
    if b is not None:
        out += b.reshape(1, F, 1, 1)
    out_g = out.reshape(N, G, F // G, *g.out)
    for i in range(HH):  # every filter tap: its input at every output position, all at once
        for j in range(WW):
            taps = _window(x_pad, i, j, g).reshape(N, G, Cg, *g.out)  # (N, G, C / G, H', W')
            out_g += np.einsum("ngchw,gfc->ngfhw", taps, w[:, :, i, j].reshape(G, F // G, Cg))

    cache = (x, w, b, conv_param)
    return out, cache


def conv_backward_naive(dout, cache):
    """Backward pass of a convolutional layer, with a loop over output positions.

    Inputs:
    - dout: upstream derivatives, of shape (N, F, H', W')
    - cache: (x, w, b, conv_param) as returned by conv_forward_naive

    Returns a tuple of:
    - dx: gradient with respect to x, of shape (N, C, H, W)
    - dw: gradient with respect to w, of shape (F, C / groups, HH, WW)
    - db: gradient with respect to b, of shape (F,); left out (a pair (dx, dw)) when b is None
    """
    x, w, b, conv_param = cache
    g = _conv_grid(x.shape, w.shape, conv_param)
    G = conv_param.get("groups", 1)
    N, C, H, W = x.shape
    F, Cg, HH, WW = w.shape
    _, _, H_out, W_out = dout.shape

    x_pad = _pad(x, g)
    dx_pad = np.zeros(x_pad.shape, dtype=x.dtype)
    dw = np.zeros(w.shape, dtype=w.dtype)
    w_g, dw_g = w.reshape(G, F // G, Cg, HH, WW), dw.reshape(G, F // G, Cg, HH, WW)
    for i in range(H_out):
        for j in range(W_out):
            at = (slice(None), slice(None), *_at(g, i, j))
            d = dout[:, :, i, j].reshape(N, G, F // G)
            dw_g += np.einsum("ngf,ngchw->gfchw", d, x_pad[at].reshape(N, G, Cg, HH, WW))
            dx_pad[at] += np.einsum("ngf,gfchw->ngchw", d, w_g).reshape(N, C, HH, WW)
    dx = _crop(dx_pad, g, H, W)
    if b is None:
        return dx, dw
    db = dout.sum(axis=(0, 2, 3)).astype(b.dtype, copy=False)

    return dx, dw, db


BLOCK_BYTES = 1 << 21  # the columns of this many bytes' worth of samples at a time


def _column_blocks(x, g: Grid):
    """im2col a block of samples at a time: yields (samples, cols), where for the block's
    samples n, cols[(c, di, dj), n, (i, j)] = x_pad[n, c, i * sh + di * dh, j * sw + dj * dw],
    of shape (C * HH * WW, len(samples), H' * W'). The block is padded, then one strided
    copy per filter tap fills its columns, each into a buffer reused from block to block
    (small enough to stay in cache; the padding's zeros are written once)."""
    N, C, H, W = x.shape
    (HH, WW), (H_out, W_out), (pt, pl), (pb, pr) = g.kernel, g.out, g.pad, g.end
    K = C * HH * WW
    n = max(1, min(N, BLOCK_BYTES // max(1, K * H_out * W_out * x.dtype.itemsize)))
    padded = np.zeros((C, n, H + pt + pb, W + pl + pr), dtype=x.dtype)
    buffer = np.empty((C, HH, WW, n, H_out, W_out), dtype=x.dtype)
    for start in range(0, N, n):
        samples, m = slice(start, min(N, start + n)), min(n, N - start)
        padded[:, :m, pt:pt + H, pl:pl + W] = x[samples].transpose(1, 0, 2, 3)
        x_cn, cols = padded[:, :m], buffer[:, :, :, :m]
        for i in range(HH):
            for j in range(WW):
                cols[:, i, j] = _window(x_cn, i, j, g)
        yield samples, cols.reshape(K, m, H_out * W_out)


def conv_forward_fast(x, w, b, conv_param):
    """Forward pass of a convolutional layer: im2col a block of samples at a time, one GEMM each.

    Same inputs, output and formula as conv_forward_naive: for each block of samples and
    each group g, out[n, g] = w[g].reshape(F / groups, -1) @ cols[g, :, n] (see
    _column_blocks), written straight into the (N, F, H', W') output, + b.

    Returns a tuple of:
    - out: output data, of shape (N, F, H', W')
    - cache: (x, w, b, conv_param)

    x, w, b and conv_param are not modified.
    """
    g = _conv_grid(x.shape, w.shape, conv_param)
    G = conv_param.get("groups", 1)
    F, Cg, HH, WW = w.shape
    P = g.out[0] * g.out[1]

    out = np.empty((len(x), F, *g.out), dtype=_out_dtype(x, w, b))
    w_rows = w.reshape(G, F // G, Cg * HH * WW)
    for samples, cols in _column_blocks(x, g):
        m = len(range(*samples.indices(len(x))))
        np.matmul(w_rows, cols.reshape(G, -1, m, P).transpose(2, 0, 1, 3), out=out[samples].reshape(m, G, -1, P))
        if b is not None:
            out[samples] += b.reshape(1, F, 1, 1)

    cache = (x, w, b, conv_param)
    return out, cache


def _col2im_blocks(dout, w, g: Grid, groups: int, x_shape, dtype):
    """dx, a block of samples at a time: for the block's samples, dcols = w.T @ dout[n]
    (one GEMM per group), of shape
    (C * HH * WW, H' * W') per sample, into a buffer reused from block to block (small
    enough to stay in cache), then added back onto the padded dx tap by tap: the adjoint of
    _column_blocks. dout is read once, in its own layout."""
    N, C, H, W = x_shape
    F, Cg, HH, WW = w.shape
    P, K = g.out[0] * g.out[1], Cg * HH * WW
    dx_pad = np.zeros((N, C, H + g.pad[0] + g.end[0], W + g.pad[1] + g.end[1]), dtype=dtype)
    w_t = w.reshape(groups, F // groups, K).transpose(0, 2, 1)  # (G, C / G * HH * WW, F / G)
    n = max(1, min(N, BLOCK_BYTES // max(1, C * HH * WW * P * np.dtype(dtype).itemsize)))
    buffer = np.empty((n, groups, K, P), dtype=dtype)
    for start in range(0, N, n):
        samples, m = slice(start, min(N, start + n)), min(n, N - start)
        dcols = np.matmul(w_t, dout[samples].reshape(m, groups, F // groups, P), out=buffer[:m])
        taps, dx_block = dcols.reshape(m, C, HH, WW, *g.out), dx_pad[samples]
        for i in range(HH):
            for j in range(WW):
                dx_window = _window(dx_block, i, j, g)
                dx_window += taps[:, :, i, j]
    return np.ascontiguousarray(_crop(dx_pad, g, H, W))


def _depthwise_dx(dout, w, g: Grid, groups: int, x_shape, dtype):
    """dx where each group has one filter (depthwise): per tap, dout[:, g] * w[g, :, i, j]
    over every sample at once, added onto the padded dx (GEMMs of one row would cost more)."""
    N, C, H, W = x_shape
    _, Cg, HH, WW = w.shape
    dx_pad = np.zeros((N, C, H + g.pad[0] + g.end[0], W + g.pad[1] + g.end[1]), dtype=dtype)
    d, w_g = dout.reshape(N, groups, 1, *g.out), w.reshape(groups, Cg, HH, WW)
    tap = np.empty((N, groups, Cg, *g.out), dtype=dtype)
    for i in range(HH):
        for j in range(WW):
            np.multiply(d, w_g[:, :, i, j, None, None], out=tap)
            dx_window = _window(dx_pad, i, j, g)
            dx_window += tap.reshape(N, C, *g.out)
    return np.ascontiguousarray(_crop(dx_pad, g, H, W))


def conv_backward_fast(dout, cache):
    """Backward pass of a convolutional layer: GEMMs, and a col2im a block of samples at a time.

    dw is one GEMM per block of samples and group, of dout against the block's columns
    (rebuilt as in the forward). dx is col2im by blocks of samples (see _col2im_blocks):
    one GEMM per block and group gives the block's columns of dx, added back onto a padded
    dx one kernel offset at a time; depthwise, one product per offset (_depthwise_dx).

    Inputs:
    - dout: upstream derivatives, of shape (N, F, H', W')
    - cache: (x, w, b, conv_param) as returned by conv_forward_fast

    Returns a tuple of:
    - dx: gradient with respect to x, of shape (N, C, H, W)
    - dw: gradient with respect to w, of shape (F, C / groups, HH, WW)
    - db: gradient with respect to b, of shape (F,); left out (a pair (dx, dw)) when b is None
    """
    x, w, b, conv_param = cache
    g = _conv_grid(x.shape, w.shape, conv_param)
    G = conv_param.get("groups", 1)
    N = len(x)
    F, Cg, HH, WW = w.shape
    P = g.out[0] * g.out[1]

    dout = dout.astype(x.dtype, copy=False)
    dout_g = np.ascontiguousarray(dout.reshape(N, G, F // G, P).transpose(1, 2, 0, 3))
    dw_rows = np.zeros((G, F // G, Cg * HH * WW), dtype=x.dtype)
    for samples, cols in _column_blocks(x, g):
        m = len(range(*samples.indices(N)))
        dw_rows += dout_g[:, :, samples].reshape(G, -1, m * P) @ cols.reshape(G, -1, m * P).transpose(0, 2, 1)
    dw = dw_rows.reshape(w.shape).astype(w.dtype, copy=False)
    dx = (_depthwise_dx if F == G else _col2im_blocks)(dout, w, g, G, x.shape, x.dtype)
    if b is None:
        return dx, dw
    db = dout.sum(axis=(0, 2, 3)).astype(b.dtype, copy=False)

    return dx, dw, db


# -- the record -----------------------------------------------------------------------


def _reduce_fw(D):
    """w[f] and b[f] reach out[:, f]: sum over samples and positions."""
    return D.sum(axis=(0, 2, 3))


class Conv(LayerKind):
    def kernel(self, case) -> tuple:
        return tuple(case.w_shape[2:])

    def pads(self, case) -> tuple:
        return conv_pads(case.pad_mode or case.pad, self.kernel(case), case.dilation)

    def input_shapes(self, case) -> dict:
        return {"x": case.x_shape, "w": case.w_shape, **({"b": (case.w_shape[0],)} if case.bias else {})}

    def output_shape(self, case) -> tuple:
        return (case.x_shape[0], case.w_shape[0], *self.out_hw(case))

    def describe(self, case) -> str:
        return (f"conv s{_label(case.stride)} p{case.pad_mode or _label(case.pad)}"
                f"{extras_label(self.extras(case))}{'' if case.bias else ' no-bias'}")

    def mismatch(self, case):
        (F, Cg), C, G = case.w_shape[:2], case.x_shape[1], case.groups
        if G == 1 and Cg != C:
            return (("w_shape", "x_shape"), f"w_shape[1] = {Cg} must equal x_shape[1] = {C} (channels)")
        if C % G or F % G or Cg * G != C:
            return (("w_shape", "groups", "x_shape"),
                    f"groups = {G}: x_shape[1] = {C} and w_shape[0] = {F} must be multiples of it, and "
                    f"w_shape[1] = {Cg} must equal x_shape[1] / groups (channels per group)")
        if case.pad_mode == "same" and case.stride != (1, 1):
            return (("pad", "stride"), "pad 'same' takes stride 1 (PyTorch's rule)")
        return None

    def reduction(self, case) -> int:
        return int(np.prod(case.w_shape[1:]))

    def work_elements(self, case) -> int:  # im2col columns: C*HH*WW x N*H'*W'
        return self.reduction(case) * case.x_shape[0] * int(np.prod(self.out_hw(case)))

    def colours(self, case, gname: str) -> list:
        if gname == "dx":  # channels of a group overlap through its filters: one colouring per
            (N, F), G, Cg = case.output_shape()[:2], case.groups, case.w_shape[1]  # channel, every group at once
            chans = [(slice(c, None, Cg),) for c in range(Cg)]
            return list(spatial_colours(case, chans, lambda D: D.reshape(N, G, F // G, *D.shape[2:]).sum(2)))
        if gname == "db":
            return [Colour((slice(None),), _reduce_fw)]
        _, C, HH, WW = case.w_shape
        return [Colour((slice(None), c, i, j), _reduce_fw) for c in range(C) for i in range(HH) for j in range(WW)]

    def colour_count(self, case, gname: str) -> int:
        if gname == "db":
            return 1
        if gname == "dw":
            return int(np.prod(case.w_shape[1:]))
        return spatial_count(case) * case.w_shape[1]

    def error_grid(self, gname: str) -> str:
        return msg("(HH, WW), summed over F and C") if gname == "dw" else msg("(H, W), summed over N and C")


# -- what its students get wrong (read by diagnose) ----------------------------------------
UNPAD = r"pad\s*:\s*-\s*pad|if\s+pad\s*(>|!=)\s*0"  # the lines an unpad at pad 0 goes wrong on
HARD_CODED = r"\b1\s*:\s*-\s*1\b"
PAD0 = ("fails only at pad 0: an unpad slice like `dx_pad[:, :, pad:-pad, pad:-pad]` is empty when "
        "pad is 0 (use `pad:pad + H`), or an `if pad > 0:` has no else")
PAD_NOT_1 = ("fails wherever pad is not 1: the unpad crop is hard-coded (`dx_pad[:, :, 1:-1, 1:-1]`): "
             "use `dx_pad[:, :, pad:pad + H, pad:pad + W]`")


def _emptied(r, c) -> bool:
    """dx came back with no rows or columns, at pad 0: `pad:-pad` is `0:0`."""
    shape = shape_of(c)
    return shape is not None and r.case.pad == (0, 0) and 0 in shape[2:]


def _cropped_by_one(r, c) -> bool:
    """dx is dx_pad less one row and column on each side, where pad is not 1."""
    shape, (H, W), (ph, pw) = shape_of(c), r.case.x_shape[2:], r.case.pad
    return shape is not None and r.case.pad != (1, 1) and tuple(shape[2:]) == (H + 2 * ph - 2, W + 2 * pw - 2)


def _still_padded(r, c) -> bool:
    """dx came back as big as dx_pad: the crop was left out."""
    shape, (H, W), (ph, pw) = shape_of(c), r.case.x_shape[2:], r.case.pad
    return shape is not None and any(r.case.pad) and tuple(shape[2:]) == (H + 2 * ph, W + 2 * pw)


def _db_per_sample(r, c) -> bool:
    shape = shape_of(c)
    return shape is not None and shape == (r.case.x_shape[0], r.case.w_shape[0])


HINTS = (
    Sign("dx not cropped", _still_padded, "dx still holds the padding: return "
         "`dx_pad[:, :, pad:pad + H, pad:pad + W]`, not dx_pad", grads=("dx",)),
    Sign("db per sample", _db_per_sample, "db keeps one row per sample: sum over N too, "
         "`np.sum(dout, axis=(0, 2, 3))`", grads=("db",)),
    Sign("unpad empties dx", _emptied,
         "dx is empty at pad 0: `dx_pad[:, :, pad:-pad, pad:-pad]` is `0:0` when pad is 0: "
         "use `dx_pad[:, :, pad:pad + H, pad:pad + W]`", grads=("dx",), line=UNPAD),
    Sign("unpad hard-coded", _cropped_by_one, PAD_NOT_1, grads=("dx",), line=HARD_CODED),
    Sign("border", border_only,
         "dx is wrong only on its border: the padding is handled wrong in backward (keep the windows "
         "in the padded dx_pad, then take dx_pad[:, :, pad:pad + H, pad:pad + W])", grads=("dx",)),
    # where nothing else spoke: what each quantity is made of
    Sign("out", lambda r, c: not is_shape(c), "out differs from the reference: check each window "
         "(`x_pad[:, :, i * stride:i * stride + HH, j * stride:j * stride + WW]`), the zero padding, and "
         "that b[f] is added once per output", grads=("out",), backward=False, fallback=True),
    Sign("dx", lambda r, c: True, "dx: each window adds `w[f] * dout[n, f, i, j]` into dx_pad at the "
         "window's place (`+=`), and dx is dx_pad without its padding", grads=("dx",), fallback=True),
    Sign("dw", lambda r, c: True, "dw: each window adds `x_pad window * dout[n, f, i, j]` into dw[f] "
         "(`+=`), over every sample and output position", grads=("dw",), fallback=True),
    Sign("db", lambda r, c: True, "db is the sum of dout over N, H' and W': "
         "`np.sum(dout, axis=(0, 2, 3))`", grads=("db",), fallback=True),
    Pattern("pad 0", lambda c: c.pad == (0, 0), PAD0, grads=("dx", ERROR), line=UNPAD),
    Pattern("pad not 1", lambda c: c.pad != (1, 1), PAD_NOT_1, grads=("dx", ERROR), line=HARD_CODED),
)


KIND = Conv(
    name="conv", command="conv", inputs=("x", "w", "b"),
    param_key="conv_param", param_keys=("stride", "pad", "dilation", "groups", "bias"), always=("stride", "pad"),
    shape_keys=("x_shape", "w_shape"), shape_dims=("N, C, H, W", "F, C, HH, WW"), window="kernel",
    naive=(conv_forward_naive, conv_backward_naive), fast=(conv_forward_fast, conv_backward_fast),
    protocols={
        "cs231n": Functions("conv_forward_naive", "conv_backward_naive", args=("x", "w", "b"),
                            param="conv_param", grads=("dx", "dw", "db")),
        "dlfs": Classes(("Convolution",), lambda case, a: {"W": a["w"], "b": a.get("b"), "stride": case.stride[0],
                                                           "pad": case.pad[0], **KIND.extras(case)},
                        {"dx": None, "dw": "dW", "db": "db"}),
        "dlai": CONV_SPEC,
    },
    linear_in=frozenset({"x", "w", "b"}),
    default={"name": "cs231n conv backward", "x_shape": (4, 3, 5, 5), "w_shape": (2, 3, 3, 3),
             "stride": 1, "pad": 1, "seed": 231},
    suite=tuple((name, {"x_shape": x, "w_shape": w, "stride": s, "pad": p, "inputs": inputs})
                for name, x, w, s, p, inputs in SUITE),
    linspace={"x": (-0.1, 0.5), "w": (-0.2, 0.3), "b": (-0.1, 0.2)},
    hints=HINTS,
    summary="convolution: x (N, C, H, W), w (F, C, HH, WW), b (F,) -> out (N, F, H', W')",
)
