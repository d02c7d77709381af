"""A correct solution with the habits a checker must tolerate: debug prints, extra keys
written into conv_param / pool_param and read back in backward, a free-form cache, lists
instead of tuples, and a warning."""
import warnings

import numpy as np


def conv_forward_naive(x, w, b, conv_param):
    print("conv forward", x.shape, w.shape, conv_param)
    stride, pad = conv_param['stride'], conv_param['pad']
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    conv_param['H_out'] = 1 + (H + 2 * pad - HH) // stride
    conv_param['W_out'] = 1 + (W + 2 * pad - WW) // stride
    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), 'constant')
    conv_param['x_pad'] = x_pad
    out = np.zeros((N, F, conv_param['H_out'], conv_param['W_out']))
    for n in range(N):
        for i in range(conv_param['H_out']):
            for j in range(conv_param['W_out']):
                patch = x_pad[n, :, i * stride:i * stride + HH, j * stride:j * stride + WW]
                out[n, :, i, j] = (w * patch).sum(axis=(1, 2, 3)) + b
    return [out, {'w': w, 'b': b, 'param': conv_param, 'shape': x.shape}]


def conv_backward_naive(dout, cache):
    print("conv backward", dout.shape)
    w, conv_param = cache['w'], cache['param']
    x_pad = conv_param['x_pad']
    stride, pad = conv_param['stride'], conv_param['pad']
    N, C, H, W = cache['shape']
    F, _, HH, WW = w.shape
    dx_pad = np.zeros(x_pad.shape)
    dw = np.zeros(w.shape)
    for n in range(N):
        for i in range(conv_param['H_out']):
            for j in range(conv_param['W_out']):
                rows = slice(i * stride, i * stride + HH)
                cols = slice(j * stride, j * stride + WW)
                dx_pad[n, :, rows, cols] += np.tensordot(dout[n, :, i, j], w, axes=1)
                dw += dout[n, :, i, j][:, None, None, None] * x_pad[n, :, rows, cols]
    db = dout.sum(axis=(0, 2, 3))
    return [dx_pad[:, :, pad:pad + H, pad:pad + W], dw, db]


def max_pool_forward_naive(x, pool_param):
    print("pool forward", x.shape)
    warnings.warn("max_pool_forward_naive is slow", UserWarning)
    ph, pw, s = pool_param['pool_height'], pool_param['pool_width'], pool_param['stride']
    N, C, H, W = x.shape
    H_out, W_out = (H - ph) // s + 1, (W - pw) // s + 1
    out = np.zeros((N, C, H_out, W_out))
    argmax = np.zeros((N, C, H_out, W_out), dtype=int)
    for i in range(H_out):
        for j in range(W_out):
            window = x[:, :, i * s:i * s + ph, j * s:j * s + pw].reshape(N, C, -1)
            out[:, :, i, j] = window.max(axis=2)
            argmax[:, :, i, j] = window.argmax(axis=2)
    pool_param['argmax'] = argmax
    return out, (x.shape, pool_param)


def max_pool_backward_naive(dout, cache):
    shape, pool_param = cache
    ph, pw, s = pool_param['pool_height'], pool_param['pool_width'], pool_param['stride']
    dx = np.zeros(shape)
    N, C, H_out, W_out = dout.shape
    for n in range(N):
        for c in range(C):
            for i in range(H_out):
                for j in range(W_out):
                    r, q = divmod(pool_param['argmax'][n, c, i, j], pw)
                    dx[n, c, i * s + r, j * s + q] += dout[n, c, i, j]
    return dx
