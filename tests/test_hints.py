"""Messages for habits seen in real CS231n student files, through `cnncheck ... --impl FILE`.

Each test writes a small student file (a correct one below, or that file with one habit put
in) and checks the hint, note or wording the CLI gives, and that the correct file gets none
of them. The files are written for these tests; none comes from a student.
"""
import json

import pytest
from click.testing import CliRunner

from cnncheck.cli import main
from cnncheck.diagnose import python2_habits

POOL = '''import numpy as np


def max_pool_forward_naive(x, pool_param):
    ph, pw, stride = pool_param['pool_height'], pool_param['pool_width'], pool_param['stride']
    N, C, H, W = x.shape
    out_h = 1 + (H - ph) // stride
    out_w = 1 + (W - pw) // stride
    flat = np.zeros((N, C, out_h * out_w))
    for i in range(out_h):
        for j in range(out_w):
            flat[:, :, i * out_w + j] = x[:, :, i * stride:i * stride + ph, j * stride:j * stride + pw].max(axis=(2, 3))
    out = flat.reshape(N, C, out_h, out_w)
    return out, (x, pool_param)


def max_pool_backward_naive(dout, cache):
    x, pool_param = cache
    ph, pw, stride = pool_param['pool_height'], pool_param['pool_width'], pool_param['stride']
    N, C, out_h, out_w = dout.shape
    dx = np.zeros_like(x)
    for n in range(N):
        for c in range(C):
            for i in range(out_h):
                for j in range(out_w):
                    window = x[n, c, i * stride:i * stride + ph, j * stride:j * stride + pw]
                    r, s = np.unravel_index(np.argmax(window), window.shape)
                    dx[n, c, i * stride + r, j * stride + s] += dout[n, c, i, j]
    return dx
'''

CONV = '''import numpy as np


def conv_forward_naive(x, w, b, conv_param):
    stride, pad = conv_param['stride'], conv_param['pad']
    N, C, H, W = x.shape
    F, _, HH, WW = w.shape
    out_h = 1 + (H + 2 * pad - HH) // stride
    out_w = 1 + (W + 2 * pad - WW) // stride
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    flat = np.zeros((N, F, out_h * out_w))
    for i in range(out_h):
        for j in range(out_w):
            window = xp[:, :, i * stride:i * stride + HH, j * stride:j * stride + WW]
            flat[:, :, i * out_w + j] = np.tensordot(window, w, axes=([1, 2, 3], [1, 2, 3])) + b
    return flat.reshape(N, F, out_h, out_w), (x, w, b, conv_param)


def conv_backward_naive(dout, cache):
    x, w, b, conv_param = cache
    stride, pad = conv_param['stride'], conv_param['pad']
    HH, WW = w.shape[2:]
    H, W = x.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    dxp, dw = np.zeros_like(xp), np.zeros_like(w)
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            hs, ws = i * stride, j * stride
            dw += np.tensordot(dout[:, :, i, j], xp[:, :, hs:hs + HH, ws:ws + WW], axes=([0], [0]))
            dxp[:, :, hs:hs + HH, ws:ws + WW] += np.tensordot(dout[:, :, i, j], w, axes=([1], [0]))
    return dxp[:, :, pad:pad + H, pad:pad + W], dw, dout.sum(axis=(0, 2, 3))
'''
ARGMAX = "r, s = np.unravel_index(np.argmax(window), window.shape)"


def edit(text, old, new):
    assert text.count(old) == 1, old  # the habit really goes in
    return text.replace(old, new)


def write(tmp_path, text, name="layers.py"):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def run(command, path, fmt="json"):
    result = CliRunner().invoke(main, [command, "--impl", path, "--format", fmt])
    doc = json.loads(result.stdout) if fmt == "json" and result.exit_code in (0, 1) else None
    return result, doc


def everything(doc):
    """Every error, hint, note and check message of a JSON result, as one text."""
    parts = [str(c[k]) for c in doc["cases"] for k in ("error", "hint", "notes")]
    parts += [str(k.get("message")) for c in doc["cases"] for k in c["checks"]]
    return "\n".join(parts)


@pytest.fixture(scope="module")
def correct(tmp_path_factory):
    """The correct files' JSON results: {command: (exit code, all messages)}."""
    d = tmp_path_factory.mktemp("correct")
    out = {}
    for command, text in (("pool", POOL), ("conv", CONV)):
        result, doc = run(command, write(d, text, f"{command}.py"))
        out[command] = (result.exit_code, everything(doc))
    return out


