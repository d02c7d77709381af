"""Assertions for a student's own tests, in the manner of numpy.testing.

    from cnncheck.testing import assert_layer_ok

    def test_my_conv():
        assert_layer_ok("cs231n/layers.py", layer="conv")

runs the default suite (or a config's cases) against the student's layer and raises
AssertionError with the report: which cases and gradients failed, their worst elements, and a
hint where the failures point to a known bug. Its frames are hidden from pytest tracebacks.
"""
from __future__ import annotations


from cnncheck.api import check
from cnncheck.config import ConfigError
from cnncheck.gradcheck import CaseResult
from cnncheck.report import failure_text

from cnncheck.layers import KINDS as LAYERS
SHOWN = 3  # failed cases reported in full


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
    """Raise AssertionError with the report unless every case passes: a thin wrapper over
    cnncheck.check, whose arguments it takes.

    impl: a path to the student's .py file (or a directory holding layers.py), a module name,
    a module object, a layer class, or a forward function (then give backward=...). layer:
    "conv", "max_pool", "avg_pool", ... config: a YAML file (or a list of files) whose cases
    of this layer run instead of the default suite. overrides: config keys applied to every
    case, e.g. seed=0, dtype="float32", mode="dense".
    """
    __tracebackhide__ = True
    if layer not in LAYERS:
        raise ValueError(f"layer must be one of {', '.join(LAYERS)}, not {layer!r}")
    try:
        report = check(layer, impl, config=config, **overrides)
    except ConfigError as e:
        raise ConfigError(str(e)) from None
    if report.error:
        raise AssertionError(report.error)
    if not report.passed:
        raise AssertionError(failure_report(report.results, report.label))
