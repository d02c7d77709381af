"""Hints from evidence, the heat map, and the case runner (jobs, timeouts, crashes)."""
import dataclasses
import io
import os
import time

import pytest
from rich.console import Console

from cnncheck import diagnose, layers, report
from cnncheck.evidence import Pattern
from cnncheck.gradcheck import Check, CaseResult, Impl, builtin
from cnncheck.runner import run_cases
from cnncheck.suites import default_suite


@pytest.mark.parametrize("message, hint", [
    ("TypeError: 'float' object cannot be interpreted as an integer", "use `//`"),
    ("TypeError: slice indices must be integers or None or have an __index__ method", "use `//`"),
    ("AttributeError: module 'numpy' has no attribute 'float'.", "np.float was removed in numpy 1.24: use float"),
    ("AttributeError: module 'numpy' has no attribute 'float_'", "removed in numpy 2.0: use np.float64"),
    ("AttributeError: module 'numpy.lib' has no attribute 'pad'", "np.lib.pad was removed: use np.pad"),
    ("NameError: name 'xrange' is not defined", "xrange is Python 2: use range"),
    ("NameError: name 'col2im_6d_cython' is not defined", "python setup.py build_ext --inplace"),
    ("AttributeError: 'dict' object has no attribute 'iteritems'", "use d.items()"),
    ("NameError: name 'conv_forward' is not defined", None),
    ("AttributeError: module 'numpy' has no attribute 'frobnicate'", None),
    ("ValueError: operands could not be broadcast together", None),
])
def test_error_hints(message, hint):
    found = diagnose.error_hint(message)
    assert (found is None) if hint is None else (hint in found)


def verdicts(layer, failing):
    """Results of the default suite where exactly the cases with names in `failing` fail."""
    return [CaseResult(c, c.output_shape(), checks=[Check("dx", c.name not in failing)])
            for c in default_suite(layer)]


def names(layer, holds):
    return {c.name for c in default_suite(layer) if holds(c)}


@pytest.mark.parametrize("layer, holds, hint", [
    ("conv", lambda c: c.pad == (0, 0), "only at pad 0"),
    ("conv", lambda c: c.stride[0] > 1, "only at stride > 1"),
    ("conv", lambda c: c.stride[0] < c.kernel[0], "windows overlap"),
    ("conv", lambda c: c.x_shape[2] != c.x_shape[3], "only on non-square inputs"),
    ("conv", lambda c: c.kernel[0] != c.kernel[1], "only with non-square kernels"),
    ("max_pool", lambda c: c.stride[0] < max(c.pool), "windows overlap"),
    ("max_pool", lambda c: c.stride[0] > 1, "only at stride > 1"),
    ("avg_pool", lambda c: c.pool[0] != c.pool[1], "only with non-square kernels or pools"),
])
def test_a_hint_where_the_failing_cases_match_a_bug_class(layer, holds, hint):
    results = diagnose.diagnose(verdicts(layer, names(layer, holds)))
    hints = {r.hint for r in results if not r.passed}
    assert len(hints) == 1
    found = hints.pop()
    assert ", in dx: " in found and hint in found
    assert all(r.hint is None for r in results if r.passed)


def patterns(layer):
    """The patterns diagnose reads for a layer: its record's own, then the shared ones."""
    own = [h for h in layers.get(layer).hints if isinstance(h, Pattern)]
    return own + diagnose.PATTERNS


def test_every_pattern_picks_out_a_distinct_set_of_default_cases():
    for layer in ("conv", "max_pool"):
        sets = [frozenset(names(layer, p.holds)) for p in patterns(layer)]
        assert len(set(sets)) == len(sets) and all(0 < len(s) < len(default_suite(layer)) for s in sets)


@pytest.mark.parametrize("failing", [set(), {"conv notebook backward"}, "all",
                                     {"conv pad 0", "conv stride 2"}])
