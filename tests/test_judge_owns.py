"""The judge owns its numbers: what crosses from the worker is checked against a schema, text
is made printable, a comparison with a non-finite side never passes, and a forward that
steers its own numerical gradient is caught by the reference's backward."""
import json

import numpy as np
import pytest

from cnncheck import gradcheck
from cnncheck.case import Case
from cnncheck.gradcheck import Impl, builtin, check_case, compare
from cnncheck.sandbox import channel, launch

META = {"dtype": "<f8", "shape": [2, 3], "offset": 0}


def reply(**fields) -> bytes:
    return json.dumps({"ticket": 1, **fields}).encode()


@pytest.mark.parametrize("bad", [
    {"arrays": {"out": {**META, "shape": [2**32, 2**32]}}},  # claims more than the shared memory holds
    {"arrays": {"out": {**META, "offset": 1000}}},  # lies past its end
    {"arrays": {"out": {"dtype": "<f8", "shape": [2, 3]}}},  # a field missing
    {"arrays": {"out": {**META, "dtype": "|O"}}},  # objects
    {"arrays": {"out": {**META, "shape": [-1, 3]}}},
    {"outs": [{**META, "shape": [2.5]}]},
    {"error": 7},
    {"pickle": "..."},  # a field the schema does not know
])
def test_a_reply_outside_the_schema_is_refused(bad):
    with pytest.raises(channel.BadReply):
        channel.parse(reply(**bad), size=64)


def test_a_reply_inside_the_schema_reads_and_nan_literals_do_not():
    got = channel.parse(reply(arrays={"out": META}, notes=["ok"]), size=48)
    assert got["arrays"]["out"][1:] == ((2, 3), 0, 48) and got["notes"] == ["ok"]
    with pytest.raises(channel.BadReply):
        channel.parse(b'{"ticket": 1, "notes": [NaN]}', size=48)


def test_text_from_the_code_is_printable():
    text = channel.printable("boom\x1b[2J\x07\x00 </failure>\u202e\n next")
    assert "\x1b" not in text and "\x07" not in text and "\x00" not in text and "\u202e" not in text
    assert "\\x1b[2J" in text and "\n next" in text


@pytest.mark.parametrize("numeric", [np.nan, np.inf, -np.inf])
def test_a_comparison_with_a_non_finite_side_never_passes(numeric):
    case = Case("conv", (1, 1, 3, 3), (1, 1, 3, 3))
    a = np.zeros((2, 2))
    n = a.copy()
    n[0, 1] = numeric
    assert not compare("dx", a, n, np.zeros_like(a), case).passed
    assert not compare("dx", n, a, np.zeros_like(a), case).passed


CONV = Case("conv", (2, 3, 6, 6), (2, 3, 3, 3), stride=(1, 1), pad=(1, 1), mode="dense")


def scaled(case, factor):
    """A forward that meets the reference at the base input only: elsewhere its change is
    `factor` times the reference's, and its backward is `factor` times the reference's, so
    the code agrees with numerical gradients of its own forward."""
    good = builtin("conv")
    x0 = None

    def forward(x, w, b, conv_param):
        nonlocal x0
        out, cache = good.forward(x, w, b, conv_param)
        if x0 is None:
            x0 = (x.copy(), out.copy())
        base = good.forward(x0[0], w, b, conv_param)[0]
        return x0[1] + factor * (out - base) + (base - x0[1]), cache

    def backward(dout, cache):
        dx, dw, db = good.backward(dout, cache)
        return factor * dx, dw, db

    return Impl(forward, backward, "steered")


def test_a_forward_that_steers_its_numerical_gradient_fails_by_the_reference_backward(monkeypatch):
    monkeypatch.setattr(gradcheck, "forward_points", lambda *a, **k: None)  # as if it evaded the draws
    result = check_case(CONV, scaled(CONV, 1.5))
    dx = next(c for c in result.checks if c.name == "dx")
    assert not dx.passed and dx.method == "vs reference backward"
    assert "your forward differs from the reference" in dx.message
    assert check_case(CONV, scaled(CONV, 1.0)).passed  # the same code unsteered passes


def test_the_forward_points_are_drawn_from_every_call_not_the_first():
    """Which perturbed calls meet the reference is not predictable: over a few runs the
    points kept are not always the first calls."""
    firsts = set()
    for _ in range(6):
        arrays = gradcheck.make_arrays(CONV)
        arrays.pop("dout")
        f = gradcheck.Evaluator(builtin("conv"), CONV, arrays)
        f.base = f.run({})
        for k in range(30):
            x = arrays["x"].copy()
            x.flat[k] += 1.0
            f.run({"x": x})
        firsts.add(tuple(int(np.argmax(np.abs(r["x"] - arrays["x"]))) for r, _ in f.kept[("x",)]))
    assert len(firsts) > 1


def test_a_level_that_cannot_be_had_is_refused(monkeypatch):
    monkeypatch.setenv("CNNCHECK_BWRAP", "/nonexistent/bwrap")
    launch.available.cache_clear()
    try:
        assert launch.available() in ("uid", "process")
        with pytest.raises(ValueError, match="bubblewrap is missing or refused"):
            launch.choose("bwrap")
    finally:
        launch.available.cache_clear()


def test_a_heat_map_of_non_finite_errors_shades_them_darkest():
    from cnncheck.diagnose import SHADES, heat_map
    rows = heat_map([[0.0, float("nan")], [float("inf"), None]])
    assert rows == [" " * 2 + SHADES[-1] * 2, SHADES[-1] * 4]