def test_the_correct_files_pass_with_no_hint_or_note(correct):
    for command, (code, text) in correct.items():
        assert code == 0, (command, text)
        for phrase in ("hint", "Python 2", "not square", "swapped", "starter", "NumPy 2"):
            assert phrase not in text, (command, phrase)


# 1 -- `import im2col` beside im2col.py in a package
def test_python2_implicit_relative_import_gets_a_hint(tmp_path):
    pkg = tmp_path / "assignment2" / "cs231n"
    write(pkg, "", "__init__.py")
    write(pkg, "def helper():\n    return 1\n", "im2col.py")
    result, _ = run("pool", write(pkg, "import im2col\n" + POOL))
    assert result.exit_code == 2
    assert "No module named 'im2col'" in result.stderr
    assert ("hint: Python 2 implicit relative import: use `from . import im2col` "
            "(or `from cs231n import im2col`)") in result.stderr
    result, _ = run("pool", write(pkg, "from . import im2col\n" + POOL))
    assert result.exit_code == 0


def test_a_module_missing_everywhere_gets_no_relative_import_hint(tmp_path):
    pkg = tmp_path / "cs231n"
    write(pkg, "", "__init__.py")
    result, _ = run("pool", write(pkg, "import im2col\n" + POOL))
    assert result.exit_code == 2 and "No module named 'im2col'" in result.stderr
    assert "relative import" not in result.stderr


# 2 -- a float size used as indices (numpy's cast error); 3 -- int() of a 1-element array
@pytest.mark.parametrize("old, new, error, hint", [
    ("    flat = np.zeros((N, C, out_h * out_w))\n",
     "    rows = np.arange((H - ph) / stride + 1) * stride\n"
     "    x = np.take(x, rows, axis=2)\n    flat = np.zeros((N, C, out_h * out_w))\n",
     "Cannot cast array data from dtype('float64') to dtype('int64')",
     "hint: Python 2 `/` gives a float in Python 3: use `//`"),
    (ARGMAX, "row = np.where(window.max(axis=1) == window.max())[0]\n"
             "                    r = int(row)\n                    s = int(np.argmax(window[r]))",
     "arrays can be converted to Python scalars",
     "hint: `int()` of a 1-element array was allowed before NumPy 2 and is an error now: "
     "use `row[0]` or `.item()`"),
])
def test_an_error_that_names_its_cause_gets_its_hint(old, new, error, hint, tmp_path):
    result, doc = run("pool", write(tmp_path, edit(POOL, old, new)))
    assert result.exit_code == 1
    assert error in doc["cases"][0]["error"] and hint in doc["cases"][0]["error"]


# 4 -- Python 2 habits named at load, all at once
def lineno(text, fragment):
    return next(i for i, line in enumerate(text.splitlines(), 1) if fragment in line)


def test_python2_habits_are_listed_in_one_note(tmp_path):
    text = edit(POOL, "    out_h = 1 + (H - ph) // stride\n", "    out_h = 1 + (H - ph) / stride\n")
    text += "\n\ndef unused(d):\n    for i in xrange(3):\n        for k, v in d.iteritems():\n            pass\n"
    result, doc = run("pool", write(tmp_path, text))
    assert result.exit_code == 1  # the `/` fails at run time; the note names it and the rest
    note = (f"Python 2 habits in layers.py: `/` for a size (line {lineno(text, '(H - ph) / stride')}), "
            f"xrange (line {lineno(text, 'xrange')}), .iteritems() (line {lineno(text, 'iteritems')}): "
            "use //, range and .items()")
    notes = [n for c in doc["cases"] for n in c["notes"]]
    assert notes.count(note) == 1, notes
    assert note in " ".join(run("pool", write(tmp_path, text), fmt="table")[0].stdout.split())


def test_a_file_that_stops_at_a_print_statement_names_the_other_habits_too(tmp_path):
    text = edit(POOL, "    return dx\n", "    print dx.shape\n    return dx\n") + "\nfor i in xrange(2):\n    pass\n"
    result, _ = run("pool", write(tmp_path, text))
    assert result.exit_code == 2
    assert "Missing parentheses in call to 'print'" in result.stderr
    assert f"Python 2 habits in layers.py: xrange (line {lineno(text, 'xrange')})" in result.stderr


