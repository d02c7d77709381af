"""Dense, sparse, projection and auto modes: each passes correct layers and catches broken ones."""
import numpy as np
import pytest

from cnncheck.case import Case
from cnncheck.gradcheck import Impl, builtin, check_case, mode_calls

MODES = ["dense", "sparse", "projection"]
CONV = Case("conv", (2, 3, 7, 7), (4, 3, 3, 3), stride=(1, 1), pad=(1, 1), samples=400)
GEOMETRIES = [
    CONV,
    Case("conv", (2, 3, 9, 8), (3, 3, 4, 2), stride=(2, 1), pad=(2, 0)),
    Case("max_pool", (2, 3, 8, 8), pool=(2, 2), stride=(2, 2)),
    Case("avg_pool", (2, 2, 9, 9), pool=(3, 3), stride=(2, 2)),
]


def checks(result):
    return {c.name: c for c in result.checks}


def failed(result):
    return {c.name for c in result.checks if not c.passed}


def broken(case, fix, forward=None):
    good = builtin(case.layer)

    def backward(dout, cache):
        grads = good.backward(dout, cache)
        return fix(*grads) if (case.layer == "conv") else fix(grads)

    return Impl(forward or good.forward, backward, "broken")


def bump(g, k, by=1e-3):
    g = g.copy()
    g.flat[k] += by
    return g


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", GEOMETRIES, ids=lambda c: f"{c.layer}-{c.x_shape}")
def test_correct_layers_pass_in_every_mode(case, mode):
    for fast in (True, False):
        for seed in range(3):
            result = check_case(case.with_(mode=mode, seed=seed), builtin(case.layer, fast))
            assert result.passed, (fast, seed, [(c.name, c.method, c.margin) for c in result.checks])
            assert all(c.method.startswith(mode) for c in result.checks if c.name.startswith("d"))


def test_100k_element_conv_passes_dense_by_colours():
    case = Case("conv", (8, 8, 40, 40), (8, 8, 3, 3), stride=(1, 1), pad=(1, 1), mode="dense")
    calls = []
    result = check_case(case, on_call=lambda: calls.append(1))
    assert result.passed
    assert checks(result)["dx"].elements == 102400
    assert checks(result)["dx"].method == "dense, 72 colours"  # C * 3 * 3, whatever N, H, W
    assert len(calls) < 400


CONV_BUGS = {  # name: (fix, gradients that must fail)
    "dx scaled": (lambda dx, dw, db: (dx * 1.01, dw, db), {"dx"}),
    "dw scaled": (lambda dx, dw, db: (dx, dw * 1.01, db), {"dw"}),
    "db scaled": (lambda dx, dw, db: (dx, dw, db * 1.01), {"db"}),
    "dw flipped": (lambda dx, dw, db: (dx, dw[:, :, ::-1, ::-1], db), {"dw"}),
    "dw transposed": (lambda dx, dw, db: (dx, dw.transpose(0, 1, 3, 2), db), {"dw"}),
    "dx one element": (lambda dx, dw, db: (bump(dx, 40), dw, db), {"dx"}),
    "dw one element": (lambda dx, dw, db: (dx, bump(dw, 5), db), {"dw"}),
}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("bug", sorted(CONV_BUGS))
def test_broken_conv_fails_in_every_mode_and_names_the_gradient(bug, mode):
    fix, expected = CONV_BUGS[bug]
    result = check_case(CONV.with_(mode=mode), broken(CONV, fix), budget=0.0)
    assert failed(result) == expected, [(c.name, c.method, c.margin) for c in result.checks]


@pytest.mark.parametrize("mode", MODES)
def test_broken_pools_fail_in_every_mode(mode):
    for layer in ("max_pool", "avg_pool"):
        case = Case(layer, (2, 3, 8, 8), pool=(2, 2), stride=(2, 2), mode=mode, samples=400)
        for fix in (lambda dx: dx * 0.99, lambda dx: bump(dx, 77, 0.01)):
            assert failed(check_case(case, broken(case, fix), budget=0.0)) == {"dx"}


def test_a_failed_projection_is_located_by_a_dense_check():
    case = CONV.with_(mode="projection")
    dx = checks(check_case(case, broken(case, lambda dx, dw, db: (bump(dx, 40), dw, db))))["dx"]
    assert not dx.passed and "located by dense" in dx.method
    assert dx.failed == 1
    assert dx.worst[0]["index"] == list(np.unravel_index(40, case.x_shape))


def test_a_failed_projection_without_budget_is_located_by_sparse_and_stays_failed():
    case = CONV.with_(mode="projection", samples=1000)
    dx = checks(check_case(case, broken(case, lambda dx, dw, db: (bump(dx, 40), dw, db)),
                           budget=0.0))["dx"]
    assert not dx.passed and "located by sparse" in dx.method
    assert dx.worst[0]["index"] == list(np.unravel_index(40, case.x_shape))


def test_a_failed_projection_at_one_gradient_leaves_the_others_passed():
    case = CONV.with_(mode="projection")
    result = check_case(case, broken(case, lambda dx, dw, db: (dx, dw * 1.001, db)), budget=0.0)
    assert failed(result) == {"dw"}


def test_auto_runs_dense_when_affordable_else_projection_plus_sparse():
    assert checks(check_case(CONV))["dx"].method.startswith("dense")
    result = check_case(CONV, budget=0.0)
    assert result.passed
    assert "projection" in checks(result)["dx"].method and "sparse" in checks(result)["dx"].method
    assert any("auto mode" in n for n in result.notes)
    bad = check_case(CONV, broken(CONV, lambda dx, dw, db: (dx, dw, db * 1.01)), budget=0.0)
    assert failed(bad) == {"db"}


@pytest.mark.parametrize("mode", MODES)
def test_estimate_matches_the_forward_calls_of_a_passing_run(mode):
    case = CONV.with_(mode=mode, samples=20)
    calls, estimates = [], []
    result = check_case(case, on_call=lambda: calls.append(1),
                        on_estimate=lambda c, m, n, s: estimates.append((m, n, s)))
    assert result.passed and len(estimates) == 1
    m, n, secs = estimates[0]
    assert m == mode and n == mode_calls(case, mode) and secs > 0
    assert 0.8 * n <= len(calls) <= n


def leaky_forward(x, w, b, conv_param):
    """A forward that breaks the receptive field: every output sees the first input row."""
    out, cache = builtin("conv").forward(x, w, b, conv_param)
    return out + 1e-3 * x[:, :1, :1, :].sum(), cache


def test_a_leaking_forward_falls_back_to_element_by_element_and_says_so():
    case = CONV.with_(mode="dense")
    result = check_case(case, broken(case, lambda *g: g, leaky_forward))
    assert "element-wise" in checks(result)["dx"].method
    assert "receptive field" in checks(result)["dx"].method
    assert "dx" in failed(result)  # the backward ignores the leak


def test_a_leaking_forward_without_budget_falls_back_to_sparse():
    case = CONV.with_(mode="dense")
    result = check_case(case, broken(case, lambda *g: g, leaky_forward), budget=0.0)
    assert checks(result)["dx"].method.startswith("sparse (outputs outside the receptive field")


def test_a_forward_that_changes_its_input_is_an_error():
    good = builtin("conv")

    def forward(x, w, b, conv_param):
        x += 1e-3
        return good.forward(x, w, b, conv_param)

    result = check_case(CONV.with_(mode="dense"), Impl(forward, good.backward, "in place"))
    assert result.error and "in place" in result.error
