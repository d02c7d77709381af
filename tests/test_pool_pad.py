"""Max pooling with padding: -inf padding that never wins, as PyTorch's max_pool2d(padding=...).

- the reference layers (naive and fast) against PyTorch, forward and backward;
- the gradient check passes on padded cases in every mode, and its tie mask sees the padding;
- configs: `pool_param: {pad: 1}` is a max-pool key (average pooling still rejects it);
- the book's `Pooling` leaves pad out of its output size: a copy of that fault fails.
"""
from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from cnncheck import layers
from cnncheck.case import Case
from cnncheck.config import ConfigError, load_cases
from cnncheck.gradcheck import _tied, builtin, check_case
from cnncheck.layers._geometry import _pair
from cnncheck.protocols.functions import FunctionPair

IMPLS = {"naive": (layers.max_pool_forward_naive, layers.max_pool_backward_naive),
         "fast": (layers.max_pool_forward_fast, layers.max_pool_backward_fast)}
# x shape, (pool_height, pool_width), stride, pad
GRID = [
    ((2, 3, 4, 4), (2, 2), 2, 1),  # padding makes a 3x3 output from a 4x4 input
    ((2, 2, 5, 5), (3, 3), 1, 1),  # "same" pooling, overlapping
    ((2, 2, 7, 6), (3, 3), 2, 1),  # stride 2, floor on the width
    ((1, 2, 5, 7), (3, 2), 1, [1, 0]),  # [h, w] pad with a rectangular window
    ((2, 2, 6, 5), (4, 4), [2, 3], 2),  # pad = pool / 2, the largest PyTorch allows
]


def grid_id(case):
    x, (ph, pw), s, p = case
    return f"x{x[2]}x{x[3]}-{ph}x{pw}-s{s}-p{p}".replace(" ", "")


def pool_param(pool, stride, pad):
    return {"pool_height": pool[0], "pool_width": pool[1], "stride": stride, "pad": pad}


@pytest.fixture
def rng():
    return np.random.default_rng(231)


# -- the reference layers against PyTorch -----------------------------------------------------


def torch_max_pool(x, param, dout):
    torch = pytest.importorskip("torch")
    t = torch.tensor(x, requires_grad=True)
    out = torch.nn.functional.max_pool2d(t, (param["pool_height"], param["pool_width"]),
                                         _pair(param["stride"]), padding=_pair(param["pad"]))
    (out * torch.tensor(dout)).sum().backward()
    return out.detach().numpy(), t.grad.numpy()


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", GRID, ids=grid_id)
def test_padded_max_pool_matches_torch(impl, case, rng):
    x_shape, pool, stride, pad = case
    x, param = rng.standard_normal(x_shape) - 3.0, pool_param(pool, stride, pad)  # mostly < 0: zeros would win
    forward, backward = IMPLS[impl]
    out, cache = forward(x, param)
    dout = rng.standard_normal(out.shape)
    dx = backward(dout, cache)
    torch_out, torch_dx = torch_max_pool(x, param, dout)
    assert_allclose(out, torch_out, rtol=0, atol=0, err_msg="forward")
    assert_allclose(dx, torch_dx, rtol=1e-12, atol=1e-12, err_msg="dx")


@pytest.mark.parametrize("case", GRID, ids=grid_id)
def test_padded_naive_equals_fast_with_ties(case, rng):
    x_shape, pool, stride, pad = case
    x, param = rng.integers(-2, 3, size=x_shape).astype(np.float64), pool_param(pool, stride, pad)
    out, cache = layers.max_pool_forward_naive(x, param)
    dout = rng.standard_normal(out.shape)
    fast_out, fast_cache = layers.max_pool_forward_fast(x, param)
    assert_array_equal(fast_out, out)
    assert_array_equal(layers.max_pool_backward_fast(dout, fast_cache), layers.max_pool_backward_naive(dout, cache))


@pytest.mark.parametrize("impl", IMPLS)
def test_padding_never_wins_nor_gets_gradient(impl):
    """An all-negative input: zero padding would win every border window; -inf never does."""
    x = -np.arange(1.0, 17.0).reshape(1, 1, 4, 4)
    forward, backward = IMPLS[impl]
    out, cache = forward(x, pool_param((2, 2), 2, 1))
    assert_array_equal(out[0, 0], [[-1, -2, -4], [-5, -6, -8], [-13, -14, -16]])
    dx = backward(np.ones_like(out), cache)
    assert dx.shape == x.shape and dx.sum() == out.size  # every window's dout lands inside x


