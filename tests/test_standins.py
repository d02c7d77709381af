"""Imports the checked functions do not need: a module that is not installed gets a stand-in.

A student's file that imports torch, matplotlib or a course helper that is not installed
still loads, with a note; only a checked function that uses the module fails, and only its
case. The student's own missing files keep their errors and hints.
"""
import sys
import textwrap

import pytest

from cnncheck.case import Case
from cnncheck.gradcheck import check_case
from cnncheck.sandbox.detect import load
from cnncheck.sandbox.impl import ImplLoadError

CASE = Case("conv", (2, 3, 5, 5), (2, 3, 3, 3), stride=(1, 1), pad=(1, 1))
LAYERS = """
def conv_forward_naive(x, w, b, conv_param):
    {use}return _f(x, w, b, conv_param)

def conv_backward_naive(dout, cache):
    return _b(dout, cache)
"""
REFERENCE = "from cnncheck.layers import conv_backward_naive as _b, conv_forward_naive as _f\n"


def write(tmp_path, name, body):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(body))
    return str(path)


def student(tmp_path, imports, use="", name="layers.py"):
    return write(tmp_path, name, imports + REFERENCE + LAYERS.format(use=use))


@pytest.mark.parametrize("imports, top", [
    ("import torch_not_here_xyz\n", "torch_not_here_xyz"),
    ("import torch_not_here_xyz as torch\nfrom torch_not_here_xyz import nn\n"
     "class Net(nn.Module):\n    pass\ntorch.manual_seed(0)\n", "torch_not_here_xyz"),
    ("import matplotlib_not_here_xyz.pyplot as plt\n", "matplotlib_not_here_xyz"),
    ("from matplotlib_not_here_xyz import pyplot as plt\nplt.rcParams['figure.figsize'] = (10, 8)\n",
     "matplotlib_not_here_xyz"),
    ("import sys, os\nsys.path.append(os.pardir)\nfrom dataset_not_here_xyz.mnist import load_mnist\n",
     "dataset_not_here_xyz"),
])
def test_an_unused_module_that_is_not_installed_gets_a_note(tmp_path, imports, top):
    impl = load(student(tmp_path, imports), "conv")
    assert check_case(CASE, impl).passed
    assert (f"{tmp_path / 'layers.py'} imports {top}, which is not installed; "
            "the checked functions do not use it") in impl.take_notes()
    assert top not in sys.modules  # the stand-in stays with the file


def test_a_checked_function_that_uses_it_fails_its_case(tmp_path):
    path = student(tmp_path, "import torch_not_here_xyz as torch\n", use="x = torch.from_numpy(x)\n    ")
    result = check_case(CASE, load(path, "conv"))
    assert result.error == (
        f"conv_forward_naive raised ModuleNotFoundError: {path} imports torch_not_here_xyz, which is not "
        "installed (No module named 'torch_not_here_xyz'): the checked code uses torch_not_here_xyz.from_numpy"
        f" at {path}:5 in conv_forward_naive")


def test_a_python_2_helper_in_use_keeps_its_hint(tmp_path):
    path = student(tmp_path, "from past.builtins import xrange\n", use="list(xrange(3))\n    ")
    result = check_case(CASE, load(path, "conv"))
    assert "No module named 'past'" in result.error and "pip install future" in result.error


def test_the_books_chapter_layout_with_no_dataset_folder(tmp_path, monkeypatch):
    write(tmp_path, "repo/common/util.py", "def helper():\n    return 1\n")
    path = student(tmp_path, "import sys, os\nsys.path.append(os.pardir)\nfrom common.util import helper\n"
                             "from dataset.mnist import load_mnist\n", name="repo/ch07/layers.py")
    monkeypatch.chdir(tmp_path / "repo")
    impl = load("ch07/layers.py", "conv")
    assert check_case(CASE, impl).passed
    assert "ch07/layers.py imports dataset, which is not installed; the checked functions do not use it" \
        in impl.take_notes()


@pytest.mark.parametrize("files, imports, expect", [
    # the student's own package, a file missing from it
    ({"hw/cs231n/__init__.py": ""}, "from cs231n.fast_layers_gone import x\n",
     "No module named 'cs231n.fast_layers_gone'"),
    # a course file the package imports as a sibling (Python 2 style), missing everywhere
    ({"hw/cs231n/__init__.py": ""}, "import im2col\n", "No module named 'im2col'"),
    # the book's common/, not copied along
    ({}, "from common.util import im2col\n", "No module named 'common'"),
    # a typo of one of the student's files
    ({"hw/cs231n/__init__.py": "", "hw/cs231n/layer_utils.py": ""}, "from layer_util import x\n",
     "No module named 'layer_util'"),
])
def test_the_students_own_missing_files_stay_errors(tmp_path, files, imports, expect):
    for name, body in files.items():
        write(tmp_path, name, body)
    path = student(tmp_path, imports, name="hw/cs231n/layers.py")
    with pytest.raises(ImplLoadError, match=expect):
        load(path, "conv")


def test_an_installed_packages_missing_submodule_stays_an_error(tmp_path):
    path = student(tmp_path, "import numpy.no_such_submodule_xyz\n")
    with pytest.raises(ImplLoadError, match="No module named 'numpy.no_such_submodule_xyz'"):
        load(path, "conv")


def test_a_file_that_defines_nothing_reports_the_missing_module(tmp_path):
    path = write(tmp_path, "notes.py", "import torch_not_here_xyz\n")
    with pytest.raises(ImplLoadError) as e:
        load(path, "conv")
    assert str(e.value) == (f"cannot load {path}: ModuleNotFoundError: No module named 'torch_not_here_xyz'"
                            f" at {path}:1")
