"""The reference layers against truths that do not come from cnncheck.

- the course notebook's published forward outputs (cs231n.md),
- PyTorch's CPU float64 layers and autograd (skipped when torch is absent),
- small cases worked out by hand,
and then naive against fast, on the same grid of geometries.
"""
from __future__ import annotations

import copy

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from cnncheck import layers

# Each layer kind as {impl: (forward, backward)}; conv takes (x, w, b), the others take (x,).
LAYERS = {
    kind: {impl: (getattr(layers, f"{kind}_forward_{impl}"), getattr(layers, f"{kind}_backward_{impl}"))
           for impl in ("naive", "fast")}
    for kind in layers.KINDS
}
IMPLS = ("naive", "fast")

# Geometry grid. conv: (x shape, w shape, stride, pad); pool: (x shape, (pool_h, pool_w), stride).
CONV_GRID = [
    ((2, 3, 5, 5), (2, 3, 3, 3), 1, 1),
    ((2, 3, 4, 4), (3, 3, 4, 4), 2, 1),  # the notebook's forward geometry
    ((2, 3, 7, 5), (3, 3, 3, 2), 1, 0),  # rectangular kernel, non-square input
    ((2, 3, 7, 5), (2, 3, 3, 2), 2, 0),  # floor: (7 - 3) / 2 exact, (5 - 2) / 2 not
    ((2, 2, 7, 5), (2, 2, 2, 4), 2, 2),  # pad 2, floor
    ((1, 2, 6, 7), (3, 2, 3, 3), [2, 1], [0, 1]),  # [h, w] pairs
    ((2, 2, 5, 6), (2, 2, 3, 2), (1, 2), (2, 0)),  # tuple pairs
    ((1, 1, 3, 3), (1, 1, 1, 1), 1, 0),  # 1x1 kernel
]
POOL_GRID = [
    ((2, 3, 4, 4), (2, 2), 2),  # tiling, the notebook's geometry
    ((2, 2, 8, 6), (2, 2), 2),  # tiling, non-square
    ((2, 2, 7, 5), (2, 2), 2),  # floor: last row and column unused
    ((2, 2, 7, 5), (3, 3), 1),  # overlapping
    ((2, 2, 7, 6), (3, 2), 1),  # overlapping, rectangular
    ((2, 2, 7, 7), (3, 3), 2),  # overlapping, stride 2
    ((1, 2, 6, 7), (2, 3), [2, 1]),  # [h, w] stride
    ((2, 2, 6, 6), (3, 2), (3, 2)),  # tiling with a rectangular pool and stride pair
]


def conv_id(case):
    x, w, s, p = case
    return f"x{'x'.join(map(str, x[2:]))}-k{w[2]}x{w[3]}-s{s}-p{p}".replace(" ", "")


def pool_id(case):
    x, (ph, pw), s = case
    return f"x{'x'.join(map(str, x[2:]))}-{ph}x{pw}-s{s}".replace(" ", "")


@pytest.fixture(autouse=True)
def _seed():
    np.random.seed(231)


@pytest.fixture
def rng():
    return np.random.default_rng(231)


def rel_error(a, b):
    """The notebook's max(|a - b| / max(1e-8, |a| + |b|))."""
    return np.max(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b)))


def pool_param(pool, stride):
    return {"pool_height": pool[0], "pool_width": pool[1], "stride": stride}


def conv_arrays(rng, x_shape, w_shape):
    return rng.standard_normal(x_shape), rng.standard_normal(w_shape), rng.standard_normal(w_shape[0])


def run(kind, impl, inputs, param, dout=None):
    """(out, grads): grads a tuple like the inputs (dx alone for pooling); dout random if None."""
    forward, backward = LAYERS[kind][impl]
    out, cache = forward(*inputs, param)
    if dout is None:
        dout = np.random.randn(*out.shape).astype(out.dtype)
    grads = backward(dout, cache)
    return out, (grads if kind == "conv" else (grads,)), dout


# -- the notebook's published numbers -------------------------------------------------

NOTEBOOK_CONV_OUT = np.array([
    [[[-0.08759809, -0.10987781], [-0.18387192, -0.2109216]],
     [[0.21027089, 0.21661097], [0.22847626, 0.23004637]],
     [[0.50813986, 0.54309974], [0.64082444, 0.67101435]]],
    [[[-0.98053589, -1.03143541], [-1.19128892, -1.24695841]],
     [[0.69108355, 0.66880383], [0.59480972, 0.56776003]],
     [[2.36270298, 2.36904306], [2.38090835, 2.38247847]]]])
