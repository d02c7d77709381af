"""Loading a student's layer file, and the wrapper that keeps broken code to one line."""
import sys
import textwrap

import numpy as np
import pytest

import cnncheck.layers
from cnncheck.case import Case
from cnncheck.gradcheck import ImplError, check_case
from cnncheck.sandbox.detect import load
from cnncheck.sandbox.impl import ImplLoadError

STUDENTS = "tests/students"
CASE = Case("conv", (2, 3, 5, 5), (2, 3, 3, 3), stride=(1, 1), pad=(1, 1))


def write(tmp_path, name, body):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(body))
    return str(path)


@pytest.mark.parametrize("spec", ["cnncheck.layers", cnncheck.layers, "cnncheck/layers/__init__.py"],
                         ids=["dotted", "module", "path"])
def test_our_own_core_loads_every_way(spec):
    impl = load(spec, "conv")
    assert check_case(CASE, impl).passed
    assert "conv_forward_naive / conv_backward_naive" in impl.label


def test_a_forward_name_alone_implies_its_backward():
    impl = load("cnncheck.layers", "max_pool", forward="max_pool_forward_fast")
    assert impl.label.endswith("max_pool_forward_fast / max_pool_backward_fast")


def test_a_file_inside_a_package_loads_from_any_directory(monkeypatch, tmp_path):
    layers = str((__import__("pathlib").Path(STUDENTS) / "assignment2/cs231n/layers.py").resolve())
    monkeypatch.chdir(tmp_path)
    for layer in ("conv", "max_pool"):
        impl = load(layers, layer)
        assert sys.modules["cs231n.fast_layers"].__file__.startswith(str(layers.rsplit("/", 1)[0]))
        case = CASE if layer == "conv" else Case("max_pool", (2, 2, 6, 6), pool=(3, 3), stride=(1, 1))
        assert check_case(case, impl).passed


def test_two_assignments_with_the_same_package_name_do_not_mix(tmp_path):
    for k in (1, 2):
        write(tmp_path, f"a{k}/cs231n/__init__.py", "")
        write(tmp_path, f"a{k}/cs231n/helpers.py", f"SCALE = {k}.0\n")
        write(tmp_path, f"a{k}/cs231n/layers.py", """
            from cs231n.helpers import SCALE
            from cnncheck.layers import conv_backward_naive as _b, conv_forward_naive as _f

            def conv_forward_naive(x, w, b, conv_param):
                out, cache = _f(x, w, b, conv_param)
                return out * SCALE, cache

            def conv_backward_naive(dout, cache):
                return _b(dout, cache)
            """)
    assert check_case(CASE, load(str(tmp_path / "a1/cs231n/layers.py"), "conv")).passed
    second = check_case(CASE, load(str(tmp_path / "a2/cs231n/layers.py"), "conv"))
    assert {c.name for c in second.checks if not c.passed} >= {"out"}  # out scaled by 2


def test_a_namespace_package_above_the_file_resolves(tmp_path):
    write(tmp_path, "hw/util/pad.py", "import numpy as np\npad = np.pad\n")  # no __init__.py
    path = write(tmp_path, "hw/mine/layers.py", """
        from util.pad import pad
        from cnncheck.layers import conv_forward_naive, conv_backward_naive
        """)
    assert check_case(CASE, load(path, "conv")).passed


@pytest.mark.parametrize("body, expect", [
    ("import numpy as np\n\ndef f():\n    print 'hello'\n",
     ["SyntaxError at", "bad.py:4", "Python 2 print statement: use print(...)"]),
    ("import numpy as np\nimport no_such_helper\n", ["No module named 'no_such_helper'", "bad.py:2"]),
    ("import numpy as np\nW = np.load('weights.npy')\n", ["FileNotFoundError", "bad.py:2"]),
    ("import numpy as np\nT = np.int\n", ["bad.py:2", "np.int was removed in numpy 1.24: use int"]),
    ("from past.builtins import xrange\n", ["No module named 'past'", "pip install future"]),
    ("def f():\n\tif 1:\n        return 1\n\treturn 2\n", ["TabError at", "bad.py:"]),
    ("try:\n    pass\nexcept Exception, e:\n    pass\n", ["bad.py:3", "except E as e"]),
])
def test_a_file_that_cannot_load_says_why_and_where(tmp_path, body, expect):
    path = write(tmp_path, "bad.py", body)
    with pytest.raises(ImplLoadError) as e:
        load(path, "conv")
    message = str(e.value)
    assert "\n" not in message
    for part in expect:
        assert part in message


def test_missing_function_suggests_the_close_name(tmp_path):
    path = write(tmp_path, "mine.py", "def conv_forward_naiv(x, w, b, p): pass\n"
                                      "def conv_backward_naive(d, c): pass\n")
    with pytest.raises(ImplLoadError, match="no function conv_forward_naive; did you mean conv_forward_naiv"):
        load(path, "conv")
    with pytest.raises(ImplLoadError, match="no such file"):
        load(str(tmp_path / "nope.py"), "conv")
    with pytest.raises(ImplLoadError, match="no module of that name"):
        load("no_such_package.layers", "conv")


