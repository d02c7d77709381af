"""The book "Deep Learning from Scratch": its layer classes, its layout, its readers' faults.

tests/books/dlfs holds a re-typed copy of the book's code in its own layout (`common/layers.py`
importing `from common.util import im2col, col2im`, a chapter folder doing
`sys.path.append(os.pardir)`). Readers' variants are made from it by text substitution.
"""
import shutil
from pathlib import Path

import numpy as np
import pytest

from cnncheck.case import Case
from cnncheck.gradcheck import check_case, make_arrays
from cnncheck.sandbox.detect import load
from cnncheck.sandbox.impl import ImplLoadError, import_spec
from cnncheck.protocols import ImplError
from cnncheck.protocols.classes import LayerClass
from cnncheck.sandbox.detect import adapters
from cnncheck.suites import default_suite

BOOK = Path(__file__).parent / "books" / "dlfs"
LAYERS = ("conv", "max_pool")
CONV = Case("conv", (2, 3, 5, 7), (2, 3, 3, 3), stride=(1, 1), pad=(1, 1))
POOL = Case("max_pool", (2, 2, 6, 6), pool=(3, 3), stride=(1, 1))


def book(tmp_path, changes=(), file="common/layers.py", init=False):
    """A copy of the book's tree with (file, old, new) substitutions; the path of `file`."""
    root = tmp_path / "deep-learning-from-scratch"
    shutil.copytree(BOOK, root)
    if init:
        (root / "common" / "__init__.py").write_text("")
    for name, old, new in changes:
        text = (root / name).read_text()
        assert old in text, (name, old)
        (root / name).write_text(text.replace(old, new))
    return root / file


def suite(path, layer, **how):
    return [check_case(case, load(str(path), layer, **how)) for case in default_suite(layer)]


def failing(results):
    return {r.case.name.split(" ", 1)[1] for r in results if not r.passed}


# -- the book's own code --------------------------------------------------------------------
@pytest.mark.parametrize("init", [False, True], ids=["namespace common", "common/__init__.py"])
@pytest.mark.parametrize("layer", LAYERS)
def test_the_book_passes_its_default_suites(tmp_path, monkeypatch, layer, init):
    path = book(tmp_path, init=init)
    monkeypatch.chdir(path.parent.parent)  # the reader's repository root
    results = suite(path.relative_to(path.parent.parent), layer)
    assert failing(results) == set() and all(r.error is None for r in results)


@pytest.mark.parametrize("file, where", [
    ("ch07/simple_convnet.py", "."), ("ch07/simple_convnet.py", "ch07"), ("ch07/simple_convnet.py", "/"),
    ("common/layers.py", "ch07"), ("common/layers.py", "/"),
])
def test_a_chapter_script_and_common_load_from_anywhere(tmp_path, monkeypatch, file, where):
    path = book(tmp_path, file=file)
    monkeypatch.chdir(path.parent.parent / where if where != "/" else "/")
    for layer, case in (("conv", CONV), ("max_pool", POOL)):
        adapter = load(str(path), layer)
        assert isinstance(adapter, LayerClass) and check_case(case, adapter).passed


def test_layers_moved_into_a_chapter_folder_keep_the_pardir_habit(tmp_path, monkeypatch):
    path = book(tmp_path, file="ch07/layers.py")
    text = (BOOK / "common" / "layers.py").read_text()
    path.write_text("import sys, os\nsys.path.append(os.pardir)\n" + text)
    monkeypatch.chdir(path.parent.parent)
    assert check_case(CONV, load("ch07/layers.py", "conv")).passed
    monkeypatch.chdir(path.parent)
    assert check_case(POOL, load("layers.py", "max_pool")).passed


def test_split_files_with_their_own_im2col_and_a_src_prefix(tmp_path, monkeypatch):
    text = (BOOK / "common" / "layers.py").read_text()
    src = tmp_path / "repo" / "src" / "ch07"
    src.mkdir(parents=True)
    shutil.copy(BOOK / "common" / "util.py", src / "im2col.py")
    head = "import numpy as np\nfrom im2col import im2col, col2im\n\n"
    (src / "conv.py").write_text(head + text[text.index("class Convolution"):text.index("class Pooling")])
    (src / "pool.py").write_text(head + text[text.index("class Pooling"):])
    monkeypatch.chdir(tmp_path / "repo")
    assert check_case(CONV, load("src/ch07/conv.py", "conv")).passed
    assert check_case(POOL, load("src/ch07/pool.py", "max_pool")).passed
    with pytest.raises(ImplLoadError, match="defines no max_pool layer: no function max_pool_forward_naive, "
                                            "no class Pooling; it defines classes Convolution"):
        load("src/ch07/conv.py", "max_pool")


def test_float32_comes_back_float64_and_still_passes(tmp_path):
    path = book(tmp_path)
    for layer in LAYERS:
        for case in default_suite(layer)[:4]:
            adapter = load(str(path), layer)
            assert adapter.run_forward(case.with_(dtype="float32"),
                                       make_arrays(case.with_(dtype="float32"))).dtype == np.float64
            assert check_case(case.with_(dtype="float32"), adapter).passed, case.name