NOTEBOOK_POOL_OUT = np.array([
    [[[-0.26315789, -0.24842105], [-0.20421053, -0.18947368]],
     [[-0.14526316, -0.13052632], [-0.08631579, -0.07157895]],
     [[-0.02736842, -0.01263158], [0.03157895, 0.04631579]]],
    [[[0.09052632, 0.10526316], [0.14947368, 0.16421053]],
     [[0.20842105, 0.22315789], [0.26736842, 0.28210526]],
     [[0.32631579, 0.34105263], [0.38526316, 0.4]]]])


def linspace(lo, hi, shape):
    return np.linspace(lo, hi, num=int(np.prod(shape))).reshape(shape)


@pytest.mark.parametrize("impl", IMPLS)
def test_notebook_conv_forward(impl):
    x = linspace(-0.1, 0.5, (2, 3, 4, 4))
    w = linspace(-0.2, 0.3, (3, 3, 4, 4))
    b = linspace(-0.1, 0.2, (3,))
    out, _ = LAYERS["conv"][impl][0](x, w, b, {"stride": 2, "pad": 1})
    err = rel_error(out, NOTEBOOK_CONV_OUT)
    assert err < 1e-7
    assert err == pytest.approx(2.2121476417505994e-08, abs=1e-9)  # the notebook's printed figure


@pytest.mark.parametrize("impl", IMPLS)
def test_notebook_max_pool_forward(impl):
    x = linspace(-0.3, 0.4, (2, 3, 4, 4))
    out, _ = LAYERS["max_pool"][impl][0](x, pool_param((2, 2), 2))
    err = rel_error(out, NOTEBOOK_POOL_OUT)
    assert err < 1e-7
    assert err == pytest.approx(4.1666665157267834e-08, abs=1e-9)


# -- PyTorch as the independent reference ---------------------------------------------


def torch_run(kind, inputs, param, dout):
    """PyTorch's output and input gradients, float64 CPU, via (out * dout).sum().backward()."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    tensors = [torch.tensor(a, requires_grad=True) for a in inputs]
    if kind == "conv":
        out = F.conv2d(*tensors, stride=layers._pair(param["stride"]), padding=layers._pair(param["pad"]))
    else:
        pool = F.max_pool2d if kind == "max_pool" else F.avg_pool2d
        out = pool(tensors[0], (param["pool_height"], param["pool_width"]), layers._pair(param["stride"]))
    (out * torch.tensor(dout)).sum().backward()
    return out.detach().numpy(), tuple(t.grad.numpy() for t in tensors)


def assert_matches_torch(kind, impl, inputs, param):
    out, grads, dout = run(kind, impl, inputs, param)
    torch_out, torch_grads = torch_run(kind, inputs, param, dout)
    assert_allclose(out, torch_out, rtol=1e-10, atol=1e-12, err_msg="forward")
    for name, grad, expected in zip(("dx", "dw", "db"), grads, torch_grads):
        assert_allclose(grad, expected, rtol=1e-10, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", CONV_GRID, ids=conv_id)
def test_conv_matches_torch(impl, case, rng):
    x_shape, w_shape, stride, pad = case
    assert_matches_torch("conv", impl, conv_arrays(rng, x_shape, w_shape), {"stride": stride, "pad": pad})


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("kind", ["max_pool", "avg_pool"])
@pytest.mark.parametrize("case", POOL_GRID, ids=pool_id)
def test_pool_matches_torch(impl, kind, case, rng):
    x_shape, pool, stride = case
    x = rng.standard_normal(x_shape)  # continuous: no ties, so no tie convention involved
    assert_matches_torch(kind, impl, (x,), pool_param(pool, stride))


# -- naive against fast ---------------------------------------------------------------


@pytest.mark.parametrize("case", CONV_GRID, ids=conv_id)
def test_conv_naive_matches_fast(case, rng):
    x_shape, w_shape, stride, pad = case
    inputs, param = conv_arrays(rng, x_shape, w_shape), {"stride": stride, "pad": pad}
    out, grads, dout = run("conv", "naive", inputs, param)
    fast_out, fast_grads, _ = run("conv", "fast", inputs, param, dout)
    assert_allclose(fast_out, out, rtol=1e-12, atol=1e-13)
    for grad, fast_grad in zip(grads, fast_grads):
        assert_allclose(fast_grad, grad, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("inputs", ["normal", "integers"])
@pytest.mark.parametrize("case", POOL_GRID, ids=pool_id)
def test_max_pool_naive_equals_fast(case, inputs, rng):
    """Exactly equal, ties included: both send a window's gradient to its first maximum."""
    x_shape, pool, stride = case
    if inputs == "integers":  # small integers: most windows hold ties
        x = rng.integers(-2, 3, size=x_shape).astype(np.float64)
    else:
        x = rng.standard_normal(x_shape)
    out, (dx,), dout = run("max_pool", "naive", (x,), pool_param(pool, stride))
    fast_out, (fast_dx,), _ = run("max_pool", "fast", (x,), pool_param(pool, stride), dout)
    assert_array_equal(fast_out, out)
    assert_array_equal(fast_dx, dx)


