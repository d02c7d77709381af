"""One list of results, every output format: the text report, JSON and JUnit.

The text report opens with the findings (cnncheck.findings: one per fault, the evidence of
every case combined), then for each the detail of one case that shows it (its checks, worst
elements and heat map), then one line per case with the relative errors the course notebook
prints, the notes, and the summary. `-v` adds every case's full table. Every word a person reads
goes through cnncheck.i18n; text from the checked code is shown as it is, never as markup.
"""
from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from collections import Counter

from rich import box
from rich.console import Console, Group
from rich.cells import cell_len
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from cnncheck.diagnose import heat_map, hints_of
from cnncheck.findings import Finding, findings, numbers
from cnncheck.gradcheck import CaseResult, Check
from cnncheck.i18n import _, msg, ngettext, tr, use
from cnncheck.taylor import summary as taylor_summary

# The course notes' bands for the relative error.
BANDS = ((1e-7, "green", "good"), (1e-4, "yellow", "doubtful"), (1e-2, "dark_orange", "uncomfortable"))
SCREEN = 40  # lines: a failing report's details are shortened to fit
WORST_SHOWN = 3  # worst elements in a finding's detail (-v and JSON: all of them)
HEAT_CELLS = 6  # a finding's heat map, pooled to at most this many cells a side (-v: diagnose.MAX_CELLS)
GRADS = ("out", "dx", "dw", "db")  # the figures of a case's line, as the notebook prints them


def shape(s) -> str:
    return "x".join(map(str, s)) if s is not None else "-"


def shown_shapes(case) -> dict:
    """The case's input shapes as the user's protocol names and lays them out (the Deep
    Learning Specialization's `A_prev 2x5x5x3`, `W 3x3x3x8`), else cnncheck's."""
    spec = case.kind.protocols.get(case.protocol)
    if not hasattr(spec, "learner_shape"):
        return case.input_shapes()
    return {spec.names.get(k, k): spec.learner_shape(k, v) for k, v in case.input_shapes().items()}


def shown_out(case, s):
    """An output shape as the user's protocol lays it out."""
    spec = case.kind.protocols.get(case.protocol)
    return spec.learner_shape("out", s) if hasattr(spec, "learner_shape") and s is not None else s


def shown_name(case, name: str) -> str:
    """A check's name as the user's protocol calls the quantity (dx: dA_prev)."""
    return getattr(case.kind.protocols.get(case.protocol), "names", {}).get(name, name)


def band(rel: float | None) -> str:
    if rel is None:
        return "white"
    return next((colour for limit, colour, _ in BANDS if rel <= limit), "red")


# -- JSON -----------------------------------------------------------------------
def check_dict(c: Check) -> dict:
    """A check as strict JSON: a figure that is not finite (an overflowed difference) is null,
    named under `not_finite`."""
    d = {k: finite(v) for k, v in vars(c).items() if v is not None or k in ("rel_error", "abs_error")}
    bad = [k for k, v in vars(c).items() if isinstance(v, float) and not math.isfinite(v)]
    bad += [f"worst.{k}" for w in c.worst for k, v in w.items() if isinstance(v, float) and not math.isfinite(v)]
    return {**d, "not_finite": sorted(set(bad))} if bad else d


