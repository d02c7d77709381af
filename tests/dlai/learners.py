"""Learners' files of the Deep Learning Specialization's conv assignment, written at test time.

correct_v2.py is an nbconvert export of the v2 notebook with correct functions (and the v2 test
cells, kept as top-level code the way nbconvert writes them). Each `Fault` is one of the fault
classes found in public learners' files (../../shared/reference/dlai.md), made by replacing one
exact text (it must occur exactly once, so a fixture cannot silently stop being broken). `version`
writes the file as one of the notebook's four versions: the v2 export itself, an .ipynb of v2a
(magics and markdown cells), the 2017 v1 export, and the 2021 "W1A1" notebook (public_tests
imports, an unfinished optional backward is its own fault).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
CORRECT = (HERE / "correct_v2.py").read_text()


@dataclass(frozen=True)
class Fault:
    name: str
    old: str
    new: str
    hint: str | None  # a phrase of the hint (None: the fault is named by the error or check itself)
    layers: tuple = ("conv", "max_pool", "avg_pool")  # the layers whose cases it may fail
    line: str | None = None  # a phrase of the learner's line the hint names


def _corner(after: str, bad: str = "h") -> tuple[str, str]:
    """The window's corners followed by the comment `after` (unique to one function), without stride."""
    old = ("                    vert_start = h * stride\n                    vert_end = vert_start + f\n"
           "                    horiz_start = w * stride\n                    horiz_end = horiz_start + f\n\n"
           f"                    {after}")
    return old, old.replace("h * stride", "h").replace("w * stride", "w")


UNPAD_OK = "dA_prev[i, :, :, :] = da_prev_pad[pad:pad + n_H_prev, pad:pad + n_W_prev, :]"
SLICE = "a_prev_slice = A_prev[i, vert_start:vert_end, horiz_start:horiz_end, c]"
BIAS = "Z = Z + float(b.item())"
FAULTS = [
    Fault("unpad_pad0", UNPAD_OK, "dA_prev[i, :, :, :] = da_prev_pad[pad:-pad, pad:-pad, :]",
          "notebook's own unpad hint", ("conv",), "da_prev_pad[pad:-pad, pad:-pad, :]"),
    Fault("conv_backward_no_stride", *_corner("# Use the corners to define the slice from a_prev_pad"),
          "without the stride", ("conv",), "vert_start = h"),
    Fault("pool_backward_no_stride", *_corner("# Compute the backward propagation in both modes."),
          "without the stride", ("max_pool", "avg_pool"), "vert_start = h"),
    Fault("bias_in_sum", "    s = np.multiply(a_slice_prev, W)\n", "    s = np.multiply(a_slice_prev, W) + b\n",
          "b counted f * f * n_C_prev times", ("conv",), "np.multiply(a_slice_prev, W) + b"),
    Fault("pool_whole_channel", SLICE, "a_prev_slice = A_prev[i, :, :, c]", "of the whole channel",
          ("max_pool", "avg_pool")),
    Fault("pool_all_channels", SLICE, "a_prev_slice = A_prev[i, vert_start:vert_end, horiz_start:horiz_end, :]",
          "over all channels", ("max_pool", "avg_pool")),
    Fault("pool_over_batch", SLICE, "a_prev_slice = A_prev[:, vert_start:vert_end, horiz_start:horiz_end, c]",
          "over the whole batch", ("max_pool", "avg_pool")),
    Fault("mask_times_input", "np.multiply(mask, dA[i, h, w, c])", "np.multiply(mask, a_prev_slice)",
          "multiplied by the input slice", ("max_pool",), "np.multiply(mask, a_prev_slice)"),
    Fault("distribute_by_sum", "average = dz / (n_H * n_W)", "average = dz / (n_H + n_W)",
          "divides by n_H + n_W", ("avg_pool",), "dz / (n_H + n_W)"),
    Fault("random_start", "    dW = np.zeros((f, f, n_C_prev, n_C))\n",
          "    dW = np.random.randn(f, f, n_C_prev, n_C)\n", "started from random numbers", ("conv",),
          "np.random.randn(f, f, n_C_prev, n_C)"),
    Fault("reads_cache_conv", "    (A_prev, W, b, hparameters) = cache\n",
          "    (A_prev, W, b, hparameters) = cache_conv\n", "a global of the notebook", ("conv",)),
    Fault("square_only", "n_W = int((n_W_prev - f + 2 * pad) / stride) + 1",
          "n_W = int((n_H_prev - f + 2 * pad) / stride) + 1", "n_H != n_W", ("conv",), "n_W = int((n_H_prev"),
    Fault("numpy2_float_b", BIAS, "Z = Z + float(b)", None, ("conv",)),
    Fault("numpy2_slot", BIAS, "Z = Z + b", None, ("conv",)),
    Fault("numpy2_np_int", "n_H = int((n_H_prev - f + 2 * pad) / stride) + 1",
          "n_H = np.int((n_H_prev - f + 2 * pad) / stride) + 1", None, ("conv",)),
    Fault("numpy2_asscalar", BIAS, "Z = Z + np.asscalar(b)", None, ("conv",)),
    Fault("unfinished_backward", "    (A_prev, W, b, hparameters) = cache\n",
          "    (A_prev, W, b, hparameters) = None\n", "still None", ("conv",), "= None"),
]
BY_NAME = {f.name: f for f in FAULTS}


