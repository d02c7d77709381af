"""Student layer files through `cnncheck conv|pool --impl FILE`, as a new user runs them.

Every broken file is a correct file with one bug, written at test time from the table in
students/bugs.py; the command for its layer must exit 1 with JSON
`passed: false`, the broken quantity failing, and the hint where the bug class has one.
Correct files, loop-based and vectorized, pass at several seeds. Where torch is installed,
cnncheck's verdict on each case agrees with a comparison against PyTorch autograd.
"""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from cnncheck.cli import main
from cnncheck.sandbox.detect import load
from cnncheck.case import make_arrays
from cnncheck.suites import default_suite
from students.bugs import BUGS, BY_NAME, write_bug

S = "tests/students/"
BROKEN = {b.name: b for b in BUGS if b.exit == 1 and b.name != "conv/infinite_loop.py"}
CORRECT = ["good_loops.py", "good_vectorized.py", "good_quirks.py", "assignment2/cs231n/layers.py"]


def run(*args):
    result = CliRunner().invoke(main, [*args, "--format", "json"])
    doc = json.loads(result.stdout) if result.exit_code in (0, 1) else None
    return result, doc


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_each_broken_file_is_caught_with_its_quantity_and_hint(name, tmp_path):
    bug = BROKEN[name]
    path = write_bug(name, tmp_path)
    failing, hint = bug.expect if isinstance(bug.expect, set) else bug.expect.format(path=path), bug.hint
    result, doc = run(bug.command, "--impl", path, "--jobs", "2")
    assert result.exit_code == 1 and doc["passed"] is False
    bad = [c for c in doc["cases"] if not c["passed"]]
    if isinstance(failing, set):  # each named by a failing check, or in a failing check's message
        for c in (c for c in bad if not c["error"]):  # an error names its function instead
            named = " ".join(f"{k['name']} {k.get('message') or ''}" for k in c["checks"] if not k["passed"])
            assert all(q in named.split() for q in failing), (c["name"], named)
    else:  # an error, or a check whose message names the quantity
        text = [c["error"] or "" for c in bad] + [k.get("message") or "" for c in bad for k in c["checks"]]
        assert any(failing in t for t in text)
    hints = {c["hint"] for c in bad}
    assert all(hint in h for h in hints) if hint else hints == {None}


@pytest.mark.parametrize("name", CORRECT)
@pytest.mark.parametrize("command", ["conv", "pool"])
def test_correct_files_pass_both_commands(name, command):
    for seed in [231] if name == "good_loops.py" else [0, 7]:
        result, doc = run(command, "--impl", S + name, "--seed", str(seed), "--jobs", "2")
        assert result.exit_code == 0, [c for c in doc["cases"] if not c["passed"]]


def test_quirks_leave_stdout_clean_and_become_notes():
    result, doc = run("conv", "--impl", S + "good_quirks.py")
    assert doc["passed"] and "conv forward" in result.stderr
    assert "writes keys ['H_out', 'W_out', 'x_pad'] into conv_param" in doc["cases"][0]["notes"][0]


@pytest.mark.parametrize("name", [b.name for b in BUGS if b.exit == 2])
def test_files_that_cannot_load_exit_2_without_a_traceback(name, tmp_path):
    path = write_bug(name, tmp_path)
    result = CliRunner().invoke(main, [BY_NAME[name].command, "--impl", path])
    assert result.exit_code == 2 and result.stdout == ""
    assert BY_NAME[name].expect.format(path=path) in result.stderr and "Traceback" not in result.stderr


def test_pool_on_a_conv_only_file_names_the_missing_function():
    result = CliRunner().invoke(main, ["pool", "--impl", S + "conv/correct.py"])
    assert result.exit_code == 2
    assert "has no function max_pool_forward_naive" in result.stderr


def test_an_infinite_loop_times_out_and_the_other_cases_still_run(tmp_path):
    path = write_bug("conv/infinite_loop.py", tmp_path)
    result, doc = run("conv", "--impl", path, "--timeout", "0.5",
                      "--jobs", "2", "--x-shape", "2,3,5,5", "--w-shape", "2,3,3,3")
    assert result.exit_code == 1
    assert doc["cases"][0]["error"].startswith(BY_NAME["conv/infinite_loop.py"].expect.format(path=path))


def test_the_table_shows_worst_elements_a_heat_map_and_the_hint(tmp_path):
    result = CliRunner().invoke(main, ["pool", "--impl", write_bug("pool/stride_backward.py", tmp_path)])
    assert result.exit_code == 1
    assert "analytic" in result.stdout and "numerical" in result.stdout
    assert "|analytic - numerical| by (H, W), summed over N and C:" in result.stdout
    assert result.stdout.startswith(" 1  fails only at stride > 1")


# -- PyTorch autograd as the independent judge -------------------------------------------
def torch_grads(case, arrays):
    torch = pytest.importorskip("torch")
    t = {k: torch.tensor(v, requires_grad=True) for k, v in arrays.items() if k != "dout"}
    if (case.layer == "conv"):
        out = torch.nn.functional.conv2d(t["x"], t["w"], t["b"], stride=case.stride, padding=case.pad)
    else:
        out = torch.nn.functional.max_pool2d(t["x"], case.pool, stride=case.stride)
    out.backward(torch.tensor(arrays["dout"]))
    return out.detach().numpy(), {"d" + k: v.grad.numpy() for k, v in t.items()}


@pytest.mark.parametrize("name, layer", [("conv/correct.py", "conv"), ("conv/stride_backward.py", "conv"),
                                         ("conv/no_bias.py", "conv"), ("good_vectorized.py", "max_pool"),
                                         ("pool/assign_not_add.py", "max_pool")])
def test_cnncheck_agrees_with_torch_autograd_case_by_case(name, layer, tmp_path):
    pytest.importorskip("torch")
    from cnncheck.gradcheck import check_case
    impl = load(write_bug(name, tmp_path) if name in BY_NAME else S + name, layer)
    for case in default_suite(layer):
        arrays = make_arrays(case)
        ref_out, ref = torch_grads(case, arrays)
        args = [arrays[k] for k in ("x", "w", "b") if k in arrays]
        out, cache = impl.forward(*args, case.param())
        grads = impl.backward(arrays["dout"], cache)
        grads = dict(zip(("dx", "dw", "db"), grads if (case.layer == "conv") else (grads,)))
        agree = np.allclose(out, ref_out, rtol=1e-6, atol=1e-9) and all(
            g.shape == ref[k].shape and np.allclose(g, ref[k], rtol=1e-6, atol=1e-9) for k, g in grads.items())
        assert check_case(case, impl).passed == agree, case.name
