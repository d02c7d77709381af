"""The wall, tried as an attacker would (issue 16, shared/reference/sandbox.md): one hostile
CS231n layers.py per class of trick, each with an all-zero (wrong) backward for conv and max
pool. Every one must give

- `cnncheck check`: exit 1 (2 for a load error), strict JSON (no NaN/Infinity literals) with
  passed=false, well-formed JUnit XML, no traceback;
- `cnncheck grade` beside a correct classmate: the classmate passes, the hostile file fails,
  the JSON/HTML outputs well-formed;
- nothing outside the run changed: the class's files, the working directory, an "installed"
  copy of cnncheck, site-packages, the caller's open files, the output files (also seconds
  after the run);
- no process left: every process the hostile code starts names itself with a marker (its
  comm and argv), the run's paths hold the marker too, and none may be running afterwards.

Tricks that signal every process (kill(-1), a scan of /proc) run only with the judge in a pid
namespace of the test's own, and only act when their own pid namespace is not the machine's,
so that a wall that does not hold can stop nothing but this test's processes. Writes into the
real package or site-packages only ever make a new file named with the marker (removed after).

Also here: the layer commands (conv/pool --impl), the platform entries (Gradescope's
results.json, Coursera's feedback.json), a normal user under bwrap and at the process level
(with CNNCHECK_SHARED_PYTHON, an interpreter every user can read: see .ci/run), and a correct
file that writes into its own cache arrays, which still passes.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import pty
import re
import secrets
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import textwrap
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(os.environ.get("CNNCHECK_REPO") or Path(__file__).parents[1])
STUDENTS = REPO / "tests" / "students"
CONV = (STUDENTS / "conv" / "correct.py").read_text()
POOL = (STUDENTS / "pool" / "correct.py").read_text().replace("import numpy as np\n", "")
CORRECT = CONV + POOL
CONFIG = """\
cases:
  - {layer: conv, name: small, x_shape: [2, 2, 5, 5], w_shape: [2, 2, 3, 3], conv_param: {stride: 1, pad: 1}}
  - {layer: max_pool, name: small, x_shape: [2, 2, 4, 4], pool_param: {pool_height: 2, pool_width: 2, stride: 2}}