def test_without_evidence_only_the_quantitys_checklist(failing):
    failing = names("conv", lambda c: True) if failing == "all" else failing
    results = diagnose.diagnose(verdicts("conv", failing))
    assert all(r.hint is None for r in results if r.passed)
    assert all(r.hint.startswith("dx: each window adds") for r in results if not r.passed)


def test_heat_map_shows_where_the_error_sits():
    border = [[1.0 if i in (0, 4) or j in (0, 4) else 0.0 for j in range(5)] for i in range(5)]
    rows = diagnose.heat_map(border)
    assert rows[0] == "█" * 10 and rows[2] == "██" + " " * 6 + "██"
    assert diagnose.heat_map([[0.0, 0.0]]) == []
    big = diagnose.heat_map([[float(j == 99) for j in range(100)] for _ in range(60)])
    assert len(big) == 20 and all(r == " " * 38 + "██" for r in big)  # 60x100 pooled to 20x20


def test_details_render_worst_elements_heat_map_and_the_report_its_hint_and_notes():
    case = default_suite("conv")[0]
    chk = Check("dx", False, failed=1, elements=300, error_map=[[0.0, 2.0], [0.0, 0.0]],
                worst=[{"index": [0, 1, 2, 3], "analytic": 1.5, "numerical": 0.5}])
    r = CaseResult(case, case.output_shape(), checks=[chk], hint="a hint", notes=["a note"])
    text = "\n".join(str(t) for t in report.details([r]))
    assert "at [0, 1, 2, 3]: analytic  1.50000000e+00  numerical  5.00000000e-01" in text
    assert "    |  ██|\n    |    |" in text
    console = Console(file=io.StringIO(), width=100)
    report.print_table([r, dataclasses.replace(r, checks=[Check("dx", True)], hint=None)], console)
    out = console.file.getvalue()
    assert out.startswith(" 1  a hint") and "note: a note" in out and "(in 2 of 2 cases)" not in out


# -- the runner ----------------------------------------------------------------------------
def comparable(results):
    return [dataclasses.replace(r, seconds=0.0) for r in results]


def test_jobs_give_the_serial_results_in_order():
    cases = default_suite("conv")[:4] + default_suite("max_pool")[:3]
    serial = run_cases(cases)
    assert comparable(run_cases(cases, jobs=2)) == comparable(serial)
    assert comparable(run_cases(cases, jobs="auto", timeout=60)) == comparable(serial)


def test_a_slow_case_times_out_and_the_others_still_run():
    good = builtin("max_pool")

    def forward(x, pool_param):
        if x.shape[2] == 7:  # only the 3x3 stride 2 case
            time.sleep(30)
        return good.forward(x, pool_param)

    cases = default_suite("max_pool")
    start = time.perf_counter()
    results = run_cases(cases, Impl(forward, good.backward, "slow"), timeout=0.5, jobs=2)
    assert time.perf_counter() - start < 20
    slow = [r for r in results if r.case.x_shape[2] == 7]
    assert len(slow) == 1 and "timed out after 0.5 s" in slow[0].error
    assert all(r.passed for r in results if r.case.x_shape[2] != 7)


def test_a_child_that_dies_fails_its_case_only():
    good = builtin("max_pool")

    def forward(x, pool_param):
        if x.shape[2] == 7:
            os._exit(3)
        return good.forward(x, pool_param)

    results = run_cases(default_suite("max_pool"), Impl(forward, good.backward, "dies"), jobs=2)
    assert [r.error for r in results if not r.passed] == ["the process checking this case died (exit code 3)"]


def test_code_that_swallows_the_alarm_is_stopped_all_the_same():
    good = builtin("max_pool")

    def forward(x, pool_param):
        while x.shape[2] == 7:
            try:
                time.sleep(10)
            except BaseException:  # a student's bare except
                pass
        return good.forward(x, pool_param)

    results = run_cases(default_suite("max_pool")[3:5], Impl(forward, good.backward, "stubborn"), timeout=0.3)
    assert results[1].error == "timed out after 0.3 s (stopped: the layer did not return)"
    assert results[0].passed
