"""Code kept in notebooks: imports and definitions only, cells that do not parse named, stand-ins
for course helpers, and the Deep Learning Specialization's helpers judged on their own."""
import json
from pathlib import Path
import subprocess
import sys

import nbformat
import numpy as np
import pytest

from cnncheck.sandbox import notebook
from cnncheck.sandbox.detect import load
from cnncheck.suites import default_suite
from cnncheck.gradcheck import check_case
from dlai.learners import CORRECT, cells_of, notebook as make_notebook, write


def nb_file(tmp_path, cells, name="nb.ipynb"):
    path = tmp_path / name
    path.write_text(make_notebook(cells))
    return path


def test_load_definitions_keeps_imports_and_definitions_in_order_from_source_text():
    source = ("%matplotlib inline\n!pip install x\nimport numpy as np\nx = np.ones(3)\nprint(x)\n"
              "def f(a):\n    return a + 1\nclass C:\n    pass\nf(x)\n")
    defs = notebook.load_definitions(source, "<cell 3>", "cell 3")
    space = {}
    assert notebook.run_definitions(defs, space, "nb") == []
    assert space["f"](1) == 2 and "C" in space and "x" not in space
    assert defs.skipped == {"x": "cell 3, line 4"}  # a global a function may wrongly read


def test_a_cell_that_does_not_parse_is_named_with_its_line_and_character_and_the_rest_counts(tmp_path):
    cells = cells_of(CORRECT)
    k = next(i for i, c in enumerate(cells) if "def pool_forward" in c)
    cells[k] = cells[k].replace("    f = hparameters[\"f\"]", "    f\u00a0= hparameters[\"f\"]")
    path = nb_file(tmp_path, cells)
    defs = notebook.definitions(str(path))
    cell = 2 * k + 2  # a markdown cell before each code cell, counted from 1
    line = cells[k].splitlines().index("    f\u00a0= hparameters[\"f\"]") + 1
    assert defs.findings == [f"cell {cell}, line {line}, character 6 does not parse (invalid non-printable "
                             "character U+00A0: U+00A0 (NO-BREAK SPACE), replace it with a plain space): its "
                             "definitions are left out"]
    conv = load(str(path), "conv")  # conv's cells still count
    assert all(check_case(c, conv).passed for c in default_suite("conv", "dlai")[:2])
    assert any("does not parse" in n for n in conv.notes)
    r = subprocess.run([sys.executable, "-m", "cnncheck", "pool", "--impl", path.name], cwd=tmp_path,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "no function pool_forward(A_prev, ...)" in r.stderr
    assert f"nb.ipynb cell {cell}, line {line}, character 6 does not parse" in r.stderr


def test_test_cells_are_not_run_and_later_definitions_override_earlier_ones(tmp_path):
    cells = ["import numpy as np", "raise SystemExit('a test cell')",
             "def zero_pad(X, pad):\n    return None", "zero_pad(np.ones((1, 2, 2, 1)), 1).shape",
             "def zero_pad(X, pad):\n    return np.pad(X, ((0, 0), (pad, pad), (pad, pad), (0, 0)))"]
    path = nb_file(tmp_path, cells)
    module = notebook.load_notebook(str(path))
    assert module.zero_pad(np.ones((1, 2, 2, 1)), 1).shape == (1, 4, 4, 1)


def test_a_failed_import_of_a_course_helper_gets_a_stand_in_and_a_note(tmp_path):
    path = nb_file(tmp_path, ["import numpy as np\nfrom public_tests import *\nfrom test_utils import summary",
                              "import h5py", "def f():\n    return h5py.File('x')"])
    module = notebook.load_notebook(str(path))
    notes = module.__cnncheck_notebook_notes__
    assert [n.split(" imports ")[1].split(",")[0] for n in notes] == ["public_tests", "test_utils", "h5py"]
    with pytest.raises(ModuleNotFoundError, match="h5py"):
        module.f()


def test_an_nbconvert_export_keeps_definitions_and_drops_get_ipython(tmp_path):
    path = write(tmp_path, "v2")
    assert notebook.is_export(str(path))
    module = notebook.load_notebook(str(path))
    assert {"zero_pad", "conv_forward", "pool_backward"} <= set(vars(module))
    assert "cache_conv" not in vars(module) and "cache_conv" in module.__cnncheck_skipped__


def test_cs231n_functions_kept_in_a_notebook_load_the_same_way(tmp_path):
    source = (Path(__file__).parent / "students/conv/correct.py").read_text()
    path = nb_file(tmp_path, ["%load_ext autoreload", source, "print(conv_forward_naive)"], "cs231n.ipynb")
    r = subprocess.run([sys.executable, "-m", "cnncheck", "conv", "--impl", str(path), "--format", "json"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert {c["protocol"] for c in json.loads(r.stdout)["cases"]} == {"cs231n"}


def test_a_file_that_is_no_notebook_is_a_usage_error(tmp_path):
    path = tmp_path / "broken.ipynb"
    path.write_text("{not json")
    r = subprocess.run([sys.executable, "-m", "cnncheck", "check", str(path)], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 2 and "not a notebook nbformat can read" in r.stderr and "Traceback" not in r.stderr


# -- the helpers, judged on their own ---------------------------------------------------------
@pytest.mark.parametrize("old, new, helper, layer", [
    ("X_pad = np.pad(X, ((0, 0), (pad, pad), (pad, pad), (0, 0)), 'constant', constant_values=0)",
     "X_pad = np.pad(X, ((pad, pad), (pad, pad), (pad, pad), (pad, pad)), 'constant', constant_values=0)",
     "zero_pad", "conv"),
    ("    Z = Z + float(b.item())\n", "    Z = Z + 2 * float(b.item())\n", "conv_single_step", "conv"),
    ("mask = (x == np.max(x))", "mask = (x == np.min(x))", "create_mask_from_window", "max_pool"),
    ("average = dz / (n_H * n_W)", "average = dz / (n_H + n_W)", "distribute_value", "avg_pool"),
])
def test_a_wrong_helper_is_named_in_the_cases_it_breaks(old, new, helper, layer, tmp_path):
    assert CORRECT.count(old) == 1
    path = write(tmp_path, "v2a", CORRECT.replace(old, new))
    r = subprocess.run([sys.executable, "-m", "cnncheck", "check", path.name, "--format", "json"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=600)
    cases = json.loads(r.stdout)["cases"]
    failing = [c for c in cases if not c["passed"]]
    assert failing and {c["layer"] for c in failing} == {layer}
    assert all(c["hints"][0].startswith(f"{helper} (defined at {path.name} cell ") for c in failing)
    assert all("judged on its own, is wrong" in c["hints"][0] for c in failing)


def test_correct_helpers_say_nothing(tmp_path):
    path = write(tmp_path, "v2a")
    conv = load(str(path), "conv")
    check_case(default_suite("conv", "dlai")[0], conv)
    assert not [n for n in conv.notes if "judged on its own" in n]


def test_python_cell_magics_keep_their_body_and_other_cell_magics_and_help_lines_are_skipped():
    defs = notebook.load_definitions("%%time\ndef f():\n    return 1\nnp.pad?\n", "<cell>")
    assert len(defs.statements) == 1 and defs.findings == []
    assert notebook.load_definitions("%%bash\necho hi\n", "<cell>").statements == []


def test_an_import_of_several_modules_stands_in_for_the_missing_one_only():
    space = {}
    notes = notebook.run_definitions(notebook.load_definitions("import numpy, no_such_helper_x\n", "<c>"), space, "nb")
    assert space["numpy"] is np and "no_such_helper_x" in notes[0]


@pytest.mark.parametrize("layer, forward, backward", [("conv", "conv_forward", "conv_backward"),
                                                      ("avg_pool", "pool_forward", "pool_backward")])
def test_the_api_takes_the_learners_functions_themselves(layer, forward, backward, tmp_path):
    import cnncheck
    module = notebook.load_notebook(str(write(tmp_path, "v2")))
    rep = cnncheck.check(layer, getattr(module, forward), getattr(module, backward))
    assert rep.passed and len(rep.results) == 7
    assert {r.case.protocol for r in rep.results} == {"dlai"}