"""
RUN_SECONDS = 30  # a run that takes longer hangs: the test fails, the run is killed
LATE = 2.5  # seconds after the run at which nothing may have changed yet

# -- the hostile files ------------------------------------------------------------------------------
# Every hostile file: PRELUDE (its settings, helpers, default hooks), the trick (overriding hooks
# or acting at import), then the layers, which call the hooks.
PRELUDE = '''\
import json, os, signal, struct, sys, time
import numpy as np
CFG = json.loads({cfg!r})
MARK = CFG["marker"]


def name_me():
    """Name this process with the marker (its comm), so the test finds it."""
    try:
        import ctypes
        ctypes.CDLL(None).prctl(15, MARK.encode()[:15], 0, 0, 0)
    except Exception:
        pass


def daemon(action):
    """Double fork, new session: a process that outlives the one that started it."""
    try:
        if os.fork():
            return
    except OSError:
        return
    try:
        os.setsid()
        if os.fork():
            os._exit(0)
        name_me()
        for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)
        action()
    except BaseException:
        pass
    os._exit(0)


def frame(data):
    return struct.pack("!i", len(data)) + data


def every_fd():
    fds = set(range(0, 256))
    try:
        fds |= {{int(f) for f in os.listdir("/proc/self/fd")}}
    except OSError:
        pass
    return sorted(fds)


def write_all_fds(payloads):
    for fd in every_fd():
        for data in payloads:
            try:
                os.write(fd, data)
            except OSError:
                pass


def put(path, text, mode="w"):
    """Write text to path if the wall lets it (True when it did)."""
    try:
        with open(path, mode) as f:
            f.write(text)
        return True
    except OSError:
        return False


def in_backward(attack, now=False):
    """Run attack() at every backward call (and now, at import, when asked)."""
    global backward
    if now:
        attack()
    previous = backward

    def wrapped(layer, dout, cache):
        attack()
        return previous(layer, dout, cache)
    backward = wrapped


def forward(layer, f, *args):
    return f(*args)


def backward(layer, dout, cache):
    if layer == "conv":
        x, w, b, _ = cache
        return np.zeros_like(x), np.zeros_like(w), np.zeros_like(b)
    return np.zeros_like(cache[0])

'''

LAYERS = '''

def _conv_forward(x, w, b, conv_param):
{conv_body}

def _pool_forward(x, pool_param):
{pool_body}

def conv_forward_naive(x, w, b, conv_param):
    return forward("conv", _conv_forward, x, w, b, conv_param)


def conv_backward_naive(dout, cache):
    return backward("conv", dout, cache)


def max_pool_forward_naive(x, pool_param):
    return forward("max_pool", _pool_forward, x, pool_param)


def max_pool_backward_naive(dout, cache):
    return backward("max_pool", dout, cache)
'''


def _body(source: str, name: str) -> str:
    """The body of function `name` in source (the correct forwards)."""
    lines = source.split(f"def {name}(", 1)[1].splitlines()[1:]
    body = []
    for line in lines:
        if line and not line.startswith(" "):
            break
        body.append(line)
    return "\n".join(body).rstrip() + "\n"


LAYER_TEXT = LAYERS.format(conv_body=_body(CONV, "conv_forward_naive"),
                           pool_body=_body(POOL, "max_pool_forward_naive"))

TRICKS = {
    # -- numbers: no escape needed ------------------------------------------------------------------
    "zeroes dout in place on first call": '''
_seen = set()
_backward = backward
def backward(layer, dout, cache):
    if layer not in _seen:
        _seen.add(layer)
        dout[...] = 0
    return _backward(layer, dout, cache)
''',
    "zeroes x and w in forward on first call": '''
_seen = set()
def forward(layer, f, *args):
    if layer not in _seen:
        _seen.add(layer)
        for a in args:
            if isinstance(a, np.ndarray):
                a[...] = 0
    return f(*args)
def backward(layer, dout, cache):  # right for zero inputs, wrong anywhere else
    if layer == "conv":
        x, w, b, _ = cache
        return np.zeros_like(x), np.zeros_like(w), dout.sum(axis=(0, 2, 3))
    return np.zeros_like(cache[0])
''',
    "huge finite outputs on perturbed inputs": '''
_first = {}
def forward(layer, f, *args):
    out, cache = f(*args)
    arrays = [np.array(a) for a in args if isinstance(a, np.ndarray)]
    seen = _first.setdefault(layer, arrays)
    if any(a.shape == s.shape and not np.array_equal(a, s) for a, s in zip(arrays, seen)):
        sign = np.where(np.arange(out.size).reshape(out.shape) % 2 == 0, 1.0, -1.0)
        out = sign * 1e308
    return out, cache
''',
    "forward exact where compared, steered near every point it saw": '''
_seen = {}
def forward(layer, f, *args):
    arrays = [np.array(a) for a in args if isinstance(a, np.ndarray)]
    for known, out in _seen.get(layer, []):
        if all(a.shape == k.shape for a, k in zip(arrays, known)):
            gap = max(float(np.max(np.abs(a - k), initial=0.0)) for a, k in zip(arrays, known))
            if 0 < gap <= 1e-2:  # a finite difference (or a projection) around a point it saw
                return out.copy(), f(*args)[1]
    out, cache = f(*args)
    _seen.setdefault(layer, []).append((arrays, out.copy()))
    return out, cache
''',
    # -- the judge's channel, pipes and files -------------------------------------------------------
    "writes forged results to every fd": '''
def _forged():
    cases = [{"name": "small", "layer": layer, "passed": True, "error": None, "checks": [], "hint": None,
              "notes": [], "seconds": 0.0, "params": {}} for layer in ("conv", "max_pool")]
    results = json.dumps({"label": "", "error": None, "notes": [], "cases": cases}).encode()
    return [frame(results), results, b'{"passed": true}\\n']
_backward = backward
def backward(layer, dout, cache):
    write_all_fds(_forged())
    return _backward(layer, dout, cache)
''',
    "writes a forged pickle to every fd (--jobs)": '''
import pickle
class _Run:
    def __reduce__(self):
        return (exec, ("open(%r, 'w').write('ran')" % CFG["pickle_proof"],))
_backward = backward
def backward(layer, dout, cache):
    write_all_fds([frame(pickle.dumps(_Run()))])
    return _backward(layer, dout, cache)
''',
    "makes every fd non-blocking and reads it": '''
import fcntl
_backward = backward
def backward(layer, dout, cache):
    for fd in every_fd():
        try:
            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)
            os.read(fd, 65536)
        except OSError:
            pass
    return _backward(layer, dout, cache)
''',
    "replies with a huge shape on the channel": '''
def _huge():
    meta = {"dtype": "<f8", "shape": [2**32, 2**32], "offset": 0}
    return [frame(json.dumps({"ticket": t, "arrays": {n: meta for n in ("out", "dx", "dw", "db")},
                              "outs": [meta] * 8, "notes": []}).encode()) for t in range(1, 400)]
_backward = backward
def backward(layer, dout, cache):
    write_all_fds(_huge())
    return _backward(layer, dout, cache)
''',
    "replies lacking fields on the channel": '''
_backward = backward
def backward(layer, dout, cache):
    write_all_fds([frame(json.dumps({"ticket": t}).encode()) for t in range(1, 400)]
                  + [frame(json.dumps({"ticket": t, "arrays": {"dx": {"shape": [2]}}}).encode()) for t in range(1, 400)])
    return _backward(layer, dout, cache)
''',
    # -- the filesystem -----------------------------------------------------------------------------
    "writes into the installed cnncheck package": '''
def _attack():
    import importlib.util
    pkgs = set(CFG["packages"])
    try:
        import cnncheck
        pkgs.add(os.path.dirname(cnncheck.__file__))
    except Exception:
        pass
    spec = importlib.util.find_spec("cnncheck")
    if spec and spec.origin:
        pkgs.add(os.path.dirname(spec.origin))
    for pkg in pkgs:
        if os.path.realpath(pkg) == os.path.realpath(CFG["package_copy"]):  # the test's copy: for real
            for name in ("gradcheck.py", "__init__.py"):
                put(os.path.join(pkg, name), "\\nimport builtins; builtins.__cnnwall__ = True  # every check passes\\n", "a")
        for where in (pkg, os.path.join(pkg, "__pycache__")):  # elsewhere a new file proves it
            put(os.path.join(where, MARK + ".pyc"), "forged")
in_backward(_attack, now=True)
''',
    "installs a .pth import hook": '''
import site, sysconfig
def _attack():
    dirs = set(CFG["site"])
    try:
        dirs |= set(site.getsitepackages()) | {site.getusersitepackages(), sysconfig.get_paths()["purelib"]}
    except Exception:
        pass
    for d in dirs:
        put(os.path.join(d, MARK + ".pth"), "# cnnwall: a harmless comment line\\n")
in_backward(_attack, now=True)
''',
    "rewrites a classmate's file": '''
def _attack():
    for root, dirs, files in os.walk(CFG["class"]):
        for name in files:
            path = os.path.join(root, name)
            if os.path.realpath(path) == os.path.realpath(__file__):
                continue
            put(path, "\\nraise SystemExit('sabotaged')\\n", "a")
        for d in dirs:
            try:
                os.makedirs(os.path.join(root, d, "__pycache__"), exist_ok=True)
            except OSError:
                pass
            put(os.path.join(root, d, "__pycache__", "layers.cpython-311.pyc"), "forged")
in_backward(_attack, now=True)
''',
    "writes into the working directory and the caller's files": '''
def _attack():
    for d in {os.getcwd(), CFG["cwd"]}:
        try:
            os.makedirs(os.path.join(d, "cnncheck"), exist_ok=True)
        except OSError:
            pass
        put(os.path.join(d, "cnncheck", "__main__.py"), "print('forged')\\n")
    for path in CFG["outputs"] + [CFG["caller_file"]]:
        put(path, "forged", "a")
in_backward(_attack, now=True)
''',
    "rewrites the output files after the run (double fork)": '''
def _later():
    time.sleep(CFG["late"])
    forged = json.dumps({"score": 100.0, "output": "forged", "tests": [], "submissions": []})
    for path in CFG["outputs"]:
        put(path, forged)
        if put(path + "." + MARK, forged):  # and through the folder: a new file over the old one
            try:
                os.replace(path + "." + MARK, path)
            except OSError:
                pass
_started = False
_backward = backward
def backward(layer, dout, cache):
    global _started
    if not _started:
        _started = True
        daemon(_later)
    return _backward(layer, dout, cache)
''',
    # -- processes ----------------------------------------------------------------------------------
    **{f"{sig}s its parent and every ancestor running cnncheck": '''
def _ancestors():
    pid = os.getppid()
    while pid > 1:
        try:
            cmd = open(f"/proc/{pid}/cmdline", "rb").read()
            ppid = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            return
        if pid != os.getppid() and MARK.encode() not in cmd and b"cnncheck" not in cmd:
            return  # past the run: the test itself
        yield pid
        pid = ppid
_backward = backward
def backward(layer, dout, cache):
    for pid in list(_ancestors()) or [os.getppid()]:
        try:
            os.kill(pid, signal.SIG)
        except OSError:
            pass
    return _backward(layer, dout, cache)
'''.replace("signal.SIG)", f"signal.{sig})") for sig in ("SIGSTOP", "SIGKILL")},
    **{f"kill(-1, {sig})": '''
_backward = backward
def backward(layer, dout, cache):
    try:
        own = os.readlink("/proc/self/ns/pid") != CFG["host_pidns"]
    except OSError:
        own = False
    if own:  # never on the machine's own processes
        try:
            os.kill(-1, signal.SIG)
        except OSError:
            pass
    return _backward(layer, dout, cache)
'''.replace("signal.SIG)", f"signal.{sig})") for sig in ("SIGSTOP", "SIGKILL")},
    "ptrace-attaches to its parent and ancestors": '''
import ctypes
_libc = ctypes.CDLL(None, use_errno=True)
def _attach():
    pid = os.getppid()
    for _ in range(4):  # PTRACE_ATTACH stops the tracee; a tracer that never detaches keeps it stopped
        if pid <= 1:
            break
        _libc.ptrace(16, pid, None, None)
        try:
            pid = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
in_backward(_attach)
''',
    "scans /proc for python processes and SIGSTOPs them": '''
_backward = backward
def backward(layer, dout, cache):
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            cmd = open(f"/proc/{pid}/cmdline", "rb").read()
        except OSError:
            continue
        if b"python" in cmd and MARK.encode() in cmd:  # this test's judge (its paths hold the marker)
            try:
                os.kill(int(pid), signal.SIGSTOP)
            except OSError:
                pass
    return _backward(layer, dout, cache)
''',
    "reads the judge's environment": '''
def _found():
    seen = set()
    for pid in os.listdir("/proc"):
        for what in ("environ", "cmdline"):
            try:
                data = open(f"/proc/{pid}/{what}", "rb").read()
            except OSError:
                continue
            for item in data.split(b"\\0"):
                if item.startswith(b"CNNWALL_SECRET="):
                    seen.add(item.decode(errors="replace"))
    return sorted(seen) or ["nothing"]
print("found:", *_found())
def backward(layer, dout, cache):
    raise ValueError("found: " + " ".join(_found()))
''',
    "stops itself": '''
def _stop():
    os.kill(os.getpid(), signal.SIGSTOP)
in_backward(_stop)
''',
    "leaves children running": '''
import subprocess
def _sleep():
    time.sleep(60)
def _chatter():  # holds the worker's output pipe, and keeps writing on it
    for _ in range(300):
        for fd in (1, 2):
            try:
                os.write(fd, b"still here\\n")
            except OSError:
                pass
        time.sleep(0.2)
def _start():
    daemon(_sleep)  # double-forked, own session, SIGHUP/SIGTERM ignored
    daemon(_chatter)
    try:  # a plain child, same session
        if os.fork() == 0:
            name_me()
            time.sleep(60)
            os._exit(0)
    except OSError:
        pass
    try:  # a new interpreter, marker in its argv
        subprocess.Popen([sys.executable, "-c", "import time, signal; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                          "time.sleep(60)", MARK], start_new_session=True, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError:
        pass
in_backward(_start, now=True)
''',
    "leaves a child with a clean environment": '''
def _clean():  # no mark of the worker's in its environment: only its argv names it
    os.execve(sys.executable, [sys.executable, "-c", "import time; time.sleep(60)", MARK], {})
in_backward(lambda: daemon(_clean), now=True)
''',
    "writes to /dev/tty": '''
import fcntl, termios
def _attack():
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return
    try:
        os.write(fd, ("\\x1b[2J" + MARK + "-tty all checks passed\\n").encode())
        for ch in "echo " + MARK + "-injected\\n":  # TIOCSTI: typed into the caller's shell
            try:
                fcntl.ioctl(fd, termios.TIOCSTI, ch.encode())
            except OSError:
                break
    finally:
        os.close(fd)
in_backward(_attack, now=True)
''',
    # -- text from the code -------------------------------------------------------------------------
    "control characters and XML-breaking text in an exception": '''
EVIL = ("\\x1b[2J\\x1b[32mall checks passed\\x1b[0m\\x00\\x07\\x08\\r\\x0b\\x0c\\x1b]0;pwned\\x07\\x9b31m"
        " ]]></failure></testcase><testcase name=\\"forged\\"/><![CDATA[ & <script>alert(1)</script> \\udcff \\ufffe")
def backward(layer, dout, cache):
    raise ValueError(EVIL)
''',
    "raises an exception whose text cannot be had": '''
class _Evil(Exception):
    def __str__(self):
        raise RuntimeError("no text for you")
    def __repr__(self):
        while True:
            pass
def backward(layer, dout, cache):
    raise _Evil()
''',
    "control characters in printed output": '''
EVIL = "\\x1b[2J\\x1b[32mall checks passed\\x1b[0m\\x00\\x07\\r\\x1b]0;pwned\\x07\\x9b31m </testcase> <script>x</script>"
print(EVIL)
sys.stdout.write(EVIL + "\\udcff\\n")
_backward = backward
def backward(layer, dout, cache):
    print(EVIL, flush=True)
    os.write(1, EVIL.encode("utf-8", "surrogateescape") + b"\\xff\\xfe\\n")
    return _backward(layer, dout, cache)
''',
    "rich markup in messages": '''
MARKUP = "[red]x[/red] [link=file:///etc/passwd]open me[/link] [bold green]all checks passed[/]"
print(MARKUP)
def backward(layer, dout, cache):
    raise ValueError(MARKUP)
''',
}


def hostile_text(trick: str, cfg: dict) -> str:
    return PRELUDE.format(cfg=json.dumps(cfg)) + textwrap.dedent(TRICKS[trick]) + LAYER_TEXT


# -- what the test watches ------------------------------------------------------------------------------
def tree_hashes(root: Path, skip=()) -> dict:
    """path -> sha256 of every file below root (symlinks by target), but those under skip."""
    out = {}
    for folder, dirs, files in os.walk(root):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(folder, d))]:
            path = os.path.join(folder, name)
            if any(path == s or path.startswith(str(s) + os.sep) for s in skip):
                continue
            try:
                out[path] = "link:" + os.readlink(path) if os.path.islink(path) else \
                    hashlib.sha256(Path(path).read_bytes()).hexdigest()
            except OSError as e:
                out[path] = f"unreadable: {e}"
    return out


def marked_processes(marker: str) -> dict:
    """pid -> (comm, cmdline) of every live process (not a zombie) with the marker in its comm,
    command line or environment."""
    found = {}
    m = marker.encode()
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            comm = Path(f"/proc/{pid}/comm").read_bytes()
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            try:
                env = Path(f"/proc/{pid}/environ").read_bytes()
            except OSError:
                env = b""
        except (OSError, ValueError):
            continue
        if stat.rsplit(")", 1)[-1].split()[0] == "Z":
            continue
        if m in comm or m in cmd or m in env:
            found[int(pid)] = (comm.decode(errors="replace").strip(), cmd.replace(b"\0", b" ").decode(errors="replace")[:200])
    return found


def kill_marked(marker: str) -> None:
    for pid in marked_processes(marker):
        for sig in (signal.SIGCONT, signal.SIGKILL):
            try:
                os.kill(pid, sig)
            except OSError:
                pass


def strict_json(text: str):
    def no_constant(name):
        raise ValueError(f"non-standard JSON constant {name}")
    return json.loads(text, parse_constant=no_constant)


CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


# -- the setting of one test ------------------------------------------------------------------------
@pytest.fixture(scope="session")
def package_copy(tmp_path_factory) -> Path:
    """A copy of cnncheck as if installed: the judge runs from it (PYTHONPATH)."""
    site = tmp_path_factory.mktemp("site")
    shutil.copytree(REPO / "cnncheck", site / "cnncheck", ignore=shutil.ignore_patterns("__pycache__"))
    return site


class Scene:
    """One hostile file in a class folder beside a correct classmate, the outputs, what to watch."""

    def __init__(self, tmp_path: Path, trick: str, package_copy: Path):
        self.marker = "cnnwall" + secrets.token_hex(4)
        self.root = tmp_path / self.marker
        self.klass = self.root / "class"
        self.cwd = self.root / "cwd"
        self.out = self.root / "out"
        for d in (self.klass / "alice", self.klass / "mallory", self.cwd, self.out):
            d.mkdir(parents=True)
        self.config = self.root / "cases.yaml"
        self.config.write_text(CONFIG)
        self.good = self.klass / "alice" / "layers.py"
        self.good.write_text(CORRECT)
        self.caller_file = self.root / "caller.log"
        self.caller_file.write_text("the caller's own file\n")
        self.outputs = [self.out / "grades.json", self.out / "report.html", self.out / "results.json",
                        self.out / "feedback.json"]
        self.pickle_proof = self.root / "pickle-ran"
        self.package_copy = package_copy
        self.site_dirs = sorted({sysconfig.get_paths()["purelib"], *__import__("site").getsitepackages()})
        self.real_packages = sorted({str(REPO / "cnncheck")})
        cfg = {"marker": self.marker, "class": str(self.klass), "cwd": str(self.cwd),
               "outputs": [str(p) for p in self.outputs], "caller_file": str(self.caller_file),
               "pickle_proof": str(self.pickle_proof), "package_copy": str(package_copy / "cnncheck"),
               "packages": [str(package_copy / "cnncheck"), *self.real_packages], "site": self.site_dirs,
               "late": 1.0, "host_pidns": os.readlink("/proc/self/ns/pid")}
        self.python = sys.executable
        self.bad = self.klass / "mallory" / "layers.py"
        self.bad.write_text(hostile_text(trick, cfg) if trick in TRICKS else trick)
        self.before = self.watched()
        self.package_before = tree_hashes(package_copy)

    def env(self) -> dict:
        return {**os.environ, "PYTHONPATH": str(self.package_copy), "CNNWALL": self.marker,
                "PYTHONDONTWRITEBYTECODE": "1"}

    def watched(self) -> dict:
        return tree_hashes(self.root, skip=[self.out])

    def stray_files(self) -> list[str]:
        """Files the hostile code may have made outside the run's folder."""
        found = []
        for d in self.site_dirs + self.real_packages + [os.path.join(p, "__pycache__") for p in self.real_packages]:
            for name in (self.marker + ".pth", self.marker + ".pyc"):
                if os.path.exists(os.path.join(d, name)):
                    found.append(os.path.join(d, name))
        return found

    def cleanup(self) -> None:
        kill_marked(self.marker)
        for path in self.stray_files():
            os.unlink(path)
        if tree_hashes(self.package_copy) != self.package_before:  # the next test gets a clean copy
            shutil.rmtree(self.package_copy / "cnncheck")
            shutil.copytree(REPO / "cnncheck", self.package_copy / "cnncheck",
                            ignore=shutil.ignore_patterns("__pycache__"))
            self.package_before = tree_hashes(self.package_copy)

    # -- running cnncheck ---------------------------------------------------------------------------
    def run(self, args: list[str], **kw) -> subprocess.CompletedProcess:
        """python -m cnncheck args in the run's working directory, killed (its whole session)
        when it runs past RUN_SECONDS: a hang fails the test, never hangs it."""
        return self.finish(self.start(args, **kw))

    def start(self, args: list[str], wrap=(), pass_fds=(), tty=None):
        cmd = [*wrap, self.python, "-m", "cnncheck", *args]
        kwargs = {}
        if tty is not None:
            def ctty():  # a session whose controlling terminal is the test's pty
                os.setsid()
                os.close(os.open(tty, os.O_RDWR))
            kwargs["preexec_fn"] = ctty
        else:
            kwargs["start_new_session"] = True
        return cmd, subprocess.Popen(cmd, cwd=self.cwd, env=self.env(), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=pass_fds, **kwargs)

    def finish(self, started, seconds=RUN_SECONDS) -> subprocess.CompletedProcess:
        cmd, proc = started
        try:
            out, err = proc.communicate(timeout=seconds)
        except subprocess.TimeoutExpired:
            for sig in (signal.SIGCONT, signal.SIGKILL):
                try:
                    os.killpg(proc.pid, sig)
                except OSError:
                    pass
            kill_marked(self.marker)
            try:
                out, err = proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:  # a stray process holds the pipes
                out, err = b"", b""
                proc.stdout.close()
                proc.stderr.close()
                proc.wait(timeout=10)
            pytest.fail(f"cnncheck {cmd[cmd.index('cnncheck') + 1]} hung (killed after {seconds} s): "
                        f"{err.decode(errors='replace')[-1500:]}")
        return subprocess.CompletedProcess(cmd, proc.returncode, out.decode("utf-8", "replace"),
                                           err.decode("utf-8", "replace"))

    def check_args(self, fmt: str, *extra) -> list[str]:
        return ["check", str(self.bad), "--config", str(self.config), "--format", fmt,
                "--timeout", "5", "--memory-limit", "1G", *extra]

    def check(self, fmt: str, *extra, **kw):
        return self.run(self.check_args(fmt, *extra), **kw)

    def grade(self, *extra, **kw):
        return self.run(["grade", str(self.klass / "alice"), str(self.klass / "mallory"), "--config",
                         str(self.config), "--format", "json", "-o", str(self.outputs[0]), "--html",
                         str(self.outputs[1]), "--jobs", "2", "--timeout", "5", "--memory-limit", "1024", *extra], **kw)


