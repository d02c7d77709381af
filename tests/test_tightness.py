"""Tests that guard the verdict's own tightness: each fails if the checker were looser.

(a) A gradient error just above the rounding-noise allowance must fail, and would pass were
    the allowance ten times larger. (b) A forward that reads outside its receptive field
    within one colour hides from colour-based differences; the spot checks must catch it,
    and without them it would pass.
"""
import numpy as np
import pytest

from cnncheck import gradcheck
from cnncheck.case import Case, make_arrays
from cnncheck.gradcheck import Impl, builtin, check_case

# tolerance 0: the allowance is the rounding-noise term alone, noise_factor * noise
CASES = [
    Case("conv", (2, 3, 7, 7), (4, 3, 3, 3), stride=(1, 1), pad=(1, 1), mode="dense", tolerance=0.0),
    Case("conv", (2, 3, 7, 7), (4, 3, 3, 3), stride=(1, 1), pad=(1, 1), mode="dense", tolerance=0.0,
         dtype="float32"),
    Case("avg_pool", (2, 3, 8, 8), pool=(3, 3), stride=(1, 1), mode="dense", tolerance=0.0),
    Case("avg_pool", (2, 3, 8, 8), pool=(2, 2), stride=(2, 2), mode="dense", tolerance=0.0,
         dtype="float32"),
]  # (max pooling's conservation check, sum(dx) = sum(dout), is tighter still at tolerance 0)


def checks(result):
    return {c.name: c for c in result.checks}


def bumped(case, gname, k, by):
    """The built-in layer with element k of one gradient off by `by`."""
    good = builtin(case.layer)
    names = case.kind.grads

    def backward(dout, cache):
        grads = good.backward(dout, cache)
        grads = list(grads) if isinstance(grads, tuple) else [grads]
        i = names.index(gname)
        grads[i] = grads[i].copy()
        grads[i].flat[k] += by
        return tuple(grads) if len(grads) > 1 else grads[0]

    return Impl(good.forward, backward, "bumped")


def allowance(case, gname, k) -> float:
    """The verdict's allowed |a - n| at element k, read from a check where k is far off."""
    chk = checks(check_case(case, bumped(case, gname, k, 1.0)))[gname]
    worst = chk.worst[0]
    assert np.ravel_multi_index(worst["index"], case.input_shapes()[gradcheck.PARAM_OF[gname]]) == k
    return worst["allowed"]


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.layer}-{c.dtype}")
def test_an_error_just_above_the_noise_allowance_fails_and_tenfold_looser_passes(case, monkeypatch):
    gname, k = case.kind.grads[0], 17
    error = 2.0 * allowance(case, gname, k)
    result = check_case(case, bumped(case, gname, k, error))
    assert not checks(result)[gname].passed
    assert 1.5 < checks(result)[gname].margin < 2.5  # just above: natural errors are far smaller
    looser = case.with_(noise_factor=10 * case.noise_factor)
    assert checks(check_case(looser, bumped(looser, gname, k, error)))[gname].passed
    noise = gradcheck.noise  # the noise model itself ten times looser
    monkeypatch.setattr(gradcheck, "noise", lambda *a, **kw: 10 * noise(*a, **kw))
    assert checks(check_case(case, bumped(case, gname, k, error)))[gname].passed


# -- (b) a forward that reads outside its receptive field within one colour ----------
CONV = Case("conv", (2, 3, 9, 9), (2, 3, 3, 3), stride=(1, 1), pad=(1, 1), mode="dense")


def reads_within_its_colour(case):
    """Output row i also reads input rows i + 3 and i + 6, outside its 3x3 window but in the same
    colour (rows 3 apart): out[n, f, i, j] += c * (x[n, :, i + 3, j] - x[n, :, i + 6, j]) summed over
    channels, measured from the base input so the output is right there. Moving a whole colour
    moves both rows alike and the term cancels: colour differences see a plain conv, and agree
    with the backward, which ignores the term. Element by element, the term shows."""
    good, x0 = builtin("conv"), make_arrays(case)["x"]

    def forward(x, w, b, conv_param):
        out, cache = good.forward(x, w, b, conv_param)
        d = (x - x0).sum(axis=1)  # (N, H, W)
        H = x.shape[2]
        extra = np.zeros(d.shape)
        extra[:, :H - 6] = d[:, 3:H - 3] - d[:, 6:]
        return out + 1e-2 * extra[:, None], cache

    return Impl(forward, good.backward, "reads within its colour")


def test_a_forward_reading_outside_its_field_within_a_colour_is_caught_by_the_spot_checks(monkeypatch):
    result = check_case(CONV, reads_within_its_colour(CONV))
    assert checks(result)["out"].passed  # right at the base input and at the colour perturbations
    dx = checks(result)["dx"]
    assert not dx.passed and "spot checks disagreed" in dx.method
    monkeypatch.setattr(gradcheck, "colours_verified", lambda *a, **kw: True)  # spot checks off
    assert check_case(CONV, reads_within_its_colour(CONV)).passed  # ... and it would get through


def test_a_correct_pair_that_reads_within_its_colour_passes_element_by_element():
    """The same forward with a backward that knows the extra term: the spot checks send the
    check element by element, where it passes (colour differences alone would fail it)."""
    impl = reads_within_its_colour(CONV)
    x0 = make_arrays(CONV)["x"]

    def backward(dout, cache):
        dx, dw, db = builtin("conv").backward(dout, cache)
        g = 1e-2 * dout.sum(axis=1)[:, : x0.shape[2] - 6]  # d out / d x of the extra term
        dx = dx.copy()
        dx[:, :, 3:-3] += g[:, None]
        dx[:, :, 6:] -= g[:, None]
        return dx, dw, db

    pair = Impl(impl.forward, backward, "knows its term")
    result = check_case(CONV, pair, reference=pair)  # its own reference: only the numerics judge it
    assert result.passed, [(c.name, c.method, c.margin) for c in result.checks]
    assert "element-wise" in checks(result)["dx"].method
    # against cnncheck's conv the pair is no conv: its dx is not the reference backward's
    dx = checks(check_case(CONV, pair))["dx"]
    assert not dx.passed and dx.method == "vs reference backward" and "your forward differs" in dx.message
