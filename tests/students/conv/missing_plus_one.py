"""Broken on purpose: Output size without the + 1."""
import numpy as np


def conv_forward_naive(x, w, b, conv_param):
    out = None
    stride, pad = conv_param['stride'], conv_param['pad']
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    H_out = (H + 2 * pad - HH) // stride
    W_out = (W + 2 * pad - WW) // stride
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), 'constant')
    out = np.zeros((N, F, H_out, W_out))
    for i in range(H_out):
        for j in range(W_out):
            window = x_pad[:, :, i * stride:i * stride + HH, j * stride:j * stride + WW]
            out[:, :, i, j] = np.tensordot(window, w, axes=([1, 2, 3], [1, 2, 3])) + b
    cache = (x, w, b, conv_param)
    return out, cache


def conv_backward_naive(dout, cache):
    dx, dw, db = None, None, None
    x, w, b, conv_param = cache
    stride, pad = conv_param['stride'], conv_param['pad']
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    _, _, H_out, W_out = dout.shape
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), 'constant')
    dx_pad = np.zeros_like(x_pad)
    dw = np.zeros_like(w)
    db = np.sum(dout, axis=(0, 2, 3))
    for i in range(H_out):
        for j in range(W_out):
            hs, ws = i * stride, j * stride
            window = x_pad[:, :, hs:hs + HH, ws:ws + WW]
            dw += np.tensordot(dout[:, :, i, j], window, axes=([0], [0]))
            dx_pad[:, :, hs:hs + HH, ws:ws + WW] += np.tensordot(dout[:, :, i, j], w, axes=([1], [0]))
    dx = dx_pad[:, :, pad:pad + H, pad:pad + W]
    return dx, dw, db
