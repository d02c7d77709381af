"""Broken student files as one table: each is a correct file with one bug, written at test time.

A Bug names the file written (under a test's tmp dir), the correct file it starts from (relative
to tests/), the exact text replaced (it must occur exactly once, so a fixture cannot silently
stop being broken) and what `cnncheck COMMAND --impl FILE` must report: the exit code, the
failing quantities (a set among out/dx/dw/db/contract) or a phrase of the error, and a phrase
of the hint or None. `{path}` in an expected phrase stands for the written file's path.
"""
from dataclasses import dataclass
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
CONV, POOL, GOOD_LAYERS = "students/conv/correct.py", "students/pool/correct.py", "data/assert_layer/good_layers.py"
OVERLAP, STRIDE, PAD0 = "windows overlap", "stride > 1", "pad 0"


@dataclass(frozen=True)
class Bug:
    name: str
    base: str
    old: str
    new: str
    command: str
    expect: "set[str] | str"
    hint: "str | None" = None
    exit: int = 1


def _conv_size(op):  # H' and W' written with another operator or expression
    return ("    H_out = 1 + (H + 2 * pad - HH) // stride\n    W_out = 1 + (W + 2 * pad - WW) // stride\n",
            f"    H_out = {op.format(X='H', K='HH')}\n    W_out = {op.format(X='W', K='WW')}\n")


