"""Output files, written whole or not at all.

Every file cnncheck writes (grade's -o JSON/CSV/table/results.json, --html) goes through
write_atomic: the text is written to a temporary file in the same folder, flushed to disk,
then renamed over the target (os.replace, atomic on POSIX). A reader never sees half a
report, an existing file is never truncated before the new one is complete, and the judge
writes only after every worker is gone, so nothing the checked code started can rewrite it
through an open descriptor.
"""
from __future__ import annotations

import os
import tempfile


def write_atomic(path: str | os.PathLike, text: str) -> None:
    """Write text (UTF-8) to path atomically: a temporary file beside it, then os.replace.
    The new file gets the mode an ordinary open() would give it (0o666 less the umask), or
    the existing file's mode when it replaces one."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _mode(path))
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _mode(path: str) -> int:
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask
