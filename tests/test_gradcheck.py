"""The gradient check against published numbers, correct layers and broken ones."""
import numpy as np
import pytest

from cnncheck import layers
from cnncheck.case import Case
from cnncheck.gradcheck import Impl, builtin, check_case, rel_error

NOTEBOOK_CONV = Case("conv", (4, 3, 5, 5), (2, 3, 3, 3), stride=(1, 1), pad=(1, 1), seed=231,
                     name="notebook conv")
NOTEBOOK_POOL = Case("max_pool", (3, 2, 8, 8), pool=(2, 2), stride=(2, 2), seed=231,
                     name="notebook pool")

GEOMETRIES = [
    NOTEBOOK_CONV,
    Case("conv", (2, 3, 7, 5), (4, 3, 3, 2), stride=(2, 1), pad=(2, 0)),
    Case("conv", (3, 2, 9, 9), (3, 2, 4, 4), stride=(2, 2), pad=(1, 1)),
    Case("conv", (2, 4, 6, 8), (5, 4, 1, 1), stride=(1, 1), pad=(0, 0)),
    NOTEBOOK_POOL,
    Case("max_pool", (2, 3, 7, 6), pool=(3, 2), stride=(1, 1)),
    Case("max_pool", (2, 2, 9, 9), pool=(3, 3), stride=(2, 2)),
    Case("avg_pool", (2, 3, 8, 6), pool=(3, 3), stride=(1, 1)),
    Case("avg_pool", (2, 3, 8, 8), pool=(2, 2), stride=(2, 2)),
]


def checks(result):
    return {c.name: c for c in result.checks}


def test_notebook_max_pool_backward_number():
    # The course notebook prints 3.27562514223145e-12 for a correct max_pool_backward_naive.
    result = check_case(NOTEBOOK_POOL, builtin("max_pool", fast=False))
    assert result.passed
    assert checks(result)["dx"].rel_error == pytest.approx(3.27562514223145e-12, rel=1e-6)


def test_notebook_conv_backward_errors_are_around_1e8_or_less():
    result = check_case(NOTEBOOK_CONV, builtin("conv", fast=False))
    assert result.passed
    for name in ("dx", "dw", "db"):
        assert checks(result)[name].rel_error < 5e-8


@pytest.mark.parametrize("case", GEOMETRIES, ids=lambda c: f"{c.layer}-{c.x_shape}")
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("fast", [True, False], ids=["fast", "naive"])
def test_correct_layers_pass_at_every_seed(case, seed, fast):
    result = check_case(case.with_(seed=seed), builtin(case.layer, fast))
    assert result.passed, [(c.name, c.margin, c.worst) for c in result.checks]


@pytest.mark.parametrize("case", [
    Case("conv", (4, 8, 32, 32), (8, 8, 3, 3), stride=(1, 1), pad=(1, 1)),  # 32k elements in x
    Case("max_pool", (4, 8, 64, 64), pool=(2, 2), stride=(2, 2)),  # 131k elements
    Case("avg_pool", (4, 8, 64, 64), pool=(3, 3), stride=(1, 1)),
], ids=lambda c: c.layer)
def test_large_correct_layers_pass_dense(case):
    result = check_case(case.with_(mode="dense"))
    assert result.passed, [(c.name, c.margin, c.worst) for c in result.checks]
    assert all(c.elements > 1000 for c in result.checks if c.name == "dx")


# -- broken layers the check must fail ----------------------------------------
def broken(case, fix):
    """The built-in layer with its backward's gradients passed through `fix`."""
    good = builtin(case.layer)

    def backward(dout, cache):
        grads = good.backward(dout, cache)
        return fix(*grads) if (case.layer == "conv") else fix(grads)

    return Impl(good.forward, backward, "broken")


def one_element(g, k=7, by=1e-3):
    g = g.copy()
    g.flat[k] += by
    return g


BROKEN_CONV = {
    "dx": lambda dx, dw, db: (dx * 1.01, dw, db),
    "dw": lambda dx, dw, db: (dx, dw * 1.01, db),
    "db": lambda dx, dw, db: (dx, dw, db * 1.01),
    "dx-one": lambda dx, dw, db: (one_element(dx), dw, db),
    "dw-one": lambda dx, dw, db: (dx, one_element(dw, 3), db),
    "db-one": lambda dx, dw, db: (dx, dw, one_element(db, 0)),
    "dw-flipped": lambda dx, dw, db: (dx, dw[:, :, ::-1, ::-1], db),
}


@pytest.mark.parametrize("mode", ["dense", "sparse", "projection"])
@pytest.mark.parametrize("bug", sorted(BROKEN_CONV))
def test_broken_conv_fails_and_names_the_gradient(bug, mode):
    case = NOTEBOOK_CONV.with_(mode=mode, samples=200)
    result = check_case(case, broken(case, BROKEN_CONV[bug]))
    failed = {c.name for c in result.checks if not c.passed}
    if mode == "projection" and bug.endswith("-one"):
        # one wrong element out of hundreds moves a random projection only a little,
        # but still beyond the noise.
        pass
    assert failed == {bug.split("-")[0]}


@pytest.mark.parametrize("mode", ["dense", "sparse", "projection"])
@pytest.mark.parametrize("layer", ["max_pool", "avg_pool"])
@pytest.mark.parametrize("fix", [lambda dx: dx * 1.01, lambda dx: one_element(dx, 100, 0.01)],
                         ids=["scaled", "one"])
def test_broken_pool_fails(layer, fix, mode):
    case = NOTEBOOK_POOL.with_(layer=layer, mode=mode, samples=400)
    result = check_case(case, broken(case, fix))
    assert {c.name for c in result.checks if not c.passed} == {"dx"}


def test_worst_element_is_the_broken_one():
    case = NOTEBOOK_CONV.with_(mode="dense")
    result = check_case(case, broken(case, lambda dx, dw, db: (one_element(dx, 42), dw, db)))
    dx = checks(result)["dx"]
    assert dx.failed == 1
    assert dx.worst[0]["index"] == list(np.unravel_index(42, case.x_shape))
    assert dx.worst[0]["analytic"] - dx.worst[0]["numerical"] == pytest.approx(1e-3, rel=1e-4)


def test_rel_error_is_the_cs231n_formula():
    assert rel_error([1.0, 0.0], [1.0, 0.0]) == 0.0
    assert rel_error([3.0], [1.0]) == pytest.approx(0.5)
    assert rel_error([1e-9], [0.0]) == pytest.approx(0.1)  # the 1e-8 floor


def test_out_check_catches_a_wrong_forward():
    good = builtin("conv")

    def forward(x, w, b, conv_param):
        out, cache = good.forward(x, w, b, conv_param)
        return out + 1e-4, cache

    result = check_case(NOTEBOOK_CONV, Impl(forward, good.backward, "shifted"))
    assert not checks(result)["out"].passed


def test_non_exact_division_is_noted_not_failed():
    result = check_case(Case("conv", (2, 3, 6, 6), (2, 3, 3, 3), stride=(2, 2), pad=(0, 0)))
    assert result.passed
    assert any("contract" in n for n in result.notes)


def test_every_tied_maximum_given_all_of_dout_fails_by_conservation():
    # Kinks are left out element by element; sum(dx) = sum(dout) still catches this backward.
    case = Case("max_pool", (2, 2, 6, 6), pool=(2, 2), stride=(2, 2), inputs={"x": "integers"})
    good = builtin("max_pool")

    def backward(dout, cache):
        x, _, pool_param = cache
        win = np.lib.stride_tricks.sliding_window_view(x, (2, 2), axis=(2, 3))[:, :, ::2, ::2]
        mask = win == win.max(axis=(4, 5), keepdims=True)
        return (mask * dout[..., None, None]).transpose(0, 1, 2, 4, 3, 5).reshape(x.shape)

    result = check_case(case, Impl(good.forward, backward, "all ties"))
    dx = checks(result)["dx"]
    assert dx.kinks > 0 and not dx.passed
    assert "sum(dx) - sum(dout)" in dx.message
    assert check_case(case).passed  # the built-in layer (first maximum) conserves it
    assert checks(check_case(case))["dx"].rel_error < 1e-9  # kinks are left out of the errors


def test_a_wrong_shaped_gradient_leaves_the_others_checked():
    case = NOTEBOOK_CONV
    result = check_case(case, broken(case, lambda dx, dw, db: (dx[:, :, 1:, 1:], dw * 1.01, db)))
    found = checks(result)
    assert "has shape" in found["dx"].message and not found["dx"].passed
    assert not found["dw"].passed and found["db"].passed


def test_a_wrong_forward_says_the_gradients_follow_it():
    good = builtin("conv")

    def forward(x, w, b, conv_param):
        out, cache = good.forward(x, w, b, conv_param)
        return 2 * out, cache

    result = check_case(NOTEBOOK_CONV, Impl(forward, good.backward, "doubled"))
    assert not checks(result)["out"].passed
    assert any("fix `out` first" in n for n in result.notes)
