"""Every isolation level, run for real: bwrap as root and as a normal user, the uid level (root,
bubblewrap refused), the process level (a normal user, bubblewrap refused). Each checks a
correct file and two hostile ones (an all-zero backward that zeroes dout in place; one that
leaves a grandchild running in a session of its own): the correct one passes, the hostile
ones fail, the report names the level, and no process is left.

The other levels need an interpreter every user can read (this one may live under /root):
`.ci/run` makes one, a venv of the system Python with cnncheck installed, and names it in
CNNCHECK_SHARED_PYTHON. Without it (or without root, setpriv, useradd) they skip.
"""
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

CORRECT = (Path(__file__).parent / "students" / "conv" / "correct.py").read_text()
ZERO_DOUT = CORRECT + '''

def conv_backward_naive(dout, cache):
    x, w, b, conv_param = cache
    dout *= 0
    return np.zeros_like(x), np.zeros_like(w), np.zeros_like(b)
'''
ORPHAN = CORRECT + '''

def conv_backward_naive(dout, cache):
    import os
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.execvp("sleep", ["sleep", "{marker}"])
        os._exit(0)
    x, w, b, conv_param = cache
    return np.zeros_like(x), np.zeros_like(w), np.zeros_like(b)
'''
CONFIG = "cases:\n  - {layer: conv, name: small, x_shape: [2, 2, 5, 5], w_shape: [2, 2, 3, 3], conv_param: {stride: 1, pad: 1}}\n"
USER = "cnncheck-test"
SHARED = os.environ.get("CNNCHECK_SHARED_PYTHON")


def sleepers(marker: str) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(int(pid))
        except OSError:
            pass
    return found


@pytest.fixture
def folder():
    """A folder every user can read, with the three files and a config."""
    path = Path("/tmp") / f"cnncheck-levels-{os.getpid()}-{time.monotonic_ns()}"
    path.mkdir(mode=0o755)
    marker = str(1_000_000 + time.monotonic_ns() % 1_000_000)
    for name, text in (("correct.py", CORRECT), ("zero_dout.py", ZERO_DOUT),
                       ("orphan.py", ORPHAN.replace("{marker}", marker)), ("cases.yaml", CONFIG)):
        (path / name).write_text(text)
        (path / name).chmod(0o644)
    yield path, marker
    for pid in sleepers(marker):
        os.kill(pid, 9)
    shutil.rmtree(path)


def check(folder, name, python=sys.executable, bwrap=True, as_user=False):
    cmd = [python, "-m", "cnncheck", "check", name, "--config", "cases.yaml", "--format", "json"]
    if as_user:
        cmd = ["setpriv", f"--reuid={USER}", f"--regid={USER}", "--clear-groups", "--", *cmd]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CNNCHECK_BWRAP")}
    if python == sys.executable:
        env["PYTHONPATH"] = str(Path(__file__).parents[1])
    if not bwrap:
        env["CNNCHECK_BWRAP"] = "/bin/false"  # present, and refuses: as where namespaces are forbidden
    proc = subprocess.run(cmd, cwd=folder, env=env, capture_output=True, text=True, timeout=120)
    doc = json.loads(proc.stdout)
    return proc.returncode, doc


def needs_shared_python(as_user=False):
    if not SHARED or not os.access(SHARED, os.X_OK):
        pytest.skip("CNNCHECK_SHARED_PYTHON (an interpreter every user can read) is not set: see .ci/run")
    if os.geteuid() != 0:
        pytest.skip("needs root")
    if as_user:
        if not shutil.which("setpriv") or not shutil.which("useradd"):
            pytest.skip("needs setpriv and useradd")
        if subprocess.run(["id", USER], capture_output=True).returncode != 0:
            subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER],
                           check=True, capture_output=True, timeout=30)
        probe = ["setpriv", f"--reuid={USER}", f"--regid={USER}", "--clear-groups", "--", SHARED, "-c", "import cnncheck"]
        if subprocess.run(probe, capture_output=True, timeout=60, cwd="/").returncode != 0:
            pytest.skip(f"{SHARED} cannot import cnncheck as another user")


def assert_level_holds(folder, level, **how):
    path, marker = folder
    rc, doc = check(path, "correct.py", **how)
    assert rc == 0 and doc["passed"] is True and doc["isolation"]["level"] == level, doc.get("isolation")
    for name in ("zero_dout.py", "orphan.py"):
        rc, doc = check(path, name, **how)
        assert rc == 1 and doc["passed"] is False and doc["isolation"]["level"] == level
    rc, doc = check(path, "zero_dout.py", **how)
    assert "writes into dout" in doc["cases"][0]["error"]
    time.sleep(0.5)
    assert sleepers(marker) == []


def test_bwrap_holds(folder):
    from cnncheck.sandbox import launch
    if launch.available() != "bwrap":
        pytest.skip("bubblewrap cannot run here")
    assert_level_holds(folder, "bwrap")


def test_the_uid_level_holds_as_root_when_bubblewrap_is_refused(folder):
    needs_shared_python()
    assert_level_holds(folder, "uid", python=SHARED, bwrap=False)


def test_bwrap_holds_for_a_normal_user(folder):
    needs_shared_python(as_user=True)
    assert_level_holds(folder, "bwrap", python=SHARED, as_user=True)


def test_the_process_level_holds_for_a_normal_user_when_bubblewrap_is_refused(folder):
    needs_shared_python(as_user=True)
    assert_level_holds(folder, "process", python=SHARED, bwrap=False, as_user=True)
