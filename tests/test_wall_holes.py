"""Holes the first wall left, each closed (see tests/test_wall.py for the setting): huge
outputs through grade --html, the fallback levels, a classmate's file outside /tmp, the uid
level under grade --jobs, ptrace of the grader at the process level."""
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
import test_wall  # noqa: E402
from test_wall import (FALLBACK, STARTS_PROCESSES, _isolation, _no_bwrap,  # noqa: E402
                       assert_check_failed, judged, open_folder, package_copy, scene_for)  # noqa: F401 (fixtures)


HELD = ["huge finite outputs on perturbed inputs"]


@pytest.mark.parametrize("trick", HELD)
def test_a_hostile_file_fails_and_changes_nothing_in_grade_html_too(scene_for, trick):
    judged(scene_for(trick), late=trick in STARTS_PROCESSES)


@pytest.mark.parametrize("how", sorted(FALLBACK))
def test_without_bwrap_the_wall_falls_back_and_still_holds(scene_for, monkeypatch, tmp_path, how):
    _no_bwrap(monkeypatch, tmp_path, how)
    for trick in FALLBACK[how]:
        scene = scene_for(trick)
        level = _isolation(assert_check_failed(scene.check("json")))
        assert level in ("uid", "process"), level
        judged(scene, grade_extra=("--isolation", "process") if level == "process" else (),
               late=trick in STARTS_PROCESSES)




def test_a_classmates_file_cannot_be_read(scene_for):
    """A class outside /tmp (as ~/course/submissions or /autograder): the worker of one
    submission must not read another's file (and pass with it)."""
    base = Path(tempfile.mkdtemp(prefix="cnnwall-", dir=os.environ.get("CNNWALL_CLASSES", "/var/cache")))
    try:
        scene = scene_for("runs a classmate's solution as its own", base=base)
        graded = scene.grade()
        assert graded.returncode == 0, graded.stderr[-1500:]
        records = {Path(r["submission"]).name: r for r in test_wall.strict_json(scene.outputs[0].read_text())["submissions"]}
        assert records["alice"]["passed"] is True
        assert records["mallory"]["passed"] is False, "mallory passed with alice's code"
    finally:
        shutil.rmtree(base, ignore_errors=True)


test_wall.LEVELS[("root", "uid")] = ["zeroes dout in place on first call", "writes into the installed cnncheck package",
                                     "rewrites a classmate's file",
                                     "SIGSTOPs its parent and every ancestor running cnncheck", "leaves children running"]


def test_the_uid_level_holds_in_grade_with_jobs(open_folder, scene_for, monkeypatch):
    """Root, bubblewrap refused: each worker runs under a uid of its own, and grade --jobs 2
    checks two submissions at once."""
    test_wall.test_every_level_holds_for_its_user.__wrapped__(open_folder, scene_for, monkeypatch, "root", "uid") \
        if hasattr(test_wall.test_every_level_holds_for_its_user, "__wrapped__") else \
        test_wall.test_every_level_holds_for_its_user(open_folder, scene_for, monkeypatch, "root", "uid")


def test_at_the_process_level_grade_cannot_be_ptrace_stopped(open_folder, scene_for, monkeypatch):
    wrap = test_wall.as_test_user()
    monkeypatch.setenv("CNNCHECK_BWRAP", "/bin/false")
    package = open_folder / "site"
    shutil.copytree(REPO / "cnncheck", package / "cnncheck", ignore=shutil.ignore_patterns("__pycache__"))
    scene = scene_for("ptrace-attaches to its parent and ancestors", base=open_folder, package=package)
    scene.python = test_wall.SHARED_PYTHON
    for d in (scene.out, scene.cwd):
        d.chmod(0o777)
    judged(scene, wrap=wrap, grade_extra=("--isolation", "process"))
