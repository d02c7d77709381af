# coding: utf-8
# A re-typed copy of the book's common/util.py helpers (the im2col pair), as its readers keep it.
import numpy as np


def conv_output_size(input_size, filter_size, stride=1, pad=0):
    return (input_size + 2*pad - filter_size) / stride + 1


def im2col(input_data, filter_h, filter_w, stride=1, pad=0):
    """(N, C, H, W) -> col (N*out_h*out_w, C*filter_h*filter_w): one row per window.

    Allocated as float64, as the book does (float32 input comes back float64)."""
    N, C, H, W = input_data.shape
    out_h = (H + 2*pad - filter_h)//stride + 1
    out_w = (W + 2*pad - filter_w)//stride + 1

    padded = np.pad(input_data, [(0, 0), (0, 0), (pad, pad), (pad, pad)], 'constant')
    col = np.zeros((N, C, filter_h, filter_w, out_h, out_w))
    for dy in range(filter_h):  # one kernel offset at a time, every window at once
        for dx in range(filter_w):
            col[:, :, dy, dx, :, :] = padded[:, :, dy:dy + stride*out_h:stride, dx:dx + stride*out_w:stride]
    return col.transpose(0, 4, 5, 1, 2, 3).reshape(N*out_h*out_w, -1)


def col2im(col, input_shape, filter_h, filter_w, stride=1, pad=0):
    """col -> (N, C, H, W): im2col's adjoint, overlapping windows add up."""
    N, C, H, W = input_shape
    out_h = (H + 2*pad - filter_h)//stride + 1
    out_w = (W + 2*pad - filter_w)//stride + 1
    col = col.reshape(N, out_h, out_w, C, filter_h, filter_w).transpose(0, 3, 4, 5, 1, 2)

    padded = np.zeros((N, C, H + 2*pad + stride - 1, W + 2*pad + stride - 1))
    for dy in range(filter_h):
        for dx in range(filter_w):
            padded[:, :, dy:dy + stride*out_h:stride, dx:dx + stride*out_w:stride] += col[:, :, dy, dx, :, :]
    return padded[:, :, pad:H + pad, pad:W + pad]