def finite(v):
    """v with every non-finite float (in lists and mappings too) as None: JSON has no NaN."""
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, dict):
        return {k: finite(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [finite(x) for x in v]
    return v


def case_dict(r: CaseResult) -> dict:
    case = r.case
    return {
        "name": case.name,
        "layer": case.layer,
        "params": {case.param_name(): case.geometry(), "dtype": case.dtype, "h": case.step(),
                   "tolerance": case.rtol(), "noise_factor": case.noise_factor,
                   "seed": case.seed, "mode": case.mode},
        "source": case.source,
        "protocol": case.protocol or next(iter(case.kind.protocols)),
        "input_shapes": {k: list(v) for k, v in case.input_shapes().items()},
        "output_shape": list(r.output_shape) if r.output_shape is not None else None,
        "expected_output_shape": list(r.expected_output_shape),
        "checks": [check_dict(c) for c in r.checks],
        "passed": r.passed,
        "error": r.error,
        "hint": tr(r.hint),
        "hints": [tr(h) for h in hints_of(r)],
        "notes": r.notes,
        "seconds": round(r.seconds, 6),
        "calls": dict(r.calls),  # forward and backward calls of the checked code
        "colour_minimum": r.colour_minimum,  # the fewest forward calls a dense check can make
    }


def finding_dict(f: Finding) -> dict:
    return {**f.to_dict(), "text": tr(f.text), "pattern": tr(f.pattern)}


def to_json(results: list[CaseResult], lang: str | None = None, extra: dict | None = None) -> str:
    """The report as JSON: `findings` first, then every case. English unless lang is given;
    `extra`: more top-level fields (who ran the code, how)."""
    with use(lang):
        doc = {"passed": all(r.passed for r in results), "findings": [finding_dict(f) for f in findings(results)],
               "cases": [case_dict(r) for r in results], **(extra or {})}
    return json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False)


# -- a case's table (-v, a single case) -------------------------------------------
def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.2e}"


def verdict(c: Check) -> Text:
    if not c.passed:
        return Text(_("FAIL"), style="bold red")
    kinks = _(" ({n} kinks)").format(n=c.kinks) if c.kinks else ""
    return Text(_("pass") + kinks, style="green")


def inputs_label(case) -> str:
    """'conv s1 p1 float64 | x 4x3x5x5 w 2x3x3x3 b 2 | out '."""
    shapes = " ".join(f"{k} {shape(v)}" for k, v in shown_shapes(case).items())
    return f"{case.describe()} {case.dtype} | {shapes} | out "


def geometry(r: CaseResult) -> str:
    """'conv s1 p1 float64 | x 4x3x5x5 w 2x3x3x3 b 2 | out 4x2x5x5'."""
    return inputs_label(r.case) + shape(shown_out(r.case, r.output_shape))


def case_header(r: CaseResult) -> Text:
    """The case's name and time, then its geometry, input shapes and output shape."""
    case = r.case
    text = Text(case.name, style="bold")
    text.append(f"  ({r.seconds:.2f} s)\n", style="dim")
    text.append(inputs_label(case))
    ok = r.output_shape in (None, r.expected_output_shape)
    text.append(shape(shown_out(r.case, r.output_shape)), style="" if ok else "bold red")
    text.append(_(", expected {shape}").format(shape=shape(shown_out(r.case, r.expected_output_shape))))
    return text


def rel_cell(c: Check) -> Text:
    """The relative error in its band's colour, and the Taylor test's verdict beside it."""
    text = Text(_fmt(c.rel_error), style=band(c.rel_error))
    if c.taylor:
        text.append(f" taylor {taylor_summary(c.taylor)}", style="green" if c.taylor["passed"] else "red")
    return text


def table(r: CaseResult) -> Table:
    t = Table(header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False)
    for col in (_("check"), _("rel error"), _("abs error"), _("margin"), _("verdict"), _("method")):
        t.add_column(col, no_wrap=col != _("method"))
    for c in r.checks:
        t.add_row(shown_name(r.case, c.name), rel_cell(c), _fmt(c.abs_error), _fmt(c.margin), verdict(c), c.method)
    if r.error:
        t.add_row("-", "-", "-", "-", Text(_("ERROR"), style="bold red"), Text(tr(r.error), overflow="fold"))
    return t


def failed_head(c: Check) -> str:
    return tr(c.message) or _("{failed} of {elements} elements exceed tolerance*(|a|+|n|) + "
                              "noise_factor*noise").format(failed=c.failed, elements=c.elements)


def worst_line(c: Check, w: dict) -> str:
    """One of the worst elements: for `out` your value against the reference's."""
    mine, theirs = (_("yours"), _("reference")) if c.name == "out" else (_("analytic"), _("numerical"))
    where = w.get("index", w.get("direction"))
    return _("  at {where}: {mine} {a: .8e}  {theirs} {n: .8e}").format(
        where=where, mine=mine, a=w["analytic"], theirs=theirs, n=w["numerical"])


