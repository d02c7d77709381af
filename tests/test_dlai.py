"""The Deep Learning Specialization's conv assignment: learners' notebooks and exports, judged
case by case against a PyTorch oracle, each fault class failing its own cases and named.

Each learner file (tests/dlai/learners.py) runs as a learner would run it, `cnncheck check FILE`
from its own folder. The oracle is independent of cnncheck's judge: it runs the learner's
functions (their notebook definitions, under the real NumPy 2, no stand-ins) on each case's own
inputs in the learner's layout and compares with torch's conv2d / max_pool2d / avg_pool2d and
autograd. A case passes for the oracle when every output and gradient matches.
"""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cnncheck.case import make_arrays
from cnncheck.suites import default_suite
from cnncheck.sandbox import notebook
from dlai.learners import BY_NAME, CORRECT, FAULTS, faulty, write

VERSIONS = ("v2", "v2a", "v1", "w1a1")
LAYERS = ("conv", "max_pool", "avg_pool")
_RUNS = {}


def check(folder: Path, filename: str, *args) -> tuple[int, dict, str]:
    """`cnncheck check FILE --format json` run from the file's folder: (exit code, JSON, stderr)."""
    r = subprocess.run([sys.executable, "-m", "cnncheck", "check", filename, "--format", "json", *args],
                       cwd=folder, capture_output=True, text=True, timeout=600)
    return r.returncode, json.loads(r.stdout) if r.stdout.strip() else {}, r.stderr


def run_fault(name: str, tmp_path_factory, version_name: str = "v2"):
    """The learner file with fault `name` ("correct": none), checked once per session."""
    key = (name, version_name)
    if key not in _RUNS:
        folder = tmp_path_factory.mktemp(f"{name}_{version_name}")
        text = CORRECT if name == "correct" else faulty(BY_NAME[name])
        path = write(folder, version_name, text)
        _RUNS[key] = (path, *check(folder, path.name))
    return _RUNS[key]


# -- the oracle ------------------------------------------------------------------------------
def learner_functions(path: Path) -> dict:
    """The learner's definitions, run as the notebook runs them under NumPy 2 (no stand-ins)."""
    space = {"__name__": "learner"}
    notebook.run_definitions(notebook.definitions(str(path)), space, path.name)
    return space


def oracle_passes(fns: dict, case) -> bool:
    torch = pytest.importorskip("torch")
    a = make_arrays(case)
    x = torch.tensor(a["x"], requires_grad=True)
    (s, _), (p, _), (f, _) = case.stride, case.pad, case.kernel
    if case.layer == "conv":
        w, b = torch.tensor(a["w"], requires_grad=True), torch.tensor(a["b"], requires_grad=True)
        out = torch.nn.functional.conv2d(x, w, b, stride=s, padding=p)
    elif case.layer == "max_pool":
        out = torch.nn.functional.max_pool2d(x, f, stride=s)
    else:
        out = torch.nn.functional.avg_pool2d(x, f, stride=s)
    out.backward(torch.tensor(a["dout"]))
    nhwc = lambda t: np.ascontiguousarray(t.transpose(0, 2, 3, 1))  # noqa: E731
    try:
        if case.layer == "conv":
            Z, cache = fns["conv_forward"](nhwc(a["x"]), np.ascontiguousarray(a["w"].transpose(2, 3, 1, 0)),
                                           a["b"].reshape(1, 1, 1, -1), {"stride": s, "pad": p})
            dA, dW, db = fns["conv_backward"](nhwc(a["dout"]), cache)
            got = [(Z, out), (dA, x.grad), (dW, w.grad.permute(2, 3, 1, 0)), (np.reshape(db, -1), b.grad)]
            layouts = [nhwc, nhwc, np.asarray, np.asarray]
        else:
            mode = "max" if case.layer == "max_pool" else "average"
            A, cache = fns["pool_forward"](nhwc(a["x"]), {"f": f, "stride": s}, mode)
            dA = fns["pool_backward"](nhwc(a["dout"]), cache, mode)
            got, layouts = [(A, out), (dA, x.grad)], [nhwc, nhwc]
        got = [(mine, layout(t.detach().numpy())) for (mine, t), layout in zip(got, layouts)]
        return all(np.shape(m) == t.shape and np.allclose(m, t, rtol=1e-6, atol=1e-9) for m, t in got)
    except Exception:  # noqa: BLE001 - the learner's code raised: the case fails
        return False


