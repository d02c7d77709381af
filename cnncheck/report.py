"""One list of results, every output format: the rich table and JSON."""
from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections import Counter

from rich import box
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from cnncheck.diagnose import heat_map, hints_of
from cnncheck.gradcheck import CaseResult, Check
from cnncheck.taylor import summary as taylor_summary

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
        "params": {case.param_name(): case.geometry(), "dtype": case.dtype, "h": case.step(),
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
        "hints": hints_of(r),
        "notes": r.notes,
        "seconds": round(r.seconds, 6),
        "calls": dict(r.calls),  # forward and backward calls of the checked code
        "colour_minimum": r.colour_minimum,  # the fewest forward calls a dense check can make
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


def rel_cell(c: Check) -> Text:
    """The relative error in its band's colour, and the Taylor test's verdict beside it."""
    text = Text(_fmt(c.rel_error), style=band(c.rel_error))
    if c.taylor:
        text.append(f" taylor {taylor_summary(c.taylor)}", style="green" if c.taylor["passed"] else "red")
    return text


def table(r: CaseResult) -> Table:
    t = Table(header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("check", "rel error", "abs error", "margin", "verdict", "method"):
        t.add_column(col, no_wrap=col != "method")
    for c in r.checks:
        t.add_row(c.name, rel_cell(c),
                  _fmt(c.abs_error), _fmt(c.margin), verdict(c), c.method)
    if r.error:
        t.add_row("-", "-", "-", "-", Text("ERROR", style="bold red"), Text(r.error, overflow="fold"))
    return t


def _folded(results: list[CaseResult]):
    """line(r, kind, text) -> the Text for one error, hint or note of case r, or None when an
    identical one was already shown: a text in several cases shows once, at its first case,
    as 'in all 7 cases: error: ...' or 'in 5 of 7 cases: ...'."""
    count = Counter()
    for r in results:
        hints = [h for h in hints_of(r) if h not in (r.error or "")]  # else in the error
        count.update({("error", r.error), *(("hint", h) for h in hints), *(("note", n) for n in r.notes)})
    shown, style, total = set(), {"error": "red", "hint": "yellow", "note": "dim"}, len(results)

    def line(r: CaseResult, kind: str, text: str):
        if (kind, text) in shown:
            return None
        shown.add((kind, text))
        n = count[(kind, text)]
        who = r.case.name if n == 1 else f"in all {n} cases" if n == total else f"in {n} of {total} cases"
        return Text(f"{who}: {kind}: {text}", style=style[kind])
    return line


def failed_head(c: Check) -> str:
    return c.message or (f"{c.failed} of {c.elements} elements exceed "
                         f"tolerance*(|a|+|n|) + noise_factor*noise")


def worst_line(c: Check, w: dict) -> str:
    """One of the worst elements: for `out` your value against the reference's."""
    mine, theirs = ("yours", "reference") if c.name == "out" else ("analytic", "numerical")
    where = w.get("index", w.get("direction"))
    return f"  at {where}: {mine} {w['analytic']: .8e}  {theirs} {w['numerical']: .8e}"


def details(results: list[CaseResult]) -> list:
    """Below the tables: errors, failures with their worst elements and heat maps, then the
    hints and the notes; an error, hint or note shared by several cases shows once."""
    lines, line = [], _folded(results)
    for r in results:
        if r.error:
            lines.append(line(r, "error", r.error))
        for c in r.checks:
            if c.passed:
                continue
            lines.append(Text(f"{r.case.name}: {c.name} failed: {failed_head(c)}", style="red"))
            lines.extend(Text(f"  {worst_line(c, w)}") for w in c.worst)
            rows = heat_map(c.error_map) if c.error_map else []
            if rows:
                grid = r.case.kind.error_grid(c.name)
                lines.append(Text(f"    |analytic - numerical| by {grid}:", style="dim"))
                lines.extend(Text(f"    |{row}|") for row in rows)
    for r in results:  # the hints together, just above the summary
        lines.extend(line(r, "hint", h) for h in hints_of(r)
                     if h not in (r.error or ""))  # an error's own hint is already in it
    lines.extend(line(r, "note", n) for r in results for n in r.notes)
    return [t for t in lines if t is not None]


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def summary(results: list[CaseResult]) -> Text:
    checks = [c for r in results for c in r.checks]
    failed = sum(not c.passed for c in checks)
    errors = sum(r.error is not None for r in results)
    secs = sum(r.seconds for r in results)
    ok = failed == 0 and errors == 0
    text = Text(f"{plural(len(results), 'case')}, {plural(len(checks), 'check')}: "
                f"{len(checks) - failed} passed, {failed} failed", style="bold green" if ok else "bold red")
    if errors:
        text.append(f", {plural(errors, 'case')} with an error")
    text.append(f" ({secs:.2f} s)")
    return text


def passed_line(r: CaseResult, width: int) -> Text:
    """A passing case in one line: its name (padded to `width`), time and geometry (cut to fit)."""
    shapes = " ".join(f"{k} {shape(v)}" for k, v in r.case.input_shapes().items() if len(v) > 1)
    text = Text("pass  ", style="green", no_wrap=True, overflow="ellipsis")
    text.append(r.case.name.ljust(width), style="bold")
    text.append(f"  {r.seconds:5.2f} s  {r.case.describe()} | {shapes}", style="dim")
    return text


def print_table(results: list[CaseResult], console: Console, verbose: bool = False) -> None:
    """Every case's table when verbose or when there is one case; else a line for each passing
    case and the table for each failing one. Below them the failures' worst elements and heat
    maps, the hints and notes (each shown once), and the summary last."""
    full = verbose or len(results) == 1
    width = max(len(r.case.name) for r in results) if results else 0
    parts = [p for r in results
             for p in ((case_header(r), table(r)) if full or not r.passed else (passed_line(r, width),))]
    console.print(Group(*parts, *details(results), summary(results)))


# -- JUnit XML --------------------------------------------------------------------
def failure_text(c: Check) -> tuple[str, str]:
    """(message, body) of a failed check: what failed, then its worst elements."""
    head = failed_head(c)
    if c.rel_error is not None:
        head += f" (rel error {_fmt(c.rel_error)}, abs error {_fmt(c.abs_error)})"
    lines = [f"{c.name} failed: {head}"]
    lines.extend(f"{worst_line(c, w)}  allowed {w['allowed']:.2e}" for w in c.worst)
    if c.taylor:
        lines.append(f"  Taylor test: {c.taylor['verdict']}")
    return head, "\n".join(lines)


def to_junit(results: list[CaseResult]) -> str:
    """JUnit XML: one testcase per case and check (classname = case, name = check), a failure
    for a failed check, an error for a case whose layer raised."""
    suite = ET.Element("testsuite", name="cnncheck")
    counts = {"tests": 0, "failures": 0, "errors": 0}
    for r in results:
        rows = [(c.name, c) for c in r.checks] + ([("call", None)] if r.error else [])
        for name, c in rows:
            tc = ET.SubElement(suite, "testcase", classname=r.case.name, name=name,
                               time=f"{r.seconds / len(rows):.6f}")
            counts["tests"] += 1
            if c is None:
                counts["errors"] += 1
                ET.SubElement(tc, "error", message=r.error, type="LayerError").text = r.error
            elif not c.passed:
                counts["failures"] += 1
                message, body = failure_text(c)
                body += "".join(f"\nhint: {h}" for h in hints_of(r))
                ET.SubElement(tc, "failure", message=message, type="CheckFailure").text = body
    suite.attrib.update({k: str(v) for k, v in counts.items()},
                        skipped="0", time=f"{sum(r.seconds for r in results):.6f}")
    root = ET.Element("testsuites", name="cnncheck", **{k: suite.get(k) for k in (*counts, "time")})
    root.append(suite)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True)
