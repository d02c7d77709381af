"""Findings: one per fault, built from the evidence of every case, the same in every output."""
import json

import pytest
from click.testing import CliRunner

from cnncheck import diagnose, report
from cnncheck.cli import main
from cnncheck.findings import findings, split_where
from cnncheck.gradcheck import CaseResult, Check
from cnncheck.suites import default_suite
from students.bugs import MANY_BY_NAME, write_bugs


def failing(case, **check) -> CaseResult:
    return CaseResult(case, case.output_shape(), checks=[Check("out", True), Check(**{"passed": False, **check})])


@pytest.mark.parametrize("name", sorted(MANY_BY_NAME))
def test_one_finding_per_fault_of_a_real_bad_file_and_every_failing_case_in_one(name, tmp_path):
    bugs = MANY_BY_NAME[name]
    result = CliRunner().invoke(main, [bugs.command, "--impl", write_bugs(name, tmp_path), "--format", "json"])
    doc = json.loads(result.stdout)
    texts = [f["text"] for f in doc["findings"]]
    owners = [next(i for i, t in enumerate(texts) if phrase in t) for phrase in bugs.hints]
    assert len(set(owners)) == len(bugs.hints) <= len(texts) <= len(bugs.hints) + 1, texts  # a fault, a finding
    shown = {c for f in doc["findings"] for c in f["cases"]}
    assert shown == {c["name"] for c in doc["cases"] if not c["passed"]}
    for f in doc["findings"]:
        assert f["evidence"]["case"] in f["cases"] and f["layer"] in ("conv", "max_pool") and f["kind"] == "hint"


def test_a_hints_line_is_its_where_and_the_cases_get_their_pattern():
    assert split_where("dx is empty (see a/layers.py:39: `dx = dx_pad[:, :, pad:-pad, pad:-pad]`)") == \
        ("dx is empty", "a/layers.py:39", "dx = dx_pad[:, :, pad:-pad, pad:-pad]")
    assert split_where("no line here") == ("no line here", None, None)
    suite = default_suite("conv")
    runs = [failing(c, name="dx", method="shape", message="dx has shape (2, 3, 0, 0), expected")
            if c.pad == (0, 0) else CaseResult(c, c.output_shape(), checks=[Check("dx", True)]) for c in suite]
    (f,) = findings(diagnose.diagnose(runs))
    assert f.text.startswith("dx is empty at pad 0") and f.named and f.total == len(suite)
    assert f.pattern == f"every pad-0 case ({len(f.cases)} of {len(suite)} conv cases)"
    assert f.evidence is f.cases[0] and [c.name for c in f.checks] == ["dx"]


def test_errors_and_failures_without_a_hint_are_findings_too():
    suite = default_suite("max_pool")
    runs = [CaseResult(c, c.output_shape(), error=f"max_pool_backward_naive raised ValueError: row {i}")
            for i, c in enumerate(suite[:3])]
    runs.append(failing(suite[3], name="dx", failed=1, elements=100))
    out = findings(runs)  # no diagnosis: no hint
    assert [f.kind for f in out] == ["error", "failure"] and len(out[0].cases) == 3
    assert out[0].text == "max_pool_backward_naive raised ValueError: row 0" and not out[0].named
    assert out[0].pattern == "3 of 4 max_pool cases" and out[1].text.startswith("dx failed, and no known bug class")


def test_text_from_the_checked_code_is_shown_as_text_in_every_format():
    case = default_suite("conv")[0]
    evil = "conv_backward_naive raised ValueError: [bold red]boom[/bold red] <b>&amp;</b> at x.py:3"
    runs = [CaseResult(case, case.output_shape(), error=evil, notes=["[link=http://x]note[/link]"])]
    console = report.Console(file=__import__("io").StringIO(), width=200)
    report.print_table(runs, console)
    text = console.file.getvalue()
    assert "[bold red]boom[/bold red]" in text and "[link=http://x]note[/link]" in text
    assert json.loads(report.to_json(runs))["findings"][0]["text"] == evil
    assert "&lt;b&gt;&amp;amp;&lt;/b&gt;" in report.to_junit(runs)


def test_coursera_feedback_opens_with_the_same_findings(tmp_path):
    path = write_bugs("conv/unpad_and_dw_stride.py", tmp_path)
    doc = json.loads(CliRunner().invoke(main, ["check", path, "--format", "coursera"]).stdout)
    lines = doc["feedback"].splitlines()
    assert lines[0] == "5 of 11 cases passed" and lines[1].startswith("1. fails only at stride > 1, in dw")
    assert lines[3].startswith("2. dx is empty at pad 0") and f"(at {path}:39)" in lines[3]
    ko = json.loads(CliRunner().invoke(main, ["check", path, "--format", "coursera", "--lang", "ko"]).stdout)
    assert ko["feedback"].startswith("케이스 11개 중 5개 통과")
