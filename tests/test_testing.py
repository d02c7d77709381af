"""assert_layer_ok from a student's own pytest file: a correct layer file passes, a broken one
fails with a readable report, and cnncheck's frames stay out of the traceback."""
import shutil
import sys
from pathlib import Path

import pytest

from cnncheck import gradcheck
from cnncheck.config import ConfigError
from cnncheck.suites import default_suite
from cnncheck.testing import SHOWN, assert_layer_ok
from students.bugs import write_bug

DATA = Path(__file__).parent / "data" / "assert_layer"
GOOD = DATA / "good_layers.py"  # broken_conv.py: GOOD with a dw bug, written by write_bug

ONE_CONV = """\
layer: conv
x_shape: [2, 3, 5, 5]
w_shape: [2, 3, 3, 3]
conv_param: {stride: 1, pad: 1}
"""

STUDENT_TESTS = """\
from cnncheck.testing import assert_layer_ok


def test_good_conv():
    assert_layer_ok("good_layers.py", layer="conv")


def test_good_max_pool():
    assert_layer_ok("good_layers.py", layer="max_pool", seed=0)


def test_broken_conv():
    assert_layer_ok("broken_conv.py", layer="conv")
"""


def test_a_students_pytest_file_passes_the_good_layer_and_fails_the_broken_one(pytester):
    shutil.copy(GOOD, pytester.path / GOOD.name)
    write_bug("broken_conv.py", pytester.path)
    pytester.makepyfile(test_student=STUDENT_TESTS)
    result = pytester.runpytest()
    result.assert_outcomes(passed=2, failed=1)
    out, n = result.stdout.str(), len(default_suite("conv"))
    result.stdout.fnmatch_lines([
        "*test_broken_conv*",
        ">       assert_layer_ok(\"broken_conv.py\", layer=\"conv\")",
        f"E * AssertionError: {n} of {n} cases failed for broken_conv.py: conv_forward_naive / conv_backward_naive",
        "E * conv notebook backward (conv s1 p1, x 4x3x5x5):",
        "E *   dw failed: 54 of 54 elements exceed *(rel error 1.00e+00*",
        "E *     at [[]*]: analytic * numerical *",
        f"E * and {n - SHOWN} more: *",
        "test_student.py:13: AssertionError",
    ])
    # dx and db are right in the broken file: the report must not blame them
    assert "dx failed" not in out and "db failed" not in out
    # the traceback ends in the student's test: no frame of cnncheck's own
    assert "cnncheck/" not in out and "cnncheck\\" not in out
    assert "def assert_layer_ok" not in out and "raise AssertionError" not in out


def test_a_module_object_and_a_config(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(DATA))
    import good_layers  # noqa: PLC0415 - the student's module, imported as a test would
    config = tmp_path / "one.yaml"
    config.write_text(ONE_CONV)
    assert_layer_ok(good_layers, layer="conv", config=config, dtype="float32")
    assert_layer_ok("good_layers", layer="conv", config=str(config), mode="sparse")
    with pytest.raises(AssertionError, match=r"^1 of 1 cases failed .*\n.*\n  dw failed"):
        assert_layer_ok(write_bug("broken_conv.py", tmp_path), layer="conv", config=config)
    sys.modules.pop("good_layers", None)


def test_overrides_reach_the_cases(monkeypatch):
    seen = []
    monkeypatch.setattr(gradcheck, "add_taylor", lambda chk, *args: seen.append(chk.name))
    assert_layer_ok(str(GOOD), layer="max_pool", taylor=True)
    assert seen == ["dx"] * len(default_suite("max_pool"))  # on every case of the pool suite
    # a tolerance far below rounding makes even the correct layer fail: the override was applied
    with pytest.raises(AssertionError, match="cases failed"):
        assert_layer_ok(str(GOOD), layer="max_pool", tolerance=1e-30, noise_factor=1e-30)


def test_mistakes_in_the_call_are_not_layer_failures(tmp_path):
    with pytest.raises(AssertionError, match="no such file"):
        assert_layer_ok(str(tmp_path / "missing.py"), layer="conv")
    with pytest.raises(AssertionError, match="has no function avg_pool_forward_naive"):
        assert_layer_ok(str(GOOD), layer="avg_pool")
    with pytest.raises(ValueError, match="layer must be one of"):
        assert_layer_ok(str(GOOD), layer="pool")
    with pytest.raises(ConfigError, match="seed"):
        assert_layer_ok(str(GOOD), layer="conv", seed=-1)
    config = tmp_path / "one.yaml"
    config.write_text(ONE_CONV)
    with pytest.raises(ConfigError, match="no pool case here"):
        assert_layer_ok(str(GOOD), layer="max_pool", config=config)
