"""im2col_indices / col2im_indices in the course's layout (cs231n/im2col.py), written for the
tests from its formulas: cols of shape (C * FH * FW, OH * OW * N), row c * FH * FW + fh * FW + fw,
column (oh * OW + ow) * N + n, gathered by fancy indexing and scattered back with np.add.at.
Like the course's code, the division must be exact and padding comes before stride."""
import numpy as np


def _indices(x_shape, field_height, field_width, padding, stride):
    N, C, H, W = x_shape
    assert (H + 2 * padding - field_height) % stride == 0
    assert (W + 2 * padding - field_width) % stride == 0
    out_h = (H + 2 * padding - field_height) // stride + 1
    out_w = (W + 2 * padding - field_width) // stride + 1
    # rows (c, fh, fw), columns (oh, ow)
    fh = np.tile(np.repeat(np.arange(field_height), field_width), C)
    fw = np.tile(np.arange(field_width), field_height * C)
    oh = stride * np.repeat(np.arange(out_h), out_w)
    ow = stride * np.tile(np.arange(out_w), out_h)
    channel = np.repeat(np.arange(C), field_height * field_width)[:, None]
    return channel, fh[:, None] + oh[None, :], fw[:, None] + ow[None, :]


def im2col_indices(x, field_height, field_width, padding=1, stride=1):
    p = padding
    x_padded = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), mode='constant')
    k, i, j = _indices(x.shape, field_height, field_width, padding, stride)
    cols = x_padded[:, k, i, j]  # (N, C * FH * FW, OH * OW)
    return cols.transpose(1, 2, 0).reshape(field_height * field_width * x.shape[1], -1)


def col2im_indices(cols, x_shape, field_height=3, field_width=3, padding=1, stride=1):
    N, C, H, W = x_shape
    x_padded = np.zeros((N, C, H + 2 * padding, W + 2 * padding), dtype=cols.dtype)
    k, i, j = _indices(x_shape, field_height, field_width, padding, stride)
    per_sample = cols.reshape(C * field_height * field_width, -1, N).transpose(2, 0, 1)
    np.add.at(x_padded, (slice(None), k, i, j), per_sample)
    if padding == 0:
        return x_padded
    return x_padded[:, :, padding:-padding, padding:-padding]