def test_a_fresh_instance_per_forward_built_from_copies(tmp_path):
    made = []
    path = book(tmp_path, [("common/layers.py", "        self.W, self.b = W, b\n",
                            "        self.W, self.b = W, b\n        MADE.append(self)\n        W[...] = 0\n"),
                           ("common/layers.py", "class Relu:", "MADE = []\n\n\nclass Relu:")])
    module, root = import_spec(str(path))
    adapter = adapters(module, root, "layers.py", wanted=["conv"])["conv"]
    arrays = make_arrays(CONV)
    w = arrays["w"].copy()
    adapter.run_forward(CONV, arrays)
    adapter.run_forward(CONV, arrays)
    made = module.MADE
    assert len(made) == 2 and made[0] is not made[1]
    assert np.array_equal(arrays["w"], w)  # the class zeroed its own copy


# -- readers' faults --------------------------------------------------------------------------
LAYER_FILE = "common/layers.py"


@pytest.mark.parametrize("old, new, message", [
    ("self.dW", "self.dw", "Convolution.backward stored no dW (it set dw: the book reads dW)"),
    ("self.dW", "self.dweight", "Convolution.backward stored no dW (it set dweight: the book reads dW)"),
    ("self.db = np.sum(dout, axis=0)", "db = np.sum(dout, axis=0)",
     "Convolution.backward stored no db (still None): the book reads the gradient from self.db after backward"),
    ("        return col2im(dcol, self.x.shape, FH, FW, self.stride, self.pad)",
     "        dx = col2im(dcol, self.x.shape, FH, FW, self.stride, self.pad)",
     "Convolution.backward ({path}:{line}) returned None, expected the array dx: a missing return?"),
    ("self.stride, self.pad = stride, pad\n        self.x = self.col",
     "self.strid, self.pad = stride, pad\n        self.x = self.col",
     "Convolution.forward raised AttributeError: 'Convolution' object has no attribute 'stride' at {path}:"),
])
def test_conv_faults_are_one_line_messages(tmp_path, old, new, message):
    path = book(tmp_path, [(LAYER_FILE, old, new)])
    result = check_case(CONV, load(str(path), "conv"))
    text = path.read_text()
    line = text[:text.index("def backward", text.index("class Convolution"))].count("\n") + 1
    assert not result.passed and "\n" not in result.error
    assert message.format(path=path, line=line) in result.error


def test_col2im_that_overwrites_fails_where_windows_overlap(tmp_path):
    path = book(tmp_path, [("common/util.py", "] += col[", "] = col[")])
    conv = {r.case.name: r for r in suite(path, "conv")}

    assert not conv["conv pad 0"].passed
    assert {c.name for c in conv["conv pad 0"].checks if not c.passed} == {"dx"}
    assert conv["conv 2x2 kernel stride 2, no overlap"].passed
    pool = failing(suite(path, "max_pool"))
    assert "3x3 stride 1" in pool and "notebook backward" not in pool  # 2x2 stride 2: no overlap


def test_height_and_width_swapped_in_im2col_shows_on_non_square_inputs_only(tmp_path):
    path = book(tmp_path, [("common/util.py", "N, C, H, W = input_data.shape", "N, C, W, H = input_data.shape")])
    conv = {r.case.name.split(" ", 1)[1]: r for r in suite(path, "conv")}
    assert conv["pad 0"].passed and conv["stride 2"].passed
    assert not conv["non-square input"].passed
    assert "forward raised" in conv["non-square input"].error or not conv["non-square input"].passed
    assert "2x2 stride 2 on 4x6" in failing(suite(path, "max_pool"))


def test_the_books_pooling_fails_with_padding(tmp_path):
    adapter = load(str(book(tmp_path)), "max_pool")
    result = check_case(POOL.with_(pad=(1, 1)), adapter)
    assert not result.passed
    assert "Pooling.forward raised ValueError: cannot reshape array" in result.error
    assert "common/layers.py" in result.error


@pytest.mark.parametrize("name", ["Pool", "MaxPooling", "Maxpooling"])
def test_a_renamed_pooling_class_is_found_with_a_note(tmp_path, name):
    path = book(tmp_path, [(LAYER_FILE, "class Pooling:", f"class {name}:")])
    adapter = load(str(path), "max_pool")
    assert adapter.cls.__name__ == name and check_case(POOL, adapter).passed
    assert f"checking class {name} as the book's Pooling (another with --class NAME)" in adapter.take_notes()


