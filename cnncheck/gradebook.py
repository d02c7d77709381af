"""Text a reader sees for one submission's record (plain data, as grade keeps it): a case,
the findings, points, the class summary. Shared by grade's table and CSV, its HTML page and
Coursera's feedback, which import this module and not each other.
"""
from __future__ import annotations

from cnncheck import layers, report
from cnncheck.gradcheck import Check
from cnncheck.i18n import _, ngettext, tr

LAYERS = tuple(layers.KINDS)


def case_text(c: dict) -> str:
    """What a student reads for one case: passed, or its error, failed checks with their worst
    elements, hint and notes."""
    if c["passed"]:
        return _("passed: {checks}").format(checks=report.figures_text(c["checks"]))
    lines = [_("error: {error}").format(error=tr(c["error"]))] if c.get("error") else []
    for d in c["checks"]:
        k = Check.from_dict(d)
        if not k.passed:
            rel = _(" (rel error {rel})").format(rel=f"{k.rel_error:.2e}") if k.rel_error is not None else ""
            lines.append(_("{check} failed: {what}").format(check=k.name, what=report.failed_head(k) + rel))
            lines.extend(report.worst_line(k, w) for w in k.worst)
    if c.get("hint") and c["hint"] not in (c.get("error") or ""):
        lines.append(_("hint: {hint}").format(hint=tr(c["hint"])))
    lines.extend(_("note: {note}").format(note=tr(n)) for n in c.get("notes") or [])
    return "\n".join(lines)


def findings_text(r: dict) -> str:
    """A submission's findings, numbered: what is wrong and the fix, where, which cases."""
    lines = []
    for i, f in enumerate(r.get("findings") or [], 1):
        at = "  (" + _("at {where}").format(where=f["where"]) + ")" if f.get("where") else ""
        lines += [f"{i}. {tr(f['text'])}{at}", f"   {tr(f['pattern'])}"]
    return "\n".join(lines)


def points_text(x: float) -> str:
    return f"{x:g}" if x == int(x) else f"{x:.2f}"


def all_layers(records: list[dict]) -> list[str]:
    """The layers any record has, known kinds first."""
    found = dict.fromkeys(x for r in records for x in r["layers"])
    return [*(x for x in LAYERS if x in found), *(x for x in found if x not in LAYERS)]


def class_summary(records: list[dict]) -> str:
    n = len(records)
    passed = sum(r["passed"] for r in records)
    errors = sum(r["error"] is not None for r in records)
    got, most = sum(r["score"] for r in records), sum(r["max_score"] for r in records)
    mean = _("mean score {got} of {most}").format(got=points_text(got / n), most=points_text(most / n)) if n \
        else _("no score")
    return _("{submissions}: {passed} passed every check, {failed} failed some, {errors} could not be checked; "
             "{mean} ({seconds} s of checking)").format(
        submissions=ngettext("{n} submission", "{n} submissions", n).format(n=n), passed=passed,
        failed=n - passed - errors, errors=errors, mean=mean, seconds=f"{sum(r['seconds'] for r in records):.1f}")
