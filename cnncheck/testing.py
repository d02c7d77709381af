"""Assertions for a student's own tests, in the manner of numpy.testing.

    from cnncheck.testing import assert_layer_ok

    def test_my_conv():
        assert_layer_ok("cs231n/layers.py", layer="conv")

runs the default suite (or a config's cases) against the student's layer and raises
AssertionError with the report: which cases and gradients failed, their worst elements, and a
hint where the failures point to a known bug. Its frames are hidden from pytest tracebacks.
"""
from __future__ import annotations

import os

from cnncheck import impl as impl_mod
from cnncheck import layers
from cnncheck.config import ConfigError, load_cases
from cnncheck.diagnose import diagnose
from cnncheck.gradcheck import CaseResult
from cnncheck.report import failure_text
from cnncheck.runner import run_cases
from cnncheck.suites import cases_for

from cnncheck.layers import KINDS as LAYERS
SHOWN = 3  # failed cases reported in full


def layer_cases(layer: str, config=None, overrides: dict | None = None) -> list:
    """The cases for layer: the default suite, or the config file(s)' cases of that layer.

    overrides: keys as in the config (seed, dtype, mode, tolerance, taylor, x_shape, ...).
    Raises ConfigError for a bad config or override.
    """
    command = layers.get(layer).command
    overrides = dict(overrides or {})
    if config is None:
        return cases_for(command, {**overrides, "layer": layer})
    paths = [os.fspath(config)] if isinstance(config, (str, os.PathLike)) else [os.fspath(p) for p in config]
    cases = [c for c in load_cases(paths, command, overrides) if c.layer == layer]
    if not cases:
        raise ConfigError(f"{', '.join(paths)}: no {layer} case")
    return cases


def failure_report(results: list[CaseResult], label: str) -> str:
    """The readable report of the failed cases: failed checks, worst elements, hints; the
    first SHOWN failed cases in full, the others by name."""
    failed = [r for r in results if not r.passed]
    lines = [f"{len(failed)} of {len(results)} cases failed for {label}"]
    for r in failed[:SHOWN]:
        lines.append(f"{r.case.name} ({r.case.describe()}, x {'x'.join(map(str, r.case.x_shape))}):")
        if r.error:
            lines.append(f"  error: {r.error}")
        for c in r.checks:
            if not c.passed:
                lines.extend("  " + line for line in failure_text(c)[1].splitlines())
        if r.hint:
            lines.append(f"  hint: {r.hint}")
    if len(failed) > SHOWN:
        lines.append(f"and {len(failed) - SHOWN} more: " + "; ".join(r.case.name for r in failed[SHOWN:]))
    return "\n".join(lines)


def assert_layer_ok(impl, layer: str = "conv", config=None, **overrides) -> None:
    """Raise AssertionError with the report unless every case passes.

    impl: a path to the student's .py file (or a directory holding layers.py), a module name,
    or a module object. layer: "conv", "max_pool" or "avg_pool". config: a YAML file (or a
    list of files) whose cases of this layer run instead of the default suite. overrides:
    config keys applied to every case, e.g. seed=0, dtype="float32", mode="dense".
    """
    __tracebackhide__ = True
    if layer not in LAYERS:
        raise ValueError(f"layer must be one of {', '.join(LAYERS)}, not {layer!r}")
    try:
        cases = layer_cases(layer, config, overrides)
        student = impl_mod.load(impl, layer)
    except ConfigError as e:
        raise ConfigError(str(e)) from None
    except impl_mod.ImplLoadError as e:
        raise AssertionError(str(e)) from None
    results = diagnose(run_cases(cases, impl=student))
    if not all(r.passed for r in results):
        raise AssertionError(failure_report(results, student.label))
