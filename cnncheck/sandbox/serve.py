"""The worker, inside the wall: an exec'd interpreter that loads the code under check and
serves the judge's calls. It imports the protocols and the loader, never the judge.

It reads the judge's messages on its channel (file descriptor given on the command line)
and answers each with one JSON object: array descriptions in the shared memory the judge
gave it (a memfd), events (raised: a one-line message; notes), nothing else. It keeps its
own copies of what the judge sent: whatever the code writes into the arrays it is handed is
a finding ("your backward writes into dout", with the line a read-only rerun points at),
never something sent back.
"""
from __future__ import annotations

import json
import mmap
import os
import resource
import signal
import sys
import tempfile
import time
from multiprocessing.connection import Connection

import numpy as np

from cnncheck.protocols import ImplError, StudentTimeout
from cnncheck.protocols.where import one_line as _one_line
from cnncheck.sandbox.channel import DTYPES, SPIN_WORKER, aligned as _aligned, keep_freed_memory, spin as _spin

LOAD_SECONDS = 60.0


def main(fd: int) -> None:
    """The worker's life: never returns, always ends with os._exit."""
    try:
        conn = Connection(fd)
        sys.stdin = open(os.devnull)
        sys.stdout = open(1, "w", buffering=1, errors="replace", closefd=False)
        sys.stderr = open(2, "w", buffering=1, errors="replace", closefd=False)
        keep_freed_memory()
        signal.signal(signal.SIGINT, signal.default_int_handler)
        state = _State(conn)
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