def heat_lines(r: CaseResult, c: Check, cells: int | None = None) -> list[Text]:
    """The heat map of a check's |analytic - numerical| with its caption (none when all zero)."""
    rows = heat_map(c.error_map, cells) if c.error_map else []
    if not rows:
        return []
    caption = _("|analytic - numerical| by {grid}:").format(grid=tr(r.case.kind.error_grid(c.name)))
    return [Text(caption, style="dim"), *(Text(f"|{row}|") for row in rows)]


def failure_lines(r: CaseResult, c: Check, worst: int | None = None, cells: int | None = None) -> list:
    """A failed check: what failed, its worst elements, its heat map (beside them when both fit)."""
    head = Text(_("{check} failed: {what}").format(check=c.name, what=failed_head(c)), style="red")
    left = [Text(worst_line(c, w)) for w in c.worst[:worst]]
    right = heat_lines(r, c, cells)
    if worst is None or not (left and right):
        return [head, *left, *(Text("    ") + t for t in right)]
    grid = Table.grid(padding=(0, 3), pad_edge=False)
    grid.add_column(no_wrap=True)
    grid.add_column(no_wrap=True)
    for i in range(max(len(left), len(right) - 1)):
        grid.add_row(left[i] if i < len(left) else "", right[i + 1] if i + 1 < len(right) else "")
    caption = Text(_("worst elements, and {caption}").format(caption=right[0].plain), style="dim")
    return [head, Text("  ") + caption, grid]


# -- the findings ---------------------------------------------------------------------
def finding_lines(i: int, f: Finding) -> list[Table]:
    """' 1  what is wrong and the fix', then the student's line and the cases that show it (by
    name where no pattern names them), both indented under the number."""
    text = Text(tr(f.text), style="bold yellow" if f.kind == "hint" else "bold red")
    said = tr(f.pattern)
    if not f.named and len(f.cases) < f.total:
        more = _(", +{n} more").format(n=len(f.cases) - 2) if len(f.cases) > 2 else ""
        said = _("{pattern}: {cases}").format(pattern=said, cases=", ".join(r.case.name for r in f.cases[:2]) + more)
    where = Text()
    if f.where:
        where.append(_("at {where}").format(where=f.where) + "  ", style="cyan")
        where.append((f.code or "") + "  ·  ")
    where.append(said, style="dim")
    grid = Table.grid(padding=(0, 2, 0, 0))
    grid.add_column(justify="right", min_width=2, style="bold")
    grid.add_column(overflow="fold")  # a long path folds, never cut
    grid.add_row(str(i), text)
    grid.add_row("", where)
    return [grid]


def evidence_lines(i: int, f: Finding, full: bool = True) -> list:
    """The detail of the case that shows finding i best: each failing check it is about (or its
    error), with the worst elements and the heat map when `full`."""
    r = f.evidence
    head = Text(f"[{i}] ", style="bold")
    head.append(r.case.name, style="bold")
    head.append(f"  {geometry(r)}", style="dim")
    lines = [head]
    if r.error and (f.kind == "error" or not f.checks):
        lines.append(Text("    " + _("error: {error}").format(error=tr(r.error)), style="red"))
    for c in f.checks:
        shown = failure_lines(r, c, WORST_SHOWN, HEAT_CELLS) if full else failure_lines(r, c, 0)[:1]
        lines.extend(Text("    ") + t if isinstance(t, Text) else Padding(t, (0, 0, 0, 4)) for t in shown)
    return lines


def height(parts: list, console: Console) -> int:
    return len(console.render_lines(Group(*parts), console.options, pad=False))