@pytest.mark.parametrize("case", POOL_GRID, ids=pool_id)
def test_avg_pool_naive_matches_fast(case, rng):
    x_shape, pool, stride = case
    x = rng.standard_normal(x_shape)
    out, (dx,), dout = run("avg_pool", "naive", (x,), pool_param(pool, stride))
    fast_out, (fast_dx,), _ = run("avg_pool", "fast", (x,), pool_param(pool, stride), dout)
    assert_allclose(fast_out, out, rtol=1e-12, atol=1e-14)
    assert_allclose(fast_dx, dx, rtol=1e-12, atol=1e-14)


def test_max_pool_tie_goes_to_first_maximum():
    x = np.array([[[[1.0, 3.0], [3.0, 3.0]]]])
    for impl in IMPLS:
        _, (dx,), _ = run("max_pool", impl, (x,), pool_param((2, 2), 2), dout=np.array([[[[5.0]]]]))
        assert_array_equal(dx, [[[[0.0, 5.0], [0.0, 0.0]]]])


# -- the protocol: inputs untouched, shapes and dtypes kept ---------------------------

PROTOCOL_CASES = [
    ("conv", ((2, 3, 7, 5), (2, 3, 3, 2)), {"stride": [2, 1], "pad": [1, 0]}),
    ("max_pool", ((2, 3, 7, 5),), pool_param((3, 2), 1)),
    ("max_pool", ((2, 3, 7, 5),), {**pool_param((3, 2), 1), "pad": [1, 0]}),
    ("avg_pool", ((2, 3, 7, 5),), pool_param((2, 2), 2)),
    ("im2col", ((2, 3, 7, 5),), {**pool_param((3, 2), [2, 1]), "pad": 1}),
]
PROTOCOL_IDS = ["conv", "max_pool", "max_pool-pad", "avg_pool", "im2col"]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("kind, shapes, param", PROTOCOL_CASES, ids=PROTOCOL_IDS)
def test_protocol(kind, shapes, param, impl, dtype, rng):
    if kind == "conv":
        shapes = (*shapes, (shapes[1][0],))
    inputs = tuple(rng.standard_normal(s).astype(dtype) for s in shapes)
    saved_inputs, saved_param = [a.copy() for a in inputs], copy.deepcopy(param)
    forward, backward = LAYERS[kind][impl]

    out, cache = forward(*inputs, param)
    dout = rng.standard_normal(out.shape).astype(dtype)
    saved_dout = dout.copy()
    grads = backward(dout, cache)
    grads = grads if kind == "conv" else (grads,)

    assert out.dtype == dtype
    assert isinstance(grads, tuple) and len(grads) == len(inputs)
    for a, saved, grad in zip(inputs, saved_inputs, grads):
        assert_array_equal(a, saved)
        assert isinstance(grad, np.ndarray)
        assert (grad.shape, grad.dtype) == (a.shape, a.dtype)
    assert_array_equal(dout, saved_dout)
    assert param == saved_param


@pytest.mark.parametrize("impl", IMPLS)
def test_pool_backward_returns_a_single_array(impl):
    x = np.random.randn(1, 1, 4, 4)
    for kind in ("max_pool", "avg_pool"):
        forward, backward = LAYERS[kind][impl]
        out, cache = forward(x, pool_param((2, 2), 2))
        assert isinstance(backward(np.ones_like(out), cache), np.ndarray)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("kind", ["conv", "max_pool", "im2col"])
