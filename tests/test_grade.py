"""`cnncheck grade`: real verdicts for a small class, every output format, rubrics, hostile
submissions and the Gradescope autograder run against a temporary folder."""
import csv
import importlib.util
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from cnncheck import grade as g
from students.bugs import write_bug

TESTS = Path(__file__).absolute().parent  # not resolved: a linked copy tests its own tree
ROOT = TESTS.parent
GOOD = TESTS / "data" / "assert_layer" / "good_layers.py"
RUBRICS = sorted((TESTS / "data" / "grade" / "rubrics").glob("*.yaml"))
EXAMPLE_RUBRIC = ROOT / "examples" / "gradescope" / "rubric.yaml"
HOSTILE = '''import atexit, os, sys
os.write(1, b"HOSTILE fd 1\\n")
print("HOSTILE print")
atexit.register(lambda: os.write(1, b"HOSTILE atexit\\n"))
sys.stdout = open(os.devnull, "w")
'''


def run(*args, env=None):
    result = CliRunner(env=env).invoke(g.grade, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def klass(tmp_path_factory):
    """A good file, one with a dw bug (conv and max_pool), one that cannot load."""
    d = tmp_path_factory.mktemp("class")
    bad, broken = write_bug("broken_conv.py", d), write_bug("conv/py2_print.py", d)
    code, out, err = run(GOOD, bad, broken, "--format", "json", "--jobs", "2")
    assert code == 0, err
    return {s["submission"]: s for s in json.loads(out)["submissions"]}, (str(GOOD), bad, broken)


def test_a_good_file_gets_full_marks_a_bug_less_and_a_broken_file_zero(klass):
    subs, (good, bad, broken) = klass
    assert list(subs) == [good, bad, broken]
    assert subs[good]["passed"] and subs[good]["score"] == subs[good]["max_score"] == 18
    assert not subs[bad]["passed"] and 0 < subs[bad]["score"] < subs[bad]["max_score"] == 18
    assert subs[bad]["layers"]["max_pool"] == {**subs[bad]["layers"]["max_pool"], "passed": True, "score": 7}
    assert all(
        "dw" in [k["name"] for k in c["checks"] if not k["passed"]]
        for c in subs[bad]["cases"] if not c["passed"]
    )
    assert subs[broken]["score"] == 0 and not subs[broken]["passed"]
    assert "SyntaxError" in subs[broken]["error"] and "print(...)" in subs[broken]["error"]


def test_json_cases_carry_the_report_fields_and_points(klass):
    subs, (good, *_) = klass
    case = subs[good]["cases"][0]
    assert {"name", "layer", "params", "checks", "passed", "error", "hint", "notes", "seconds",
            "points", "max_points"} <= set(case)
    assert set(subs[good]["layers"]) == {"conv", "max_pool"}


def test_csv_has_one_row_per_submission_for_a_gradebook(klass):
    subs, paths = klass
    rows = list(csv.DictReader(io.StringIO(g.to_csv(list(subs.values())))))
    assert [r["submission"] for r in rows] == list(paths)
    assert [r["score"] for r in rows] == ["18", str(int(subs[paths[1]]["score"])), "0"]
    assert rows[0]["conv_score"] == "11" and rows[0]["max_pool_score"] == "7"
    assert "SyntaxError" in rows[2]["hint"] and rows[2]["failed_cases"] == ""


def test_the_table_shows_each_submission_and_the_class_summary(klass):
    subs, paths = klass
    buf = io.StringIO()
    from rich.console import Console
    g.print_table(list(subs.values()), Console(file=buf, width=300))
    text = buf.getvalue()
    assert all(p in text for p in paths)
    assert "3 submissions: 1 passed every check, 1 failed some, 1 could not be checked" in text


def test_gradescope_tests_one_per_case_and_load_errors_in_every_output(klass):
    subs, (good, bad, broken) = klass
    doc = json.loads(g.to_gradescope(subs[broken]))
    assert doc["score"] == 0 and len(doc["tests"]) == 18
    assert all(t["status"] == "failed" and "SyntaxError" in t["output"] for t in doc["tests"])
    doc = json.loads(g.to_gradescope(subs[bad]))
    failed = [t for t in doc["tests"] if t["status"] == "failed"]
    assert failed and all("dw failed" in t["output"] for t in failed)
    assert {t["number"] for t in doc["tests"]} >= {"1.1", "2.1"}


def test_gradescope_opens_with_the_findings_and_a_pass_shows_the_notebooks_numbers(klass):
    subs, (good, bad, _) = klass
    head = json.loads(g.to_gradescope(subs[bad]))["output"].splitlines()
    assert head[0] == "some checks failed:" and head[1].startswith("1. dw does not follow dout")
    assert head[2].strip().startswith("all 11 conv cases") or "conv cases" in head[2]
    passed = json.loads(g.to_gradescope(subs[good]))["tests"][0]["output"]
    assert passed.startswith("passed: out ") and " dx " in passed and "e-" in passed


def test_grade_speaks_the_graders_language_and_csv_json_stay_english(klass, tmp_path):
    subs, (good, bad, _) = klass
    from cnncheck.i18n import use
    with use("ja"):
        head = json.loads(g.to_gradescope(subs[bad]))["output"]
        buf = io.StringIO()
        from rich.console import Console
        g.print_table(list(subs.values()), Console(file=buf, width=300))
    assert head.startswith("一部のチェックが不合格です：") and "dout" in head
    assert "提出物 3 件" in buf.getvalue()
    code, out, _ = run(bad, "--format", "csv", env={"LANG": "ko_KR.UTF-8"})
    assert code == 0 and "dw does not follow dout" in out


def test_a_file_is_scored_on_the_layers_it_defines(tmp_path):
    code, out, _ = run(TESTS / "students" / "pool" / "correct.py", "--format", "json")
    [record] = json.loads(out)["submissions"]
    assert code == 0 and record["passed"] and record["score"] == record["max_score"] == 7
    assert list(record["layers"]) == ["max_pool"]  # not conv, which it does not define


def test_gradescope_needs_exactly_one_submission(tmp_path):
    code, out, err = run(GOOD, GOOD, "--format", "gradescope")
    assert code == 2 and out == ""
    assert "exactly one submission, got 2" in err


@pytest.mark.parametrize("rubric", RUBRICS, ids=[r.stem for r in RUBRICS])
def test_a_bad_rubric_exits_2_with_one_line_naming_the_fix(rubric):
    expect = rubric.read_text().splitlines()[0].removeprefix("# expect: ")
    code, out, err = run(GOOD, "--rubric", rubric)
    assert (code, out) == (2, "")
    assert err.startswith(f"Error: rubric {rubric}: {expect}") and err.count("\n") == 1, err


def test_the_example_rubric_gives_100_points_split_as_documented():
    points = g.load_rubric(str(EXAMPLE_RUBRIC))
    assert sum(points["conv"].values()) == 60 and sum(points["max_pool"].values()) == 40
    assert points["conv"]["conv notebook backward"] == 18 and points["conv"]["conv pad 0"] == 4
    assert points["max_pool"]["max_pool 3x3 stride 1"] == 5


def test_a_rubric_sets_points_and_which_layers_count(klass):
    subs, (good, bad, _) = klass
    names = {x: [c.name for c in g.suite_cases(x, None)] for x in g.LAYERS}
    rubric = g.load_rubric(str(EXAMPLE_RUBRIC))
    data = {"label": bad, "error": None, "notes": [], "seconds": 1.0,
            "cases": [c for c in subs[bad]["cases"]]}
    record = g.score(bad, data, rubric, names)
    assert record["max_score"] == 100 and record["layers"]["max_pool"]["score"] == 40
    only_pool = g.score(bad, data, {"max_pool": rubric["max_pool"]}, names)
    assert only_pool["score"] == only_pool["max_score"] == 40
    assert not only_pool["layers"]["conv"]["counted"] and only_pool["layers"]["conv"]["max_score"] == 0


def test_a_missing_path_is_a_usage_error():
    code, out, err = run("no/such/submission.py")
    assert code == 2 and out == "" and "does not exist" in err


@pytest.mark.parametrize("where", ["layers.py", "cs231n/layers.py", "common/layers.py",
                                   "assignment2/cs231n/layers.py", "deep/inside/layers.py", "mine.py"])
def test_a_folder_submission_finds_its_layers_file(tmp_path, where):
    (tmp_path / where).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / where).write_text("")
    (tmp_path / "README.md").write_text("")
    assert g.find_file(str(tmp_path)) == str(tmp_path / where)