class _State:
    def __init__(self, conn):
        self.conn = conn
        self.adapters, self.map, self.size, self.shm = {}, None, 0, None
        self.spec = {}
        self.inputs = None  # (the arrays the latest forward was given, as sent)
        self.resident = {}  # name -> (the array the code gets, as the judge sent it)

    def handle(self, message) -> dict:
        kind = message[0]
        try:
            if kind == "load":
                return self.load(message[1])
            if kind == "map":
                self.size = message[1]
                self.map = mmap.mmap(self.shm, self.size)
                return {}
            if kind == "deltas":
                return self.deltas(*message[1:])
            return self.call(*message[1:])
        except BaseException as e:  # noqa: BLE001 - anything the code does is a finding
            return {"error": _one_line(e)}

    def load(self, spec: dict) -> dict:
        from cnncheck.sandbox.impl import ImplLoadError, import_spec
        from cnncheck.sandbox.detect import adapters
        self.spec, self.shm = spec, spec["shm"]
        _lower(resource.RLIMIT_AS, spec.get("memory_limit"))  # after start-up: its own maps count
        _lower(resource.RLIMIT_NPROC, spec.get("processes"))
        try:
            seconds = spec.get("load_seconds", LOAD_SECONDS)
            _alarm(seconds, seconds)
            source = spec["source"]
            if spec.get("text") is not None:  # a notebook's cells, as an export: definitions only
                source = os.path.join(tempfile.mkdtemp(), spec["source"])
                with open(source, "w") as f:
                    f.write(spec["text"])
            module, root = import_spec(source)
            self.adapters = adapters(module, root, str(spec["label"]), **spec.get("load", {}))
        except ImplLoadError as e:
            return {"error": str(e)}
        except StudentTimeout:
            return {"error": f"cannot load {spec['source']}: timed out after {seconds:g} s"}
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
        outs, notes, deadline, reply = [], [], time.monotonic() + seconds, {}
        for index, values in changes:
            given[index] = values
            try:
                reply = self.run(layer, case, "forward", arrays, free, max(0.001, deadline - time.monotonic()), end)
            finally:
                given[index] = sent[index]
            notes += reply.get("notes", [])
            if "error" in reply:
                break
            meta = reply["arrays"]["out"]
            outs.append(meta)
            if meta["offset"] is not None:
                free = meta["offset"] + _aligned(int(np.prod(meta["shape"])) * np.dtype(meta["dtype"]).itemsize)
        # once a batch: the outputs are the code's to choose anyway, its inputs are not the judge's
        wrote = [n for n, (a, s) in self.resident.items() if _changed(a, s)]
        if wrote:
            return {"error": self.wrote(layer, case, "forward", wrote, arrays), "notes": notes}
        if "error" in reply:
            return {"error": reply["error"], "notes": notes}
        return {"outs": outs, "notes": notes}

    def _view(self, m) -> np.ndarray:
        return np.frombuffer(self.map, np.dtype(m["dtype"]), int(np.prod(m["shape"])), m["offset"]).reshape(m["shape"])

    def call(self, layer, case, role, metas, seconds) -> dict:
        """A forward or backward on arrays sent whole. The code gets copies; one it writes
        into fails the call (a backward that writes into what the forward was given too)."""
        free = metas.pop("_free")
        sent = {n: self._view(m).copy() for n, m in metas.items()}
        arrays = {n: a.copy() for n, a in sent.items()}
        reply = self.run(layer, case, role, arrays, free, seconds)
        watched = {**arrays, **(self.inputs[0] if role == "backward" and self.inputs else {})}
        before = {**sent, **(self.inputs[1] if role == "backward" and self.inputs else {})}
        wrote = [n for n in watched if _changed(watched[n], before[n])]
        if wrote:
            return {"error": self.wrote(layer, case, role, wrote, arrays), "notes": reply.get("notes", [])}
        if role == "forward":  # kept: a backward may write into what its cache holds
            self.inputs = (arrays, sent)
        return reply

    def wrote(self, layer, case, role, names, arrays) -> str:
        """The finding for code that wrote into the arrays it was given; where a rerun with
        read-only copies stops, its line."""
        what = " and ".join(names)
        if role == "forward":
            reply = self.run(layer, case, role, {n: _frozen(a) for n, a in arrays.items()}, 0, 5.0, 0)
        else:  # a forward on read-only inputs (its cache may hold them), then backward
            self.run(layer, case, "forward", {n: _frozen(a) for n, a in (self.inputs or ({}, {}))[1].items()}, 0, 5.0, 0)
            reply = self.run(layer, case, role, {n: _frozen(a) for n, a in arrays.items()}, 0, 5.0, 0)
        line = _where(reply.get("error", ""))
        return (f"your {role} writes into {what}, which it was given{line}: a contract fault "
                f"(cnncheck computes with its own copies; copy before writing: {names[0]} = {names[0]}.copy())")

    def run(self, layer, case, role, arrays, free, seconds, end=None) -> dict:
        """The adapter's forward or backward; its arrays written to shared memory from
        `free` (up to `end`)."""
        adapter = self.adapters.get(layer)
        if adapter is None:
            return {"error": f"{self.spec.get('label')} defines no {layer} layer"}
        _alarm(seconds, self.spec.get("timeout", 0))
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
        return {"arrays": self.put(result, free, end), "notes": adapter.take_notes()}

    def put(self, arrays: dict, free: int, end=None) -> dict:
        """Write arrays to shared memory from `free` (up to `end`); their descriptions
        (offset None: too large, its shape alone is sent)."""
        metas = {}
        for name, a in arrays.items():
            a = np.ascontiguousarray(a)
            meta = {"dtype": a.dtype.str, "shape": list(a.shape), "offset": None}
            if end != 0 and free + a.nbytes <= min(self.size, end or self.size):
                np.frombuffer(self.map, a.dtype, a.size, free)[...] = a.reshape(-1)
                meta["offset"] = free
                free += _aligned(a.nbytes)
            metas[name] = meta
        return metas


def _lower(which: int, value) -> None:
    """Lower a resource limit to value (never raise it: a limit set before exec stands)."""
    if value:
        hard = resource.getrlimit(which)[1]
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(which, (value, value))


def _frozen(a: np.ndarray) -> np.ndarray:
    a = a.copy()
    a.flags.writeable = False
    return a


def _where(error: str) -> str:
    """' at file.py:12 in fn' from an adapter's message about a read-only array."""
    if "read-only" not in error or " at " not in error:
        return ""
    return " at " + error.rsplit(" at ", 1)[1].split(" (hint", 1)[0]


def _changed(a: np.ndarray, before: np.ndarray) -> bool:
    """Did the code write into a? (The fast comparison first; NaN only where it differs.)"""
    return not np.array_equal(a, before) and not np.array_equal(a, before, equal_nan=True)


def _alarm(seconds: float, limit: float = 0) -> None:
    """Raise StudentTimeout after `seconds` (0: cancel); its message names the limit."""
    def ring(*_):
        raise StudentTimeout(f"{limit:g} s")
    signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.001) if seconds else 0)
