"""Geometry shared by the reference layers: pairs, output sizes, padding, strided windows.

A window geometry (`Grid`) holds, for height and width alike: the kernel, stride, dilation,
the padding before the input and the padding after it (asymmetric for conv's `pad: same`
with an even span; for pooling's `ceil_mode`, the overhang of the last window as well).
A window at output (i, j) reads x_pad[i * stride + di * dilation, j * stride + dj * dilation]
for its offsets (di, dj), as PyTorch does.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

# -- shared helpers -------------------------------------------------------------------


def _pair(v) -> tuple[int, int]:
    """`2` -> (2, 2); `[2, 1]` -> (2, 1): a stride or pad as (h, w)."""
    if np.ndim(v) == 0:
        return int(v), int(v)
    h, w = v
    return int(h), int(w)


def span(kernel: int, dilation: int = 1) -> int:
    """Rows a window covers: dilation * (kernel - 1) + 1."""
    return dilation * (kernel - 1) + 1


def out_size(size: int, kernel: int, stride: int, pad: int = 0, dilation: int = 1,
             ceil_mode: bool = False, pad_end: int | None = None) -> int:
    """1 + (size + pad + pad_end - span) // stride, the floor PyTorch uses (its ceiling with
    ceil_mode, less the last window when that would start in the padding after the input)."""
    pad_end = pad if pad_end is None else pad_end
    out = 1 + (size + pad + pad_end - span(kernel, dilation) + (stride - 1 if ceil_mode else 0)) // stride
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def _out_size(size: int, kernel: int, stride: int, pad: int = 0, dilation: int = 1,
              ceil_mode: bool = False, pad_end: int | None = None) -> int:
    """out_size, for a geometry the layers can compute (else ValueError)."""
    pad_end = pad if pad_end is None else pad_end
    if stride < 1 or pad < 0 or dilation < 1:
        raise ValueError(f"stride and dilation must be >= 1 and pad >= 0, got stride {stride}, "
                         f"pad {pad}, dilation {dilation}")
    out = out_size(size, kernel, stride, pad, dilation, ceil_mode, pad_end)
    if out < 1:  # (ceil_mode lets the one window overhang the padded input, as PyTorch)
        raise ValueError(f"window of {span(kernel, dilation)} does not fit in {size} + {pad} + {pad_end} "
                         "(padded input)")
    return out


def conv_pads(pad, kernel: tuple, dilation: tuple) -> tuple:
    """((top, left), (bottom, right)) for a conv's pad: an int, an [h, w] pair, "valid" (0),
    or "same" (dilation * (kernel - 1) in all, the odd one after the input, as PyTorch)."""
    if pad == "valid":
        return (0, 0), (0, 0)
    if pad == "same":
        total = [d * (k - 1) for k, d in zip(kernel, dilation)]
        return tuple(t // 2 for t in total), tuple(t - t // 2 for t in total)
    return _pair(pad), _pair(pad)


class Grid(NamedTuple):
    """The windows of one layer call on an (N, C, H, W) input, as (h, w) pairs."""

    kernel: tuple
    stride: tuple
    dilation: tuple
    pad: tuple  # before the input
    end: tuple  # after the input: the padding, or more where the last window overhangs
    out: tuple  # (H', W')


def grid(size: tuple, kernel: tuple, stride, pad=0, dilation=1, ceil_mode=False, pad_end=None,
         check: bool = True) -> Grid:
    """The Grid of windows over an input of (H, W) = size (check: raise ValueError when a
    window does not fit)."""
    stride, dilation, pad = _pair(stride), _pair(dilation), _pair(pad)
    pad_end = pad if pad_end is None else _pair(pad_end)
    size_of = _out_size if check else out_size
    out = tuple(size_of(n, k, s, p, d, ceil_mode, e) for n, k, s, p, d, e in
                zip(size, kernel, stride, pad, dilation, pad_end))
    end = tuple(max(e, (o - 1) * s + span(k, d) - n - p) for n, k, s, p, d, e, o in
                zip(size, kernel, stride, pad, dilation, pad_end, out))
    return Grid(tuple(kernel), stride, dilation, pad, end, out)


def _window_geometry(param: dict, x_shape) -> Grid:
    """The Grid of a window's param dict (pool_height, pool_width, stride, and pad,
    dilation, ceil_mode if any) on an (N, C, H, W) input."""
    return grid(x_shape[2:], (param["pool_height"], param["pool_width"]), param["stride"],
                param.get("pad", 0), param.get("dilation", 1), param.get("ceil_mode", False))


def _pad(x: np.ndarray, g: Grid, value=0) -> np.ndarray:
    """x padded by the grid's rows and columns of `value` before and after (x itself if none)."""
    (pt, pl), (pb, pr) = g.pad, g.end
    if not (pt or pl or pb or pr):
        return x
    N, C, H, W = x.shape
    x_pad = np.full((N, C, H + pt + pb, W + pl + pr), value, dtype=x.dtype)
    x_pad[:, :, pt:pt + H, pl:pl + W] = x
    return x_pad


def _crop(a: np.ndarray, g: Grid, H: int, W: int) -> np.ndarray:
    """The input's part of a padded array (a view)."""
    (pt, pl) = g.pad
    return a[:, :, pt:pt + H, pl:pl + W]


def _lowest(dtype):
    """A padding value no element beats in a maximum: -inf (the dtype's minimum for ints)."""
    return -np.inf if np.issubdtype(dtype, np.floating) else np.iinfo(dtype).min


def _window(a: np.ndarray, i: int, j: int, g: Grid) -> np.ndarray:
    """View of a[:, :, i * dh + sh * y, j * dw + sw * x] over all outputs (y, x): the padded
    input's elements at kernel offset (i, j) of every window."""
    (sh, sw), (dh, dw), (H_out, W_out) = g.stride, g.dilation, g.out
    i, j = i * dh, j * dw
    return a[..., i:i + sh * (H_out - 1) + 1:sh, j:j + sw * (W_out - 1) + 1:sw]


def _at(g: Grid, i: int, j: int) -> tuple:
    """The index of window (i, j) in the padded input: rows and columns, dilation's steps."""
    (sh, sw), (dh, dw), (kh, kw) = g.stride, g.dilation, g.kernel
    return (slice(i * sh, i * sh + span(kh, dh), dh), slice(j * sw, j * sw + span(kw, dw), dw))


def windows(x_pad: np.ndarray, g: Grid) -> np.ndarray:
    """View of the padded input as (..., H', W', kh, kw): every window's elements."""
    (kh, kw), (sh, sw), (dh, dw), (Ho, Wo) = g.kernel, g.stride, g.dilation, g.out
    view = sliding_window_view(x_pad, (span(kh, dh), span(kw, dw)), axis=(-2, -1))
    return view[..., ::sh, ::sw, ::dh, ::dw][..., :Ho, :Wo, :, :]