def suite() -> list:
    return [c for layer in LAYERS for c in default_suite(layer, "dlai")]


# -- correct files of every version pass; each fault is caught where torch says so ----------
@pytest.mark.parametrize("version_name", VERSIONS)
def test_a_correct_file_of_every_version_passes_every_case(version_name, tmp_path_factory):
    path, code, doc, err = run_fault("correct", tmp_path_factory, version_name)
    assert code == 0, err
    assert len(doc["cases"]) == len(suite()) == 21
    assert {c["protocol"] for c in doc["cases"]} == {"dlai"}
    assert "Traceback" not in err


@pytest.mark.parametrize("name", [f.name for f in FAULTS])
def test_verdicts_equal_the_torch_oracle_case_by_case(name, tmp_path_factory):
    pytest.importorskip("torch")
    path, code, doc, err = run_fault(name, tmp_path_factory)
    fns = learner_functions(path)
    mine = {c["name"]: c["passed"] for c in doc["cases"]}
    truth = {c.name: oracle_passes(fns, c) for c in suite()}
    assert mine == truth
    assert code == 1 and not all(truth.values())  # each fault is a fault, for torch too


def test_the_oracle_itself_passes_the_correct_file_and_fails_a_broken_one(tmp_path):
    pytest.importorskip("torch")
    good = learner_functions(write(tmp_path, "v2"))
    assert all(oracle_passes(good, c) for c in suite())
    bad = learner_functions(write(tmp_path / "..", "v2", faulty(BY_NAME["distribute_by_sum"])))
    assert [c.name for c in suite() if not oracle_passes(bad, c)] == [
        "avg_pool dlai f 3 stride 1", "avg_pool dlai f 3 stride 3, no overlap", "avg_pool dlai f 3 stride 2, non-square"]


def test_the_unpad_trap_fails_exactly_the_pad0_conv_cases(tmp_path_factory):
    _, _, doc, _ = run_fault("unpad_pad0", tmp_path_factory)
    failing = {c["name"] for c in doc["cases"] if not c["passed"]}
    assert failing == {c.name for c in default_suite("conv", "dlai") if c.pad == (0, 0)}
    assert len(failing) == 2


def test_each_bug_class_fails_a_different_set_of_cases(tmp_path_factory):
    names = ["unpad_pad0", "conv_backward_no_stride", "pool_backward_no_stride", "distribute_by_sum",
             "square_only", "bias_in_sum"]
    sets = [frozenset(c["name"] for c in run_fault(n, tmp_path_factory)[2]["cases"] if not c["passed"]) for n in names]
    assert all(sets) and len(set(sets)) == len(sets)


@pytest.mark.parametrize("name", [f.name for f in FAULTS if f.hint])
def test_each_fault_is_named_with_the_learners_line(name, tmp_path_factory):
    fault = BY_NAME[name]
    path, _, doc, _ = run_fault(name, tmp_path_factory)
    failing = [c for c in doc["cases"] if not c["passed"]]
    assert {c["layer"] for c in failing} <= set(fault.layers)
    said = " ".join(h for c in failing for h in c["hints"]) + " ".join(c["error"] or "" for c in failing)
    assert fault.hint in said
    if fault.line:
        assert f"{path.name}:" in said and fault.line in said


@pytest.mark.parametrize("name, fix", [("numpy2_float_b", "float(b.item())"), ("numpy2_slot", "b.item()"),
                                       ("numpy2_np_int", "use int"), ("numpy2_asscalar", "use a.item()")])
def test_numpy2_incompatibilities_fail_on_their_own_and_the_maths_is_still_judged(name, fix, tmp_path_factory):
    path, code, doc, _ = run_fault(name, tmp_path_factory)
    conv = [c for c in doc["cases"] if c["layer"] == "conv"]
    assert code == 1 and all(not c["passed"] for c in conv)
    for c in conv:
        failed = [k for k in c["checks"] if not k["passed"]]
        assert [k["name"] for k in failed] == ["numpy 2"]  # out, dx, dw, db and the contract pass
        assert {"out", "dx", "dw", "db"} <= {k["name"] for k in c["checks"] if k["passed"]}
        assert f"{path.name}:" in failed[0]["message"] and fix in failed[0]["message"]
        assert "NumPy 2" in failed[0]["message"]
    assert all(c["passed"] for c in doc["cases"] if c["layer"] != "conv")