DX_ADD = "dx_pad[:, :, hs:hs + HH, ws:ws + WW] += np.tensordot(dout[:, :, i, j], w, axes=([1], [0]))"
UNPAD = "    dx = dx_pad[:, :, pad:pad + H, pad:pad + W]\n"
BUGS = [
    # -- conv: exit 1, the checker catches the bug -------------------------------------------
    Bug("conv/assign_not_add.py", CONV, DX_ADD, DX_ADD.replace("+=", "="), "conv", {"dx"}, OVERLAP),
    Bug("conv/stride_backward.py", CONV, "hs, ws = i * stride, j * stride", "hs, ws = i, j",
        "conv", {"dx", "dw"}, STRIDE),
    Bug("conv/unpad_slice.py", CONV, UNPAD, "    dx = dx_pad[:, :, pad:-pad, pad:-pad]\n",
        "conv", "dx has shape (2, 3, 0, 0)", PAD0),
    Bug("conv/unpad_hard_coded.py", CONV, UNPAD, "    dx = dx_pad[:, :, 1:-1, 1:-1]\n",
        "conv", "has shape", "pad is not 1"),
    Bug("conv/unpad_if.py", CONV, UNPAD, "    if pad > 0:\n        dx = dx_pad[:, :, pad:-pad, pad:-pad]\n",
        "conv", "returned dx as NoneType", PAD0),
    Bug("conv/width_from_height.py", CONV, "W_out = 1 + (W + 2", "W_out = 1 + (H + 2",
        "conv", {"out"}, "non-square inputs"),
    Bug("conv/py2_division.py", CONV, *_conv_size("1 + ({X} + 2 * pad - {K}) / stride"),
        "conv", "'float' object cannot be interpreted", "use `//`"),
    Bug("conv/np_int.py", CONV, *_conv_size("np.int(1 + ({X} + 2 * pad - {K}) / stride)"),
        "conv", "module 'numpy' has no attribute 'int'", "np.int was removed"),
    Bug("conv/np_lib_pad.py", CONV, "    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), 'constant')\n"
        "    out = ", "    x_pad = np.lib.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), 'constant')\n    out = ",
        "conv", "'numpy.lib' has no attribute 'pad'", "use np.pad"),
    Bug("conv/xrange.py", CONV, "    for i in range(H_out):\n        for j in range(W_out):\n            window",
        "    for i in xrange(H_out):\n        for j in xrange(W_out):\n            window",
        "conv", "name 'xrange' is not defined", "use range"),
    Bug("conv/db_times_n.py", CONV, "    db = np.sum(dout, axis=(0, 2, 3))\n",  # N times too large
        "    db = np.zeros_like(b)\n    for n in range(N):\n        db += np.sum(dout, axis=(0, 2, 3))\n",
        "conv", {"db"}, "db is N times the numerical gradient everywhere (N, the batch size)"),
    Bug("conv/dw_flipped.py", CONV, "return dx, dw, db", "return dx, dw[:, :, ::-1, ::-1], db",  # a convolution's flip
        "conv", {"dw"}, "dw: each window adds `x_pad window * dout[n, f, i, j]`"),
    Bug("conv/no_bias.py", CONV, " + b\n", "\n", "conv", {"out", "db"}, "does not change when b does"),
    Bug("conv/missing_plus_one.py", CONV, *_conv_size("({X} + 2 * pad - {K}) // stride"), "conv", {"out"}),
    Bug("conv/returns_none.py", CONV, "    return dx, dw, db\n", "",
        "conv", "conv_backward_naive ({path}:22) returned None"),
    Bug("conv/wrong_count.py", CONV, "return dx, dw, db", "return dx, dw",
        "conv", "returned a tuple of 2, expected a tuple (dx, dw, db)"),
    Bug("conv/raises.py", CONV, DX_ADD, DX_ADD.replace("np.tensordot(dout[:, :, i, j], w, axes=([1], [0]))",
                                                       "dout[:, :, i, j] * w"),  # w instead of w[f]
        "conv", "ValueError: operands could not be broadcast"),
    Bug("conv/modifies_dout.py", CONV, "    return dx, dw, db\n",
        "    dout *= 0  # done with it\n    return dx, dw, db\n", "conv", {"contract"}),
    # a dw that adds the window once per output, without dout; forward, dx and db are right
    Bug("broken_conv.py", GOOD_LAYERS, "dw[f] += xp[n, :, hs:hs + HH, ws:ws + WW] * dout[n, f, i, j]",
        "dw[f] += xp[n, :, hs:hs + HH, ws:ws + WW]  # bug: missing * dout[n, f, i, j]", "conv", {"dw"},
        "dw does not follow dout: is `* dout[...]` missing from its update"),
    # -- conv: exit 2, the file cannot load ---------------------------------------------------
    Bug("conv/py2_print.py", CONV, "    cache = (x, w, b, conv_param)\n",
        "    print \"out shape\", out.shape\n    cache = (x, w, b, conv_param)\n", "conv",
        "py2_print.py:18: Missing parentheses in call to 'print'. Did you mean print(...)? "
        "(hint: Python 2 print statement: use print(...))", exit=2),
    Bug("conv/missing_module.py", CONV, "import numpy as np\n",
        "import numpy as np\nfrom im2col import im2col_indices\n", "conv",
        "No module named 'im2col' at {path}:3", exit=2),
    Bug("conv/raises_at_import.py", CONV, "import numpy as np\n",
        "import numpy as np\n\nWEIGHTS = np.load('pretrained_weights.npy')\n", "conv", "FileNotFoundError", exit=2),
    # -- max pool -----------------------------------------------------------------------------
    Bug("pool/assign_not_add.py", POOL, "dx[n, c, hs + r, ws + s] +=", "dx[n, c, hs + r, ws + s] =",
        "pool", {"dx"}, OVERLAP),
    Bug("pool/stride_backward.py", POOL, "hs, ws = i * stride, j * stride", "hs, ws = i, j", "pool", {"dx"}, STRIDE),
    Bug("pool/argmax_square.py", POOL, "np.argmax(window), window.shape)", "np.argmax(window), (ph, ph))",
        "pool", "out of bounds", "non-square kernels or pools"),
    Bug("pool/py2_division.py", POOL, "    H_out = 1 + (H - ph) // stride\n    W_out = 1 + (W - pw) // stride\n",
        "    H_out = 1 + (H - ph) / stride\n    W_out = 1 + (W - pw) / stride\n",
        "pool", "'float' object cannot be interpreted", "use `//`"),
    Bug("pool/off_by_one_window.py", POOL, "i * stride + ph,", "i * stride + ph - 1,", "pool", {"out"},
        "out differs from the reference: each output is the max of its window"),
    Bug("pool/returns_none.py", POOL, "    return dx\n", "", "pool", "returned None, expected the array dx"),
    Bug("pool/nan_rows.py", POOL, "    out = np.zeros((N, C, H_out, W_out))\n    for i in range(H_out):\n",
        "    out = np.full((N, C, H_out, W_out), np.nan)\n    for i in range(H_out - 1):\n",
        "pool", "returned out with 24 NaN"),
    Bug("pool/modifies_x.py", POOL, "    dx = np.zeros_like(x)\n", "    dx = x\n    dx[:] = 0\n",
        "pool", "your backward writes into x"),
    # -- for the timeout test: a while loop that never ends -------------------------------
    Bug("conv/infinite_loop.py", CONV, "    for i in range(H_out):\n        for j in range(W_out):\n            hs",
        "    i = 0\n    while i < H_out:\n        for j in range(W_out):\n            hs", "conv",
        "conv_backward_naive timed out after 0.5 s at {path}:"),  # with --timeout 0.5
]
BY_NAME = {b.name: b for b in BUGS}