# -- the wrapper -----------------------------------------------------------------------
def student(tmp_path, forward_body, backward_body="    return cnncheck.layers.conv_backward_naive(dout, cache)\n"):
    body = ("import numpy as np\nimport cnncheck.layers\n\n"
            "def conv_forward_naive(x, w, b, conv_param):\n" + forward_body +
            "\ndef conv_backward_naive(dout, cache):\n" + backward_body)
    return load(write(tmp_path, "student.py", body), "conv")


def test_prints_go_to_stderr_and_extra_param_keys_are_a_note(tmp_path, capfd):
    impl = student(tmp_path, "    print('debugging', x.shape)\n    conv_param['seen'] = True\n"
                             "    return cnncheck.layers.conv_forward_naive(x, w, b, conv_param)\n",
                   "    assert cache[3]['seen']\n    return cnncheck.layers.conv_backward_naive(dout, cache)\n")
    result = check_case(CASE, impl)
    out, err = capfd.readouterr()
    assert result.passed and out == "" and "debugging (2, 3, 5, 5)" in err
    assert impl.take_notes() == ["conv_forward_naive writes keys ['seen'] into conv_param: "
                                 "allowed, each call gets its own copy"]


@pytest.mark.parametrize("forward_body, expect", [
    ("    H_out = 1 + (x.shape[2] - 3) / 1\n    return np.zeros((2, 2, H_out, 3)), None\n",
     "conv_forward_naive raised TypeError: 'float' object cannot be interpreted as an integer at "
     "{path}:6 in conv_forward_naive (hint: Python 2 `/`"),
    ("    return helper(x)\n\ndef helper(x):\n    return x[0.5]\n",
     "conv_forward_naive raised IndexError: only integers, slices"),
    ("    out = np.zeros(3)\n", "conv_forward_naive ({path}:4) returned None, expected a tuple (out, cache)"),
    ("    return np.full((2, 2, 5, 5), np.nan), None\n",
     "conv_forward_naive ({path}:4) returned out with 100 NaN and 0 inf values of 100"),
    ("    return (1, 2, 3)\n", "returned a tuple of 3, expected a tuple (out, cache)"),
    ("    import sys\n    sys.exit(3)\n", "conv_forward_naive raised SystemExit: 3 at {path}:6"),
])
def test_broken_calls_become_one_line_errors(tmp_path, forward_body, expect):
    impl = student(tmp_path, forward_body)
    with pytest.raises(ImplError) as e:
        impl.run_forward(CASE, dict(zip("xwb", [np.zeros(s) for s in ((2, 3, 5, 5), (2, 3, 3, 3), (2,))])))
    path = str(tmp_path / "student.py")
    assert expect.format(path=path) in str(e.value)
    assert "\n" not in str(e.value)


def test_the_innermost_student_frame_is_named(tmp_path):
    impl = student(tmp_path, "    return cnncheck.layers.conv_forward_naive(x, w, b, conv_param)\n",
                   "    return twice(dout)\n\ndef twice(d):\n    return d.reshape(7)\n")
    result = check_case(CASE, impl)
    assert result.error.startswith("conv_backward_naive raised ValueError: cannot reshape")
    assert result.error.endswith("student.py:11 in twice")


def test_a_warning_while_loading_is_a_note_of_the_layers_found(tmp_path):
    path = write(tmp_path, "warns.py", """
        import warnings
        warnings.warn("old habits")
        from cnncheck.layers import conv_forward_naive, conv_backward_naive
        """)
    impl = load(path, "conv")
    assert check_case(CASE, impl).passed
    notes = impl.take_notes()
    assert any("UserWarning: old habits" in n and "warns.py:3" in n for n in notes), notes


def test_modules_of_an_earlier_tree_do_not_leak_into_the_next(tmp_path):
    for k in (1, 2):
        write(tmp_path, f"t{k}/helpers_xyz.py", f"SCALE = {k}.0\n")
        write(tmp_path, f"t{k}/layers.py", """
            from helpers_xyz import SCALE
            from cnncheck.layers import conv_backward_naive as _b, conv_forward_naive as _f

            def conv_forward_naive(x, w, b, conv_param):
                out, cache = _f(x, w, b, conv_param)
                return out * SCALE, cache

            def conv_backward_naive(dout, cache):
                return _b(dout, cache)
            """)
    assert check_case(CASE, load(str(tmp_path / "t1/layers.py"), "conv")).passed
    assert not check_case(CASE, load(str(tmp_path / "t2/layers.py"), "conv")).passed
    assert sys.modules["helpers_xyz"].__file__.startswith(str(tmp_path / "t2"))
