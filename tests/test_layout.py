"""The layout shows the wall: no import circles among cnncheck's modules, and the worker's
side (what runs the checked code) imports none of the judge's. (The layer records and the
vocabulary of their hints, cnncheck.evidence, are shared: data and pure functions over results.)"""
import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).parents[1] / "cnncheck"
JUDGE = ("cnncheck.gradcheck", "cnncheck.diagnose", "cnncheck.findings", "cnncheck.report",
         "cnncheck.runner", "cnncheck.taylor", "cnncheck.contract", "cnncheck.api", "cnncheck.cli",
         "cnncheck.grade", "cnncheck.html", "cnncheck.coursera", "cnncheck.config", "cnncheck.suites")


def graph() -> dict:
    """module -> the cnncheck modules it imports (anywhere in it, lazily too)."""
    files = {".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__"): p
             for p in PACKAGE.rglob("*.py")}
    edges = {m: set() for m in files}
    for name, path in files.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cnncheck"):
                subs = {f"{node.module}.{a.name}" for a in node.names} & files.keys()
                edges[name] |= subs or ({node.module} & files.keys())
            elif isinstance(node, ast.Import):
                edges[name] |= {a.name for a in node.names} & files.keys()
    return edges


def cycles(edges: dict) -> list:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))
    for v in edges:
        if v not in index:
            visit(v)
    return found


def test_no_import_circles():
    assert cycles(graph()) == []


def test_the_circle_finder_finds_circles():
    assert cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]


def test_the_worker_imports_nothing_of_the_judge():
    code = ("import sys; import cnncheck.sandbox.serve; from cnncheck.sandbox import impl, detect, notebook; "
            "print(' '.join(m for m in sys.modules if m.startswith('cnncheck')))")
    loaded = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(PACKAGE.parent)!r}); {code}"],
                            capture_output=True, text=True, timeout=60, check=True).stdout.split()
    assert "cnncheck.sandbox.serve" in loaded
    assert [m for m in loaded if m in JUDGE] == []