def faulty(fault: Fault, text: str = CORRECT) -> str:
    assert text.count(fault.old) == 1, (fault.name, text.count(fault.old))
    return text.replace(fault.old, fault.new)


# -- the four versions ------------------------------------------------------------------------
def cells_of(export: str) -> list[str]:
    """The code cells of an nbconvert export (its `# In[ ]:` marks), magics as a notebook has them."""
    chunks = export.split("# In[")[1:]
    cells = [c.split("\n", 1)[1].strip("\n") for c in chunks]
    return [c.replace("get_ipython().run_line_magic('matplotlib', 'inline')", "%matplotlib inline")
             .replace("get_ipython().run_line_magic('load_ext', 'autoreload')", "%load_ext autoreload")
             .replace("get_ipython().run_line_magic('autoreload', '2')", "%autoreload 2") for c in cells]


def notebook(cells: list[str]) -> str:
    """An .ipynb of these code cells, a markdown cell before each (as the course's notebooks)."""
    nb = nbformat.v4.new_notebook()
    for k, source in enumerate(cells):
        nb.cells.append(nbformat.v4.new_markdown_cell(f"## {k + 1} - a step of the assignment"))
        nb.cells.append(nbformat.v4.new_code_cell(source))
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nbformat.writes(nb)


W1A1_HEAD = ("import numpy as np\nimport h5py\nimport matplotlib.pyplot as plt\nfrom public_tests import *\n\n"
             "%matplotlib inline\nplt.rcParams['figure.figsize'] = (5.0, 4.0)\n%load_ext autoreload\n%autoreload 2\n\n"
             "np.random.seed(1)")


def version(name: str, export: str = CORRECT) -> tuple[str, str]:
    """(file name, text) of the file as version `name` has it: v2 (the export), v2a (.ipynb),
    v1 (the 2017 export, its bias instruction kept correct here), w1a1 (the 2021 .ipynb)."""
    if name == "v2":
        return "Convolution_model_Step_by_Step_v2.py", export
    cells = cells_of(export)
    if name == "v2a":
        return "Convolution_model_Step_by_Step_v2a.ipynb", notebook(cells)
    if name == "v1":
        return "Convolution+model+-+Step+by+Step+-+v1.py", export.replace("get_ipython()", "# get_ipython()")
    cells[0] = W1A1_HEAD
    cells.insert(3, "conv_single_step_test(conv_single_step)\nzero_pad_test(zero_pad)")
    cells.append("!pip install numpy==1.18.4")
    return "Convolution_model_Step_by_Step_v1.ipynb", notebook(cells)


def write(folder: Path, name: str, export: str = CORRECT) -> Path:
    filename, text = version(name, export)
    path = folder / filename
    path.write_text(text)
    return path
