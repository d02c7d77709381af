"""The worker process, from the judge's side: start it, talk to it, end it.

The judge (everything outside cnncheck.sandbox) never imports or calls the code it checks.
A `Worker` execs a fresh interpreter (cnncheck.sandbox.serve) under the strongest isolation
the machine allows (cnncheck.sandbox.launch), which loads the user's file, finds its layers
and hosts their protocol adapters; the judge sends it arrays and gets arrays back, and
computes every numerical gradient, verdict and report itself, with its own numpy.

- Arrays cross through a memfd both map (judge -> worker: the inputs; worker -> judge: out
  or the gradients), control messages through a socket: pickled from the judge, JSON from
  the worker. Every reply is checked against its schema (every field, sizes in Python
  ints), every array screened (NaN, inf) and copied before use; text is made printable.
- The worker's file descriptors 1 and 2 are a pipe the judge drains: what the code prints
  never reaches the judge's stdout; it is shown on stderr, folded when long.
- Limits: address space (`memory_limit`), processes, wall time per case (`timeout`: an
  alarm inside the worker, then SIGKILL after a grace period), the captured output kept.
- Whatever the worker does is a finding about the case at hand (an ImplError); the next
  case gets a fresh worker. When a worker ends, nothing it started survives it.
"""
from __future__ import annotations

import mmap
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import weakref
from multiprocessing.connection import Connection

import numpy as np

from cnncheck.protocols import ImplError, bad_values
from cnncheck.sandbox import box, channel, launch
from cnncheck.sandbox.channel import aligned as _aligned, keep_freed_memory, spin as _spin  # noqa: F401

# seconds the judge, then the worker, polls before it sleeps: long enough for a small call's
# reply or the judge's next message, short enough not to take a core from a long forward
GRACE = 2.0  # seconds past a case's timeout before a worker that ignores its alarm is killed
DEFAULT_TIMEOUT = 60.0
DEFAULT_MEMORY = 4 * 2**30
DEFAULT_OUTPUT = 64 * 2**10
MIN_SHM = 16 * 2**20
DTYPES = channel.DTYPES
LOAD_SECONDS = 60.0  # loading a file: its imports may be slow, never endless (nor longer than a case may take,
LOAD_FLOOR = 10.0  # when that is more than this)
_live = weakref.WeakSet()  # every worker this process started, for shutdown()
_used = set()  # the isolation levels workers of this process started at
_started = 0  # workers this process started (each at level "uid" gets a uid of its own)


def _prctl_libc():
    try:
        import ctypes
        return ctypes.CDLL(None, use_errno=True)
    except (OSError, AttributeError):
        return None


def guard_judge() -> None:
    """Make the judge's /proc entries (its open files, its memory) closed to processes
    without CAP_SYS_PTRACE: a worker cannot write into the judge's stdout through
    /proc/<judge>/fd/1. (Linux; elsewhere a no-op.)"""
    libc = _prctl_libc()
    if libc is not None and hasattr(libc, "prctl"):
        libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE, 0


def isolation() -> dict | None:
    """The weakest isolation any worker of this process ran under (None: no code under
    check ran), for the report's `isolation` field and footer."""
    if not _used:
        return None
    return launch.describe(max(_used, key=launch.LEVELS.index))


def shutdown() -> None:
    """Stop every worker: the judge decides the exit status only after all are gone."""
    for w in list(_live):
        w.close()