@pytest.mark.parametrize("line", [
    "h = int(1 + (H - HH) / stride)",            # floored where it is computed
    "h = 1 + (H - HH) / stride\nh = int(h)",      # or afterwards
    "m = np.floor((H - HH) / S) + 1",
    "avg = dout / (ph * pw)",                     # a true division
    "r = (a - b) / c",                            # not a size formula
    "xrange = range\nfor i in xrange(3): pass",   # defined for Python 3
    "q = 1 + (H - HH) // stride",
])
def test_python3_code_shows_no_python2_habit(line):
    assert python2_habits(line + "\n") == {}


@pytest.mark.parametrize("line", [
    "H_out = 1 + (H + 2 * pad - HH) / stride",
    "oH = 1 + (H - pool_param['pool_height']) / pool_param['stride']",
    "Hp = (H - pH) / str + 1",  # a student's stride named `str`
])
def test_size_divisions_are_python2_habits(line):
    assert python2_habits(line + "\n") == {"`/` for a size": [1]}


# 5 -- out_h where out_w is needed: only the non-square outputs fail
@pytest.mark.parametrize("command, text", [("pool", POOL), ("conv", CONV)])
def test_out_h_for_out_w_gets_the_non_square_output_hint(command, text, tmp_path):
    text = edit(text, "flat[:, :, i * out_w + j]", "flat[:, :, i * out_h + j]")
    result, doc = run(command, write(tmp_path, text))
    assert result.exit_code == 1
    failing = {c["name"] for c in doc["cases"] if not c["passed"]}
    assert failing == {c["name"] for c in doc["cases"] if c["expected_output_shape"][2] != c["expected_output_shape"][3]}
    hints = {c["hint"] for c in doc["cases"] if not c["passed"]}
    assert len(hints) == 1 and "fails only where the output is not square (H' != W')" in hints.pop()


# 6 -- the untouched starter code
def test_the_pool_starter_is_named_as_such(tmp_path):
    text = POOL[:POOL.index("    x, pool_param = cache")] + "    dx = None\n    pass\n    return dx\n"
    result, doc = run("pool", write(tmp_path, text))
    error = doc["cases"][0]["error"]
    assert "returned None, expected the array dx (is dx set on every path, or still the starter's dx = None?)" in error
    assert "missing return" not in error
    result, doc = run("pool", write(tmp_path, text.replace("    return dx\n", "")))
    assert "returned None, expected the array dx: a missing return?" in doc["cases"][0]["error"]


# 7 -- one error in many cases shows once
def test_an_error_in_every_case_shows_once_in_the_table(tmp_path):
    path = write(tmp_path / ("a_long_directory_name_" * 3), edit(POOL, ARGMAX, "raise ValueError('nope')"))
    result, _ = run("pool", path, fmt="table")
    assert result.exit_code == 1
    assert result.stdout.startswith(" 1  max_pool_backward_naive raised ValueError: nope")
    assert result.stdout.count("ValueError") == 2  # the finding and its case's detail
    assert "    all 7 max_pool cases" in result.stdout and "\n 2  " not in result.stdout
    assert "…" not in result.stdout  # the location is folded, never cut
    _, doc = run("pool", path)
    assert all("ValueError: nope" in c["error"] for c in doc["cases"])


def test_an_error_in_some_cases_says_how_many(tmp_path):
    text = edit(POOL, ARGMAX, ARGMAX + "\n                    assert stride == 1, 'stride'")
    result, _ = run("pool", write(tmp_path, text), fmt="table")
    stride2 = 4  # of the default pool suite's 7 cases
    assert result.stdout.startswith(" 1  fails only at stride > 1: the stride is left out")
    assert f"every case with stride > 1 ({stride2} of 7 max_pool cases)" in result.stdout
    assert result.stdout.count("error: max_pool_backward_naive raised AssertionError: stride") == 1


# 8 -- H' and W' swapped
def test_a_swapped_output_shape_says_so(tmp_path):
    text = edit(POOL, "    out = flat.reshape(N, C, out_h, out_w)\n",
                "    out = flat.reshape(N, C, out_h, out_w).transpose(0, 1, 3, 2)\n")
    result, doc = run("pool", write(tmp_path, text))
    messages = {c["name"]: " ".join(str(k.get("message")) for k in c["checks"]) for c in doc["cases"]}
    nonsquare = [c["name"] for c in doc["cases"] if c["expected_output_shape"][2] != c["expected_output_shape"][3]]
    assert nonsquare and all("H' and W' swapped" in messages[n] for n in nonsquare)