@pytest.mark.parametrize("impl", IMPLS)
def test_no_pad_key_means_no_padding(impl, rng):
    x = rng.standard_normal((2, 2, 6, 6))
    forward, _ = IMPLS[impl]
    without, _ = forward(x, {"pool_height": 2, "pool_width": 2, "stride": 2})
    zero, _ = forward(x, pool_param((2, 2), 2, 0))
    assert_array_equal(without, zero)


@pytest.mark.parametrize("impl", IMPLS)
def test_inputs_not_modified(impl, rng):
    x, param = rng.standard_normal((2, 2, 5, 5)), pool_param((3, 3), 1, 1)
    x0, param0 = x.copy(), dict(param)
    forward, backward = IMPLS[impl]
    out, cache = forward(x, param)
    dout = rng.standard_normal(out.shape)
    dout0 = dout.copy()
    backward(dout, cache)
    assert_array_equal(x, x0)
    assert_array_equal(dout, dout0)
    assert param == param0


# -- the gradient check on padded cases -------------------------------------------------------


def padded_case(**changes):
    fields = dict(layer="max_pool", x_shape=(2, 2, 5, 5), pool=(3, 3), stride=(2, 2), pad=(1, 1))
    return Case(**{**fields, **changes})


@pytest.mark.parametrize("mode", ["dense", "sparse", "projection", "auto"])
@pytest.mark.parametrize("changes", [{}, {"stride": (1, 1)}, {"pool": (2, 2), "x_shape": (2, 3, 4, 6)},
                                     {"pool": (3, 2), "pad": (1, 0), "x_shape": (1, 2, 6, 5)}],
                         ids=["3x3-s2-p1", "3x3-s1-p1", "2x2-s2-p1", "3x2-p1x0"])
def test_check_case_passes_padded(mode, changes):
    case = padded_case(mode=mode, **changes)
    result = check_case(case)
    assert result.passed, [(c.name, c.message, c.method) for c in result.checks]
    assert [c.name for c in result.checks] == ["out", "dx"]
    assert result.output_shape == case.output_shape()


@pytest.mark.parametrize("mode", ["dense", "projection"])
def test_check_case_passes_padded_with_ties(mode):
    result = check_case(padded_case(mode=mode, stride=(1, 1), inputs={"x": "integers"}))
    assert result.passed, [(c.name, c.message) for c in result.checks]


def test_naive_reference_passes_padded():
    naive = builtin("max_pool", fast=False)
    assert check_case(padded_case(mode="dense"), naive, builtin("max_pool")).passed


def test_tied_sees_padding():
    """A tie between two real elements of a border window is found; padding ties with nothing."""
    case = padded_case(x_shape=(1, 1, 4, 4), pool=(2, 2), stride=(2, 2))
    x = np.full((1, 1, 4, 4), -5.0)
    x[0, 0, 1, 1] = x[0, 0, 1, 2] = 0.0  # a tie inside the window of output (1, 1)
    x[0, 0, 0, 0] = 1.0  # alone in the corner window (the rest is padding)
    tied = _tied(case, x)
    assert tied.shape == x.shape
    assert tied[0, 0, 1, 1] and tied[0, 0, 1, 2]
    assert not tied[0, 0, 0, 0]


def test_describe_and_param_carry_pad():
    case = padded_case()
    assert case.describe() == "max_pool 3x3 s2 p1"
    assert case.param() == {"pool_height": 3, "pool_width": 3, "stride": 2, "pad": 1}
    assert case.output_shape() == (2, 2, 3, 3)


# -- configs ------------------------------------------------------------------------------------


def write(tmp_path, text):
    path = tmp_path / "case.yaml"
    path.write_text(text)
    return str(path)


def test_config_max_pool_pad(tmp_path):
    path = write(tmp_path, "layer: max_pool\nx_shape: [2, 3, 4, 4]\n"
                           "pool_param: {pool_height: 2, pool_width: 2, stride: 2, pad: 1}\n")
    [case] = load_cases([path], "pool", {})
    assert (case.pad, case.output_shape()) == ((1, 1), (2, 3, 3, 3))


def test_config_avg_pool_rejects_dilation(tmp_path):
    """Average pooling takes a pad (as PyTorch's), but no dilation (PyTorch's has none)."""
    path = write(tmp_path, "layer: avg_pool\nx_shape: [2, 3, 4, 4]\n"
                           "pool_param: {pool_height: 2, pool_width: 2, stride: 2, dilation: 2}\n")
    with pytest.raises(ConfigError, match="'pool_param.dilation' does not apply to a avg_pool case"):
        load_cases([path], "pool", {})