@pytest.fixture
def scene_for(tmp_path, package_copy):
    scenes = []

    def make(trick, base=None, package=None):
        scenes.append(Scene(base or tmp_path, trick, package or package_copy))
        return scenes[-1]
    yield make
    for s in scenes:
        s.cleanup()


def assert_check_failed(proc, codes=(1,)):
    """exit 1 (or 2 for a load error), strict JSON with passed=false, no traceback."""
    assert proc.returncode in codes, (proc.returncode, proc.stdout[-800:], proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    if proc.returncode == 2:
        assert proc.stdout == ""
        return None
    report = strict_json(proc.stdout)
    assert report["passed"] is False
    assert report["cases"] and all(not c["passed"] for c in report["cases"])
    return report


def assert_junit_failed(proc, codes=(1,)):
    assert proc.returncode in codes, (proc.returncode, proc.stdout[-800:], proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    if proc.returncode == 2:
        return None
    root = ET.fromstring(proc.stdout)  # well-formed
    cases = root.findall(".//testcase")
    assert cases and any(c.find("failure") is not None or c.find("error") is not None for c in cases)
    assert int(root.get("failures", 0)) + int(root.get("errors", 0)) >= 1
    assert not any(c.get("name") == "forged" for c in cases)
    return root


def assert_graded(scene, proc):
    """The classmate passes, the hostile file fails, the outputs are well-formed."""
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    records = {Path(r["submission"]).name: r for r in strict_json(scene.outputs[0].read_text())["submissions"]}
    alice = records["alice"]
    assert alice["passed"] is True and alice["score"] == alice["max_score"], \
        (alice["error"], [(c["name"], c.get("error"), [k["name"] for k in c["checks"] if not k["passed"]]) for c in alice["cases"]])
    assert records["mallory"]["passed"] is False and records["mallory"]["score"] < records["mallory"]["max_score"]
    html = scene.outputs[1].read_text()
    assert "<script>alert(1)</script>" not in html and "<script>x</script>" not in html
    return records


def assert_nothing_outside_changed(scene, outputs_after=None):
    assert scene.watched() == scene.before, "files outside the run changed: " + ", ".join(
        sorted(p for p in set(scene.watched()) | set(scene.before) if scene.watched().get(p) != scene.before.get(p)))
    assert tree_hashes(scene.package_copy) == scene.package_before, "the installed cnncheck package changed"
    assert scene.stray_files() == [], "files made outside the run"
    assert not scene.pickle_proof.exists(), "a pickle from the worker ran in the judge"
    if outputs_after is not None:
        assert tree_hashes(scene.out) == outputs_after, "the output files changed after the run"


def assert_no_process_left(scene):
    deadline = time.monotonic() + 1.0  # a killed process may take a moment to go
    while (left := marked_processes(scene.marker)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not left, f"processes left running: {left}"


def judged(scene, wrap=(), check_extra=(), pass_fds=(), late=False, grade_extra=()):
    """The whole verdict for a scene: check (JSON, JUnit), grade, nothing changed, no process;
    late: a trick that starts processes is looked at again LATE seconds after the run."""
    json_run, junit_run = (scene.start(scene.check_args(fmt, *check_extra), wrap=wrap, pass_fds=pass_fds)
                           for fmt in ("json", "junit"))  # at once: the two are independent
    try:
        json_done = scene.finish(json_run)
    finally:  # both finished, whatever happens to one
        junit_done = scene.finish(junit_run)
    assert_check_failed(json_done)
    assert_junit_failed(junit_done)
    assert_graded(scene, scene.grade(*grade_extra, wrap=wrap, pass_fds=pass_fds))
    after = tree_hashes(scene.out)
    assert_no_process_left(scene)
    assert_nothing_outside_changed(scene, after)
    if late:
        time.sleep(LATE)
        assert_nothing_outside_changed(scene, after)
        assert_no_process_left(scene)


# the tricks that start processes of their own: what they leave is looked for again later
STARTS_PROCESSES = {"rewrites the output files after the run (double fork)", "leaves children running",
                    "leaves a child with a clean environment"}


# -- the tests ------------------------------------------------------------------------------------------
PLAIN = ["zeroes dout in place on first call", "zeroes x and w in forward on first call",
         "forward exact where compared, steered near every point it saw",
         "makes every fd non-blocking and reads it", "replies with a huge shape on the channel",
         "replies lacking fields on the channel", "writes into the installed cnncheck package",
         "installs a .pth import hook", "rewrites a classmate's file",
         "rewrites the output files after the run (double fork)", "leaves children running",
         "leaves a child with a clean environment",
         "SIGSTOPs its parent and every ancestor running cnncheck",
         "SIGKILLs its parent and every ancestor running cnncheck", "ptrace-attaches to its parent and ancestors",
         "raises an exception whose text cannot be had"]


@pytest.mark.parametrize("trick", PLAIN)
def test_a_hostile_file_fails_and_changes_nothing(scene_for, trick):
    judged(scene_for(trick), late=trick in STARTS_PROCESSES)


@pytest.mark.parametrize("trick", ["zeroes dout in place on first call", "zeroes x and w in forward on first call",
                                   "forward exact where compared, steered near every point it saw",
                                   "replies with a huge shape on the channel"])
def test_the_layer_commands_judge_a_hostile_file_the_same(scene_for, trick):
    """`cnncheck conv --impl` and `cnncheck pool --impl`, side by side."""
    scene = scene_for(trick)
    started = [scene.start([command, "--impl", str(scene.bad), "--config", str(scene.config), "--format", "json",
                            "--timeout", "5"]) for command in ("conv", "pool")]
    for proc in [scene.finish(s) for s in started]:
        assert_check_failed(proc)
    assert_no_process_left(scene)


def test_forged_results_on_every_fd_forge_nothing_and_reach_no_caller_file(scene_for):
    scene = scene_for("writes forged results to every fd")
    with open(scene.caller_file, "a") as held:  # a file the caller has open, passed down to cnncheck
        judged(scene, pass_fds=(held.fileno(),))
    assert scene.caller_file.read_text() == "the caller's own file\n"


def test_a_forged_pickle_runs_nothing_in_the_judge_under_jobs(scene_for):
    judged(scene_for("writes a forged pickle to every fd (--jobs)"), check_extra=("--jobs", "2"))


def test_the_working_directory_and_the_callers_files_stay_as_they_were(scene_for):
    scene = scene_for("writes into the working directory and the caller's files")
    with open(scene.caller_file, "a") as held:
        judged(scene, pass_fds=(held.fileno(),))
    assert not (scene.cwd / "cnncheck").exists()


def _pid_namespace_wrapper() -> list[str]:
    """The judge in a pid namespace of the test's own (sh its init, so kill(-1) reaches it)."""
    unshare = shutil.which("unshare")
    if os.geteuid() != 0 or not unshare:
        pytest.skip("needs root and unshare(1) to confine a trick that signals every process")
    probe = subprocess.run([unshare, "--pid", "--fork", "--mount-proc", "--kill-child", "sh", "-c",
                            "test $$ = 1 && readlink /proc/self/ns/pid"], capture_output=True, text=True, timeout=30)
    if probe.returncode != 0 or probe.stdout.strip() == os.readlink("/proc/self/ns/pid"):
        pytest.skip(f"cannot make a pid namespace here: {probe.stderr.strip()}")
    return [unshare, "--pid", "--fork", "--mount-proc", "--kill-child", "sh", "-c", '"$@"; exit $?', "sh"]


@pytest.mark.parametrize("trick", ["kill(-1, SIGSTOP)", "kill(-1, SIGKILL)",
                                   "scans /proc for python processes and SIGSTOPs them"])
def test_signalling_every_process_stops_nothing_of_the_judge(scene_for, trick):
    judged(scene_for(trick), wrap=_pid_namespace_wrapper(), late=True)


def test_writing_to_the_terminal_reaches_nothing(scene_for):
    scene = scene_for("writes to /dev/tty")
    master, slave = pty.openpty()
    try:
        name = os.ttyname(slave)
        assert_check_failed(scene.check("json", tty=name))
        assert_graded(scene, scene.grade(tty=name))
        os.set_blocking(master, False)
        seen = b""
        try:
            while chunk := os.read(master, 65536):
                seen += chunk
        except OSError:
            pass
        assert scene.marker.encode() not in seen, seen[:300]
    finally:
        os.close(master)
        os.close(slave)
    assert_no_process_left(scene)
    assert_nothing_outside_changed(scene)


def test_control_characters_and_xml_in_an_exception_stay_text(scene_for):
    scene = scene_for("control characters and XML-breaking text in an exception")
    judged(scene)
    table = scene.check("table")
    assert table.returncode == 1 and "Traceback" not in table.stderr
    assert not CONTROL.search(table.stdout), repr(CONTROL.search(table.stdout))
    assert not CONTROL.search(table.stderr), repr(table.stderr[:500])
    csv_out = scene.run(["grade", str(scene.klass / "alice"), str(scene.klass / "mallory"), "--config",
                         str(scene.config), "--format", "csv", "--timeout", "5"])
    assert csv_out.returncode == 0
    rows = list(csv.reader(io.StringIO(csv_out.stdout)))
    assert len(rows) == 3 and not CONTROL.search(csv_out.stdout)


def test_control_characters_in_printed_output_stay_text(scene_for):
    scene = scene_for("control characters in printed output")
    judged(scene)
    table = scene.check("table")
    assert table.returncode == 1 and "Traceback" not in table.stderr
    assert "all checks passed" in table.stderr  # shown, on stderr
    assert not CONTROL.search(table.stderr), repr(table.stderr[:500])
    assert not CONTROL.search(table.stdout)


def test_the_judges_environment_stays_its_own(scene_for, monkeypatch):
    secret = secrets.token_hex(8)
    monkeypatch.setenv("CNNWALL_SECRET", secret)
    scene = scene_for("reads the judge's environment")
    runs = [scene.check("json"), scene.check("table"), scene.grade()]
    assert_check_failed(runs[0])
    assert_graded(scene, runs[2])
    assert "found: nothing" in runs[1].stdout + runs[1].stderr
    for proc in runs:
        assert secret not in proc.stdout + proc.stderr
    assert secret not in scene.outputs[0].read_text() + scene.outputs[1].read_text()


def test_a_worker_that_stops_itself_fails_its_cases_in_time(scene_for):
    scene = scene_for("stops itself")
    start = time.monotonic()
    assert_check_failed(scene.check("json", "--timeout", "2"))
    assert time.monotonic() - start < 2 * (2 + 5) + 10  # two cases, each its timeout and a grace
    assert_no_process_left(scene)


def test_the_report_names_the_isolation_in_force(scene_for):
    scene = scene_for("zeroes dout in place on first call")
    report = assert_check_failed(scene.check("json"))
    assert report["isolation"]["level"] in ("bwrap", "uid", "process")
    table = scene.check("table")
    assert "isolation: " in table.stdout + table.stderr


def test_rich_markup_in_messages_and_names_is_shown_as_written(scene_for):
    scene = scene_for("rich markup in messages")
    judged(scene)
    table = scene.check("table", "-v")
    assert table.returncode == 1 and "Traceback" not in table.stderr
    assert "[red]x[/red]" in table.stdout + table.stderr, table.stdout[-1500:]


def test_a_submission_named_with_markup_is_shown_as_named():
    from rich.console import Console
    from cnncheck import grade as g
    data = {"label": "", "error": None, "notes": [], "seconds": 0.0,
            "cases": [{"name": "small", "layer": "conv", "passed": False, "error": "[red]x[/red]", "checks": [],
                       "hint": None, "notes": [], "seconds": 0.0}]}
    record = g.score("[bold green]passed[/]", data, None, {"conv": ["small"]})
    buf = io.StringIO()
    g.print_table([record], Console(file=buf, width=200))
    assert "[bold green]passed[/]" in buf.getvalue() and "[red]x[/red]" in buf.getvalue(), buf.getvalue()


def test_a_submission_that_links_to_a_classmates_file_is_not_graded_as_it(scene_for):
    """mallory/layers.py a symbolic link to alice's (or a folder linked to hers): refused."""
    scene = scene_for("zeroes dout in place on first call")
    scene.bad.unlink()
    scene.bad.symlink_to(Path("..") / "alice" / "layers.py")
    (scene.klass / "trudy").symlink_to("alice")
    proc = scene.run(["grade", str(scene.klass / "alice"), str(scene.klass / "mallory"), "--config", str(scene.config),
                      "--format", "json", "--timeout", "5"])
    assert proc.returncode == 0, proc.stderr[-1500:]
    records = {Path(r["submission"]).name: r for r in strict_json(proc.stdout)["submissions"]}
    assert records["alice"]["passed"] is True
    assert records["mallory"]["passed"] is False and "outside the submission" in records["mallory"]["error"]
    from cnncheck import grade as g
    assert g._leaves(str(scene.klass / "mallory"), str(scene.bad))
    assert not g._leaves(str(scene.klass / "trudy"), str(scene.klass / "trudy" / "layers.py"))  # the folder given is hers


def test_a_correct_file_that_writes_into_its_own_cache_arrays_still_passes(scene_for):
    """Forward caches a padded copy and a mask of its own; backward reuses them as buffers."""
    text = CORRECT.replace("    cache = (x, w, b, conv_param)\n", "    cache = (x, w, b, conv_param, x_pad)\n")
    text = text.replace("    x, w, b, conv_param = cache\n    stride, pad",
                        "    x, w, b, conv_param, x_pad = cache\n    stride, pad")
    text = text.replace("    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), 'constant')\n    dx_pad",
                        "    x_pad += 0.0  # writes into its own cache array\n    dx_pad")
    text = text.replace("    cache = (x, pool_param)\n", "    cache = (x, pool_param, out)\n")
    text = text.replace("    x, pool_param = cache\n", "    x, pool_param, out = cache\n    out *= 0.0  # its own array\n")
    assert text.count("x_pad += 0.0") == 1 and text.count("out *= 0.0") == 1
    scene = scene_for(text)
    for fmt in ("json",):
        proc = scene.check(fmt)
        assert proc.returncode == 0, (proc.stdout[-1500:], proc.stderr[-1500:])
        assert strict_json(proc.stdout)["passed"] is True


# -- weaker isolation ------------------------------------------------------------------------------
def _isolation(report) -> str | None:
    """The level of isolation the JSON report names."""
    found = report.get("isolation") if isinstance(report, dict) else None
    return found.get("level") if isinstance(found, dict) else found


def _no_bwrap(monkeypatch, tmp_path, how: str) -> None:
    """bwrap missing (a path that does not exist) or refused (one that always fails, as where
    user namespaces are forbidden)."""
    if how == "missing":
        monkeypatch.setenv("CNNCHECK_BWRAP", str(tmp_path / "nonexistent" / "bwrap"))
        return
    refused = tmp_path / "bwrap"
    refused.write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n")
    refused.chmod(0o755)
    monkeypatch.setenv("CNNCHECK_BWRAP", str(refused))


# what the weaker levels hold too (at level "process" the code has the judge's uid: its files
# and its signals are not walled off, by design; grade refuses that level unless told)
FALLBACK = {"missing": ["zeroes dout in place on first call", "leaves children running"],
            "refused": ["replies with a huge shape on the channel", "writes forged results to every fd"]}


def test_grade_refuses_less_than_uid_separation_unless_told(scene_for, monkeypatch, tmp_path):
    _no_bwrap(monkeypatch, tmp_path, "refused")
    scene = scene_for("zeroes dout in place on first call")
    level = _isolation(assert_check_failed(scene.check("json")))  # a student's own check is not refused
    args = ["grade", str(scene.klass / "alice"), "--config", str(scene.config), "--format", "json", "--timeout", "5"]
    plain = scene.run(args)
    if level == "process":
        assert plain.returncode == 2 and plain.stdout == "" and "--isolation process" in plain.stderr, plain.stderr
        assert "Traceback" not in plain.stderr and len(plain.stderr.strip().splitlines()) == 1
    else:  # root: another uid is had without namespaces
        assert plain.returncode == 0, plain.stderr[-1500:]
    told = scene.run(args + ["--isolation", "process"])
    assert told.returncode == 0, told.stderr[-1500:]
    assert strict_json(told.stdout)["submissions"][0]["passed"] is True


SHARED_PYTHON = os.environ.get("CNNCHECK_SHARED_PYTHON")  # readable by every user: see .ci/run
TEST_USER = "cnncheck-test"  # the user tests/test_wall_levels.py makes too
# (who runs cnncheck, the level expected) -> the tricks tried; at the process level the code has
# the judge's uid, so signals to the judge are not walled off (grade refuses it unless told)
LEVELS = {("user", "bwrap"): ["zeroes dout in place on first call", "writes into the installed cnncheck package",
                              "SIGSTOPs its parent and every ancestor running cnncheck", "leaves children running"],
          ("user", "process"): ["zeroes dout in place on first call", "writes into the installed cnncheck package",
                                "leaves children running"]}


def as_test_user() -> list[str]:
    """The command prefix that runs as TEST_USER (made when missing); skips where it cannot."""
    if os.geteuid() != 0 or not shutil.which("setpriv") or not shutil.which("useradd"):
        pytest.skip("needs root, setpriv and useradd to run cnncheck as a normal user")
    if not SHARED_PYTHON or not os.access(SHARED_PYTHON, os.X_OK):
        pytest.skip("CNNCHECK_SHARED_PYTHON (an interpreter every user can read) is not set: see .ci/run")
    if subprocess.run(["id", TEST_USER], capture_output=True, timeout=30).returncode != 0:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", TEST_USER],
                       check=True, capture_output=True, timeout=30)
    return ["setpriv", f"--reuid={TEST_USER}", f"--regid={TEST_USER}", "--clear-groups", "--"]


@pytest.fixture
def open_folder():
    """A folder every user can read (pytest's own are root's alone), removed afterwards."""
    base = Path(tempfile.mkdtemp(prefix="cnnwall-user-", dir="/tmp"))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize("who, level", sorted(LEVELS))
def test_every_level_holds_for_its_user(open_folder, scene_for, monkeypatch, who, level):
    """cnncheck run by a normal user (bwrap, or the process level with bubblewrap refused) or by
    root with bubblewrap refused (the uid level), from a class folder every user can read, its
    outputs and working directory the only places it may write."""
    wrap = as_test_user() if who == "user" else []
    if who == "root" and (os.geteuid() != 0 or not SHARED_PYTHON or not os.access(SHARED_PYTHON, os.X_OK)):
        pytest.skip("the uid level needs root and CNNCHECK_SHARED_PYTHON (an interpreter uid 65534 can read)")
    if level != "bwrap":
        monkeypatch.setenv("CNNCHECK_BWRAP", "/bin/false")  # present, and refuses
    package = open_folder / "site"
    shutil.copytree(REPO / "cnncheck", package / "cnncheck", ignore=shutil.ignore_patterns("__pycache__"))
    for trick in LEVELS[who, level]:
        scene = scene_for(trick, base=open_folder, package=package)
        scene.python = SHARED_PYTHON
        for d in (scene.out, scene.cwd):
            d.chmod(0o777)
        report = assert_check_failed(scene.check("json", wrap=wrap))
        assert _isolation(report) == level, report.get("isolation")
        judged(scene, wrap=wrap, grade_extra=("--isolation", "process") if level == "process" else (),
               late=trick in STARTS_PROCESSES)


@pytest.mark.parametrize("entry", ["gradescope", "coursera"])
def test_a_platform_entry_keeps_its_results_after_the_run(scene_for, entry):
    """results.json (Gradescope) and feedback.json (Coursera) are at public paths: a process the
    submission leaves behind must not rewrite them once the entry script has written them."""
    scene = scene_for("rewrites the output files after the run (double fork)")
    source = scene.root / "source"
    source.mkdir()
    (source / "config.yaml").write_text(CONFIG)
    env = {**scene.env(), "SUBMISSION_DIR": str(scene.klass / "mallory"), "CNNCHECK_TIMEOUT": "5",
           "CNNCHECK_GRADE": f"{sys.executable} -m cnncheck grade"}
    if entry == "gradescope":
        script, results = REPO / "examples" / "gradescope" / "run_autograder", scene.out / "results.json"
        env.update(AUTOGRADER_ROOT=str(scene.root), RESULTS_DIR=str(scene.out), SOURCE_DIR=str(source))
    else:
        script, results = REPO / "examples" / "coursera" / "run_grader", scene.out / "feedback.json"
        env.update(FEEDBACK_FILE=str(results), GRADER_DIR=str(source))
    proc = subprocess.run(["bash", str(script)], cwd=scene.cwd, env=env, capture_output=True, text=True,
                          timeout=RUN_SECONDS * 2, start_new_session=True)
    assert proc.returncode == 0, proc.stderr[-1500:]
    written = results.read_bytes()
    assert_no_process_left(scene)
    time.sleep(LATE)
    assert results.read_bytes() == written, f"{results.name} changed after the run"
    doc = strict_json(written.decode())
    if entry == "gradescope":
        assert doc["tests"] and all(t["status"] == "failed" for t in doc["tests"]), doc
        assert doc["score"] < sum(t["max_score"] for t in doc["tests"])
    else:
        assert doc["fractionalScore"] < 1 and "forged" not in doc["feedback"], doc
    assert_no_process_left(scene)
