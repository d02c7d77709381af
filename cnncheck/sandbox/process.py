"""The worker: a process that runs the code under check, apart from the judge.

The judge (everything else in cnncheck) never imports or calls the code it checks. A
`Worker` forks a process that loads the user's file, finds its layers (protocols.detect)
and hosts their protocol adapters; the judge sends it arrays and gets arrays back, and
computes every numerical gradient, verdict and report itself, with its own numpy.

- Arrays cross through a shared-memory file (judge -> worker: the inputs; worker -> judge:
  out or the gradients), control messages through a pipe: pickled from the judge, JSON from
  the worker (the judge never unpickles what the worker sends). Every reply is validated
  (dtype, shape, bounds) and copied before use.
- The worker's file descriptors 1 and 2 are a pipe the judge drains: what the code prints
  never reaches the judge's stdout; it is shown on stderr, folded when long.
- Limits are set before the code runs: address space (`memory_limit`), wall time per case
  (`timeout`: an alarm inside the worker, then SIGKILL after a grace period), and the
  captured output kept (`output_limit`).
- Whatever the worker does is a finding about the case at hand (an ImplError): an exception
  (SystemExit and KeyboardInterrupt included), an exit with any status, a signal, a timeout.
  The next case gets a fresh worker.
"""
from __future__ import annotations

import json
import mmap
import os
import resource
import signal
import sys
import tempfile
import threading
import time
import weakref
from multiprocessing.connection import Pipe

import numpy as np

from cnncheck.protocols import ImplError, StudentTimeout

# seconds the judge, then the worker, polls before it sleeps: long enough for a small call's
# reply or the judge's next message, short enough not to take a core from a long forward
SPIN_JUDGE, SPIN_WORKER = 0.0005, 0.002
GRACE = 2.0  # seconds past a case's timeout before a worker that ignores its alarm is killed
DEFAULT_TIMEOUT = 60.0
DEFAULT_MEMORY = 4 * 2**30
DEFAULT_OUTPUT = 64 * 2**10
MIN_SHM = 16 * 2**20
DTYPES = {np.dtype(t).str: np.dtype(t) for t in ("f2", "f4", "f8", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "?")}
LOAD_SECONDS = 60.0  # loading a file: its imports may be slow, never endless
_live = weakref.WeakSet()  # every worker this process started, for shutdown()


def _prctl_libc():
    try:
        import ctypes
        return ctypes.CDLL(None, use_errno=True)
    except (OSError, AttributeError):
        return None


def keep_freed_memory() -> None:
    """Keep freed memory for reuse instead of handing it back to the system at once.

    A dense check calls the layer hundreds of times, each call allocating and freeing
    arrays of a few MB. glibc's default thresholds follow the largest block freed so far,
    so these go back to the system and every call faults them in afresh: about 177,000
    page faults in one conv-32 check, about 40% of its time. Fixed thresholds (blocks up to
    32 MB from the heap, up to 256 MB of it kept free) bring that to none. Set by the
    command line and in every worker; glibc only, elsewhere a no-op."""
    libc = _prctl_libc()
    if libc is not None and hasattr(libc, "mallopt"):
        libc.mallopt(-3, 32 * 2**20)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 256 * 2**20)  # M_TRIM_THRESHOLD


def _one_blas_thread() -> None:
    """In the worker: OpenBLAS on one thread. The judge reads one batch of outputs on one
    core while the worker computes the next, so a second BLAS thread would only contend
    for it (dense conv-32 through the worker: 1.35x-1.41x the in-process check with two
    threads, 1.25x-1.26x with one). Best effort: other BLAS libraries are left as they are."""
    try:
        import ctypes
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in line.split()[-1]}
        for path in paths:
            lib = ctypes.CDLL(path)
            for name in ("scipy_openblas_set_num_threads64_", "openblas_set_num_threads64_",
                         "openblas_set_num_threads"):
                if hasattr(lib, name):
                    getattr(lib, name)(1)
                    break
    except (OSError, IndexError):
        pass


def _guard_judge() -> None:
    """Make the judge's /proc entries (its open files, its memory) closed to processes
    without CAP_SYS_PTRACE: a worker cannot write into the judge's stdout through
    /proc/<judge>/fd/1. (Linux; elsewhere a no-op.)"""
    libc = _prctl_libc()
    if libc is not None and hasattr(libc, "prctl"):
        libc.prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE, 0


