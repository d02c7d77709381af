"""Contract checks against layers that break one promise each (the built-in layer, altered)."""
import numpy as np
import pytest

from cnncheck import contract
from cnncheck.case import Case
from cnncheck.gradcheck import Impl, builtin

CONV = Case("conv", (2, 3, 5, 5), (2, 3, 3, 3), stride=(1, 1), pad=(1, 1))
POOL = Case("max_pool", (2, 2, 6, 6), pool=(3, 3), stride=(1, 1))


def altered(case, forward=None, backward=None):
    good = builtin(case.layer)
    return Impl(forward or good.forward, backward or good.backward, "altered")


def conv_forward_scaling_x(x, w, b, p):
    x *= 1.0 + 1e-12  # "harmless" in-place rescale
    return builtin("conv").forward(x, w, b, p)


def backward_state():
    calls = []

    def backward(dout, cache):
        calls.append(1)
        dx, dw, db = builtin("conv").backward(dout, cache)
        return dx * len(calls), dw, db  # accumulates across calls
    return backward


BROKEN = {
    "forward changed x in place": (CONV, conv_forward_scaling_x, None),
    "backward changed dout in place": (CONV, None, lambda d, c: builtin("conv").backward(d.__imul__(0.5) * 2, c)),
    "called twice": (CONV, None, backward_state()),
    "zero dout is not zero": (CONV, None, lambda d, c: tuple(g + 1e-3 for g in builtin("conv").backward(d, c))),
    "not linear in dout": (POOL, None, lambda d, c: builtin("max_pool").backward(d * np.abs(d), c)),
}


def test_the_built_in_layers_keep_the_contract():
    for case in (CONV, POOL, POOL.with_(layer="avg_pool")):
        chk = contract.check(builtin(case.layer), case)
        assert chk.passed and chk.name == "contract" and chk.message is None


@pytest.mark.parametrize("what", sorted(BROKEN))
def test_each_broken_promise_is_named(what):
    case, forward, backward = BROKEN[what]
    chk = contract.check(altered(case, forward, backward), case)
    assert not chk.passed
    assert what in chk.message


def test_a_cache_mutated_by_backward_fails_on_the_second_call():
    def backward(dout, cache):
        x, w, b, p = cache
        grads = naive.backward(dout, (x, w.copy(), b, p))
        w *= 0  # the student's cache holds w itself
        return grads

    naive = builtin("conv", fast=False)
    chk = contract.check(Impl(naive.forward, backward, "mutates its cache"), CONV)
    assert "backward changed w in place" in chk.message
    assert "when called twice" in chk.message
