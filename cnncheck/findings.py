"""Findings: one per distinct fault of a file, what every renderer draws first.

A finding is a hint (diagnose combines the evidence of every case of a layer, so one bug gives
one hint on exactly the cases that show it), or, where no hint speaks, a case's error or its
failing checks. Each says what is wrong (`text`, English; renderers translate it with i18n.tr),
where (`where`, file:line of the student's code, and `code`, that line), which cases show it
(`cases`, and `pattern`: "every pad-0 case", "only where windows overlap"), and which case's
detail shows it best (`evidence`, with the `checks` that fail there).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from cnncheck.diagnose import hints_of
from cnncheck.evidence import nonsquare_input, nonsquare_kernel, overlapping
from cnncheck.gradcheck import CaseResult
from cnncheck.i18n import msg

# Messages written where the code runs (cnncheck.sandbox, cnncheck.protocols) and the command
# line's footer: renderers translate them by these templates (i18n.tr).
ELSEWHERE = (msg("{who} raised {error}"), msg("{who} timed out after {time}"),
             msg("{who} returned None, expected {want}: a missing return?"), msg("{who} returned {got}, expected {want}"),
             msg("isolation: {description}"), msg("{hint_error} (hint: {hint})"),
             msg("{who} writes keys {keys} into {param}: allowed, each call gets its own copy"),
             msg("{name}, judged on its own, fails: {error}"),  # a DLAI helper (cnncheck.protocols.dlai)
             msg("{name} (defined at {where}), judged on its own, is wrong: {call} returned {what}, "
                 "where the course expects {expected}"))
SEE = re.compile(r"(.*) \(see ([^()]*?):(\d+): `(.*)`\)", re.S)  # diagnose's "(see file.py:39: `code`)"

# Sets of cases with a name of their own, the first that is exactly a finding's cases names it.
PATTERNS = (
    (msg("every pad-0 case"), lambda c: c.kind.name == "conv" and c.pad == (0, 0)),
    (msg("every case with pad other than 1"), lambda c: c.kind.name == "conv" and c.pad != (1, 1)),
    (msg("every case with stride > 1"), lambda c: max(c.stride) > 1),
    (msg("only where windows overlap"), overlapping),
    (msg("every non-square input"), nonsquare_input),
    (msg("every non-square kernel or pool"), nonsquare_kernel),
    (msg("every non-square case"), lambda c: nonsquare_input(c) or nonsquare_kernel(c)),
    (msg("every case with a non-square output"), lambda c: c.out_hw()[0] != c.out_hw()[1]),
)


@dataclass
class Finding:
    text: str
    layer: str
    kind: str  # hint | error | failure
    cases: list = field(default_factory=list)  # the CaseResults that show it, in report order
    where: str | None = None  # "layers.py:39"
    code: str | None = None  # that line's text
    pattern: str | None = None
    evidence: CaseResult | None = None
    checks: list = field(default_factory=list)  # the evidence's failing checks this finding is about
    total: int = 0  # the layer's cases
    named: bool = False  # a pattern names the cases exactly

    @property
    def file(self) -> str | None:
        return self.where.rsplit(":", 1)[0] if self.where else None

    @property
    def line(self) -> int | None:
        return int(self.where.rsplit(":", 1)[1]) if self.where else None

    def to_dict(self) -> dict:
        return {"text": self.text, "layer": self.layer, "kind": self.kind, "where": self.where,
                "file": self.file, "line": self.line, "code": self.code, "pattern": self.pattern,
                "cases": [r.case.name for r in self.cases],
                "evidence": {"case": self.evidence.case.name, "checks": [c.name for c in self.checks]}}


def split_where(hint: str) -> tuple[str, str | None, str | None]:
    """(text, 'file:line', code) of a hint that ends with diagnose's '(see file:line: `code`)'."""
    m = SEE.fullmatch(hint)
    return (m.group(1), f"{m.group(2)}:{m.group(3)}", m.group(4)) if m else (hint, None, None)


def _failing(r: CaseResult) -> list:
    return [c for c in r.checks if not c.passed]


def _keys(r: CaseResult) -> list[tuple]:
    """(kind, grouping key, text) of each finding a failing case shows."""
    hints = hints_of(r)
    if hints:
        return [("hint", h, h) for h in hints]
    if r.error:
        return [("error", re.sub(r"\d+", "#", r.error), r.error)]
    names = ", ".join(c.name for c in _failing(r))
    return [("failure", names, msg("{checks} failed, and no known bug class fits: see the detail below",
                                   checks=names))]


def pattern_of(cases: list, runs: list) -> tuple[str, bool]:
    """Which of the layer's cases show a finding, and whether a pattern names them exactly."""
    ids, n = {id(r) for r in cases}, len(runs)
    if len(ids) == n:
        return msg("all {n} {layer} cases", n=n, layer=runs[0].case.layer), True
    named = next((name for name, holds in PATTERNS
                  if {id(r) for r in runs if holds(r.case)} == ids), None)
    count = msg("{k} of {n} {layer} cases", k=len(ids), n=n, layer=runs[0].case.layer)
    return (msg("{hint} ({hint_count})", hint=named, hint_count=count), True) if named else (count, False)


def _evidence(f: Finding, count: dict) -> None:
    """The case that shows f best: the fewest other findings, then the first; its checks that f
    names (all its failing checks when it names none)."""
    r = min(f.cases, key=lambda r: count[id(r)])
    failing = _failing(r)
    named = [c for c in failing if re.search(rf"\b{c.name}\b", f.text)] if count[id(r)] > 1 else []
    f.evidence, f.checks = r, named or failing


def findings(results: list[CaseResult]) -> list[Finding]:
    """The findings of a report, in the order of the first case showing each."""
    found, count = {}, {}
    for r in results:
        if r.passed:
            continue
        keys = _keys(r)
        count[id(r)] = len(keys)
        for kind, key, text in keys:
            f = found.get((r.case.layer, kind, key))
            if f is None:
                body, where, code = split_where(text) if kind == "hint" else (text, None, None)
                f = found[(r.case.layer, kind, key)] = Finding(body, r.case.layer, kind, where=where, code=code)
            f.cases.append(r)
    for f in found.values():
        runs = [r for r in results if r.case.layer == f.layer]
        (f.pattern, f.named), f.total = pattern_of(f.cases, runs), len(runs)
        _evidence(f, count)
    return list(found.values())


def numbers(results: list[CaseResult], out: list[Finding]) -> dict[int, list[int]]:
    """{id(case): the 1-based numbers of the findings it shows}."""
    marks = {}
    for i, f in enumerate(out, 1):
        for r in f.cases:
            marks.setdefault(id(r), []).append(i)
    return marks
