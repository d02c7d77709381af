"""`--format coursera`: the feedback a Coursera custom grader returns.

Coursera runs a grader's container with the learner's files in /shared/submission and reads
`/shared/feedback.json`: `{"fractionalScore": 0.0 ... 1.0, "feedback": "...", "feedbackType":
"txt"}`, the score shown to the learner and the text they read. `cnncheck grade SUBMISSION
--format coursera -o /shared/feedback.json` writes it for one submission (its points over the
points possible); `cnncheck check FILE --format coursera` for one file (the cases passed over
the cases run). examples/coursera/ is a grader folder that does this.
"""
from __future__ import annotations

import json

from cnncheck.i18n import _, tr


def _document(fraction: float, lines: list[str]) -> str:
    return json.dumps({"fractionalScore": round(min(1.0, max(0.0, fraction)), 6),
                       "feedback": "\n".join(lines).strip() + "\n", "feedbackType": "txt"}, indent=2)


def feedback(record: dict) -> str:
    """One graded submission (a record of cnncheck.grade): its score as a fraction, and what
    failed with the hints, case by case."""
    from cnncheck.gradebook import case_text, findings_text
    fraction = record["score"] / record["max_score"] if record["max_score"] else 0.0
    if record["error"]:
        head = [_("cannot check your file: {error}").format(error=tr(record["error"]))]
    elif record["passed"]:
        head = [_("every check passed")]
    else:  # the findings first, as every report opens
        head = [_("score {score} of {most}: some checks failed").format(
            score=f"{record['score']:g}", most=f"{record['max_score']:g}"), findings_text(record)]
    failing = [c for c in record["cases"] if not c["passed"] and not record["error"]]
    body = [f"\n{c['name']}:\n{case_text(c)}" for c in failing]
    notes = [_("note: {note}").format(note=tr(n)) for n in record.get("notes") or []]
    return _document(fraction, [*head, *body, *(["", *notes] if notes else [])])


def from_results(results: list) -> str:
    """One file checked (`cnncheck check`): the fraction of its cases that passed."""
    from cnncheck.findings import findings
    from cnncheck.gradebook import case_text, findings_text
    from cnncheck.report import case_dict, finding_dict
    cases = [case_dict(r) for r in results]
    passed = sum(c["passed"] for c in cases)
    head = [_("every check passed") if cases and passed == len(cases)
            else _("{passed} of {n} cases passed").format(passed=passed, n=len(cases)),
            findings_text({"findings": [finding_dict(f) for f in findings(results)]})]
    body = [f"\n{c['name']}:\n{case_text(c)}" for c in cases if not c["passed"]]
    return _document(passed / len(cases) if cases else 0.0, head + body)
