"""A cgroup for one worker's whole process tree, where cnncheck may make one (as root, with
the cgroup v1 memory and pids controllers or cgroup v2 mounted writable): memory and the
number of processes are limited for the tree, not per process, and when the worker ends
every process in it is killed, however it left the worker's session. Elsewhere a no-op:
the per-process limits (RLIMIT_AS, RLIMIT_NPROC) and the pid namespace still hold.
"""
from __future__ import annotations

import os
import time

ROOT = "/sys/fs/cgroup"


def _own(controller: str) -> str | None:
    """This process's cgroup folder for a v1 controller ("" for v2), if it exists."""
    try:
        with open("/proc/self/cgroup") as f:
            lines = [line.rstrip("\n").split(":", 2) for line in f]
    except OSError:
        return None
    for _, names, path in lines:
        if controller in names.split(",") if controller else names == "":
            base = os.path.join(ROOT, controller) if controller else ROOT
            folder = base + path
            return folder if os.path.isfile(os.path.join(folder, "cgroup.procs")) else None
    return None


class Box:
    """The worker's cgroups (none where they cannot be made)."""

    def __init__(self, name: str, memory: int | None, processes: int):
        self.folders = []
        if os.geteuid() != 0:
            return
        v2 = _own("")
        if v2 and os.path.isfile(os.path.join(ROOT, "cgroup.controllers")):
            self._make(v2, name, {"memory.max": memory, "memory.swap.max": memory and 0, "pids.max": processes})
        else:
            for controller, limits in (("memory", {"memory.limit_in_bytes": memory,  # and no swap beyond it
                                                    "memory.memsw.limit_in_bytes": memory}),
                                       ("pids", {"pids.max": processes})):
                own = _own(controller)
                if own:
                    self._make(own, name, limits)

    def _make(self, parent: str, name: str, limits: dict) -> None:
        folder = os.path.join(parent, name)
        try:
            _sweep(parent)
            os.mkdir(folder)
            self.folders.append(folder)
            for key, value in limits.items():
                if value is not None and os.path.exists(os.path.join(folder, key)):
                    with open(os.path.join(folder, key), "w") as f:
                        f.write(str(value))
        except OSError:
            pass

    def enter(self) -> None:
        """In the worker's child before exec: join the box (every descendant is born in it)."""
        for folder in self.folders:
            try:
                with open(os.path.join(folder, "cgroup.procs"), "w") as f:
                    f.write(str(os.getpid()))
            except OSError:
                pass

    def members(self) -> set:
        pids = set()
        for folder in self.folders:
            try:
                with open(os.path.join(folder, "cgroup.procs")) as f:
                    pids |= {int(p) for p in f.read().split()}
            except OSError:
                pass
        return pids

    def close(self) -> None:
        """Kill every process in the box, then remove it."""
        for _ in range(50):
            pids = self.members()
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, 9)
                except OSError:
                    pass
            time.sleep(0.01)
        for folder in self.folders:
            _remove(folder)
        self.folders = []


def _remove(folder: str) -> None:
    """rmdir a box (a moment after its last process was reaped, it may still be busy)."""
    for _ in range(20):
        try:
            os.rmdir(folder)
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.01)


def _sweep(parent: str) -> None:
    """Remove the empty boxes of judges that are gone (killed before they could)."""
    for name in os.listdir(parent):
        judge = name.split("-")[1] if name.startswith("cnncheck-") else ""
        if judge.isdigit() and not os.path.exists(f"/proc/{judge}"):
            _remove(os.path.join(parent, name))