# -- the report speaks the learner's language --------------------------------------------------
def test_the_table_names_the_learners_arrays_in_their_layout(tmp_path):
    path = write(tmp_path, "v2", faulty(BY_NAME["conv_backward_no_stride"]))
    r = subprocess.run([sys.executable, "-m", "cnncheck", "check", path.name], cwd=tmp_path,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 1
    assert "A_prev 2x5x7x4 W 3x3x4x3 b 1x1x1x3" in r.stdout  # (m, n_H, n_W, n_C), (f, f, n_C_prev, n_C)
    assert "dA_prev" in r.stdout and "dW" in r.stdout
    assert "Traceback" not in r.stdout + r.stderr


def test_a_backward_still_to_write_fails_the_backward_only(tmp_path):
    text = CORRECT.replace("def conv_backward(dZ, cache):", "def conv_backward_unused(dZ, cache):")
    path = write(tmp_path, "w1a1", text)
    code, doc, _ = check(tmp_path, path.name)
    conv = [c for c in doc["cases"] if c["layer"] == "conv"]
    assert code == 1 and all("no function conv_backward is defined" in c["error"] for c in conv)
    assert all(any(k["name"] == "out" and k["passed"] for k in c["checks"]) for c in conv)


# -- the doors: conv/pool --impl, --protocol dlai, the API, grade -------------------------------
def test_conv_and_pool_impl_take_a_notebook(tmp_path):
    path = write(tmp_path, "v2a")
    for args in (["conv"], ["pool"], ["pool", "--avg"], ["conv", "--protocol", "dlai"]):
        r = subprocess.run([sys.executable, "-m", "cnncheck", *args, "--impl", path.name, "--format", "json"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr
        doc = json.loads(r.stdout)
        assert len(doc["cases"]) == 7 and all(c["name"].split()[1] == "dlai" for c in doc["cases"])


def test_the_api_checks_a_notebook_path(tmp_path, monkeypatch):
    import cnncheck
    path = write(tmp_path, "v2a", faulty(BY_NAME["unpad_pad0"]))
    monkeypatch.chdir(tmp_path)
    rep = cnncheck.check("conv", path.name)
    assert not rep.passed
    assert [r.case.pad for r in rep.results if not r.passed] == [(0, 0), (0, 0)]


def test_grade_scores_notebooks(tmp_path):
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.mkdir(), bad.mkdir()
    write(good, "v2a"), write(bad, "v2a", faulty(BY_NAME["unpad_pad0"]))
    nbs = sorted(str(p) for p in tmp_path.glob("*/*.ipynb"))
    r = subprocess.run([sys.executable, "-m", "cnncheck", "grade", *nbs, "--format", "json"],
                       capture_output=True, text=True, timeout=600)
    records = {Path(x["submission"]).parent.name: x for x in json.loads(r.stdout)["submissions"]} \
        if r.stdout.strip().startswith("{") else {Path(x["submission"]).parent.name: x for x in json.loads(r.stdout)}
    assert records["good"]["score"] == records["good"]["max_score"] == 21
    assert records["bad"]["score"] == 19


def test_a_file_with_three_faults_names_each_in_one_run(tmp_path):
    text = CORRECT
    for name in ("numpy2_float_b", "unpad_pad0", "pool_backward_no_stride"):
        text = faulty(BY_NAME[name], text)
    path = write(tmp_path, "v2", text)
    code, doc, _ = check(tmp_path, path.name)
    hints = {h for c in doc["cases"] for h in c["hints"]}
    assert any("fails under NumPy 2" in h and "float(b.item())" in h for h in hints)
    assert any("notebook's own unpad hint" in h for h in hints)
    assert any("without the stride" in h and f"{path.name}:" in h for h in hints)
    failing = {c["name"] for c in doc["cases"] if not c["passed"]}
    assert failing == {c.name for c in default_suite("conv", "dlai")} | {
        c.name for layer in ("max_pool", "avg_pool") for c in default_suite(layer, "dlai") if c.stride[0] > 1}
