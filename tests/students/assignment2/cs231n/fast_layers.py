"""Fast layers on top of im2col, imported the way the assignment does (absolute imports)."""
import numpy as np

from cs231n.im2col import col2im_indices, im2col_indices

try:
    from cs231n.im2col_cython import col2im_cython  # noqa: F401 - never built here
except ImportError:
    print("run the following from the cs231n directory and try again:")
    print("python setup.py build_ext --inplace")


def conv_forward_fast(x, w, b, conv_param):
    N, C, H, W = x.shape
    num_filters, _, filter_height, filter_width = w.shape
    stride, pad = conv_param['stride'], conv_param['pad']
    out_height = (H + 2 * pad - filter_height) // stride + 1
    out_width = (W + 2 * pad - filter_width) // stride + 1
    x_cols = im2col_indices(x, filter_height, filter_width, pad, stride)
    res = w.reshape((w.shape[0], -1)).dot(x_cols) + b.reshape(-1, 1)
    out = res.reshape(w.shape[0], out_height, out_width, x.shape[0]).transpose(3, 0, 1, 2)
    cache = (x, w, b, conv_param, x_cols)
    return out, cache


def conv_backward_fast(dout, cache):
    x, w, b, conv_param, x_cols = cache
    stride, pad = conv_param['stride'], conv_param['pad']
    db = np.sum(dout, axis=(0, 2, 3))
    num_filters, _, filter_height, filter_width = w.shape
    dout_reshaped = dout.transpose(1, 2, 3, 0).reshape(num_filters, -1)
    dw = dout_reshaped.dot(x_cols.T).reshape(w.shape)
    dx_cols = w.reshape(num_filters, -1).T.dot(dout_reshaped)
    dx = col2im_indices(dx_cols, x.shape, filter_height, filter_width, pad, stride)
    return dx, dw, db