# -- the judge's side ------------------------------------------------------------------
class Worker:
    """The worker process for one source of code, started on first use (and again after
    a case ended it).

    source: a path or module name to load there; text: with it, the source of a notebook's
    cells (definitions only are run). load: keyword arguments for sandbox.detect.adapters.
    isolation: a level (launch.LEVELS), or None for the strongest the machine allows.
    private: the working directory is not shown to the code (under bwrap it sees the system,
    the interpreter, cnncheck and its own file's folder only).
    """

    isolated = True

    def __init__(self, source=None, *, text=None, load=None, label="", isolation=None, private=False,
                 timeout=DEFAULT_TIMEOUT, memory_limit=DEFAULT_MEMORY, output_limit=DEFAULT_OUTPUT):
        self.source, self.text, self.load_args = source, text, dict(load or {})
        self.private = private  # the working directory not shown to the code (grade: the class is there)
        self.label = label or str(source)
        self.level = launch.choose(isolation)
        self.timeout, self.memory_limit, self.output_limit = timeout, memory_limit, output_limit
        self.layers: list[str] = []
        self.notes: list[str] = []
        self._proc = None
        self._case = None
        self._deadline = None
        self._printed = bytearray()
        self._dropped = 0
        self._lock = threading.Lock()

    def clone(self) -> "Worker":
        """A worker of its own for the same code (one per thread of a parallel run)."""
        return Worker(self.source, text=self.text, load=self.load_args, label=self.label,
                      isolation=self.level, private=self.private, timeout=self.timeout, memory_limit=self.memory_limit,
                      output_limit=self.output_limit)

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> list[str]:
        """Start the worker and load the code; the layers it defines. Raises ImplLoadError."""
        from cnncheck.sandbox.impl import ImplLoadError
        self.close()
        self._resident = {}
        self._size = self._tickets = self._answered = 0
        self._shm = os.memfd_create("cnncheck", 0)
        ours, theirs = socket.socketpair()
        out_r, out_w = os.pipe()
        guard_judge()
        global _started
        _started += 1
        self._uid = launch.box_uid(_started)
        self._box = box.Box(f"cnncheck-{self._mark()}", self.memory_limit, launch.PROCESSES)
        cwd = os.getcwd()
        path = [os.path.abspath(p) for p in sys.path if os.path.isdir(p or ".")]  # where module names resolve
        if self.private:  # not the grader's folder, where the classmates are (its subfolders on the path stay)
            path = [p for p in path if p != cwd]
        folders = [os.path.dirname(os.path.abspath(self.source))] if self._is_path() else []
        folders += path + ([] if self.private else [cwd])
        try:
            self._proc = subprocess.Popen(
                launch.argv(self.level, theirs.fileno(), folders, self._mark(), path), env={**launch.ENV, "CNNCHECK_WORKER": self._mark()}, cwd=os.getcwd(),
                stdin=subprocess.DEVNULL, stdout=out_w, stderr=out_w, pass_fds=(theirs.fileno(), self._shm),
                start_new_session=True, preexec_fn=launch.preexec(self.level, None, self._box, self._uid))
        except OSError as e:
            raise ImplLoadError(f"cannot start the worker for {self.label}: {e}") from None
        finally:
            theirs.close()
            os.close(out_w)
        self._conn = Connection(ours.detach())
        _live.add(self)
        _used.add(self.level)
        threading.Thread(target=self._drain, args=(out_r,), daemon=True).start()
        spec = {"source": self.source, "text": self.text, "load": self.load_args, "label": self.label,
                "timeout": self.timeout, "memory_limit": self.memory_limit, "shm": self._shm,
                "processes": launch.PROCESSES, "load_seconds": self._load_seconds()}
        reply = self._ask(("load", spec), self._load_seconds() + GRACE, "loading", load=True)
        if "error" in reply:
            self.close()
            raise ImplLoadError(reply["error"])
        self.layers = reply.get("layers", [])
        self.notes.extend(reply["notes"])
        self.labels = reply.get("labels", {})
        self._ensure(MIN_SHM // 2)  # mapped now, so a case's first (timed) call is a plain call
        return self.layers

    def _load_seconds(self) -> float:
        return min(LOAD_SECONDS, max(LOAD_FLOOR, self.timeout))

    def _mark(self) -> str:
        """This worker's mark, in its environment and last on its command line."""
        if not hasattr(self, "_token"):
            self._token = f"{os.getpid()}-{id(self):x}-{time.monotonic_ns()}"
        return self._token

    def _is_path(self) -> bool:
        return isinstance(self.source, str) and (os.sep in self.source or os.path.exists(self.source))

    def close(self) -> None:
        """End the worker and everything it started (the pid namespace ends with it; at
        lower levels its session, or every process of its uid)."""
        if self._proc is None:
            return
        proc, self._proc = self._proc, None
        launch.kill(self.level, proc, self._uid)
        self._box.close()
        self._conn.close()
        os.close(self._shm)
        _live.discard(self)

    def _alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- the adapter's interface, as the checker calls it --------------------------------
    def for_layer(self, layer: str) -> "Layer":
        return Layer(self, layer)

    def call(self, layer, case, role, arrays: dict, changed=None):
        """Run forward (role "forward": arrays are the inputs) or backward (arrays: dout)
        in the worker; the reply's arrays, screened and copied. The arrays given are the
        judge's and stay as they are: code that writes into its own copies of them fails
        the call (the worker says so).

        changed: (name, index, bases), arrays[name] equal to bases[name] but at index and the
        others bases: the worker keeps the bases (sent once a case) and gets the change alone."""
        if changed is not None:
            return self._call_changed(layer, case, arrays, *changed)
        left = self._begin(case)
        metas = self._put(arrays)
        reply = self._ask(("call", layer, case, role, metas, left), left + GRACE, role)
        self.notes.extend(reply["notes"])
        if "error" in reply:
            raise ImplError(reply["error"])
        if "arrays" not in reply:
            raise ImplError("the worker sent a reply without arrays")
        return {k: self._get(v, k) for k, v in reply["arrays"].items()}

    def _begin(self, case) -> float:
        """Seconds left for this call: a new case starts its clock (and sends its arrays
        anew); a worker that ended is started again."""
        if case is not self._case:
            self._case, self._deadline = case, time.monotonic() + self.timeout
            self._resident, self._slot = {}, 0
        if not self._alive():
            self.start()
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise ImplError(f"timed out after {self.timeout:g} s (the case's time ran out)")
        return left

    def _call_changed(self, layer, case, arrays, name, index, bases) -> dict:
        """A forward whose inputs are the case's bases but for arrays[name] at index."""
        sent = self.send_many(layer, case, name, [(index, arrays[name][index])], bases)
        return {"out": self.receive_many(sent)[0]}

    def send_many(self, layer, case, name, changes, bases, batch=0) -> tuple:
        """Start forward calls on the case's bases (sent once a case, then kept by the
        worker), each with bases[name][index] = values; receive_many(what this returns)
        gives their outputs. Batch k of a sequence writes its outputs to slot k % 2 of
        shared memory, so the judge can read one batch while the worker computes the
        next; batch 0 starts a sequence, once every earlier batch is done."""
        left = self._begin(case)
        if batch == 0:
            self._settle()
        fresh = {n: a for n, a in bases.items() if self._resident.get(n) is not a}
        self._slot = max(self._slot, _aligned(8 * int(np.prod(case.output_shape()))) * len(changes))
        metas = self._put(fresh)
        if fresh:
            self._resident, self._outputs = {**self._resident, **fresh}, metas["_free"]
        self._ensure(self._outputs + 2 * self._slot)
        metas["_free"] = self._outputs + batch % 2 * self._slot
        metas["_end"] = metas["_free"] + self._slot
        changes = [(index, np.array(values)) for index, values in changes]  # 0-d stays 0-d
        return self._send(("deltas", layer, case, metas, name, changes, left)), left, len(changes)

    def receive_many(self, sent) -> list:
        """The outputs of send_many's forward calls, screened copies."""
        ticket, left, count = sent
        reply = self._receive(ticket, left + GRACE, "forward")
        self.notes.extend(reply["notes"])
        if "error" in reply:
            raise ImplError(reply["error"])
        outs = reply.get("outs")
        if outs is None or len(outs) != count:
            raise ImplError("the worker sent a reply cnncheck cannot read (outputs missing)")
        return [self._get(m, "out") for m in outs]

    def take_notes(self) -> list:
        taken, self.notes = self.notes, []
        with self._lock:
            printed, dropped, self._printed, self._dropped = bytes(self._printed), self._dropped, bytearray(), 0
        if printed:
            _show_printed(self.label, channel.printable(printed.decode("utf-8", "replace"), len(printed)), dropped)
        return taken

    # -- transport ------------------------------------------------------------------------
    def _ensure(self, nbytes: int) -> None:
        if nbytes <= self._size:
            return
        self._size = max(MIN_SHM, 2 * nbytes)
        os.ftruncate(self._shm, self._size)
        self._map = mmap.mmap(self._shm, self._size)
        self._ask(("map", self._size), GRACE + 5, "mapping memory")

    def _put(self, arrays: dict) -> dict:
        """Write the arrays into shared memory; their (dtype, shape, offset), and room after
        them for what comes back."""
        if arrays:  # a batch sent ahead may still be writing its outputs: let it finish
            self._settle()
        need = sum(_aligned(a.nbytes) for a in arrays.values())
        self._ensure(4 * need + MIN_SHM // 4)
        metas, offset = {}, 0
        for name, a in arrays.items():
            a = np.ascontiguousarray(a)
            np.frombuffer(self._map, a.dtype, a.size, offset)[...] = a.reshape(-1)
            metas[name] = {"dtype": a.dtype.str, "shape": list(a.shape), "offset": offset}
            offset += _aligned(a.nbytes)
        metas["_free"] = offset
        return metas

    def _get(self, meta, name: str) -> np.ndarray:
        """The judge's own copy of an array the worker wrote (its description was checked
        against the schema), screened: NaN or inf fail the call whatever the worker said.
        An array too large to send comes as its shape alone (what the judge reports)."""
        dtype, shape, offset, nbytes = meta
        if offset is None:
            return np.broadcast_to(np.zeros(1, dtype), shape)
        a = np.frombuffer(self._map, dtype, nbytes // dtype.itemsize, offset).reshape(shape).copy()
        bad = bad_values(name, a)
        if bad:
            raise ImplError(f"the code returned {bad}")
        return a

    def _ask(self, message, seconds: float, what: str, load=False) -> dict:
        """Send a message, wait up to `seconds` for the reply; a dead or late worker is an
        ImplError (ImplLoadError while loading)."""
        return self._receive(self._send(message, load), seconds, what, load)

    def _settle(self) -> None:
        """Wait for the replies to every message sent (dropping them)."""
        if self._answered < self._tickets:
            self._receive(self._tickets, max(0.0, self._deadline - time.monotonic()) + GRACE, "forward")

    def _send(self, message, load=False) -> int:
        """Send a message with a ticket of its own: its reply comes back with it."""
        self._tickets += 1
        try:
            self._conn.send((self._tickets, message))
        except OSError:
            self._lost("sending", load)
        return self._tickets

    def _receive(self, ticket: int, seconds: float, what: str, load=False) -> dict:
        """The reply to message `ticket`, within `seconds`, checked against the schema.
        Replies to earlier messages nobody waits for any more (a batch sent ahead, then a
        failing case) are dropped. A reply that breaks the schema fails the call, and the
        worker is stopped."""
        from cnncheck.sandbox.impl import ImplLoadError
        error = ImplLoadError if load else ImplError
        end = time.monotonic() + seconds
        try:
            while _spin(self._conn, channel.SPIN_JUDGE) or self._conn.poll(max(0.0, end - time.monotonic())):
                reply = channel.parse(self._conn.recv_bytes(maxlength=channel.MAX_REPLY), self._size)
                self._answered = reply["ticket"]
                if reply["ticket"] == ticket:
                    return reply
        except channel.BadReply as e:
            self.close()
            raise error(f"the worker running {self.label} sent a reply cnncheck cannot read ({e}); stopped") from None
        except (EOFError, OSError):
            self._lost(what, load)
        self.close()  # too late: stopped for good
        limit = self.timeout if not load else seconds
        raise error(f"timed out after {limit:g} s during {what} (the code did not return; stopped)")

    def _lost(self, what: str, load: bool):
        from cnncheck.sandbox.impl import ImplLoadError
        how = self._ended()
        raise (ImplLoadError if load else ImplError)(f"the process running {self.label} ended during {what}: {how}") from None

    def _ended(self) -> str:
        """How the worker ended (a moment's wait: an exiting worker closes its socket a
        moment before it is reaped)."""
        proc = self._proc
        try:
            status = proc.wait(1.0) if proc else 0
        except subprocess.TimeoutExpired:
            status = None
        self.close()
        if status is None:
            return "it closed cnncheck's channel, and was stopped"
        return _status(launch.exit_status(self.level, status))

    def _drain(self, fd: int) -> None:
        """Keep the first output_limit bytes the worker prints; count the rest."""
        with os.fdopen(fd, "rb", buffering=0) as pipe:
            while chunk := pipe.read(65536):
                with self._lock:
                    room = max(0, self.output_limit - len(self._printed))
                    self._printed += chunk[:room]
                    self._dropped += max(0, len(chunk) - room)


class Layer:
    """One layer of a worker's code, with the adapter interface the checker calls."""

    isolated = True

    def __init__(self, worker: Worker, layer: str):
        self.worker, self.layer = worker, layer

    @property
    def label(self) -> str:
        return getattr(self.worker, "labels", {}).get(self.layer, self.worker.label)

    def ready(self, case) -> None:
        """Start the worker for this case (its clock starts too)."""
        self.worker._begin(case)

    def run_forward(self, case, arrays: dict, changed=None):
        return self.worker.call(self.layer, case, "forward", arrays, changed)["out"]

    def send_forward_many(self, case, name: str, changes: list, bases: dict, batch: int = 0):
        """Start forward calls on the bases with bases[name][index] = values for each
        (index, values): one message; receive_forward_many gives the outputs. batch: its
        number in a sequence, each sent before the previous one is read."""
        return self.worker.send_many(self.layer, case, name, changes, bases, batch)

    def receive_forward_many(self, sent) -> list:
        """The outputs, read-only views valid until batch + 2 is sent."""
        return self.worker.receive_many(sent)

    def run_backward(self, case, dout) -> dict:
        return self.worker.call(self.layer, case, "backward", {"dout": dout})

    def take_notes(self) -> list:
        return self.worker.take_notes()


def _status(status: int) -> str:
    """A return code in words (negative: the signal that ended it)."""
    if status < 0:
        sig = -status
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        why = " (out of memory?)" if sig == signal.SIGKILL else ""
        return f"it was killed by signal {name}{why}"
    code = status
    return f"it exited with status {code} (does the code call exit() or os._exit()?)"


def _show_printed(label: str, text: str, dropped: int, lines: int = 20) -> None:
    rows = text.splitlines()
    more = len(rows) - lines
    shown = rows[:lines] + ([f"... {more} more lines"] if more > 0 else [])
    if dropped:
        shown.append(f"... and {dropped} more bytes (limit reached)")
    sys.stderr.write(f"{label} printed:\n" + "".join(f"  | {r}\n" for r in shown))


