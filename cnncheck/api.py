"""The Python API: `cnncheck.check(...)` for a notebook cell, `check_file(...)` for a whole file.

    import cnncheck
    report = cnncheck.check("conv", conv_forward_naive, conv_backward_naive)
    report            # renders as HTML in Jupyter: the table, the hints, the heat maps
    report.passed     # True / False

Code loaded from a file or a module name runs in a worker process (cnncheck.sandbox.process), as on
the command line. Functions and classes defined in a notebook cell cannot be imported again
by a new process: they run in a forked worker, which inherits them. The judge (this
process) computes every verdict.
"""
from __future__ import annotations

import inspect
import io
import json
import os
import types

from rich.console import Console

from cnncheck import diagnose, layers, report as render, runner
from cnncheck.sandbox import process as worker
from cnncheck.config import ConfigError, load_cases
from cnncheck.gradcheck import CaseResult
from cnncheck.sandbox.impl import ImplLoadError
from cnncheck.layers.kind import Classes, Functions
from cnncheck.protocols.classes import LayerClass
from cnncheck.protocols.functions import FunctionPair
from cnncheck.suites import cases_for


class Report:
    """The results of a check: `.passed`, `.cases`, `.to_json()`, `str()`, and HTML in Jupyter."""

    def __init__(self, label: str, results: list[CaseResult], error: str | None = None, notes=()):
        self.label, self.results, self.error, self.notes = label, list(results), error, list(notes)

    @property
    def cases(self) -> list[CaseResult]:
        return self.results

    @property
    def passed(self) -> bool:
        return self.error is None and bool(self.results) and all(r.passed for r in self.results)

    def by_layer(self) -> dict[str, list[CaseResult]]:
        out = {}
        for r in self.results:
            out.setdefault(r.case.layer, []).append(r)
        return out

    def to_json(self) -> str:
        """The command line's JSON; a file that could not be loaded gives its error."""
        doc = json.loads(render.to_json(self.results))
        doc["passed"] = self.passed
        if self.error:
            doc["error"] = self.error
        return json.dumps(doc, indent=2)

    def _console(self) -> Console:
        console = Console(record=True, file=io.StringIO(), width=100, force_terminal=False, force_jupyter=False)
        if self.error:
            console.print(f"{self.label}: {self.error}", style="red", markup=False, highlight=False)
        else:
            render.print_table(self.results, console)
        return console

    def __str__(self) -> str:
        return self._console().export_text()

    def __repr__(self) -> str:
        return f"<cnncheck report {self.label}: {'passed' if self.passed else 'FAILED'}>"

    def _repr_html_(self) -> str:
        verdict = "passed" if self.passed else "failed"
        colour = "#2e7d32" if self.passed else "#c62828"
        body = self._console().export_html(inline_styles=True, code_format="{code}")
        return (f'<div class="cnncheck-report" data-passed="{str(self.passed).lower()}">'
                f'<div style="font-weight:bold;color:{colour}">cnncheck: {verdict}</div>'
                f'<pre style="font-family:monospace;font-size:12px;line-height:1.3">{body}</pre></div>')


def _cases(layer_names, config, overrides) -> list:
    """The default suites of these layers, or the config's cases of them."""
    if config is None:
        return [c for name in layer_names
                for c in cases_for(layers.get(name).command, {**overrides, "layer": name})]
    paths = [os.fspath(config)] if isinstance(config, (str, os.PathLike)) else [os.fspath(p) for p in config]
    cases, missing = [], None
    for command in dict.fromkeys(layers.get(n).command for n in layer_names):
        try:
            cases += [c for c in load_cases(paths, command, overrides) if c.layer in layer_names]
        except ConfigError as e:
            if f"no {command} case here" not in str(e):
                raise
            missing = missing or e
    if not cases:
        raise missing or ConfigError(f"{', '.join(paths)}: no {' or '.join(layer_names)} case")
    return cases


