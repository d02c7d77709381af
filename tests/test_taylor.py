"""The Taylor test: correct layers are exact to rounding (or converge like h^2), a gradient off
by 1% shows order 1 and fails, on every layer, on continuous and tied max-pool inputs."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from cnncheck.case import Case
from cnncheck.cli import main
from cnncheck.config import ConfigError, load_cases
from cnncheck.gradcheck import Impl, builtin, check_case
from cnncheck.taylor import STEPS, judge

CASES = [
    Case("conv", (4, 3, 5, 5), (2, 3, 3, 3), pad=(1, 1)),
    Case("conv", (2, 3, 7, 5), (4, 3, 3, 2), stride=(2, 1), pad=(2, 0)),
    Case("max_pool", (3, 2, 8, 8), pool=(2, 2), stride=(2, 2)),
    Case("max_pool", (4, 8, 16, 16), pool=(2, 2), stride=(2, 2)),  # 2048 windows: many near-ties
    Case("max_pool", (2, 3, 7, 6), pool=(3, 2), stride=(1, 1)),  # overlapping windows
    Case("max_pool", (2, 3, 8, 8), pool=(2, 2), stride=(2, 2), inputs={"x": "integers"}),  # ties
    Case("avg_pool", (2, 3, 8, 6), pool=(3, 3), stride=(1, 1)),
]


def scaled(impl: Impl, factor: float) -> Impl:
    """impl with every gradient multiplied by factor: a deliberately wrong backward."""
    def backward(dout, cache):
        grads = impl.backward(dout, cache)
        return tuple(g * factor for g in grads) if isinstance(grads, tuple) else grads * factor
    return Impl(impl.forward, backward, f"{impl.label} x {factor}")


def taylors(case, impl=None):
    result = check_case(case.with_(taylor=True, mode="sparse"), impl)
    grads = [c for c in result.checks if c.name in ("dx", "dw", "db")]
    assert grads and all(c.taylor for c in grads)
    return result, grads


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.layer}-{'x'.join(map(str, c.x_shape))}")
@pytest.mark.parametrize("seed", [0, 1, 231])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_correct_layers_are_exact_to_rounding(case, seed, dtype):
    result, grads = taylors(case.with_(seed=seed, dtype=dtype), builtin(case.layer, fast=False))
    assert result.passed
    for c in grads:
        t = c.taylor
        assert t["passed"] and (t["verdict"] == "exact to rounding" or t["order"] >= 1.8), t
        assert t["steps"] == list(STEPS) and len(t["residuals"]) == len(STEPS)


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.layer}-{'x'.join(map(str, c.x_shape))}")
@pytest.mark.parametrize("seed", [0, 1, 231])
def test_a_gradient_off_by_one_percent_shows_order_one_and_fails(case, seed):
    result, grads = taylors(case.with_(seed=seed), scaled(builtin(case.layer), 1.01))
    assert not result.passed
    for c in grads:
        t = c.taylor
        assert not t["passed"] and t["order"] == pytest.approx(1.0, abs=0.05), t
        assert "first-order error" in t["verdict"]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.layer}-{'x'.join(map(str, c.x_shape))}")
def test_float32_gradient_off_by_two_fails(case):
    _, grads = taylors(case.with_(dtype="float32"), scaled(builtin(case.layer), 2.0))
    assert all(not c.taylor["passed"] and c.taylor["order"] == pytest.approx(1.0, abs=0.1) for c in grads)


def test_taylor_alone_fails_a_check_the_tolerance_lets_through():
    # 1% off with a 5% tolerance: the element-wise verdict passes, the Taylor test does not
    case = CASES[0].with_(tolerance=0.05)
    result, grads = taylors(case, scaled(builtin("conv"), 1.01))
    assert not result.passed
    assert all(c.message.startswith("Taylor test: the residual shrinks like h^1.00") for c in grads)


# -- the verdict from residuals, by hand --------------------------------------------------------
H = np.array(STEPS)
NONE = [False] * len(STEPS)


@pytest.mark.parametrize("residuals, kinks, order, verdict, passed", [
    (1e-15 * np.ones(len(H)), NONE, None, "exact to rounding", True),
    (3.0 * H**2, NONE, 2.0, "order 2.00", True),
    (3.0 * H, NONE, 1.0, "order 1.00: a first-order error, the gradient is wrong", False),
    # kinks crossed at the three largest steps, exact below: the kinked steps do not count
    (np.r_[[5e-2, 4e-2, 1e-2], 1e-15 * np.ones(len(H) - 3)], [True] * 3 + NONE[3:], None,
     "exact to rounding", True),
    (3.0 * H, [True] * len(H), None, "kinks at every step: no verdict", True),
    # rounding takes over at the small steps of an h^2 residual
    (np.maximum(3.0 * H**2, 1e-9), NONE, None, None, True),
])
def test_judge(residuals, kinks, order, verdict, passed):
    got = judge(list(residuals), list(kinks), floor=1e-12)
    if order is not None:
        assert got[0] == pytest.approx(order, abs=1e-9)
    if verdict is not None:
        assert got[1] == verdict
    assert got[2] is passed


# -- the command line and the config ------------------------------------------------------------
def test_cli_flag_json_and_table():
    result = CliRunner().invoke(main, ["pool", "--taylor", "--format", "json"])
    assert result.exit_code == 0, result.output
    (dx,) = [c for c in json.loads(result.stdout)["cases"][0]["checks"] if c["name"] == "dx"]
    assert dx["taylor"]["verdict"] == "exact to rounding"
    assert set(dx["taylor"]) == {"steps", "residuals", "kinks", "floor", "order", "verdict", "passed"}
    assert "taylor exact" in CliRunner().invoke(main, ["conv", "--taylor"]).stdout
    plain = CliRunner().invoke(main, ["pool", "--format", "json"])
    assert "taylor" not in plain.stdout  # only when asked for


def test_config_key(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("layer: avg_pool\nx_shape: [2, 2, 4, 4]\npool_param: {pool_height: 2, pool_width: 2}\n"
                    "taylor: true\n")
    assert load_cases([str(path)], "pool", {})[0].taylor is True
    path.write_text(path.read_text().replace("true", "yes please"))
    with pytest.raises(ConfigError, match=r"t.yaml:4: taylor = 'yes please' must be true or false"):
        load_cases([str(path)], "pool", {})
