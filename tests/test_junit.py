"""--format junit: the XML a CI server reads, from a correct, a broken and an unfinished layer."""
import xml.etree.ElementTree as ET
from pathlib import Path

from click.testing import CliRunner

from cnncheck.case import Case
from cnncheck.cli import main
from cnncheck.gradcheck import CaseResult, Check
from cnncheck.report import to_junit
from cnncheck.suites import default_suite
from students.bugs import write_bug

DATA = Path(__file__).parent / "data" / "assert_layer"
ONE_CONV = """\
name: {name}
layer: conv
x_shape: [2, 3, 5, 5]
w_shape: [2, 3, 3, 3]
conv_param: {{stride: 1, pad: 1}}
"""


def junit(*args):
    result = CliRunner().invoke(main, [*args, "--format", "junit"])
    return result, ET.fromstring(result.stdout)  # stdout holds the XML and nothing else


def suite_of(root):
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    for key in ("tests", "failures", "errors", "time"):  # the totals agree at both levels
        assert root.get(key) == suite.get(key)
    cases = suite.findall("testcase")
    assert int(suite.get("tests")) == len(cases)
    assert int(suite.get("failures")) == sum(len(c.findall("failure")) for c in cases)
    assert int(suite.get("errors")) == sum(len(c.findall("error")) for c in cases)
    return suite, cases


def test_a_correct_layer_file_gives_passing_testcases_and_exit_0():
    result, root = junit("conv", "--impl", str(DATA / "good_layers.py"))
    assert result.exit_code == 0, result.output
    suite, cases = suite_of(root)
    assert suite.get("failures") == suite.get("errors") == "0"
    names = {c.get("classname") for c in cases}
    assert len(names) == len(default_suite("conv"))
    for name in names:  # one testcase per check, named by the check
        assert {c.get("name") for c in cases if c.get("classname") == name} >= {"out", "dx", "dw", "db"}
    assert all(len(c) == 0 for c in cases)
    assert float(suite.get("time")) > 0


def test_a_broken_layer_file_fails_dw_only_and_exits_1(tmp_path):
    result, root = junit("conv", "--impl", write_bug("broken_conv.py", tmp_path))
    assert result.exit_code == 1
    suite, cases = suite_of(root)
    failed = [c for c in cases if c.find("failure") is not None]
    assert {c.get("name") for c in failed} <= {"dw", "contract"}  # the bug is in dw alone
    dw = [c for c in failed if c.get("name") == "dw"]
    assert len(dw) == len(default_suite("conv")) and suite.get("errors") == "0"
    failure = dw[0].find("failure")
    assert "elements exceed" in failure.get("message") and "rel error 1.00e+00" in failure.get("message")
    assert "analytic" in failure.text and "numerical" in failure.text  # the worst elements


def test_an_unfinished_layer_gives_an_error_per_case():
    result, root = junit("conv", "--impl", str(DATA / "unfinished.py"))
    assert result.exit_code == 1
    suite, cases = suite_of(root)
    errors = [c.find("error") for c in cases if c.find("error") is not None]
    assert len(errors) == len(default_suite("conv")) and suite.get("failures") == "0"
    assert all("NotImplementedError: TODO: conv backward" in e.get("message") for e in errors)
    assert all("unfinished.py:20" in e.text for e in errors)


def test_markup_in_names_and_messages_is_escaped(tmp_path):
    config = tmp_path / "odd.yaml"
    config.write_text(ONE_CONV.format(name="'<dx & \"dw\">'"))
    result, root = junit("conv", "--config", str(config))
    assert result.exit_code == 0
    _, cases = suite_of(root)
    assert cases[0].get("classname") == '<dx & "dw">'
    broken = CaseResult(Case("conv", (1, 1, 3, 3), (1, 1, 3, 3), name="a]]>b"), (1, 1, 1, 1),
                        checks=[Check("dx", False, message="x < 0 & y > 1")], error="boom <>&")
    suite, cases = suite_of(ET.fromstring(to_junit([broken])))
    assert cases[0].find("failure").get("message") == "x < 0 & y > 1"
    assert cases[1].get("name") == "call" and cases[1].find("error").text == "boom <>&"