def _run(w: worker.Worker, wanted, config, overrides, jobs=1, on_progress=None) -> Report:
    """Start the worker, run the cases of the layers it has, stop it."""
    try:
        try:
            found = w.start()
        except ImplLoadError as e:
            return Report(w.label, [], error=str(e))
        names = [n for n in layers.KINDS if n in found and (wanted is None or n in wanted)]
        cases = _cases(names, config, overrides)
        impls = {n: w.for_layer(n) for n in names}
        results = runner.run_cases(cases, impls, w.timeout, jobs, on_progress=on_progress)
        label = w.labels[names[0]] if len(names) == 1 else w.label
        source = w.source if isinstance(w.source, str) and os.path.isfile(w.source) else None
        return Report(label, diagnose.diagnose(results, source=source), notes=w.notes)
    finally:
        w.close()


def check_file(path, *, config=None, timeout=worker.DEFAULT_TIMEOUT, memory_limit=worker.DEFAULT_MEMORY,
               output_limit=worker.DEFAULT_OUTPUT, protocol=None, jobs=1, on_progress=None,
               **overrides) -> Report:
    """Every layer the file defines, each through its default suite (or the config's cases).

    A file that cannot be loaded, or defines no layer, gives `Report.error`; it never raises
    for the student's code. Raises ConfigError for a bad config or override.
    """
    load = {"protocol": protocol} if protocol else {}
    w = worker.Worker(os.fspath(path), load=load, label=os.fspath(path), timeout=timeout,
                      memory_limit=memory_limit, output_limit=output_limit)
    return _run(w, None, config, overrides, jobs, on_progress)


def check(layer: str, impl, backward=None, *, config=None, timeout=worker.DEFAULT_TIMEOUT,
          memory_limit=worker.DEFAULT_MEMORY, **overrides) -> Report:
    """Check one layer of your code; returns a Report (it renders as HTML in Jupyter).

    layer: "conv", "max_pool", "avg_pool", "im2col", ... impl: a forward function (give
    `backward` too), a class in the book's protocol (`Convolution`, `Pooling`), a module, or
    a path to a .py file (or a module name). config: a YAML file (or list of files) whose
    cases of this layer run instead of the default suite. overrides: config keys applied to
    every case, e.g. seed=0, dtype="float32", mode="dense".
    """
    kind = layers.get(layer)
    options = {"timeout": timeout, "memory_limit": memory_limit}
    if isinstance(impl, (str, os.PathLike)) or (isinstance(impl, types.ModuleType) and getattr(impl, "__file__", None)):
        source = impl.__file__ if isinstance(impl, types.ModuleType) else os.fspath(impl)
        if isinstance(impl, types.ModuleType) and impl.__name__ != "__main__" and "." in impl.__name__:
            source = impl.__name__  # a module inside a package: imported by its dotted name
        w = worker.Worker(source, load={"wanted": [layer]}, label=str(source), **options)
    else:
        adapter = _adapter(kind, impl, backward)
        w = worker.Worker(objects={layer: adapter}, label=adapter.label, **options)
    return _run(w, [layer], config, overrides)


def _adapter(kind, impl, backward):
    """The adapter for objects defined in this process (run in a forked worker)."""
    from cnncheck.sandbox.impl import functions_of
    if isinstance(impl, types.ModuleType):
        return functions_of(impl, kind, impl.__name__)
    if isinstance(impl, type):
        spec = next((s for s in kind.protocols.values() if isinstance(s, Classes)), None)
        if spec is None:
            raise TypeError(f"{kind.name} has no class protocol: pass its forward and backward functions")
        return LayerClass(impl, impl.__name__, spec, root=_root_of(impl))
    if not callable(impl) or not callable(backward):
        raise TypeError("impl must be a forward function (with backward=...), a layer class, a module or a path")
    spec = next(s for s in kind.protocols.values() if isinstance(s, Functions))
    label = f"{getattr(impl, '__name__', 'forward')} / {getattr(backward, '__name__', 'backward')}"
    return FunctionPair(impl, backward, label, spec, root=_root_of(impl))


def _root_of(obj) -> str:
    """The folder of the file that defines obj (a notebook cell: the working directory)."""
    try:
        return os.path.dirname(os.path.realpath(inspect.getsourcefile(obj)))
    except (TypeError, OSError):
        return os.getcwd()
