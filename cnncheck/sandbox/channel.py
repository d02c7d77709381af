"""What may cross the wall from the worker to the judge: JSON replies of a fixed schema.

A reply is an object with an int `ticket` and any of: `error` (text), `notes` (a list of
text), `layers` (a list of layer names), `labels` (text -> text), `arrays` (name -> array
description), `outs` (a list of array descriptions). An array description is
{"dtype": one of DTYPES, "shape": at most 8 ints >= 0, "offset": an int >= 0 or null};
its size is computed with Python ints and must lie inside the shared memory. Text is made
printable (control characters shown as escapes, never executed by a terminal or breaking
XML) and cut to TEXT_LIMIT characters. Anything else is a reply cnncheck cannot read.
"""
from __future__ import annotations

import json
import math
import time

import numpy as np

DTYPES = {np.dtype(t).str: np.dtype(t) for t in ("f2", "f4", "f8", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "?")}
TEXT_LIMIT = 2000
MAX_REPLY = 2**22  # bytes
SPIN_JUDGE, SPIN_WORKER = 0.0005, 0.002  # seconds each side polls before it sleeps


class BadReply(ValueError):
    """The worker sent something that is not a reply of the schema."""


def printable(text, limit: int = TEXT_LIMIT) -> str:
    """Text from the code under check, safe to show anywhere: every control character but
    newline and tab (and the C1 range, and lone surrogates) as a visible escape."""
    text = str(text)[:limit]
    return "".join(c if (c.isprintable() or c in "\n\t") else repr(c)[1:-1] for c in text)


def _text(value) -> str:
    if not isinstance(value, str):
        raise BadReply("text expected")
    return printable(value)


def _texts(value) -> list:
    if not isinstance(value, list):
        raise BadReply("a list expected")
    return [_text(v) for v in value]


def array_meta(meta, size: int) -> tuple:
    """(dtype, shape, offset, nbytes) of a valid description inside `size` bytes of shared memory."""
    if not isinstance(meta, dict) or set(meta) != {"dtype", "shape", "offset"}:
        raise BadReply("an array description needs exactly dtype, shape and offset")
    dtype = DTYPES.get(meta["dtype"]) if isinstance(meta["dtype"], str) else None
    shape, offset = meta["shape"], meta["offset"]
    if dtype is None or not isinstance(shape, list) or len(shape) > 8:
        raise BadReply("bad dtype or shape")
    if not all(type(n) is int and 0 <= n < 2**40 for n in shape):
        raise BadReply("bad shape")
    nbytes = math.prod(shape) * dtype.itemsize  # Python ints: no overflow
    if offset is not None and (type(offset) is not int or offset < 0 or offset + nbytes > size):
        raise BadReply("an array outside the shared memory")
    if offset is None and nbytes > 2**34:
        raise BadReply("an array larger than any case")
    return dtype, tuple(shape), offset, nbytes


def parse(data: bytes, size: int) -> dict:
    """The worker's reply, checked against the schema (BadReply otherwise)."""
    try:
        reply = json.loads(data, parse_constant=_no_constant)
    except (ValueError, RecursionError) as e:
        raise BadReply(str(e)) from None
    if not isinstance(reply, dict) or type(reply.get("ticket")) is not int:
        raise BadReply("not a reply")
    known = {"ticket", "error", "notes", "layers", "labels", "arrays", "outs"}
    if set(reply) - known:
        raise BadReply(f"unknown fields {sorted(set(reply) - known)}")
    out = {"ticket": reply["ticket"], "notes": _texts(reply.get("notes", []))}
    if "error" in reply:
        out["error"] = _text(reply["error"])
    if "layers" in reply:
        out["layers"] = _texts(reply["layers"])
    if "labels" in reply:
        labels = reply["labels"]
        if not isinstance(labels, dict):
            raise BadReply("labels")
        out["labels"] = {_text(k): _text(v) for k, v in labels.items()}
    if "arrays" in reply:
        if not isinstance(reply["arrays"], dict):
            raise BadReply("arrays")
        out["arrays"] = {_text(k): array_meta(m, size) for k, m in reply["arrays"].items()}
    if "outs" in reply:
        if not isinstance(reply["outs"], list):
            raise BadReply("outs")
        out["outs"] = [array_meta(m, size) for m in reply["outs"]]
    return out


def _no_constant(name):
    raise ValueError(f"{name} is not JSON")


# -- what both sides of the wall do alike ------------------------------------------------
def spin(conn, seconds: float) -> bool:
    """Poll without sleeping for a moment: waking a sleeping process costs more, on small
    virtual machines, than a whole small forward call. True when a message came."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        if conn.poll(0):
            return True
    return False


def aligned(n: int) -> int:
    """n rounded up to 64 bytes: where the next array in shared memory starts."""
    return -(-n // 64) * 64


def keep_freed_memory() -> None:
    """Keep freed memory for reuse instead of handing it back to the system at once.

    A dense check calls the layer hundreds of times, each call allocating and freeing
    arrays of a few MB. glibc's default thresholds follow the largest block freed so far,
    so these go back to the system and every call faults them in afresh: about 177,000
    page faults in one conv-32 check, about 40% of its time. Fixed thresholds (blocks up to
    32 MB from the heap, up to 256 MB of it kept free) bring that to none. Set by the
    command line and in every worker; glibc only, elsewhere a no-op."""
    try:
        import ctypes
        libc = ctypes.CDLL(None)
        libc.mallopt(-3, 32 * 2**20)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 256 * 2**20)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass
