"""Geometry shared by the reference layers: pairs, output sizes, padding, strided windows."""
from __future__ import annotations

import numpy as np

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


def _window_geometry(param: dict, x_shape) -> tuple:
    """A window's param dict (pool_height, pool_width, stride, pad if any) on an (N, C, H, W)
    input: ((kh, kw), (sh, sw), (ph, pw), (H', W')). For the kinds that take a pad (max
    pooling, im2col); average pooling takes none and reads its two keys itself."""
    kh, kw = param["pool_height"], param["pool_width"]
    (sh, sw), (ph, pw) = _pair(param["stride"]), _pair(param.get("pad", 0))
    H, W = x_shape[2:]
    return (kh, kw), (sh, sw), (ph, pw), (_out_size(H, kh, sh, ph), _out_size(W, kw, sw, pw))


def _pad(x: np.ndarray, ph: int, pw: int, value=0) -> np.ndarray:
    """Pad the last two axes by ph rows and pw columns of `value` on each side (x itself if 0)."""
    if ph == 0 and pw == 0:
        return x
    N, C, H, W = x.shape
    x_pad = np.full((N, C, H + 2 * ph, W + 2 * pw), value, dtype=x.dtype)
    x_pad[:, :, ph:ph + H, pw:pw + W] = x
    return x_pad


def _lowest(dtype):
    """A padding value no element beats in a maximum: -inf (the dtype's minimum for ints)."""
    return -np.inf if np.issubdtype(dtype, np.floating) else np.iinfo(dtype).min


def _window(a: np.ndarray, i: int, j: int, sh: int, sw: int, H_out: int, W_out: int) -> np.ndarray:
    """View of a[:, :, i + sh * y, j + sw * x] over all outputs (y, x): kernel offset (i, j)."""
    return a[:, :, i:i + sh * (H_out - 1) + 1:sh, j:j + sw * (W_out - 1) + 1:sw]