def test_a_folder_without_layers_scores_zero_and_says_so(tmp_path):
    (tmp_path / "notes.txt").write_text("")
    [record] = g.grade_paths([str(tmp_path)])
    assert record["score"] == 0 and "holds no layers.py" in record["error"]


def test_hostile_submissions_change_no_one_elses_grade_nor_stdout(klass, tmp_path):
    subs, (good, *_) = klass
    text = GOOD.read_text()
    exits = text.replace("def conv_backward_naive(dout, cache):\n",
                         "def conv_backward_naive(dout, cache):\n    os._exit(0)\n")
    (tmp_path / "writes.py").write_text(HOSTILE + exits.replace(
        "def max_pool_forward_naive(x, pool_param):\n",
        "def max_pool_forward_naive(x, pool_param):\n    raise SystemExit(0)\n"))
    (tmp_path / "dies.py").write_text("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n")
    paths = [tmp_path / "writes.py", GOOD, tmp_path / "dies.py"]
    code, out, err = run(*paths, "--format", "json", "--jobs", "2")
    assert code == 0
    graded = json.loads(out)["submissions"]  # stdout is the JSON and nothing else
    assert "HOSTILE" not in out
    assert [s["score"] for s in graded][1] == subs[good]["score"]
    assert graded[1]["passed"] and graded[1]["cases"] == [
        {**c, "seconds": graded[1]["cases"][i]["seconds"]} for i, c in enumerate(subs[good]["cases"])]
    assert not graded[0]["passed"] and graded[0]["score"] < 18
    assert graded[2]["score"] == 0 and "ended" in graded[2]["error"]


