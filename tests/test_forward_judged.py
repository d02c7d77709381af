"""The forward is judged at more than one input, and the calls a check makes are counted."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from cnncheck.case import Case
from cnncheck.cli import main
from cnncheck.gradcheck import Impl, builtin, check_case

CASES = [
    Case("conv", (2, 3, 7, 7), (4, 3, 3, 3), stride=(1, 1), pad=(1, 1)),
    Case("max_pool", (2, 3, 8, 8), pool=(2, 2), stride=(2, 2)),
    Case("avg_pool", (2, 2, 9, 9), pool=(3, 3), stride=(2, 2)),
]
MODES = ["dense", "sparse", "projection", "auto"]


def checks(result):
    return {c.name: c for c in result.checks}


def zero_backward(good):
    def backward(dout, cache):
        grads = good.backward(dout, cache)
        return tuple(map(np.zeros_like, grads)) if isinstance(grads, tuple) else np.zeros_like(grads)
    return backward


def memoizing(layer):
    """A forward that returns its first answer for every later call, with an all-zero backward:
    numerical gradients of a frozen forward read zero and agree with the zero backward."""
    good, first = builtin(layer), []

    def forward(*args):
        out, cache = good.forward(*args)
        first.append(out) if not first else None
        return first[0].copy(), cache

    return Impl(forward, zero_backward(good), "memoizing")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.layer)
def test_a_forward_that_memoizes_its_first_answer_fails_as_a_forward_fault(case, mode):
    result = check_case(case.with_(mode=mode), memoizing(case.layer))
    assert not result.passed
    out = checks(result)["out"]
    assert not out.passed and "your forward returned the same output for a different x" in out.message


def test_a_forward_that_caches_its_first_x_is_blamed_not_the_backward():
    """A student keeps the padded input of the first call in a module-level variable."""
    case, good, kept = CASES[0].with_(mode="dense"), builtin("conv"), []

    def forward(x, w, b, conv_param):
        kept.append(x.copy()) if not kept else None
        return good.forward(kept[0], w, b, conv_param)

    out = checks(check_case(case, Impl(forward, good.backward, "stale x")))["out"]
    assert not out.passed and out.message.endswith("different x")
    assert "perturbed x" in out.method


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.layer)
def test_correct_layers_meet_the_reference_at_the_perturbed_inputs(case):
    for dtype in ("float64", "float32"):
        result = check_case(case.with_(dtype=dtype, mode="dense"))
        assert result.passed, [(c.name, c.message) for c in result.checks]


# -- calls against the colour minimum ------------------------------------------------
def test_a_dense_conv_check_runs_within_ten_percent_of_the_colour_minimum():
    # colours: 8 channels x 9 for dx, 72 for dw, 1 for db; base call: 146
    result = check_case(Case("conv", (4, 8, 32, 32), (8, 8, 3, 3), stride=(1, 1), pad=(1, 1), mode="dense"))
    assert result.passed and result.colour_minimum == 146
    assert result.colour_minimum <= result.calls["forward"] <= 1.1 * result.colour_minimum
    assert result.calls["backward"] == 1


def test_max_pooling_needs_both_sides_for_its_kinks():
    result = check_case(Case("max_pool", (2, 3, 32, 32), pool=(2, 2), stride=(2, 2), mode="dense"))
    assert result.passed and result.colour_minimum == 5
    assert result.calls["forward"] == 1 + 2 * 4 + 4  # base, centred colours, spot checks


def test_json_reports_the_calls_and_the_colour_minimum():
    run = CliRunner().invoke(main, ["conv", "--mode", "dense", "--format", "json"])
    (case,) = json.loads(run.stdout)["cases"]
    assert case["colour_minimum"] == 1 + 3 * 9 + 27 + 1
    assert case["calls"]["backward"] == 1
    assert case["colour_minimum"] <= case["calls"]["forward"] <= case["colour_minimum"] + 15
