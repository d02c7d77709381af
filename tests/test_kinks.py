"""Max pooling on tied inputs: kinks are counted and left out, never a failure, in every mode.

With `inputs: {x: integers}` pool windows hold ties. Any convex split of a window's
gradient among its tied maxima is a valid subgradient (first max, last max, split
equally), and the checker must pass each of them; a backward that is wrong away from
the ties (`=` instead of `+=` on overlapping windows, the wrong element, scaled) must
still fail on the same inputs.
"""
import numpy as np
import pytest

from cnncheck.case import Case
from cnncheck.gradcheck import Impl, _tied, check_case


def max_pool_forward(x, pool_param):
    """A student's loops."""
    ph, pw, s = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
    N, C, H, W = x.shape
    Ho, Wo = 1 + (H - ph) // s, 1 + (W - pw) // s
    out = np.zeros((N, C, Ho, Wo), dtype=x.dtype)
    for i in range(Ho):
        for j in range(Wo):
            out[:, :, i, j] = x[:, :, i * s:i * s + ph, j * s:j * s + pw].max(axis=(2, 3))
    return out, (x, pool_param)


def backward_with(route):
    """A student-style backward: `route(window, g)` gives each window's gradient."""
    def max_pool_backward(dout, cache):
        x, pool_param = cache
        ph, pw, s = pool_param["pool_height"], pool_param["pool_width"], pool_param["stride"]
        dx = np.zeros_like(x)
        N, C, Ho, Wo = dout.shape
        for n in range(N):
            for c in range(C):
                for i in range(Ho):
                    for j in range(Wo):
                        window = x[n, c, i * s:i * s + ph, j * s:j * s + pw]
                        target = dx[n, c, i * s:i * s + ph, j * s:j * s + pw]
                        route(target, window, dout[n, c, i, j])
        return dx
    return max_pool_backward


def first_max(target, window, g):
    target[np.unravel_index(np.argmax(window), window.shape)] += g


def last_max(target, window, g):
    flat = window.ravel()
    k = flat.size - 1 - np.argmax(flat[::-1])
    target[np.unravel_index(k, window.shape)] += g


def split_ties(target, window, g):
    mask = window == window.max()
    target += mask * g / mask.sum()


def all_ties_full(target, window, g):  # every tied maximum gets all of dout: not a split
    target += (window == window.max()) * g


def assign_not_add(target, window, g):  # `=` instead of `+=`: overlapping windows overwrite
    target[np.unravel_index(np.argmax(window), window.shape)] = g


def wrong_element(target, window, g):
    target[np.unravel_index(np.argmin(window), window.shape)] += g


def scaled(target, window, g):
    first_max(target, window, 1.5 * g)


CORRECT = [first_max, last_max, split_ties]
BROKEN = [assign_not_add, wrong_element, scaled, all_ties_full]  # the last: sum(dx) != sum(dout)
GEOMETRIES = {  # (x_shape, pool, stride): non-overlapping, overlapping by 1, overlapping by 2
    "2x2s2": ((2, 3, 8, 8), (2, 2), (2, 2)),
    "3x3s2": ((2, 2, 9, 9), (3, 3), (2, 2)),
    "3x3s1": ((2, 2, 7, 7), (3, 3), (1, 1)),
}
MODES = ["dense", "sparse", "projection"]


def integer_case(geometry, mode, seed, dtype="float64", samples=60):
    x_shape, pool, stride = GEOMETRIES[geometry]
    return Case("max_pool", x_shape, pool=pool, stride=stride, seed=seed, mode=mode,
                inputs={"x": "integers"}, samples=samples, dtype=dtype)


def student(route):
    return Impl(max_pool_forward, backward_with(route), route.__name__)


def run(case, route):
    """check_case; projections get no budget, so no dense check can rescue a false alarm."""
    return check_case(case, student(route), budget=0 if case.mode == "projection" else 30)


def dx(result):
    return next(c for c in result.checks if c.name == "dx")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("geometry", sorted(GEOMETRIES))
@pytest.mark.parametrize("route", CORRECT, ids=lambda r: r.__name__)
def test_every_tie_convention_passes_on_integers_at_every_seed(route, geometry, mode):
    for seed in range(6):
        result = run(integer_case(geometry, mode, seed), route)
        chk = dx(result)
        assert result.passed, (seed, chk.method, chk.margin, chk.worst)
        assert chk.kinks > 0 and chk.elements > 0  # ties were found, the rest still counted


BROKEN_GEOMETRIES = [  # where windows do not overlap, `=` and `+=` agree: no bug to find there
    pytest.param(route, g, id=f"{route.__name__}-{g}") for route in BROKEN for g in sorted(GEOMETRIES)
    if not (route is assign_not_add and g == "2x2s2")
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("route, geometry", BROKEN_GEOMETRIES)
def test_broken_backward_fails_on_integers_at_every_seed(route, geometry, mode):
    for seed in range(6):
        # a bug may show at a single non-tied element: sparse samples every element here
        result = run(integer_case(geometry, mode, seed, samples=500), route)
        assert not dx(result).passed, (seed, dx(result).method)


@pytest.mark.parametrize("route", CORRECT + BROKEN, ids=lambda r: r.__name__)
def test_float32_integers_follow_the_same_verdicts(route):
    for seed in range(5):
        result = check_case(integer_case("3x3s1", "dense", seed, "float32"), student(route))
        assert dx(result).passed == (route in CORRECT), seed


def test_kinks_are_exactly_the_tied_elements_when_dout_is_generic():
    # x with one tie in one window: only its two tied elements are kinks.
    case = Case("max_pool", (1, 1, 4, 4), pool=(2, 2), stride=(2, 2), mode="dense")
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    x[0, 0, 0, 0] = x[0, 0, 1, 1] = 20.0
    tied = _tied(case, x, 2 * case.step())
    assert sorted(zip(*np.nonzero(tied[0, 0]))) == [(0, 0), (1, 1)]


def test_a_near_tie_within_the_step_is_a_kink_and_a_wider_gap_is_not():
    case = Case("max_pool", (1, 1, 2, 2), pool=(2, 2), stride=(2, 2))
    h = case.step()
    assert _tied(case, np.array([[[[1.0, 1.0 - 0.5 * h], [0.0, 0.0]]]]), 2 * h)[0, 0, 0].all()
    assert not _tied(case, np.array([[[[1.0, 1.0 - 5 * h], [0.0, 0.0]]]]), 2 * h).any()


def test_normal_inputs_have_no_kinks_in_float64():
    result = check_case(integer_case("3x3s1", "dense", 0).with_(inputs={}), student(first_max))
    assert result.passed and dx(result).kinks == 0