@dataclass(frozen=True)
class Bugs:
    """A correct file with one bug or several at once: `edits` are (old, new) substitutions,
    each of text occurring exactly once. The report must give each phrase of `hints` in the hint
    of some failing case, and no phrase of `never` anywhere (hints and check messages)."""

    name: str
    base: str
    edits: tuple
    command: str
    hints: tuple
    never: tuple = ()


POOL_ADD = "dx[n, c, hs + r, ws + s] += dout[n, c, i, j]"
DW_WINDOW = "window = x_pad[:, :, hs:hs + HH, ws:ws + WW]"
FORWARD_PAD = "    x_pad = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)), 'constant')\n    out = "
TIES = ("tied maxima", "shared among")  # a message about ties, where the inputs hold none
MANY = [
    # two bugs: an unpad that empties dx at pad 0, and the stride left out of dw's window
    Bugs("conv/unpad_and_dw_stride.py", CONV, ((UNPAD, "    dx = dx_pad[:, :, pad:-pad, pad:-pad]\n"),
                                               (DW_WINDOW, "window = x_pad[:, :, i:i + HH, j:j + WW]")),
         "conv", ("dx is empty at pad 0", "fails only at stride > 1, in dw")),
    # two bugs in one gradient: `=` for `+=` and the stride left out, both in dx
    Bugs("pool/assign_and_stride.py", POOL, ((POOL_ADD, POOL_ADD.replace("+=", "=")),
                                             ("hs, ws = i * stride, j * stride", "hs, ws = i, j")),
         "pool", ("a later window overwrites", "is the stride left out, `i` for `i * stride`?"), TIES),
    # two bugs in two layers' worth of code: the dx update into a local name, db N times
    Bugs("conv/dx_local_and_db_factor.py", CONV, ((DX_ADD, "dxw = " + DX_ADD.replace(" +=", " +")),
                                                  ("    db = np.sum(dout, axis=(0, 2, 3))\n",
                                                   "    db = N * np.sum(dout, axis=(0, 2, 3))\n")),
         "conv", ("dx is all zeros", "db is N times the numerical gradient")),
    # one bug each
    Bugs("pool/assign_not_add_random.py", POOL, ((POOL_ADD, POOL_ADD.replace("+=", "=")),),
         "pool", ("must accumulate (`+=`): a later window overwrites",), TIES),
    Bugs("pool/argmax_offset_left_out.py", POOL, ((POOL_ADD, POOL_ADD.replace("hs + r, ws + s", "hs, ws")),),
         "pool", ("reaches dx in full, but at the wrong element",), TIES),
    Bugs("pool/dx_local.py", POOL, ((POOL_ADD, "d = " + POOL_ADD.replace(" +=", " +")),),
         "pool", ("dx is all zeros: is the gradient written into a local name",), ("backward assigns",)),
    Bugs("conv/forward_ignores_x.py", CONV, ((FORWARD_PAD, FORWARD_PAD.replace("np.pad(x,", "np.pad(np.ones_like(x),")),),
         "conv", ("does not change when x does",), ("backward",)),
    Bugs("conv/dw_transposed.py", CONV, (("return dx, dw, db", "return dx, dw.transpose(0, 1, 3, 2), db"),),
         "conv", ("fails only with non-square kernels or pools, in dw: height and width mixed up",)),
    Bugs("conv/width_from_height.py", CONV, (("W_out = 1 + (W + 2", "W_out = 1 + (H + 2"),),
         "conv", ("fails only on non-square inputs, in the forward",), ("backward",)),
]
MANY_BY_NAME = {b.name: b for b in MANY}


def write_bugs(name, directory):
    """Write the file `name` of MANY under `directory`; return its path as a str."""
    bugs = MANY_BY_NAME[name]
    text = (TESTS / bugs.base).read_text()
    for old, new in bugs.edits:
        assert text.count(old) == 1, f"{name}: {old!r} occurs {text.count(old)} times"
        text = text.replace(old, new)
    path = Path(directory) / bugs.name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def write_bug(name, directory):
    """Write bug `name` (a key of BY_NAME) under `directory`; return its path as a str."""
    bug = BY_NAME[name]
    text = (TESTS / bug.base).read_text()
    assert text.count(bug.old) == 1, f"{name}: {bug.old!r} occurs {text.count(bug.old)} times in {bug.base}"
    path = Path(directory) / bug.name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.replace(bug.old, bug.new))
    return str(path)
