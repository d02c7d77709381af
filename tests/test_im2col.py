"""The im2col layer kind: forward im2col, backward col2im.

- the reference layers (naive and fast) against PyTorch's unfold / fold, forward and backward;
- the gradient check passes on the built-in layer in every mode and on the default suite;
- the book's im2col/col2im (canonical layout, dlfs protocol) and the course's
  im2col_indices/col2im_indices (its own layout, cs231n protocol) pass, and a col2im
  "fixed" from += to = fails dx where windows overlap.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from cnncheck import layers
from cnncheck.case import Case
from cnncheck.config import build_case, load_cases
from cnncheck.gradcheck import builtin, check_case
from cnncheck.layers._geometry import _pair
from cnncheck.layers.im2col import KIND, from_course, to_course
from cnncheck.protocols.functions import FunctionPair

FIXTURES = Path(__file__).parent / "data" / "im2col"
SOURCES = {"book_util": Path(__file__).parent / "books" / "dlfs" / "common" / "util.py"}  # the book's own, kept once
IMPLS = {"naive": (layers.im2col_forward_naive, layers.im2col_backward_naive),
         "fast": (layers.im2col_forward_fast, layers.im2col_backward_fast)}
# x shape, (FH, FW), stride, pad
GRID = [
    ((2, 3, 5, 5), (3, 3), 1, 1),
    ((2, 2, 6, 6), (3, 3), 1, 0),
    ((2, 2, 7, 6), (3, 3), 2, 1),  # floor on the width
    ((1, 2, 5, 7), (3, 2), 1, 1),  # non-square input and filter
    ((2, 1, 6, 7), (2, 3), [2, 1], [0, 1]),  # [h, w] pairs
    ((1, 3, 3, 3), (1, 1), 1, 0),  # 1x1 filter: a transpose
]


def grid_id(case):
    x, (fh, fw), s, p = case
    return f"x{x[2]}x{x[3]}-{fh}x{fw}-s{s}-p{p}".replace(" ", "")


def param(f, stride, pad):
    return {"pool_height": f[0], "pool_width": f[1], "stride": stride, "pad": pad}


@pytest.fixture
def rng():
    return np.random.default_rng(231)


def load(name: str, broken: tuple | None = None):
    """A fixture module from tests/data/im2col (the book's util.py from tests/books), with one text
    substitution if `broken`."""
    path = SOURCES.get(name, FIXTURES / f"{name}.py")
    source = path.read_text()
    if broken:
        assert source.count(broken[0]) == 1, broken
        source = source.replace(*broken)
    spec = importlib.util.spec_from_loader(name, loader=None)
    module = importlib.util.module_from_spec(spec)
    exec(compile(source, str(path), "exec"), module.__dict__)
    return module


# -- the reference layers against PyTorch -----------------------------------------------------


def torch_unfold_fold(x, f, stride, pad, dcols):
    """PyTorch's unfold (N, C * FH * FW, L) permuted to the canonical (N * L, C * FH * FW), and
    fold (col2im) of dcols brought back to PyTorch's layout."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    N, C, H, W = x.shape
    kw = dict(kernel_size=f, stride=_pair(stride), padding=_pair(pad))
    cols = F.unfold(torch.tensor(x), **kw).permute(0, 2, 1).reshape(-1, C * f[0] * f[1])
    dcols_t = torch.tensor(dcols).reshape(N, -1, C * f[0] * f[1]).permute(0, 2, 1)
    dx = F.fold(dcols_t, output_size=(H, W), **kw)
    return cols.numpy(), dx.numpy()


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", GRID, ids=grid_id)
def test_matches_torch_unfold_and_fold(impl, case, rng):
    x_shape, f, stride, pad = case
    x = rng.standard_normal(x_shape)
    forward, backward = IMPLS[impl]
    cols, cache = forward(x, param(f, stride, pad))
    dcols = rng.standard_normal(cols.shape)
    torch_cols, torch_dx = torch_unfold_fold(x, f, stride, pad, dcols)
    assert_array_equal(cols, torch_cols, err_msg="forward (im2col)")
    assert_allclose(backward(dcols, cache), torch_dx, rtol=1e-12, atol=1e-12, err_msg="backward (col2im)")


@pytest.mark.parametrize("case", GRID, ids=grid_id)
def test_naive_matches_fast(case, rng):
    x_shape, f, stride, pad = case
    x = rng.standard_normal(x_shape)
    cols, cache = layers.im2col_forward_naive(x, param(f, stride, pad))
    fast_cols, fast_cache = layers.im2col_forward_fast(x, param(f, stride, pad))
    assert_array_equal(fast_cols, cols)
    dcols = rng.standard_normal(cols.shape)
    assert_allclose(layers.im2col_backward_fast(dcols, fast_cache), layers.im2col_backward_naive(dcols, cache),
                    rtol=1e-13, atol=1e-14)


def test_layout_by_hand():
    """Row n * H' * W' + i * W' + j, column c * FH * FW + di * FW + dj."""
    x = np.arange(2 * 2 * 3 * 3, dtype=np.float64).reshape(2, 2, 3, 3)
    for forward, _ in IMPLS.values():
        cols, _ = forward(x, param((2, 2), 1, 0))
        assert cols.shape == (2 * 2 * 2, 2 * 2 * 2)
        assert_array_equal(cols[0], [0, 1, 3, 4, 9, 10, 12, 13])  # sample 0, window (0, 0)
        assert_array_equal(cols[3], [4, 5, 7, 8, 13, 14, 16, 17])  # sample 0, window (1, 1)
        assert_array_equal(cols[4], cols[0] + 18)  # sample 1, window (0, 0)


@pytest.mark.parametrize("impl", IMPLS)
def test_col2im_adds_overlaps(impl):
    """dx counts, for each element, the windows it lies in (3x3 stride 1 on 4x4)."""
    forward, backward = IMPLS[impl]
    cols, cache = forward(np.zeros((1, 1, 4, 4)), param((3, 3), 1, 0))
    assert_array_equal(backward(np.ones_like(cols), cache)[0, 0],
                       [[1, 2, 2, 1], [2, 4, 4, 2], [2, 4, 4, 2], [1, 2, 2, 1]])


@pytest.mark.parametrize("impl", IMPLS)
def test_inputs_not_modified(impl, rng):
    x, p = rng.standard_normal((2, 2, 5, 5)), param((3, 3), 1, 1)
    x0, p0 = x.copy(), dict(p)
    forward, backward = IMPLS[impl]
    cols, cache = forward(x, p)
    dcols = rng.standard_normal(cols.shape)
    dcols0 = dcols.copy()
    backward(dcols, cache)
    assert_array_equal(x, x0)
    assert_array_equal(dcols, dcols0)
    assert p == p0


# -- the record ---------------------------------------------------------------------------------


def im2col_case(**changes):
    fields = dict(layer="im2col", x_shape=(2, 3, 5, 5), pool=(3, 3), stride=(1, 1), pad=(1, 1))
    return Case(**{**fields, **changes})


def test_record_geometry():
    case = im2col_case(x_shape=(2, 3, 5, 7), pool=(3, 2), stride=(2, 2))
    assert case.out_hw() == (3, 4)
    assert case.output_shape() == (2 * 3 * 4, 3 * 3 * 2)
    assert case.describe() == "im2col 3x2 s2 p1"
    assert case.param() == {"pool_height": 3, "pool_width": 2, "stride": 2, "pad": 1}
    assert KIND.reduction(case) == 1
    assert layers.of_command("im2col") == [KIND]


def test_course_layout_round_trip(rng):
    case = im2col_case(x_shape=(3, 2, 5, 6), pool=(3, 2))
    cols = rng.standard_normal(case.output_shape())
    course = to_course(cols, case)
    assert course.shape == case.output_shape()[::-1]
    assert_array_equal(from_course(course, case), cols)


@pytest.mark.parametrize("mode", ["dense", "sparse", "projection", "auto"])
@pytest.mark.parametrize("name, fields", KIND.suite, ids=[n for n, _ in KIND.suite])
def test_builtin_passes_default_suite(mode, name, fields):
    case = build_case({"layer": "im2col", **fields, "mode": mode}, name)
    result = check_case(case)
    assert result.passed, [(c.name, c.message, c.method) for c in result.checks]
    dx = result.checks[-1]
    if mode == "dense":  # the colouring holds: no fall-back to element by element
        assert "colours" in dx.method and "element-wise" not in dx.method


def test_builtin_float32_and_naive():
    assert check_case(im2col_case(dtype="float32")).passed
    assert check_case(im2col_case(mode="dense"), builtin("im2col", fast=False), builtin("im2col")).passed


def test_default_case_and_config_file():
    [default] = load_cases([], "im2col", {})
    assert (default.layer, default.pool, default.pad) == ("im2col", (3, 3), (1, 1))
    cases = load_cases(["configs/im2col.yaml"], "im2col", {})
    assert len(cases) == 3 and all(c.layer == "im2col" and c.exact() for c in cases)
    for case in cases:
        assert check_case(case).passed, case.name


# -- the book's and the course's helpers through their protocols ------------------------------

BOOK_EQUALS = ("] += col[", "] = col[")  # the reader's "fix" of col2im
COURSE_EQUALS = ("np.add.at(x_padded, (slice(None), k, i, j), per_sample)",
                 "x_padded[:, k, i, j] = per_sample")


def pair(module, protocol):
    spec = KIND.protocols[protocol]
    return FunctionPair(getattr(module, spec.forward), getattr(module, spec.backward), module.__name__, spec=spec)


OVERLAPPING = [("3x3 s1 p1", {}), ("3x3 s1 p0", {"x_shape": (2, 2, 6, 6), "pad": (0, 0)}),
               ("3x2 on 5x7", {"x_shape": (2, 2, 5, 7), "pool": (3, 2)}),
               ("3x3 s2 p1", {"x_shape": (2, 2, 7, 7), "stride": (2, 2)})]


@pytest.mark.parametrize("protocol, module", [("dlfs", "book_util"), ("cs231n", "course_im2col")])
@pytest.mark.parametrize("changes", [c for _, c in OVERLAPPING], ids=[n for n, _ in OVERLAPPING])
def test_faithful_helpers_pass(protocol, module, changes):
    result = check_case(im2col_case(**changes), pair(load(module), protocol))
    assert result.passed, (result.error, [(c.name, c.message) for c in result.checks])


def test_book_helpers_agree_with_the_reference(rng):
    book = load("book_util")
    x = rng.standard_normal((2, 3, 5, 7))
    cols, cache = layers.im2col_forward_fast(x, param((3, 2), 2, 1))
    assert_array_equal(book.im2col(x, 3, 2, 2, 1), cols)
    dcols = rng.standard_normal(cols.shape)
    assert_allclose(book.col2im(dcols, x.shape, 3, 2, 2, 1), layers.im2col_backward_fast(dcols, cache), rtol=1e-13)


@pytest.mark.parametrize("protocol, module, broken", [("dlfs", "book_util", BOOK_EQUALS),
                                                      ("cs231n", "course_im2col", COURSE_EQUALS)])
@pytest.mark.parametrize("changes", [c for _, c in OVERLAPPING], ids=[n for n, _ in OVERLAPPING])
@pytest.mark.parametrize("mode", ["auto", "dense"])
def test_col2im_with_equals_fails_dx(protocol, module, broken, changes, mode):
    result = check_case(im2col_case(mode=mode, **changes), pair(load(module, broken), protocol))
    checks = {c.name: c for c in result.checks}
    assert result.error is None
    assert checks["out"].passed and not checks["dx"].passed


def test_col2im_with_equals_passes_without_overlap():
    """Windows that tile the input: = and += agree, so only overlapping cases can see it."""
    case = im2col_case(x_shape=(2, 3, 4, 6), pool=(2, 2), stride=(2, 2), pad=(0, 0))
    assert check_case(case, pair(load("book_util", BOOK_EQUALS), "dlfs")).passed


def test_course_wrong_shape_is_named():
    course = load("course_im2col")
    transposed = FunctionPair(lambda *a: course.im2col_indices(*a).T, course.col2im_indices, "t",
                              spec=KIND.protocols["cs231n"])
    result = check_case(im2col_case(), transposed)
    assert not result.passed
    assert "returned cols of shape (50, 27), expected (C * FH * FW, H' * W' * N) = (27, 50)" in result.error


def test_book_pad_is_an_int():
    """The book's helpers take one stride and pad; pairs of equal sides pass as ints."""
    result = check_case(im2col_case(pad=(1, 1), stride=(1, 1)), pair(load("book_util"), "dlfs"))
    assert result.passed


def test_the_books_own_util_passes_and_its_equals_variant_fails(tmp_path, monkeypatch):
    """The official common/util.py (tests/books/dlfs), found by its function names."""
    from cnncheck.sandbox.detect import load as load_impl
    from cnncheck.suites import default_suite

    source = (Path(__file__).parent / "books" / "dlfs" / "common" / "util.py").read_text()
    assert source.count("] += col[") == 1
    (tmp_path / "good.py").write_text(source)
    (tmp_path / "broken.py").write_text(source.replace("] += col[", "] = col["))
    monkeypatch.chdir(tmp_path)
    cases = default_suite("im2col")
    assert all(check_case(case, load_impl("good.py", "im2col")).passed for case in cases)
    broken = {case.name for case in cases if not check_case(case, load_impl("broken.py", "im2col")).passed}
    assert broken == {case.name for case in cases if case.stride[0] < case.pool[0]}  # where windows overlap