def test_window_larger_than_input_is_an_error(kind, impl):
    forward = LAYERS[kind][impl][0]
    x = np.zeros((1, 1, 2, 2))
    with pytest.raises(ValueError, match="does not fit"):
        if kind == "conv":
            forward(x, np.zeros((1, 1, 3, 3)), np.zeros(1), {"stride": 1, "pad": 0})
        else:
            forward(x, pool_param((3, 3), 1))


# -- worked by hand -------------------------------------------------------------------

X3 = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)  # [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
X4 = np.array([[[[1.0, 2.0, 0.0, 1.0],
                 [4.0, 3.0, 5.0, 2.0],
                 [0.0, 1.0, 2.0, 7.0],
                 [6.0, 2.0, 3.0, 1.0]]]])


@pytest.mark.parametrize("impl", IMPLS)
def test_conv_by_hand(impl):
    # all-ones 2x2 kernel: each output is the sum of a 2x2 block, plus the bias 0.5
    w, b = np.ones((1, 1, 2, 2)), np.array([0.5])
    out, grads, _ = run("conv", impl, (X3, w, b), {"stride": 1, "pad": 0}, dout=np.ones((1, 1, 2, 2)))
    assert_array_equal(out, [[[[12.5, 16.5], [24.5, 28.5]]]])
    dx, dw, db = grads
    assert_array_equal(dx, [[[[1, 2, 1], [2, 4, 2], [1, 2, 1]]]])  # windows covering each pixel
    assert_array_equal(dw, [[[[12, 16], [24, 28]]]])  # sums of x under each kernel tap
    assert_array_equal(db, [4])


@pytest.mark.parametrize("impl", IMPLS)
def test_conv_by_hand_padded_strided(impl):
    # pad 1, stride 2, a 1x1 kernel of 2: outputs sample x_pad at rows/cols 0, 2, 4
    w, b = np.full((1, 1, 1, 1), 2.0), np.zeros(1)
    dout = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    out, (dx, dw, db), _ = run("conv", impl, (X3, w, b), {"stride": 2, "pad": 1}, dout=dout)
    assert_array_equal(out, [[[[0, 0, 0], [0, 10, 0], [0, 0, 0]]]])
    assert_array_equal(dx, [[[[0, 0, 0], [0, 10, 0], [0, 0, 0]]]])  # only x[1, 1] is ever seen
    assert_array_equal(dw, [[[[25]]]])  # dout[1, 1] * x[1, 1]
    assert_array_equal(db, [45])


@pytest.mark.parametrize("impl", IMPLS)
def test_max_pool_by_hand(impl):
    dout = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    out, (dx,), _ = run("max_pool", impl, (X4,), pool_param((2, 2), 2), dout=dout)
    assert_array_equal(out, [[[[4, 5], [6, 7]]]])
    assert_array_equal(dx, [[[[0, 0, 0, 0],
                              [1, 0, 2, 0],
                              [0, 0, 0, 4],
                              [3, 0, 0, 0]]]])


@pytest.mark.parametrize("impl", IMPLS)
def test_max_pool_by_hand_overlapping(impl):
    # 3x3 windows, stride 1: 7 is the maximum of two windows, so their gradients add
    dout = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    out, (dx,), _ = run("max_pool", impl, (X4,), pool_param((3, 3), 1), dout=dout)
    assert_array_equal(out, [[[[5, 7], [6, 7]]]])
    assert_array_equal(dx, [[[[0, 0, 0, 0],
                              [0, 0, 1, 0],
                              [0, 0, 0, 6],
                              [3, 0, 0, 0]]]])


@pytest.mark.parametrize("impl", IMPLS)
def test_avg_pool_by_hand(impl):
    # 2x2 windows, stride 2, on a 3x3 input: one window; the last row and column are unused
    out, (dx,), _ = run("avg_pool", impl, (X3,), pool_param((2, 2), 2), dout=np.array([[[[8.0]]]]))
    assert_array_equal(out, [[[[3.0]]]])
    assert_array_equal(dx, [[[[2, 2, 0], [2, 2, 0], [0, 0, 0]]]])