def evidence(found: list[Finding], console: Console, room: int) -> list:
    """Each finding's detail, in full while the screen has room, else its failing check alone."""
    blocks = [evidence_lines(i, f, full=False) for i, f in enumerate(found, 1)]
    used = sum(height(b, console) for b in blocks)
    for k, f in enumerate(found):
        full = evidence_lines(k + 1, f)
        more = height(full, console) - height(blocks[k], console)
        if used + more <= room:
            blocks[k], used = full, used + more
    return [p for b in blocks for p in b]


# -- one line per case: the course's numbers --------------------------------------------
def figures(r: CaseResult) -> Text:
    """'out 1.54e-16  dx 6.22e-10  dw 1.00e+00 ...': each check's relative error in the CS231n
    formula, a failed one in red."""
    return checks_figures(r.checks, r.error)


def figures_text(checks: list[dict]) -> str:
    """The figures of a case's checks in their plain-data form (JSON, grade's records)."""
    return checks_figures([Check.from_dict(d) for d in checks]).plain


def checks_figures(checks: list[Check], error: str | None = None) -> Text:
    text = Text()
    for c in checks:
        if c.name not in GRADS and c.passed:
            continue
        value = f"{c.rel_error:.2e}" if c.rel_error is not None else (_("FAIL") if not c.passed else _("ok"))
        if text:
            text.append("  ")
        text.append(f"{c.name} ")
        text.append(value, style="bold red" if not c.passed else band(c.rel_error))
    if error:
        text.append(("  " if text else "") + _("ERROR"), style="bold red")
    return text


def largest(runs: list[CaseResult]) -> Text:
    """The largest relative error of each quantity over passing cases."""
    worst = {}
    for c in (c for r in runs for c in r.checks if c.name in GRADS and c.rel_error is not None):
        worst[c.name] = max(worst.get(c.name, 0.0), c.rel_error)
    return checks_figures([Check(name, True, rel_error=v) for name, v in worst.items()])


def case_lines(results: list[CaseResult], marks: dict, width: int, fold: bool = False) -> list[Text]:
    """Every case in one line: pass or FAIL, its name, its figures, the findings it shows; a
    name too long for the terminal is cut, never the figures. `fold`: a layer's passing cases
    in one line, with their largest errors."""
    rows, passing = [], {}
    for r in results:
        if fold and r.passed:
            if r.case.layer not in passing:
                rows.append((True, r.case.layer, None))  # filled in below
            passing.setdefault(r.case.layer, []).append(r)
            continue
        tail = figures(r)
        if id(r) in marks:
            tail.append("  [" + ",".join(map(str, marks[id(r)])) + "]", style="bold")
        rows.append((r.passed, r.case.name, tail))
    for k, (ok, name, tail) in enumerate(rows):
        runs = passing.get(name) if tail is None else None
        if runs:
            rows[k] = (ok, runs[0].case.name, figures(runs[0])) if len(runs) == 1 else \
                (ok, _("{n} more {layer} cases, largest:").format(n=len(runs), layer=name), largest(runs))
    words = {True: _("pass"), False: _("FAIL")}
    status = max(map(cell_len, words.values())) + 2
    room = width - status - 2 - max((t.cell_len for *_r, t in rows), default=0)
    names = max(8, min(max((cell_len(name) for _ok, name, _t in rows), default=0), room))
    lines = []
    for ok, name, tail in rows:
        line = Text(words[ok] + " " * (status - cell_len(words[ok])), style="green" if ok else "bold red")
        name = name if cell_len(name) <= names else name[:names - 1] + "…"
        line.append(name + " " * (names - cell_len(name)) + "  ", style="bold")
        lines.append(line + tail)
    return lines


def notes_lines(results: list[CaseResult]) -> list[Text]:
    """Each note once: 'note: ...' (with how many cases have it, when not all)."""
    count = Counter(n for r in results for n in r.notes)
    total = len(results)
    out = []
    for n, k in count.items():
        who = "" if k == total or total == 1 else _("(in {k} of {n} cases) ").format(k=k, n=total)
        out.append(Text(_("note: {note}").format(note=who + tr(n)), style="dim"))
    return out


