"""A student's file whose conv backward is still the assignment's TODO: it raises."""
import numpy as np


def conv_forward_naive(x, w, b, conv_param):
    stride, pad = conv_param["stride"], conv_param["pad"]
    F, _, HH, WW = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    H_out = 1 + (xp.shape[2] - HH) // stride
    W_out = 1 + (xp.shape[3] - WW) // stride
    out = np.zeros((x.shape[0], F, H_out, W_out))
    for i in range(H_out):
        for j in range(W_out):
            window = xp[:, :, i * stride:i * stride + HH, j * stride:j * stride + WW]
            out[:, :, i, j] = np.tensordot(window, w, axes=([1, 2, 3], [1, 2, 3])) + b
    return out, (x, w, b, conv_param)


def conv_backward_naive(dout, cache):
    raise NotImplementedError("TODO: conv backward")
