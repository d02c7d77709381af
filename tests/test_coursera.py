"""`--format coursera` and examples/coursera: the feedback.json a Coursera custom grader returns."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dlai.learners import BY_NAME, faulty, write

ROOT = Path(__file__).resolve().parents[1]
RUN_GRADER = ROOT / "examples" / "coursera" / "run_grader"


@pytest.fixture
def grader(tmp_path):
    """Run examples/coursera/run_grader on one submission folder: the feedback.json it wrote."""
    def grade_one(text: str | None, name: str = "v2a", command: str | None = None) -> dict:
        root = tmp_path / f"{name}_{abs(hash(text))}"
        (root / "submission").mkdir(parents=True)
        if text is not None:
            write(root / "submission", name, text)
        env = {**os.environ, "SUBMISSION_DIR": str(root / "submission"),
               "FEEDBACK_FILE": str(root / "shared" / "feedback.json"), "GRADER_DIR": str(root),
               "CNNCHECK_GRADE": command or f"{sys.executable} -m cnncheck grade",
               "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        proc = subprocess.run([str(RUN_GRADER)], env=env, cwd=root, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr
        return json.loads((root / "shared" / "feedback.json").read_text())
    return grade_one


def test_the_grader_gives_full_marks_to_a_correct_notebook_and_less_with_the_fault_named(grader):
    from dlai.learners import CORRECT
    good = grader(CORRECT)
    assert good == {"fractionalScore": 1.0, "feedback": "every check passed\n", "feedbackType": "txt"}
    bad = grader(faulty(BY_NAME["unpad_pad0"]))
    assert bad["fractionalScore"] == pytest.approx(19 / 21, abs=1e-6)
    assert "conv dlai pad 0 stride 1:" in bad["feedback"] and "notebook's own unpad hint" in bad["feedback"]


def test_an_empty_submission_scores_zero_and_says_why(grader):
    doc = grader(None)
    assert doc["fractionalScore"] == 0.0 and doc["feedback"].startswith("cannot check your file")


def test_a_misconfigured_grader_still_writes_feedback(grader):
    from dlai.learners import CORRECT
    doc = grader(CORRECT, command="false")
    assert doc["fractionalScore"] == 0.0 and "could not grade" in doc["feedback"]


def test_check_format_coursera_scores_the_cases_passed(tmp_path):
    path = write(tmp_path, "v2", faulty(BY_NAME["distribute_by_sum"]))
    r = subprocess.run([sys.executable, "-m", "cnncheck", "check", path.name, "--format", "coursera"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert r.returncode == 1
    doc = json.loads(r.stdout)
    assert doc["fractionalScore"] == pytest.approx(18 / 21, abs=1e-6)
    assert doc["feedback"].startswith("18 of 21 cases passed") and "divides by n_H + n_W" in doc["feedback"]


def test_grade_format_coursera_takes_one_submission(tmp_path):
    r = subprocess.run([sys.executable, "-m", "cnncheck", "grade", str(tmp_path), str(tmp_path), "--format",
                        "coursera"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "--format coursera grades exactly one submission" in r.stderr