def summary(results: list[CaseResult]) -> Text:
    checks = [c for r in results for c in r.checks]
    failed = sum(not c.passed for c in checks)
    errors = sum(r.error is not None for r in results)
    secs = sum(r.seconds for r in results)
    ok = failed == 0 and errors == 0
    text = Text(_("{cases}, {checks}: {passed} passed, {failed} failed").format(
        cases=ngettext("{n} case", "{n} cases", len(results)).format(n=len(results)),
        checks=ngettext("{n} check", "{n} checks", len(checks)).format(n=len(checks)),
        passed=len(checks) - failed, failed=failed), style="bold green" if ok else "bold red")
    if errors:
        text.append(ngettext(", {n} case with an error", ", {n} cases with an error", errors).format(n=errors))
    text.append(f" ({secs:.2f} s)")
    return text


def details(results: list[CaseResult]) -> list:
    """Every failed check with all its worst elements and its full heat map (-v)."""
    return [Text(f"{r.case.name}: ") + t if isinstance(t, Text) and i == 0 else t
            for r in results for c in r.checks if not c.passed
            for i, t in enumerate(failure_lines(r, c))]


def print_table(results: list[CaseResult], console: Console, verbose: bool = False, lang: str | None = None,
                footer=()) -> None:
    """The findings, each with the detail of one case showing it; a line per case with the
    relative errors of out, dx, dw and db; notes; the summary; `footer` lines last. A failing
    report keeps to SCREEN lines where it can: details shortened first, then each layer's
    passing cases in one line. With verbose (or a single case) every case's full table and
    every failure in full instead."""
    with use(lang):
        found = findings(results)
        parts = [p for i, f in enumerate(found, 1) for p in finding_lines(i, f)]
        if found:
            parts.append(Text())
        end = [*notes_lines(results), summary(results), *(Text(tr(x)) for x in footer)]
        if verbose or len(results) == 1:
            tables = [p for r in results for p in (case_header(r), table(r))]
            console.print(Group(*parts, *tables, *details(results), *end))
            return
        marks = numbers(results, found)
        rest = [Text(_("relative error, as the notebook prints it: max |a - b| / max(1e-8, |a| + |b|)"),
                     style="dim"), *case_lines(results, marks, console.width), *end]
        if found and height(parts + rest + evidence(found, console, 0), console) > SCREEN:
            rest[1:-len(end)] = case_lines(results, marks, console.width, fold=True)  # one screen still
        if found:
            parts += evidence(found, console, SCREEN - height(parts + rest, console))
        console.print(Group(*parts, *rest))


# -- JUnit XML --------------------------------------------------------------------
def failure_text(c: Check) -> tuple[str, str]:
    """(message, body) of a failed check: what failed, then its worst elements."""
    head = failed_head(c)
    if c.rel_error is not None:
        head += _(" (rel error {rel}, abs error {abs})").format(rel=_fmt(c.rel_error), abs=_fmt(c.abs_error))
    lines = [_("{check} failed: {what}").format(check=c.name, what=head)]
    lines.extend(worst_line(c, w) + _("  allowed {allowed:.2e}").format(allowed=w["allowed"]) for w in c.worst)
    if c.taylor:
        lines.append(_("  Taylor test: {verdict}").format(verdict=c.taylor["verdict"]))
    return head, "\n".join(lines)


def to_junit(results: list[CaseResult], lang: str | None = None) -> str:
    """JUnit XML: one testcase per case and check (classname = case, name = check), a failure
    for a failed check, an error for a case whose layer raised. English unless lang is given."""
    with use(lang):
        return _junit(results)


def _junit(results: list[CaseResult]) -> str:
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
                body += "".join("\n" + _("hint: {hint}").format(hint=tr(h)) for h in hints_of(r))
                ET.SubElement(tc, "failure", message=message, type="CheckFailure").text = body
    suite.attrib.update({k: str(v) for k, v in counts.items()},
                        skipped="0", time=f"{sum(r.seconds for r in results):.6f}")
    root = ET.Element("testsuites", name="cnncheck", **{k: suite.get(k) for k in (*counts, "time")})
    root.append(suite)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True)
