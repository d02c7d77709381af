"""Where in the student's files something happened: the line a traceback or warning names."""
from __future__ import annotations

import functools
import inspect
import os
import sysconfig
import traceback

LIBRARY_DIRS = tuple(os.path.realpath(sysconfig.get_paths()[k]) for k in ("stdlib", "purelib", "platlib"))
PACKAGE = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))  # cnncheck itself


def show(path: str) -> str:
    """A path as the user would write it: relative to the working directory when inside it."""
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def is_student(path: str, root: str) -> bool:
    path = os.path.realpath(path)
    return (bool(root) and path.startswith(root + os.sep) and not path.startswith(LIBRARY_DIRS)
            and not path.startswith(PACKAGE + os.sep))


def where(tb, root: str) -> str:
    """' at file.py:12 in fn' for the innermost traceback frame inside the student's files."""
    frames = [f for f in traceback.extract_tb(tb) if is_student(f.filename, root)]
    if not frames:
        return ""
    f = frames[-1]
    return f" at {show(f.filename)}:{f.lineno}" + (f" in {f.name}" if f.name != "<module>" else "")


def one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


def with_hint(text: str) -> str:
    from cnncheck.protocols.hints import error_hint
    hint = error_hint(text)
    return f"{text} (hint: {hint})" if hint else text


@functools.lru_cache(maxsize=256)
def location(fn) -> str:
    """'file.py:12', where fn is defined (cached: messages are composed on every call)."""
    try:
        return f"{show(inspect.getsourcefile(fn))}:{inspect.getsourcelines(fn)[1]}"
    except (OSError, TypeError):
        return getattr(fn, "__module__", "?")
