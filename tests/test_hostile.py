"""Code under check cannot forge the verdict: each hostile file has a wrong (all-zero) conv
backward and one trick; every one must give exit 1 and a well-formed JSON report with
passed=false (an import that raises SystemExit may be a load error, exit 2), and the correct
file must still pass. The tricks are the ones a hostile student would try on a checker that
runs their code in its own process."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

CORRECT = (Path(__file__).parent / "students" / "conv" / "correct.py").read_text()
ZERO_BACKWARD = '''

def conv_backward_naive(dout, cache):
    x, w, b, conv_param = cache
    return np.zeros_like(x), np.zeros_like(w), np.zeros_like(b)
'''
# a small suite keeps the test quick: two cases from a config
CONFIG = """\
cases:
  - {layer: conv, name: small, x_shape: [2, 2, 5, 5], w_shape: [2, 2, 3, 3], conv_param: {stride: 1, pad: 1}}
  - {layer: conv, name: strided, x_shape: [2, 2, 7, 7], w_shape: [2, 2, 3, 3], conv_param: {stride: 2, pad: 1}}
"""

# name -> (text added at import, text added at the start of backward's body)
TRICKS = {
    "atexit exits 0": ("import atexit, os\natexit.register(os._exit, 0)\n", ""),
    "os._exit(0) in backward": ("", "    import os; os._exit(0)\n"),
    "sys.exit(0) in backward": ("", "    import sys; sys.exit(0)\n"),
    "numpy patched at import": ("_abs = np.abs\nnp.abs = lambda a, *k, **kw: 0 * _abs(a)\n"
                                "np.max = lambda *a, **k: 0.0\nnp.allclose = lambda *a, **k: True\n", ""),
    "writes to fd 1": ("import os\nos.write(1, b'{\"passed\": true}\\n')\n", "    os.write(1, b'garbage')\n"),
    "replaces sys.stdout": ("import sys, io\nsys.stdout = io.StringIO()\nprint('hidden')\n", ""),
    "KeyboardInterrupt in backward": ("", "    raise KeyboardInterrupt\n"),
    "SystemExit in backward": ("", "    raise SystemExit(0)\n"),
    "killed by a signal": ("", "    import os, signal; os.kill(os.getpid(), signal.SIGSEGV)\n"),
    "kills its own group": ("", "    import os, signal; os.killpg(0, signal.SIGKILL)\n"),
    "hangs with SIGALRM ignored": ("import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\n",
                                   "    while True: pass\n"),
    "runs out of memory": ("", "    blob = [bytearray(2**28) for _ in range(64)]\n"),
    "returns an ndarray subclass": ("class Fake(np.ndarray):\n    def __eq__(self, o): return np.ones(self.shape, bool)\n"
                                    "    def __sub__(self, o): return np.zeros(self.shape)\n"
                                    "    def __rsub__(self, o): return np.zeros(self.shape)\n",
                                    "    return tuple(np.zeros_like(a).view(Fake) for a in cache[:3])\n"),
    "frozen forward": ("_first = {}\n_fwd = conv_forward_naive\n"
                       "def conv_forward_naive(x, w, b, p):\n"
                       "    if 'out' not in _first: _first['out'] = _fwd(x, w, b, p)\n"
                       "    return _first['out']\n", ""),
    "SIGTERM ignored, prints a lot": ("import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n",
                                      "    print('x' * 100000)\n"),
    "writes into the judge's stdout through /proc": ("", "    import os\n    for fd in (1, 2):\n"
                                                    "        try: open(f'/proc/{os.getppid()}/fd/{fd}', 'w').write('{\"passed\": true}')\n"
                                                    "        except OSError: pass\n"),
    "writes on inherited pipes": ("import os\n", "    for fd in range(3, 40):\n"
                                  "        try: os.write(fd, b'{\"arrays\": {}}')\n        except OSError: pass\n"),
}


def hostile(tmp_path, name) -> Path:
    at_import, in_backward = TRICKS[name]
    body = ZERO_BACKWARD.replace("    x, w, b, conv_param = cache\n", in_backward + "    x, w, b, conv_param = cache\n")
    if name == "frozen forward":  # the frozen forward wraps the correct one, defined first
        text = CORRECT + ZERO_BACKWARD + at_import
    else:
        text = "import numpy as np\n" + at_import + CORRECT + body
    path = tmp_path / "layers.py"
    path.write_text(text)
    return path


def run(tmp_path, path, *extra):
    config = tmp_path / "cases.yaml"
    config.write_text(CONFIG)
    cmd = [sys.executable, "-m", "cnncheck", "conv", "--impl", str(path), "--config", str(config),
           "--format", "json", "--timeout", "3", "--memory-limit", "1G", *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})


@pytest.mark.parametrize("name", sorted(TRICKS))
def test_a_hostile_file_cannot_forge_the_verdict(tmp_path, name):
    proc = run(tmp_path, hostile(tmp_path, name))
    assert proc.returncode == 1, (proc.returncode, proc.stdout[-500:], proc.stderr[-2000:])
    report = json.loads(proc.stdout)  # stdout is the report and nothing else
    assert report["passed"] is False
    assert all(not c["passed"] for c in report["cases"])
    assert "Traceback" not in proc.stderr


def test_a_file_whose_import_exits_is_a_load_error(tmp_path):
    path = tmp_path / "layers.py"
    path.write_text("raise SystemExit(0)\n" + CORRECT)
    proc = run(tmp_path, path)
    assert proc.returncode == 2 and proc.stdout == ""
    assert "SystemExit" in proc.stderr and "Traceback" not in proc.stderr


def test_the_correct_file_passes_through_the_worker(tmp_path):
    path = tmp_path / "layers.py"
    path.write_text(CORRECT + "\nprint('hello from the student')\n")
    proc = run(tmp_path, path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["passed"] is True
    assert "hello from the student" in proc.stderr  # shown, on stderr only


def test_one_case_that_kills_its_worker_leaves_the_others_checked(tmp_path):
    """The first case's backward ends the process; the next case gets a fresh worker."""
    path = tmp_path / "layers.py"
    path.write_text(CORRECT.replace("    dx, dw, db = None, None, None\n",
                                    "    import os\n    if cache[0].shape[-1] == 5:\n"
                                    "        os._exit(0)\n"))
    proc = run(tmp_path, path)
    assert proc.returncode == 1
    cases = json.loads(proc.stdout)["cases"]
    assert [c["passed"] for c in cases] == [False, True]
    assert "ended during backward: it exited with status 0" in cases[0]["error"]


def test_parallel_cases_cannot_forge_the_verdict_either(tmp_path):
    proc = run(tmp_path, hostile(tmp_path, "os._exit(0) in backward"), "--jobs", "2")
    assert proc.returncode == 1 and json.loads(proc.stdout)["passed"] is False