@pytest.mark.skipif(importlib.util.find_spec("cnncheck.api") is None,
                    reason="needs cnncheck.api: checks that run apart from the student's code")
def test_a_patched_numpy_cannot_forge_its_own_grade(tmp_path):
    wrong = GOOD.read_text().replace("+= w[f] * dout", "+= 2 * w[f] * dout")
    (tmp_path / "patches.py").write_text("import numpy as np\nnp.allclose = lambda *a, **k: True\n"
                                         "np.abs = lambda a: 0 * a\n" + wrong)
    [record] = g.grade_paths([str(tmp_path / "patches.py")])
    assert not record["passed"] and record["score"] < record["max_score"]


def test_a_submission_that_hangs_is_stopped_and_costs_only_its_grade(tmp_path):
    (tmp_path / "hangs.py").write_text("while True:\n    pass\n")
    (tmp_path / "empty.py").write_text("x = 1\n")
    hangs, empty = g.grade_paths([str(tmp_path / "hangs.py"), str(tmp_path / "empty.py")],
                                 g.Judging(timeout=0.2), jobs=2)
    assert hangs["score"] == 0 and "stopped after 2 s" in hangs["error"]
    assert empty["score"] == 0 and "defines no layer" in empty["error"]


@pytest.fixture
def autograder(tmp_path):
    """run_autograder against a temporary /autograder: returns a function grading one file."""
    def grade_one(student: str) -> dict:
        root = tmp_path / Path(student).stem
        (root / "submission").mkdir(parents=True)
        (root / "source").mkdir()
        (root / "submission" / "layers.py").write_text(Path(student).read_text())
        (root / "source" / "rubric.yaml").write_text(EXAMPLE_RUBRIC.read_text())
        env = {**os.environ, "AUTOGRADER_ROOT": str(root),
               "CNNCHECK_GRADE": f"{sys.executable} -m cnncheck grade",
               "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        proc = subprocess.run([str(ROOT / "examples" / "gradescope" / "run_autograder")], env=env,
                              cwd=root, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        return json.loads((root / "results" / "results.json").read_text())
    return grade_one


def test_run_autograder_writes_results_json_full_marks_for_good_less_for_bad(autograder, tmp_path):
    good = autograder(str(GOOD))
    bad = autograder(write_bug("broken_conv.py", tmp_path))
    for doc in (good, bad):
        assert set(doc) >= {"score", "output", "tests", "stdout_visibility"}
        for t in doc["tests"]:
            assert set(t) >= {"name", "score", "max_score", "status", "output"}
            assert t["status"] in ("passed", "failed") and 0 <= t["score"] <= t["max_score"]
    assert good["score"] == sum(t["max_score"] for t in good["tests"]) == 100
    assert bad["score"] < 100
    hints = [t["output"] for t in bad["tests"] if t["status"] == "failed"]
    assert hints and all("dw failed" in h for h in hints)


def test_grade_has_help_with_an_example():
    code, out, _ = run("--help")
    assert code == 0 and "cnncheck grade submissions/*/" in out


def test_a_memory_hog_fails_to_load_under_the_memory_limit(tmp_path):
    (tmp_path / "hog.py").write_text("import numpy as np\nBIG = np.ones((1 << 28,))  # 2 GiB\n")
    code, out, err = run(tmp_path / "hog.py", "--memory-limit", "1024", "--format", "json")
    [record] = json.loads(out)["submissions"]
    assert code == 0 and record["score"] == 0 and "MemoryError" in record["error"]
