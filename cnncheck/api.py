"""The Python API: `cnncheck.check(...)` for a notebook cell, `check_file(...)` for a whole file.

    import cnncheck
    report = cnncheck.check("conv", conv_forward_naive, conv_backward_naive)
    report            # renders as HTML in Jupyter: the table, the hints, the heat maps
    report.passed     # True / False

Code loaded from a file or a module name runs in a worker process (cnncheck.sandbox.process), as on
the command line. Functions and classes defined in a notebook cell run there too, from their
source: the imports and definitions of the kernel's cells (or of the file that defines
them), loaded afresh in the worker; nothing of this process is inherited. The judge (this
process) computes every verdict.
"""
from __future__ import annotations

import inspect
import io
import json
import os
import types

from rich.console import Console

from cnncheck import diagnose, i18n, layers, report as render, runner
from cnncheck.sandbox import process as worker
from cnncheck.config import ConfigError, load_cases
from cnncheck.gradcheck import CaseResult
from cnncheck.sandbox.impl import ImplLoadError
from cnncheck.suites import GEOMETRY, cases_for, for_protocols


class Report:
    """The results of a check: `.passed`, `.cases`, `.to_json()`, `str()`, and HTML in Jupyter;
    `.lang` the language people read it in (None: the environment's; JSON stays English)."""

    lang: str | None = None

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
        doc = json.loads(render.to_json(self.results, self.lang))
        doc["passed"] = self.passed
        if self.error:
            doc["error"] = self.error
        return json.dumps(doc, indent=2)

    def _console(self) -> Console:
        console = Console(record=True, file=io.StringIO(), width=100, force_terminal=False, force_jupyter=False)
        lang = i18n.resolve(self.lang)
        if self.error:
            with i18n.use(lang):
                console.print(f"{self.label}: {i18n.tr(self.error)}", style="red", markup=False, highlight=False)
        else:
            render.print_table(self.results, console, lang=lang)
        return console

    def __str__(self) -> str:
        return self._console().export_text()

    def __repr__(self) -> str:
        return f"<cnncheck report {self.label}: {'passed' if self.passed else 'FAILED'}>"

    def _repr_html_(self) -> str:
        with i18n.use(i18n.resolve(self.lang)):
            verdict = i18n._("passed") if self.passed else i18n._("failed")
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
        impls = {n: w.for_layer(n) for n in names}
        fresh = config is None and not set(GEOMETRY) & set(overrides)
        cases = for_protocols(_cases(names, config, overrides), impls, suite=fresh)
        results = runner.run_cases(cases, impls, w.timeout, jobs, on_progress=on_progress)
        label = w.labels[names[0]] if len(names) == 1 else w.label
        source = w.source if isinstance(w.source, str) and os.path.isfile(w.source) else None
        return Report(label, diagnose.diagnose(results, source=source), notes=w.notes)
    finally:
        w.close()


def check_file(path, *, config=None, timeout=worker.DEFAULT_TIMEOUT, memory_limit=worker.DEFAULT_MEMORY,
               output_limit=worker.DEFAULT_OUTPUT, protocol=None, jobs=1, on_progress=None,
               isolation=None, lang=None, private=False, **overrides) -> Report:
    """Every layer the file defines, each through its default suite (or the config's cases);
    lang: the report's language (zh_CN, ja, ko, en; default: the environment's).

    A file that cannot be loaded, or defines no layer, gives `Report.error`; it never raises
    for the student's code. Raises ConfigError for a bad config or override.
    """
    load = {"protocol": protocol} if protocol else {}
    w = worker.Worker(os.fspath(path), load=load, label=os.fspath(path), timeout=timeout,
                      memory_limit=memory_limit, output_limit=output_limit, isolation=isolation,
                      private=private)  # private: the working directory hidden (grade's class is there)
    return _in(lang, _run(w, None, config, overrides, jobs, on_progress))


def check(layer: str, impl, backward=None, *, config=None, timeout=worker.DEFAULT_TIMEOUT,
          memory_limit=worker.DEFAULT_MEMORY, lang=None, **overrides) -> Report:
    """Check one layer of your code; returns a Report (it renders as HTML in Jupyter).

    layer: "conv", "max_pool", "avg_pool", "im2col", ... impl: a forward function (give
    `backward` too), a class in the book's protocol (`Convolution`, `Pooling`), a module, or
    a path to a .py file (or a module name). config: a YAML file (or list of files) whose
    cases of this layer run instead of the default suite. overrides: config keys applied to
    every case, e.g. seed=0, dtype="float32", mode="dense". lang: the report's language
    (zh_CN, ja, ko, en; default: the environment's).
    """
    kind = layers.get(layer)
    i18n.resolve(lang)  # an unknown language is the caller's mistake, before any work
    options = {"timeout": timeout, "memory_limit": memory_limit}
    if isinstance(impl, (str, os.PathLike)) or (isinstance(impl, types.ModuleType) and getattr(impl, "__file__", None)):
        source = impl.__file__ if isinstance(impl, types.ModuleType) else os.fspath(impl)
        if isinstance(impl, types.ModuleType) and impl.__name__ != "__main__" and "." in impl.__name__:
            source = impl.__name__  # a module inside a package: imported by its dotted name
        w = worker.Worker(source, load={"wanted": [layer]}, label=str(source), **options)
    else:
        w = _worker_for(kind, impl, backward, options)
    return _in(lang, _run(w, [layer], config, overrides))


def _in(lang, rep: Report) -> Report:
    rep.lang = i18n.resolve(lang) if lang else None
    return rep


def _worker_for(kind, impl, backward, options) -> worker.Worker:
    """A worker that loads the objects' source afresh: the file that defines them, or the
    notebook kernel's cells (definitions only). Raises TypeError for objects with neither."""
    if isinstance(impl, types.ModuleType):
        raise TypeError(f"module {impl.__name__} has no file: pass a path to the file instead")
    if isinstance(impl, type):
        load, label = {"class_name": impl.__name__}, impl.__name__
    elif callable(impl) and callable(backward):
        load = {"forward": impl.__name__, "backward": backward.__name__}
        label = f"{impl.__name__} / {backward.__name__}"
    else:
        raise TypeError("impl must be a forward function (with backward=...), a layer class, a module or a path")
    load["wanted"] = [kind.name]
    module = getattr(impl, "__module__", None)
    text = _kernel_cells() if module == "__main__" else None
    path = _file_of(impl)
    if text is None and path and module == "__main__":  # a script: its definitions, not its run
        with open(path, encoding="utf-8", errors="replace") as f:
            text = "# In[1]:\n" + f.read()
    if text is not None:
        name = os.path.basename(path) if path and not path.startswith("<") else "notebook_cells.py"
        return worker.Worker(name if name.endswith(".py") else name + ".py", text=text, load=load,
                             label=label, **options)
    if path is None:
        raise TypeError(f"cnncheck runs {label} from its source, and cannot find it: define it in a "
                        "notebook cell or a file, at the top level")
    return worker.Worker(path, load=load, label=label, **options)


def _kernel_cells() -> str | None:
    """The cells this IPython kernel ran, as an nbconvert export (None outside IPython)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    shell = get_ipython()
    cells = shell.user_ns.get("In") if shell is not None else None
    if not cells:
        return None
    return "".join(f"# In[{i}]:\n{c}\n\n" for i, c in enumerate(cells) if c)


def _file_of(obj) -> str | None:
    try:
        path = inspect.getsourcefile(obj)
    except TypeError:
        return None
    return path if path and os.path.isfile(path) else None