def test_config_pad_over_half_the_window(tmp_path):
    path = write(tmp_path, "layer: max_pool\nx_shape: [2, 3, 6, 6]\n"
                           "pool_param: {pool_height: 2, pool_width: 3, stride: 2, pad: [1, 2]}\n")
    with pytest.raises(ConfigError, match="pad 2 is more than half the pool_width 3"):
        load_cases([path], "pool", {})


def test_shipped_padded_config():
    cases = load_cases(["configs/pool_pad.yaml"], "pool", {})
    assert cases and all(c.layer == "max_pool" and any(c.pad) for c in cases)
    for case in cases:
        assert check_case(case).passed, case.name


# -- the book's fault: pad left out of the output size ---------------------------------------


def book_pooling_forward(pad_value: float, size_with_pad: bool):
    """The book's Pooling.forward through im2col, in the CS231n protocol. The official code
    pads with zeros (im2col's np.pad) and computes out_h = 1 + (H - pool_h) / stride."""

    def forward(x, pool_param):
        ph, pw, s, p = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"], pool_param.get("pad", 0)
        N, C, H, W = x.shape
        grow = 2 * p if size_with_pad else 0
        out_h, out_w = 1 + (H + grow - ph) // s, 1 + (W + grow - pw) // s
        img = np.pad(x, [(0, 0), (0, 0), (p, p), (p, p)], constant_values=pad_value)
        oh, ow = 1 + (H + 2 * p - ph) // s, 1 + (W + 2 * p - pw) // s
        col = np.empty((N, C, ph, pw, oh, ow))
        for y in range(ph):
            for xx in range(pw):
                col[:, :, y, xx] = img[:, :, y:y + s * oh:s, xx:xx + s * ow:s]
        col = col.transpose(0, 4, 5, 1, 2, 3).reshape(-1, ph * pw)
        arg_max = np.argmax(col, axis=1)
        out = np.max(col, axis=1).reshape(N, out_h, out_w, C).transpose(0, 3, 1, 2)
        return out, (x, pool_param, arg_max, oh, ow)

    def backward(dout, cache):
        x, pool_param, arg_max, oh, ow = cache
        ph, pw, s, p = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"], pool_param.get("pad", 0)
        N, C, H, W = x.shape
        dmax = np.zeros((dout.size, ph * pw))
        dmax[np.arange(arg_max.size), arg_max] = dout.transpose(0, 2, 3, 1).ravel()
        dcol = dmax.reshape(N, oh, ow, C, ph, pw).transpose(0, 3, 4, 5, 1, 2)
        img = np.zeros((N, C, H + 2 * p + s - 1, W + 2 * p + s - 1))
        for y in range(ph):
            for xx in range(pw):
                img[:, :, y:y + s * oh:s, xx:xx + s * ow:s] += dcol[:, :, y, xx]
        return img[:, :, p:H + p, p:W + p]

    return forward, backward


def book_pair(pad_value=0.0, size_with_pad=False):
    return FunctionPair(*book_pooling_forward(pad_value, size_with_pad), "book Pooling",
                        spec=layers.KINDS["max_pool"].protocols["cs231n"])


def test_book_pooling_passes_without_padding():
    """The default suite follows the book, which pools without padding: a faithful copy passes."""
    assert check_case(padded_case(pad=(0, 0), pool=(2, 2), x_shape=(2, 3, 4, 4)), book_pair()).passed


def test_book_pooling_fails_with_padding():
    """The official code: pad left out of the output size, so the reshape raises."""
    result = check_case(padded_case(), book_pair())
    assert not result.passed
    assert "raised ValueError: cannot reshape" in result.error


def test_zero_padding_fails_with_negative_inputs():
    """Output size fixed, but zeros in the padding win over negative inputs."""
    result = check_case(padded_case(pool=(2, 2), x_shape=(2, 3, 4, 4)), book_pair(size_with_pad=True))
    assert not result.passed
    assert not next(c for c in result.checks if c.name == "out").passed


def test_minus_inf_padding_passes():
    assert check_case(padded_case(), book_pair(-np.inf, size_with_pad=True)).passed


def test_the_books_own_pooling_fails_with_padding_and_passes_without(monkeypatch):
    """The official code (tests/books/dlfs), through the book's-classes adapter."""
    from pathlib import Path

    from cnncheck.sandbox.detect import load

    root = Path(__file__).parent / "books" / "dlfs"
    monkeypatch.chdir(root)  # the reader's repository root
    pooling = load("common/layers.py", "max_pool")
    assert check_case(padded_case(pad=(0, 0), stride=(1, 1)), pooling).passed
    result = check_case(padded_case(), pooling)
    assert not result.passed and "Pooling.forward raised ValueError: cannot reshape" in result.error
