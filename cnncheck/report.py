"""One list of results, every output format: the rich table and JSON."""
from __future__ import annotations

import json

from rich import box
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from cnncheck.gradcheck import CaseResult, Check

# The course notes' bands for the relative error.
BANDS = ((1e-7, "green", "good"), (1e-4, "yellow", "doubtful"), (1e-2, "dark_orange", "uncomfortable"))


def shape(s) -> str:
    return "x".join(map(str, s)) if s is not None else "-"


def band(rel: float | None) -> str:
    if rel is None:
        return "white"
    return next((colour for limit, colour, _ in BANDS if rel <= limit), "red")


# -- JSON -----------------------------------------------------------------------
def check_dict(c: Check) -> dict:
    return {k: v for k, v in vars(c).items() if v is not None or k in ("rel_error", "abs_error")}


def case_dict(r: CaseResult) -> dict:
    case = r.case
    return {
        "name": case.name,
        "layer": case.layer,
        "params": {case.param_name(): case.param(), "dtype": case.dtype, "h": case.step(),
                   "tolerance": case.rtol(), "noise_factor": case.noise_factor,
                   "seed": case.seed, "mode": case.mode},
        "source": case.source,
        "input_shapes": {k: list(v) for k, v in case.input_shapes().items()},
        "output_shape": list(r.output_shape) if r.output_shape is not None else None,
        "expected_output_shape": list(r.expected_output_shape),
        "checks": [check_dict(c) for c in r.checks],
        "passed": r.passed,
        "error": r.error,
        "hint": r.hint,
        "notes": r.notes,
        "seconds": round(r.seconds, 6),
    }


def to_json(results: list[CaseResult]) -> str:
    doc = {"passed": all(r.passed for r in results), "cases": [case_dict(r) for r in results]}
    return json.dumps(doc, indent=2)


# -- the table ------------------------------------------------------------------
def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.2e}"


def verdict(c: Check) -> Text:
    if not c.passed:
        return Text("FAIL", style="bold red")
    kinks = f" ({c.kinks} kinks)" if c.kinks else ""
    return Text("pass" + kinks, style="green")


def case_header(r: CaseResult) -> Text:
    """The case's name and time, then its geometry, input shapes and output shape."""
    case = r.case
    text = Text(case.name, style="bold")
    text.append(f"  ({r.seconds:.2f} s)\n", style="dim")
    shapes = " ".join(f"{k} {shape(v)}" for k, v in case.input_shapes().items())
    text.append(f"{case.describe()} {case.dtype} | {shapes} | out ")
    ok = r.output_shape in (None, r.expected_output_shape)
    text.append(shape(r.output_shape), style="" if ok else "bold red")
    text.append(f", expected {shape(r.expected_output_shape)}")
    return text


def table(r: CaseResult) -> Table:
    t = Table(header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("check", "rel error", "abs error", "margin", "verdict", "method"):
        t.add_column(col, no_wrap=col != "method")
    for c in r.checks:
        t.add_row(c.name, Text(_fmt(c.rel_error), style=band(c.rel_error)),
                  _fmt(c.abs_error), _fmt(c.margin), verdict(c), c.method)
    if r.error:
        t.add_row("-", "-", "-", "-", Text("ERROR", style="bold red"), r.error)
    return t


def details(results: list[CaseResult]) -> list:
    """Below the table: errors, failures with their worst elements, and notes."""
    lines = []
    for r in results:
        if r.error:
            lines.append(Text(f"{r.case.name}: error: {r.error}", style="red"))
        for c in r.checks:
            if c.passed:
                continue
            head = c.message or (f"{c.failed} of {c.elements} elements exceed "
                                 f"tolerance*(|a|+|n|) + noise_factor*noise")
            lines.append(Text(f"{r.case.name}: {c.name} failed: {head}", style="red"))
            for w in c.worst:
                where = w.get("index", w.get("direction"))
                lines.append(Text(f"    at {where}: analytic {w['analytic']: .8e}  "
                                  f"numerical {w['numerical']: .8e}"))
        if r.hint:
            lines.append(Text(f"{r.case.name}: hint: {r.hint}", style="yellow"))
        lines.extend(Text(f"{r.case.name}: note: {n}", style="dim") for n in r.notes)
    return lines


def summary(results: list[CaseResult]) -> Text:
    checks = [c for r in results for c in r.checks]
    failed = sum(not c.passed for c in checks)
    errors = sum(r.error is not None for r in results)
    secs = sum(r.seconds for r in results)
    ok = failed == 0 and errors == 0
    text = Text(f"{len(results)} cases, {len(checks)} checks: {len(checks) - failed} passed, "
                f"{failed} failed", style="bold green" if ok else "bold red")
    if errors:
        text.append(f", {errors} cases raised errors")
    text.append(f" ({secs:.2f} s)")
    return text


def print_table(results: list[CaseResult], console: Console) -> None:
    parts = [p for r in results for p in (case_header(r), table(r))]
    console.print(Group(*parts, *details(results), summary(results)))