def _drop_privileges() -> None:
    """In the worker: a user namespace of its own, so that even as root it holds no
    capability over the judge's (CAP_SYS_PTRACE among them). Best effort: where user
    namespaces are disabled the worker keeps the judge's user, and the judge's own guard
    (not dumpable) still closes /proc/<judge> to unprivileged users."""
    libc = _prctl_libc()
    if libc is not None and hasattr(libc, "unshare"):
        libc.unshare(0x10000000)  # CLONE_NEWUSER


def shutdown() -> None:
    """Stop every worker: the judge decides the exit status only after all are gone."""
    for w in list(_live):
        w.close()


# -- the judge's side ------------------------------------------------------------------
class Worker:
    """The worker process for one source of code, started on first use (and again after
    a case ended it). In a forked judge process a worker of its own is started.

    source: a path or module name to load there; or objects: {layer: adapter} built in
    this process from a notebook's functions or classes (inherited by the fork, never
    called here). load: keyword arguments for protocols.detect.adapters.
    """

    isolated = True

    def __init__(self, source=None, *, objects=None, load=None, label="",
                 timeout=DEFAULT_TIMEOUT, memory_limit=DEFAULT_MEMORY, output_limit=DEFAULT_OUTPUT):
        self.source, self.objects, self.load_args = source, objects, dict(load or {})
        self.label = label or str(source)
        self.timeout, self.memory_limit, self.output_limit = timeout, memory_limit, output_limit
        self.layers: list[str] = []
        self.notes: list[str] = []
        self._pid = self._owner = None
        self._case = None
        self._deadline = None
        self._printed = bytearray()
        self._dropped = 0
        self._lock = threading.Lock()

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> list[str]:
        """Fork the worker and load the code; the layers it defines. Raises ImplLoadError."""
        from cnncheck.sandbox.impl import ImplLoadError
        self.close()
        self._resident = {}
        self._shm_file = tempfile.TemporaryFile(dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
        self._size = self._tickets = self._answered = 0
        self._conn, child = Pipe()
        out_r, out_w = os.pipe()
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        _guard_judge()
        pid = os.fork()
        if pid == 0:  # the worker: never returns
            self._conn.close()
            os.close(out_r)
            _serve(child, out_w, self)
        child.close()
        os.close(out_w)
        self._pid, self._owner = pid, os.getpid()
        _live.add(self)
        threading.Thread(target=self._drain, args=(out_r,), daemon=True).start()
        reply = self._ask(("load",), LOAD_SECONDS, "loading", load=True)
        if "error" in reply:
            self.close()
            raise ImplLoadError(str(reply["error"]))
        self.layers = [str(x) for x in reply.get("layers", [])]
        self.notes.extend(str(n) for n in reply.get("notes", []))
        self.labels = {str(k): str(v) for k, v in reply.get("labels", {}).items()}
        self._ensure(MIN_SHM // 2)  # mapped now, so a case's first (timed) call is a plain call
        return self.layers

    def close(self) -> None:
        if self._pid and self._owner == os.getpid():
            try:
                os.kill(self._pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self._reap()
            self._conn.close()
            self._shm_file.close()
        self._pid = None

    def _reap(self) -> None:
        try:
            os.waitpid(self._pid, 0)
        except ChildProcessError:
            pass

    def _alive(self) -> bool:
        return bool(self._pid) and self._owner == os.getpid()

    # -- the adapter's interface, as the checker calls it --------------------------------
    def for_layer(self, layer: str) -> "Layer":
        return Layer(self, layer)

    def call(self, layer, case, role, arrays: dict, changed=None):
        """Run forward (role "forward": arrays are the inputs) or backward (arrays: dout)
        in the worker; the reply's arrays, copied. In-place changes the code made to its
        inputs are copied back into `arrays`, as they would have been in this process.

        changed: (name, index, bases), arrays[name] equal to bases[name] but at index and the
        others bases: the worker keeps the bases (sent once a case) and gets the change alone;
        out comes back as a read-only view of shared memory, valid until the next call."""
        if changed is not None:
            return self._call_changed(layer, case, arrays, *changed)
        left = self._begin(case)
        inputs = getattr(self, "_inputs", {}) if role == "backward" else {}
        metas = self._put({**arrays, **{f"input:{n}": a for n, a in inputs.items()}})
        reply = self._ask(("call", layer, case, role, metas, left), left + GRACE, role)
        self.notes.extend(str(n) for n in reply.get("notes", []))
        if "error" in reply:
            raise ImplError(str(reply["error"]))
        for name in reply.get("mutated", []):
            if name in arrays:
                np.copyto(arrays[name], self._get(metas[name]))
        got = {str(k): self._get(v) for k, v in reply["arrays"].items()}
        if role == "forward":
            self._inputs = arrays  # what a backward that writes into its cache would change
        for name in [k for k in got if k.startswith("input:")]:  # backward changed a forward input
            value = got.pop(name)
            target = getattr(self, "_inputs", {}).get(name[6:])
            if target is not None and target.shape == value.shape:
                np.copyto(target, value)
        return got

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
        """The outputs of send_many's forward calls, as read-only views of shared memory,
        valid until the worker writes that slot again."""
        ticket, left, count = sent
        reply = self._receive(ticket, left + GRACE, "forward")
        self.notes.extend(str(n) for n in reply.get("notes", []))
        if "error" in reply:
            raise ImplError(str(reply["error"]))
        outs = reply.get("outs")
        if not isinstance(outs, list) or len(outs) != count:
            raise ImplError("the worker sent a reply cnncheck cannot read")
        return [self._get(m, view=True) for m in outs]

    def take_notes(self) -> list:
        taken, self.notes = self.notes, []
        with self._lock:
            printed, dropped, self._printed, self._dropped = bytes(self._printed), self._dropped, bytearray(), 0
        if printed:
            _show_printed(self.label, printed.decode("utf-8", "replace"), dropped)
        return taken

    # -- transport ------------------------------------------------------------------------
    def _ensure(self, nbytes: int) -> None:
        if nbytes <= self._size:
            return
        self._size = max(MIN_SHM, 2 * nbytes)
        os.ftruncate(self._shm_file.fileno(), self._size)
        self._map = mmap.mmap(self._shm_file.fileno(), self._size)
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

    def _get(self, meta, view=False) -> np.ndarray:
        """A validated copy of an array the worker wrote (a zero-size stand-in when it was
        too large to send: its shape is what the judge reports)."""
        try:
            dtype = DTYPES[meta["dtype"]]
            shape = tuple(int(n) for n in meta["shape"])
            if len(shape) > 8 or min(shape, default=1) < 0:
                raise ValueError
        except (KeyError, TypeError, ValueError):
            raise ImplError(f"the worker sent an array description cnncheck cannot read: {str(meta)[:80]}")
        if meta.get("offset") is None:
            return np.broadcast_to(np.zeros(1, dtype), shape)
        offset, count = int(meta["offset"]), int(np.prod(shape, dtype=np.int64))
        if offset < 0 or offset + count * dtype.itemsize > self._size:
            raise ImplError("the worker sent an array outside its shared memory")
        a = np.frombuffer(self._map, dtype, count, offset).reshape(shape)
        if view:
            a.flags.writeable = False
            return a
        return a.copy()

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
        """The reply to message `ticket`, within `seconds`. Replies to earlier messages
        nobody waits for any more (a batch sent ahead, then a failing case) are dropped."""
        from cnncheck.sandbox.impl import ImplLoadError
        error = ImplLoadError if load else ImplError
        end = time.monotonic() + seconds
        try:
            while _spin(self._conn, SPIN_JUDGE) or self._conn.poll(max(0.0, end - time.monotonic())):
                reply = json.loads(self._conn.recv_bytes(maxlength=2**22))
                if not (isinstance(reply, dict) and isinstance(reply.get("ticket"), int)):
                    raise ValueError("not a reply")
                self._answered = reply["ticket"]
                if reply["ticket"] == ticket:
                    return reply
        except (EOFError, OSError, ValueError):
            self._lost(what, load)
        self.close()  # too late: stopped for good
        limit = self.timeout if not load else seconds
        raise error(f"timed out after {limit:g} s during {what} (the code did not return; stopped)")

    def _lost(self, what: str, load: bool):
        from cnncheck.sandbox.impl import ImplLoadError
        how = self._ended()
        raise (ImplLoadError if load else ImplError)(f"the process running {self.label} ended during {what}: {how}") from None

    def _ended(self) -> str:
        """How the worker ended; one that is still running broke the reply protocol (it
        wrote on the judge's pipe) and is stopped."""
        status = 0
        for _ in range(100):  # an exiting worker closes its pipe a moment before it is reaped
            pid, status = os.waitpid(self._pid, os.WNOHANG)
            if pid:
                break
            time.sleep(0.01)
        else:
            self.close()
            return "it wrote something other than a reply on cnncheck's pipe, and was stopped"
        self._pid = None
        self._conn.close()
        self._shm_file.close()
        return _status(status)

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
    """A wait status in words."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        why = " (out of memory?)" if sig == signal.SIGKILL else ""
        return f"it was killed by signal {name}{why}"
    code = os.WEXITSTATUS(status)
    return f"it exited with status {code} (does the code call exit() or os._exit()?)"


def _aligned(n: int) -> int:
    return -(-n // 64) * 64


def _show_printed(label: str, text: str, dropped: int, lines: int = 20) -> None:
    rows = text.splitlines()
    more = len(rows) - lines
    shown = rows[:lines] + ([f"... {more} more lines"] if more > 0 else [])
    if dropped:
        shown.append(f"... and {dropped} more bytes (limit reached)")
    sys.stderr.write(f"{label} printed:\n" + "".join(f"  | {r}\n" for r in shown))


# -- the worker's side --------------------------------------------------------------------
def _serve(conn, out_fd: int, spec: Worker) -> None:
    """The worker's loop: never returns, always ends with os._exit."""
    try:
        os.dup2(out_fd, 1)
        os.dup2(out_fd, 2)
        os.close(out_fd)
        sys.stdout = open(1, "w", buffering=1, errors="replace", closefd=False)
        sys.stderr = open(2, "w", buffering=1, errors="replace", closefd=False)
        sys.stdin = open(os.devnull)
        os.setpgrp()
        _drop_privileges()
        keep_freed_memory()
        _one_blas_thread()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if spec.memory_limit:
            resource.setrlimit(resource.RLIMIT_AS, (spec.memory_limit, spec.memory_limit))
        state = _WorkerState(conn, spec)
        while True:
            try:
                _spin(conn, SPIN_WORKER)
                ticket, message = conn.recv()
            except (EOFError, OSError):
                break
            reply = {**state.handle(message), "ticket": ticket}
            conn.send_bytes(json.dumps(reply).encode())
    except BaseException:  # noqa: BLE001 - the judge hears of it as an ended worker
        pass
    os._exit(0)


class _WorkerState:
    def __init__(self, conn, spec: Worker):
        self.conn, self.spec = conn, spec
        self.adapters, self.map, self.size = {}, None, 0
        self.inputs = None  # the arrays the latest forward was given
        self.resident = {}  # name -> (the array the code gets, as the judge sent it)
        self.results = []

    def handle(self, message) -> dict:
        kind = message[0]
        try:
            if kind == "load":
                return self.load()
            if kind == "map":
                self.size = message[1]
                self.map = mmap.mmap(self.spec._shm_file.fileno(), self.size)
                return {}
            if kind == "deltas":
                return self.deltas(*message[1:])
            return self.call(*message[1:])
        except BaseException as e:  # noqa: BLE001 - anything the code does is a finding
            return {"error": _one_line(e)}

    def load(self) -> dict:
        from cnncheck.sandbox.impl import ImplLoadError, import_spec
        from cnncheck.sandbox.detect import adapters
        if self.spec.objects is not None:
            self.adapters = dict(self.spec.objects)
        else:
            try:
                _alarm(LOAD_SECONDS, LOAD_SECONDS)
                module, root = import_spec(self.spec.source)
                self.adapters = adapters(module, root, str(self.spec.source), **self.spec.load_args)
            except ImplLoadError as e:
                return {"error": str(e)}
            except StudentTimeout:
                return {"error": f"cannot load {self.spec.source}: timed out after {LOAD_SECONDS:g} s"}
            finally:
                _alarm(0)
        notes = [n for a in self.adapters.values() for n in a.take_notes()]
        return {"layers": list(self.adapters), "notes": list(dict.fromkeys(notes)),
                "labels": {k: a.label for k, a in self.adapters.items()}}

    def deltas(self, layer, case, metas, name, changes, seconds) -> dict:
        """Forward calls on the resident bases (new ones in metas), each with
        arrays[name][index] = values, undone after the call; outputs one after another."""
        free, end = metas.pop("_free"), metas.pop("_end")
        for n, m in metas.items():
            base = self._view(m).copy()
            self.resident[n] = (base, base.copy())  # (what the code gets, as sent)
        arrays = {n: given for n, (given, _) in self.resident.items()}
        given, sent = self.resident[name]
        outs, notes, deadline = [], [], time.monotonic() + seconds
        for index, values in changes:
            given[index] = values
            try:
                reply = self.run(layer, case, "forward", arrays, free, max(0.001, deadline - time.monotonic()), end)
            finally:
                given[index] = sent[index]
            notes += reply.get("notes", [])
            if "error" in reply:
                return {"error": reply["error"], "notes": notes}
            meta = reply["arrays"]["out"]
            outs.append(meta)
            if meta["offset"] is not None:
                free = meta["offset"] + _aligned(int(np.prod(meta["shape"])) * np.dtype(meta["dtype"]).itemsize)
        return {"outs": outs, "notes": notes}

    def _view(self, m) -> np.ndarray:
        return np.frombuffer(self.map, np.dtype(m["dtype"]), int(np.prod(m["shape"])), m["offset"]).reshape(m["shape"])

    def call(self, layer, case, role, metas, seconds) -> dict:
        """A forward or backward on arrays sent whole; changes the code makes to them are
        reported (and written back for the judge to copy)."""
        free = metas.pop("_free")
        sent = {n: self._view(m) for n, m in metas.items()}
        pristine = {n[6:]: sent.pop(n) for n in list(sent) if n.startswith("input:")}
        arrays = {n: a.copy() for n, a in sent.items()}
        reply = self.run(layer, case, role, arrays, free, seconds)
        if "error" in reply:
            return reply
        reply["mutated"] = [n for n in arrays if _changed(arrays[n], sent[n])]
        for n in reply["mutated"]:
            sent[n][...] = arrays[n]
        if role == "forward":  # kept: a backward may write into what its cache holds
            self.inputs = arrays
        elif self.inputs:  # the judge sent the forward's inputs as they were
            changed = {f"input:{n}": a for n, a in self.inputs.items() if n in pristine and _changed(a, pristine[n])}
            reply["arrays"].update(self.put(changed, free + sum(_aligned(a.nbytes) for a in self.results)))
        return reply

    def run(self, layer, case, role, arrays, free, seconds, end=None) -> dict:
        """The adapter's forward or backward; its arrays written to shared memory from
        `free` (up to `end`)."""
        adapter = self.adapters.get(layer)
        if adapter is None:
            return {"error": f"{self.spec.label} defines no {layer} layer"}
        _alarm(seconds, self.spec.timeout)
        try:
            if role == "forward":
                result = {"out": adapter.run_forward(case, arrays)}
            else:
                result = adapter.run_backward(case, arrays["dout"])
        except ImplError as e:
            return {"error": str(e), "notes": adapter.take_notes()}
        finally:
            _alarm(0)
        bad = [f"{n} has dtype {a.dtype}, expected a float array" for n, a in result.items()
               if np.asarray(a).dtype.str not in DTYPES]
        if bad:
            return {"error": bad[0], "notes": adapter.take_notes()}
        self.results = [np.ascontiguousarray(a) for a in result.values()]
        return {"arrays": self.put(dict(zip(result, self.results)), free, end), "notes": adapter.take_notes()}

    def put(self, arrays: dict, free: int, end=None) -> dict:
        """Write arrays to shared memory from `free` (up to `end`); their descriptions
        (offset None: too large, its shape alone is sent)."""
        metas = {}
        for name, a in arrays.items():
            a = np.ascontiguousarray(a)
            meta = {"dtype": a.dtype.str, "shape": list(a.shape), "offset": None}
            if free + a.nbytes <= min(self.size, end or self.size):
                np.frombuffer(self.map, a.dtype, a.size, free)[...] = a.reshape(-1)
                meta["offset"] = free
                free += _aligned(a.nbytes)
            metas[name] = meta
        return metas


def _spin(conn, seconds: float) -> bool:
    """Poll without sleeping for a moment: waking a sleeping process costs more, on small
    virtual machines, than a whole small forward call. True when a message came."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        if conn.poll(0):
            return True
    return False


def _changed(a: np.ndarray, before: np.ndarray) -> bool:
    """Did the code write into a? (The fast comparison first; NaN only where it differs.)"""
    return not np.array_equal(a, before) and not np.array_equal(a, before, equal_nan=True)


def _alarm(seconds: float, limit: float = 0) -> None:
    """Raise StudentTimeout in the worker after `seconds` (0: cancel); its message names
    the limit that ran out."""
    def ring(*_):
        raise StudentTimeout(f"{limit:g} s")
    signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.001) if seconds else 0)


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__
