"""Batches of forward calls sent ahead to the worker: a case that stops reading its batches
midway (its code failed) leaves a batch in flight, and the cases after it are still judged
on their own outputs."""
from pathlib import Path

import numpy as np

from cnncheck.sandbox import process as worker
from cnncheck.case import Case
from cnncheck.gradcheck import BATCH, check_case

CORRECT = (Path(__file__).parent / "students" / "conv" / "correct.py").read_text()
# a dense dx check of these cases needs 4 * 9 = 36 calls: two batches
FIRST = Case("conv", (2, 4, 8, 8), (3, 4, 3, 3), pad=(1, 1), mode="dense", name="first")
SECOND = Case("conv", (3, 4, 7, 7), (2, 4, 3, 3), pad=(1, 1), mode="dense", name="second")

# correct, but for FIRST's shape, the output of a forward whose x moved by a finite-difference
# step at [0, 0, 0, 0] and [0, 0, 3, 3] (the first colour of dx, sent in the first batch) has
# the wrong shape: the check stops reading there, with the second batch on its way
WRONG_IN_FIRST_BATCH = '''
import numpy as np
from correct import conv_forward_naive as _forward, conv_backward_naive

_first = {}

def conv_forward_naive(x, w, b, conv_param):
    out, cache = _forward(x, w, b, conv_param)
    if x.shape == (2, 4, 8, 8):
        d = x - _first.setdefault("x", x.copy())
        if 0 < abs(d).max() < 1e-3 and d[0, 0, 0, 0] != 0 and d[0, 0, 3, 3] != 0:
            return out[:, :, 1:], cache
    return out, cache
'''


def check_both(tmp_path, source):
    (tmp_path / "correct.py").write_text(CORRECT)
    path = tmp_path / "layers.py"
    path.write_text(source)
    w = worker.Worker(str(path), load={"wanted": ["conv"]})
    w.start()
    try:
        return [check_case(c, w.for_layer("conv")) for c in (FIRST, SECOND)]
    finally:
        w.close()


def test_two_batches_per_gradient():
    assert FIRST.x_shape[1] * 9 > BATCH and SECOND.x_shape[1] * 9 > BATCH


def test_a_case_left_midway_does_not_leak_into_the_next(tmp_path):
    first, second = check_both(tmp_path, WRONG_IN_FIRST_BATCH)
    assert not first.passed
    said = " ".join([first.error or ""] + [c.message or "" for c in first.checks])
    assert "forward returned out of shape" in said, said
    assert second.passed, second.checks
    # the same case through the correct file gives the same numbers
    (clean,) = check_both(tmp_path, CORRECT)[1:]
    for mine, theirs in zip(second.checks, clean.checks):
        assert mine.name == theirs.name
        assert np.isclose(mine.rel_error, theirs.rel_error, rtol=1e-6, atol=1e-15), mine.name
