"""The report a student reads: compact for suites, a hint for each bug even when several meet.

Broken files are correct files with one bug or several, written at test time from the table
`students.bugs.MANY`; the report must name each bug with its hint and never blame the wrong thing
(ties where there are none, the backward for a forward fault).
"""
import json
import os
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from cnncheck import diagnose, report
from cnncheck.case import Case
from cnncheck.cli import main
from cnncheck.gradcheck import CaseResult, Check, check_case
from cnncheck.sandbox.detect import load
from cnncheck.layers import max_pool
from cnncheck.suites import default_suite
from students.bugs import BY_NAME, MANY_BY_NAME, write_bug, write_bugs

S = "tests/students/"
SCREEN = 25  # lines


@pytest.fixture(autouse=True)
def terminal(monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")  # a student's terminal


def run(*args):
    return CliRunner().invoke(main, list(args))


def everything(doc) -> str:
    """Every hint and check message of a JSON result, as one text."""
    parts = [h for c in doc["cases"] for h in c["hints"]]
    parts += [str(k.get("message")) for c in doc["cases"] for k in c["checks"]]
    return "\n".join(parts)


# -- many bugs, each named -------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(MANY_BY_NAME))
def test_each_bug_of_a_file_gets_its_hint_and_nothing_blames_the_wrong_thing(name, tmp_path):
    bugs = MANY_BY_NAME[name]
    result = run(bugs.command, "--impl", write_bugs(name, tmp_path), "--format", "json", "--jobs", "2")
    doc = json.loads(result.stdout)
    assert result.exit_code == 1 and not doc["passed"]
    hints = [h for c in doc["cases"] if not c["passed"] for h in c["hints"]]
    for phrase in bugs.hints:
        assert any(phrase in h for h in hints), (phrase, set(hints))
    for phrase in bugs.never:
        assert phrase not in everything(doc), phrase
    assert all(c["hint"] == "; ".join(c["hints"]) or (c["hint"] is None and not c["hints"])
               for c in doc["cases"])  # `hint` keeps working for JSON consumers


def test_two_bugs_in_two_gradients_give_two_hints_on_the_cases_each_fails(tmp_path):
    """The unpad that empties dx at pad 0 and dw's window without the stride."""
    result = run("conv", "--impl", write_bugs("conv/unpad_and_dw_stride.py", tmp_path), "--format", "json")
    cases = {c["name"]: c for c in json.loads(result.stdout)["cases"]}
    both = cases["conv 3x2 kernel on 7x8, stride 2, pad 0"]["hints"]
    assert len(both) == 2 and "dx is empty at pad 0" in both[0] and ", in dw:" in both[1]
    assert cases["conv pad 0"]["hints"] == [both[0]] and cases["conv stride 2"]["hints"] == [both[1]]
    assert cases["conv notebook backward"]["hints"] == []


def test_the_hint_points_at_the_students_line(tmp_path):
    path = write_bugs("conv/unpad_and_dw_stride.py", tmp_path)
    impl = load(path, "conv")
    results = diagnose.diagnose([check_case(c, impl) for c in default_suite("conv")[2:3]], source=path)
    assert f"(see {path}:39: `dx = dx_pad[:, :, pad:-pad, pad:-pad]`)" in results[0].hint


def test_the_line_of_an_if_without_else(tmp_path):
    path = write_bug("conv/unpad_if.py", tmp_path)
    impl = load(path, "conv")
    results = diagnose.diagnose([check_case(c, impl) for c in default_suite("conv")], source=path)
    failing = [r for r in results if not r.passed]
    assert failing and all(BY_NAME["conv/unpad_if.py"].hint in r.hint for r in failing)
    assert all(r.hint.endswith(f"(see {path}:39: `if pad > 0:`)") for r in failing)


# -- messages that blame the right thing --------------------------------------------------------
def test_conservation_speaks_of_ties_only_when_the_inputs_hold_some(tmp_path):
    impl = load(write_bugs("pool/assign_not_add_random.py", tmp_path), "max_pool")
    case = Case("max_pool", (2, 2, 5, 5), pool=(2, 3), stride=(1, 1), pad=(0, 0), name="overlap")
    random = check_case(case, impl).checks[1]
    assert "no ties here: part of dout was lost or counted twice (overwritten windows?)" in random.message
    tied = check_case(case.with_(inputs={"x": "integers"}), impl).checks[1]
    assert not tied.passed and "tied maxima" in tied.message and "no ties" not in tied.message
    assert max_pool.has_ties(case.with_(inputs={"x": "integers"})) and not max_pool.has_ties(case)


def test_a_forward_fault_gets_no_backward_hint(tmp_path):
    results = diagnose.diagnose([check_case(c, load(write_bug("pool/off_by_one_window.py", tmp_path), "max_pool"))
                                 for c in default_suite("max_pool")])
    assert not any(r.passed for r in results)
    assert not any("backward" in h for r in results for h in diagnose.hints_of(r))


def verdict(case, **check) -> CaseResult:
    return CaseResult(case, case.output_shape(), checks=[Check("out", True), Check(**{"passed": False, **check})])


@pytest.mark.parametrize("check, phrase", [
    ({"name": "dx", "failed": 90, "elements": 100, "worst": [{"analytic": 0.0, "numerical": 0.3}] * 3},
     "dx is all zeros: is the gradient written into a local name"),
    ({"name": "dx", "failed": 90, "elements": 100, "worst": [{"analytic": 0.2, "numerical": 0.0}] * 3},
     "your forward's output does not change when x does"),
    ({"name": "dw", "failed": 90, "elements": 100,
      "worst": [{"analytic": -0.5, "numerical": 0.5}, {"analytic": 2.0, "numerical": -2.0}]},
     "dw has the wrong sign everywhere"),
    ({"name": "dx", "method": "shape", "message": "dx has shape (4, 3, 5, 5), expected (4, 3, 3, 3)"},
     "dx: each window adds `w[f] * dout[n, f, i, j]` into dx_pad"),  # nothing else: the checklist
    ({"name": "contract", "message": "backward(2 * dout) != 2 * backward(dout): not linear in dout (dw)"},
     "dw does not follow dout"),
    ({"name": "db", "method": "shape", "message": "db has shape (4, 2), expected (2,)"}, "db keeps one row per sample"),
    ({"name": "dx", "failed": 3, "elements": 100, "error_map": [[1.0, 1.0, 1.0, 1.0, 1.0], [1.0, 0, 0, 0, 1.0],
                                                                 [1.0, 0, 0, 0, 1.0], [1.0, 0, 0, 0, 1.0],
                                                                 [1.0, 1.0, 1.0, 1.0, 1.0]]},
     "dx is wrong only on its border"),
])
def test_a_check_shows_its_bug_on_its_own(check, phrase):
    case = default_suite("conv")[0]  # 4x3x5x5, pad 1
    r = diagnose.diagnose([verdict(case, **check)])[0]
    assert phrase in r.hint


def test_a_dx_empty_at_pad_0_and_a_window_off_by_its_area_in_avg_pool():
    conv = next(c for c in default_suite("conv") if c.pad == (0, 0))
    r = diagnose.diagnose([verdict(conv, name="dx", method="shape", message="dx has shape (2, 3, 0, 0), expected")])
    assert "dx is empty at pad 0" in r[0].hint
    avg = default_suite("avg_pool")[0]  # 2x2 windows
    r = diagnose.diagnose([verdict(avg, name="dx", failed=90, elements=100,
                                   worst=[{"analytic": 4.0, "numerical": 1.0}, {"analytic": -2.0, "numerical": -0.5}])])
    assert r[0].hint.startswith("dx is 4 times the numerical gradient: each element of a window gets dout / (")


# -- the table ---------------------------------------------------------------------------------
@pytest.mark.parametrize("command, path", [("conv", S + "conv/correct.py"), ("pool", S + "pool/correct.py"),
                                           ("conv", S + "good_vectorized.py")])
def test_a_passing_file_fits_on_one_screen_with_a_line_per_case_and_its_figures(command, path):
    result = run(command, "--impl", path)
    lines = result.stdout.splitlines()
    suite = default_suite("conv" if command == "conv" else "max_pool")
    assert result.exit_code == 0 and len(lines) <= SCREEN, result.stdout
    rows = [line for line in lines if line.startswith("pass  ")]
    assert len(rows) == len(suite) and "hint" not in result.stdout
    grads = ("out", "dx", "dw", "db") if command == "conv" else ("out", "dx")
    assert all(re.search(r"  ".join(rf"{g} \d\.\d\de[-+]\d\d" for g in grads) + "$", row) for row in rows), rows
    assert "max |a - b| / max(1e-8, |a| + |b|)" in lines[0] and lines[len(suite) + 1].startswith(f"{len(suite)} cases")
    verbose = run(command, "--impl", path, "-v").stdout.splitlines()
    assert sum("rel error" in line for line in verbose) == len(suite)
    assert not any(line.startswith("pass  ") for line in verbose)


def test_a_passing_whole_file_prints_the_notebooks_numbers_in_one_line_per_case():
    result = run("check", S + "good_loops.py")  # conv, max pool and avg pool
    lines = result.stdout.splitlines()
    assert result.exit_code == 0 and len(lines) <= 30
    doc = json.loads(run("check", S + "good_loops.py", "--format", "json").stdout)
    first = next(line for line in lines if "conv notebook backward" in line)
    case = doc["cases"][[c["name"] for c in doc["cases"]].index("conv notebook backward")]
    for k in case["checks"][:4]:  # the relative error as the course computes it, to three digits
        assert f"{k['name']} {k['rel_error']:.2e}" in first


def test_a_single_case_keeps_its_table():
    result = run("conv")
    assert result.exit_code == 0 and "rel error" in result.stdout
    assert not any(line.startswith("pass  ") for line in result.stdout.splitlines())


def test_a_failing_report_opens_with_its_findings_then_one_case_for_each(tmp_path, monkeypatch):
    path = write_bugs("conv/unpad_and_dw_stride.py", tmp_path)
    monkeypatch.setenv("COLUMNS", "200")  # the path in one line
    out = run("conv", "--impl", path).stdout
    lines = out.splitlines()
    assert lines[0].startswith(" 1  fails only at stride > 1, in dw") and "at unpad_and_dw_stride.py:39" not in out
    assert f"    at {path}:39  dx = dx_pad[:, :, pad:-pad, pad:-pad]  ·  every pad-0 case (3 of 11 conv cases)" in out
    assert any(line.startswith(" 2  dx is empty at pad 0") for line in lines[:8])
    assert "    every case with stride > 1 (5 of 11 conv cases)" in out
    assert out.count("[1] conv notebook forward") == 1 and out.count("[2] conv pad 0") == 1
    assert "dw failed: 144 of 144 elements" in out and "(HH, WW), summed over F and C:" in out
    assert sum(line.startswith(("pass  ", "FAIL  ")) for line in lines) == 11
    assert "FAIL  conv 2x2 kernel stride 2, no overlap" in out
    assert len(lines) <= 40 and any(line.startswith("11 cases, 55 checks") for line in lines[-2:])
    verbose = run("conv", "--impl", path, "-v").stdout
    assert verbose.count("rel error") == 11 and verbose.startswith(" 1  fails only at stride > 1")


@pytest.mark.parametrize("name", sorted(MANY_BY_NAME))
def test_every_fault_of_a_file_stands_in_the_first_lines_of_one_screen(name, tmp_path, monkeypatch):
    """As a student runs it, from the file's folder, in a 100-column terminal."""
    bugs = MANY_BY_NAME[name]
    path = write_bugs(name, tmp_path)
    monkeypatch.chdir(os.path.dirname(path))
    result = run("check", os.path.basename(path))
    lines = result.stdout.splitlines()
    assert result.exit_code == 1 and len(lines) <= 40, result.stdout
    top = " ".join(" ".join(lines[:SCREEN]).split())
    for phrase in bugs.hints:
        assert phrase in top, (phrase, result.stdout)


def test_findings_in_json_name_their_text_line_cases_and_layer(tmp_path):
    path = write_bugs("conv/unpad_and_dw_stride.py", tmp_path)
    doc = json.loads(run("conv", "--impl", path, "--format", "json").stdout)
    first, second = doc["findings"]
    assert first["text"].startswith("fails only at stride > 1, in dw") and first["layer"] == "conv"
    assert first["pattern"] == "every case with stride > 1 (5 of 11 conv cases)" and len(first["cases"]) == 5
    assert second["where"] == f"{path}:39" and second["line"] == 39 and second["kind"] == "hint"
    assert second["code"] == "dx = dx_pad[:, :, pad:-pad, pad:-pad]"
    assert second["cases"] == [c["name"] for c in doc["cases"] if any(h.startswith("dx is empty") for h in c["hints"])]
    assert second["evidence"] == {"case": "conv pad 0", "checks": ["dx"]}


def test_json_and_junit_keep_every_detail(tmp_path):
    path = write_bugs("conv/unpad_and_dw_stride.py", tmp_path)
    doc = json.loads(run("conv", "--impl", path, "--format", "json").stdout)
    assert len(doc["cases"]) == 11 and all(c["checks"] for c in doc["cases"])
    xml = run("conv", "--impl", path, "--format", "junit").stdout
    assert xml.count("<testcase ") == sum(len(c["checks"]) for c in doc["cases"])
    assert "hint: dx is empty at pad 0" in xml and "hint: fails only at stride &gt; 1, in dw" in xml



def test_a_file_with_both_layers_and_four_faults_names_them_all_on_its_first_screen(tmp_path, monkeypatch):
    """conv's two bugs and max pool's two in one layers.py: the passing cases fold to one line."""
    conv = Path(write_bugs("conv/unpad_and_dw_stride.py", tmp_path)).read_text()
    pool = Path(write_bugs("pool/assign_and_stride.py", tmp_path)).read_text()
    (tmp_path / "layers.py").write_text(conv + "\n\n" + pool.replace("import numpy as np\n", ""))
    monkeypatch.chdir(tmp_path)
    lines = run("check", "layers.py").stdout.splitlines()
    top = " ".join(" ".join(lines[:SCREEN]).split())
    phrases = MANY_BY_NAME["conv/unpad_and_dw_stride.py"].hints + MANY_BY_NAME["pool/assign_and_stride.py"].hints
    assert all(p in top for p in phrases) and len(lines) <= 45
    folded = next(line for line in lines if "5 more conv cases, largest:" in line)
    assert folded.startswith("pass  ") and re.search(r"out \d\.\d\de[-+]\d\d  dx \d", folded)
    assert sum(line.startswith("FAIL  ") for line in lines) == 13