def test_a_renamed_conv_with_its_own_parameter_names_is_given_them_in_order(tmp_path):
    path = book(tmp_path, [(LAYER_FILE, "class Convolution:\n    def __init__(self, W, b, stride=1, pad=0):\n"
                            "        self.W, self.b = W, b\n        self.stride, self.pad = stride, pad",
                            "class Conv:\n    def __init__(self, weight, bias, stride=1, padding=0):\n"
                            "        self.W, self.b = weight, bias\n        self.stride, self.pad = stride, padding")])
    adapter = load(str(path), "conv")
    assert check_case(CONV, adapter).passed
    notes = adapter.take_notes()
    assert "checking class Conv as the book's Convolution (another with --class NAME)" in notes
    assert "Conv takes (weight, bias, stride, padding): given the book's W, b, stride, pad in that order" in notes


def test_other_classes_are_not_taken_for_layers(tmp_path):
    """Affine(W, b), BatchNormalization(gamma, beta, ...), an average pooling: none is conv or max pool."""
    text = (BOOK / LAYER_FILE).read_text()
    path = book(tmp_path, [(LAYER_FILE, text[text.index("class Convolution:"):text.index("class Pooling:")], ""),
                           (LAYER_FILE, "class Pooling:", "class AvgPooling:")])
    for layer in LAYERS:
        with pytest.raises(ImplLoadError) as e:
            load(str(path), layer)
        assert "it defines classes Relu, Affine, SoftmaxWithLoss" in str(e.value)
        assert "pick one with --forward/--backward NAME or --class NAME" in str(e.value)


def test_class_name_and_protocol_pick(tmp_path):
    path = book(tmp_path, [(LAYER_FILE, "class Pooling:", "class Pooling2:")])
    assert check_case(POOL, load(str(path), "max_pool", class_name="Pooling2")).passed
    with pytest.raises(ImplLoadError, match="has no class Poolng; did you mean Pooling2"):
        load(str(path), "max_pool", class_name="Poolng")
    with pytest.raises(ImplLoadError, match="has no function conv_forward_naive"):
        load(str(path), "conv", protocol="cs231n")
    with pytest.raises(ImplLoadError, match="unknown protocol 'book': one of cs231n, dlai, dlfs"):
        load(str(path), "conv", protocol="book")


def test_a_forward_only_transcription(tmp_path):
    text = (BOOK / LAYER_FILE).read_text()
    cut = text[text.index("    def backward(self, dout):\n        dout = dout.transpose(0, 2, 3, 1)\n"):]
    path = book(tmp_path, [(LAYER_FILE, cut, "")])
    result = check_case(POOL, load(str(path), "max_pool"))
    assert result.error == "Pooling has no backward method (a forward-only transcription?)"


def test_detection_lists_every_layer_of_the_book(tmp_path):
    path = book(tmp_path, file="ch07/simple_convnet.py")
    module, root = import_spec(str(path))
    found = adapters(module, root, "simple_convnet.py")
    assert {"conv", "max_pool"} <= set(found)
    assert found["conv"].label == "simple_convnet.py: Convolution"
    with pytest.raises(ImplError, match="Convolution takes one stride for both axes"):
        found["conv"].run_forward(CONV.with_(stride=(1, 2)), make_arrays(CONV.with_(stride=(1, 2))))


def test_a_file_with_no_layer_says_what_it_defines(tmp_path):
    path = tmp_path / "net.py"
    path.write_text("class Net:\n    def predict(self, x):\n        return x\n\ndef train():\n    pass\n")
    module, root = import_spec(str(path))
    with pytest.raises(ImplLoadError) as e:
        adapters(module, root, "net.py")
    assert str(e.value) == ("net.py defines no layer cnncheck knows (" + ", ".join(__import__("cnncheck").layers.KINDS)
                            + "): it defines classes Net; functions train; "
                            "pick one with --forward/--backward NAME or --class NAME")


# -- against PyTorch ----------------------------------------------------------------------------
@pytest.mark.parametrize("variant", [(), (("common/util.py", "] += col[", "] = col["),),
                                     ((LAYER_FILE, "dout.transpose(0, 2, 3, 1).reshape(-1, FN)",
                                       "dout.transpose(0, 3, 2, 1).reshape(-1, FN)"),)],
                         ids=["book", "col2im =", "dout transposed"])
def test_verdicts_agree_with_torch_autograd(tmp_path, variant):
    torch = pytest.importorskip("torch")
    path = book(tmp_path, variant)
    for case in [c for c in default_suite("conv") if c.name.endswith(("pad 0", "3x1 kernel"))]:
        adapter = load(str(path), "conv")
        arrays = make_arrays(case)
        dout = arrays.pop("dout")
        out = adapter.run_forward(case, arrays)
        grads = adapter.run_backward(case, dout)
        x, w, b = (torch.tensor(arrays[k], requires_grad=True) for k in "xwb")
        ref = torch.nn.functional.conv2d(x, w, b, stride=case.stride, padding=case.pad)
        ref.backward(torch.tensor(dout))
        oracle = (out.shape == tuple(ref.shape) and np.allclose(out, ref.detach().numpy())
                  and all(np.allclose(grads[g], t.grad.numpy()) for g, t in (("dx", x), ("dw", w), ("db", b))))
        assert check_case(case, load(str(path), "conv")).passed == oracle, case.name
