"""A correct, fully vectorized student solution (strided windows and einsum)."""
import numpy as np
from numpy.lib.stride_tricks import as_strided


def _windows(x, HH, WW, stride):
    N, C, H, W = x.shape
    H_out, W_out = 1 + (H - HH) // stride, 1 + (W - WW) // stride
    sN, sC, sH, sW = x.strides
    return as_strided(x, (N, C, H_out, W_out, HH, WW), (sN, sC, sH * stride, sW * stride, sH, sW),
                      writeable=False)


def conv_forward_naive(x, w, b, conv_param):
    stride, pad = conv_param['stride'], conv_param['pad']
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    cols = _windows(x_pad, w.shape[2], w.shape[3], stride)
    out = np.einsum('nchwij,fcij->nfhw', cols, w) + b[None, :, None, None]
    return out, (x, w, b, conv_param)


def conv_backward_naive(dout, cache):
    x, w, b, conv_param = cache
    stride, pad = conv_param['stride'], conv_param['pad']
    F, C, HH, WW = w.shape
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    cols = _windows(x_pad, HH, WW, stride)
    dw = np.einsum('nchwij,nfhw->fcij', cols, dout)
    db = dout.sum(axis=(0, 2, 3))
    dcols = np.einsum('nfhw,fcij->nchwij', dout, w)
    dx_pad = np.zeros_like(x_pad)
    H_out, W_out = dout.shape[2:]
    for i in range(HH):
        for j in range(WW):
            dx_pad[:, :, i:i + stride * H_out:stride, j:j + stride * W_out:stride] += dcols[..., i, j]
    H, W = x.shape[2:]
    return dx_pad[:, :, pad:pad + H, pad:pad + W], dw, db


def max_pool_forward_naive(x, pool_param):
    HH, WW, stride = pool_param['pool_height'], pool_param['pool_width'], pool_param['stride']
    cols = _windows(x, HH, WW, stride)
    return cols.max(axis=(4, 5)), (x, pool_param)


def max_pool_backward_naive(dout, cache):
    x, pool_param = cache
    HH, WW, stride = pool_param['pool_height'], pool_param['pool_width'], pool_param['stride']
    cols = _windows(x, HH, WW, stride)
    N, C, H_out, W_out = dout.shape
    k = cols.reshape(N, C, H_out, W_out, -1).argmax(axis=-1)
    r, s = np.unravel_index(k, (HH, WW))
    n, c, i, j = np.indices((N, C, H_out, W_out))
    dx = np.zeros_like(x)
    np.add.at(dx, (n, c, i * stride + r, j * stride + s), dout)
    return dx


def avg_pool_forward_naive(x, pool_param):
    HH, WW, stride = pool_param['pool_height'], pool_param['pool_width'], pool_param['stride']
    return _windows(x, HH, WW, stride).mean(axis=(4, 5)), (x, pool_param)


def avg_pool_backward_naive(dout, cache):
    x, pool_param = cache
    HH, WW, stride = pool_param['pool_height'], pool_param['pool_width'], pool_param['stride']
    H_out, W_out = dout.shape[2:]
    dx = np.zeros_like(x)
    for i in range(HH):
        for j in range(WW):
            dx[:, :, i:i + stride * H_out:stride, j:j + stride * W_out:stride] += dout / (HH * WW)
    return dx
