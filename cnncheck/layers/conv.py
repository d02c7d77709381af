"""Convolution: the reference layers (naive and fast) and the layer record."""
from __future__ import annotations

import numpy as np

from cnncheck.layers._geometry import _out_size, _pad, _pair, _window
from cnncheck.evidence import ERROR, Pattern, Sign, border_only, is_shape, shape_of
from cnncheck.layers.dlai import CONV_SPEC
from cnncheck.layers.kind import Classes, Colour, Functions, LayerKind, _label, _plain, spatial_colours, spatial_count

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

def conv_forward_naive(x, w, b, conv_param):
    """Forward pass of a convolutional layer, with a loop over filter taps (HH x WW).

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
    out += b.reshape(1, F, 1, 1)
    for i in range(HH):  # every filter tap: its input at every output position, all at once
        for j in range(WW):
            taps = x_pad[:, :, i:i + sh * (H_out - 1) + 1:sh, j:j + sw * (W_out - 1) + 1:sw]  # (N, C, H', W')
            out += np.einsum("nchw,fc->nfhw", taps, w[:, :, i, j])

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


BLOCK_BYTES = 1 << 21  # the columns of this many bytes' worth of samples at a time


def _column_blocks(x, HH, WW, sh, sw, ph, pw):
    """im2col a block of samples at a time: yields (samples, cols), where for the block's
    samples n, cols[(c, di, dj), n, (i, j)] = x_pad[n, c, i * sh + di, j * sw + dj],
    of shape (C * HH * WW, len(samples), H' * W'). The block is padded, then one strided
    copy per filter tap fills its columns, each into a buffer reused from block to block
    (small enough to stay in cache; the padding's zeros are written once)."""
    N, C, H, W = x.shape
    H_out, W_out = _out_size(H, HH, sh, ph), _out_size(W, WW, sw, pw)
    K = C * HH * WW
    n = max(1, min(N, BLOCK_BYTES // (K * H_out * W_out * x.dtype.itemsize)))
    padded = np.zeros((C, n, H + 2 * ph, W + 2 * pw), dtype=x.dtype)
    buffer = np.empty((C, HH, WW, n, H_out, W_out), dtype=x.dtype)
    for start in range(0, N, n):
        samples, m = slice(start, min(N, start + n)), min(n, N - start)
        padded[:, :m, ph:ph + H, pw:pw + W] = x[samples].transpose(1, 0, 2, 3)
        x_cn, cols = padded[:, :m], buffer[:, :, :, :m]
        for i in range(HH):
            for j in range(WW):
                cols[:, i, j] = _window(x_cn, i, j, sh, sw, H_out, W_out)
        yield samples, cols.reshape(K, m, H_out * W_out)


def conv_forward_fast(x, w, b, conv_param):
    """Forward pass of a convolutional layer: im2col a block of samples at a time, one GEMM each.

    Same inputs, output and formula as conv_forward_naive: for each block of samples,
    out[n] = w.reshape(F, -1) @ cols[:, n] (see _column_blocks), written straight into
    the (N, F, H', W') output, + b.

    Returns a tuple of:
    - out: output data, of shape (N, F, H', W')
    - cache: (x, w, b, conv_param)

    x, w, b and conv_param are not modified.
    """
    sh, sw = _pair(conv_param["stride"])
    ph, pw = _pair(conv_param["pad"])
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    H_out, W_out = _out_size(H, HH, sh, ph), _out_size(W, WW, sw, pw)

    out = np.empty((N, F, H_out, W_out), dtype=np.result_type(x, w, b))
    w_rows = w.reshape(F, -1)
    for samples, cols in _column_blocks(x, HH, WW, sh, sw, ph, pw):
        np.matmul(w_rows, cols.transpose(1, 0, 2), out=out[samples].reshape(-1, F, H_out * W_out))
        out[samples] += b.reshape(1, F, 1, 1)

    cache = (x, w, b, conv_param)
    return out, cache


def conv_backward_fast(dout, cache):
    """Backward pass of a convolutional layer: GEMMs, and a col2im over kernel offsets.

    dw is one GEMM per block of samples, of dout against the block's columns (rebuilt as
    in the forward). dx is col2im done offset by offset:
    for each kernel offset (di, dj), one GEMM w[:, :, di, dj].T @ dout gives its (C, N, H', W')
    contribution, added to a strided view of the padded gradient. Working one offset at a
    time keeps the temporary small (a C * HH * WW times larger dcols costs more in
    memory traffic and fresh pages than the extra GEMM calls do).

    Inputs:
    - dout: upstream derivatives, of shape (N, F, H', W')
    - cache: (x, w, b, conv_param) as returned by conv_forward_fast

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

    dout_nf = dout.reshape(N, F, H_out * W_out).astype(x.dtype, copy=False)
    dout_fn = dout_nf.transpose(1, 0, 2).reshape(F, N * H_out * W_out)
    db = dout.sum(axis=(0, 2, 3)).astype(b.dtype, copy=False)
    dw_rows = np.zeros((F, C * HH * WW), dtype=np.result_type(x, dout))
    for samples, cols in _column_blocks(x, HH, WW, sh, sw, ph, pw):
        dw_rows += np.tensordot(dout_nf[samples], cols, axes=([0, 2], [1, 2]))
    dw = dw_rows.reshape(w.shape).astype(w.dtype, copy=False)
    dx_pad = np.zeros((C, N, H + 2 * ph, W + 2 * pw), dtype=x.dtype)
    dx_offset = np.empty((C, N, H_out, W_out), dtype=x.dtype)
    for i in range(HH):
        for j in range(WW):
            np.matmul(w[:, :, i, j].T, dout_fn, out=dx_offset.reshape(C, -1))
            dx_window = _window(dx_pad, i, j, sh, sw, H_out, W_out)
            dx_window += dx_offset
    dx = np.ascontiguousarray(dx_pad[:, :, ph:ph + H, pw:pw + W].transpose(1, 0, 2, 3))

    return dx, dw, db




# -- the record -----------------------------------------------------------------------


def _reduce_fw(D):
    """w[f] and b[f] reach out[:, f]: sum over samples and positions."""
    return D.sum(axis=(0, 2, 3))


class Conv(LayerKind):
    def kernel(self, case) -> tuple:
        return tuple(case.w_shape[2:])

    def input_shapes(self, case) -> dict:
        return {"x": case.x_shape, "w": case.w_shape, "b": (case.w_shape[0],)}

    def output_shape(self, case) -> tuple:
        return (case.x_shape[0], case.w_shape[0], *self.out_hw(case))

    def param(self, case) -> dict:
        return {"stride": _plain(case.stride), "pad": _plain(case.pad)}

    def describe(self, case) -> str:
        return f"conv s{_label(case.stride)} p{_label(case.pad)}"

    def mismatch(self, case):
        if case.w_shape[1] != case.x_shape[1]:
            return (("w_shape", "x_shape"),
                    f"w_shape[1] = {case.w_shape[1]} must equal x_shape[1] = {case.x_shape[1]} (channels)")
        return None

    def reduction(self, case) -> int:
        return case.x_shape[1] * int(np.prod(self.kernel(case)))

    def work_elements(self, case) -> int:  # im2col columns: C*HH*WW x N*H'*W'
        return self.reduction(case) * case.x_shape[0] * int(np.prod(self.out_hw(case)))

    def colours(self, case, gname: str) -> list:
        if gname == "dx":  # channels overlap through the filters: one colouring per channel
            chans = [(c,) for c in range(case.x_shape[1])]
            return list(spatial_colours(case, chans, lambda D: D.sum(1)))
        if gname == "db":
            return [Colour((slice(None),), _reduce_fw)]
        _, C, HH, WW = case.w_shape
        return [Colour((slice(None), c, i, j), _reduce_fw) for c in range(C) for i in range(HH) for j in range(WW)]

    def colour_count(self, case, gname: str) -> int:
        if gname == "db":
            return 1
        if gname == "dw":
            return int(np.prod(case.w_shape[1:]))
        return spatial_count(case) * case.x_shape[1]

    def error_grid(self, gname: str) -> str:
        return "(HH, WW), summed over F and C" if gname == "dw" else "(H, W), summed over N and C"


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
    param_key="conv_param", param_keys=("stride", "pad"),
    shape_keys=("x_shape", "w_shape"), shape_dims=("N, C, H, W", "F, C, HH, WW"), window="kernel",
    naive=(conv_forward_naive, conv_backward_naive), fast=(conv_forward_fast, conv_backward_fast),
    protocols={
        "cs231n": Functions("conv_forward_naive", "conv_backward_naive", args=("x", "w", "b"),
                            param="conv_param", grads=("dx", "dw", "db")),
        "dlfs": Classes(("Convolution",), lambda case, a: {"W": a["w"], "b": a["b"], "stride": case.stride[0],
                                                           "pad": case.pad[0]},
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
