"""Output files are written atomically: a temporary file in the same folder, then os.replace.
A descriptor opened on the old file before the run (by anything, checked code included)
never reaches the new report; a failed write leaves the old file whole and no temporary."""
import os
import stat

import pytest

from cnncheck import grade as g
from cnncheck.output import write_atomic


def test_write_atomic_writes_and_replaces_the_file_leaving_no_temporary(tmp_path):
    path = tmp_path / "report.json"
    write_atomic(path, "first\n")
    assert path.read_text() == "first\n"
    held = open(path, "r+", encoding="utf-8")  # e.g. opened by code that ran before the judge wrote
    write_atomic(str(path), "second ✓\n")
    held.write("forged")
    held.close()
    assert path.read_text(encoding="utf-8") == "second ✓\n"
    assert os.listdir(tmp_path) == ["report.json"]


def test_write_atomic_keeps_the_mode_of_the_file_it_replaces_and_the_umask_otherwise(tmp_path):
    path = tmp_path / "grades.csv"
    write_atomic(path, "a\n")
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    path.chmod(0o600)
    write_atomic(path, "b\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_failed_write_leaves_the_old_file_whole_and_no_temporary(tmp_path):
    path = tmp_path / "results.json"
    path.write_text("old\n")
    with pytest.raises(UnicodeEncodeError):
        write_atomic(path, "half \udcff")  # a lone surrogate cannot be encoded
    assert path.read_text() == "old\n" and os.listdir(tmp_path) == ["results.json"]


def test_grade_writes_its_outputs_through_write_atomic(tmp_path, monkeypatch):
    written = []
    monkeypatch.setattr(g, "write_atomic", lambda path, text: written.append((path, text)))
    g._write([], "json", str(tmp_path / "out.json"))
    assert written == [(str(tmp_path / "out.json"), '{\n  "submissions": []\n}\n')]
