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


def _document(fraction: float, lines: list[str]) -> str:
    return json.dumps({"fractionalScore": round(min(1.0, max(0.0, fraction)), 6),
                       "feedback": "\n".join(lines).strip() + "\n", "feedbackType": "txt"}, indent=2)


def feedback(record: dict) -> str:
    """One graded submission (a record of cnncheck.grade): its score as a fraction, and what
    failed with the hints, case by case."""
    from cnncheck.grade import case_text  # grade renders a case for a reader; it imports this module
    fraction = record["score"] / record["max_score"] if record["max_score"] else 0.0
    if record["error"]:
        head = [f"cannot check your file: {record['error']}"]
    elif record["passed"]:
        head = ["every check passed"]
    else:
        head = [f"score {record['score']:g} of {record['max_score']:g}: some checks failed"]
    failing = [c for c in record["cases"] if not c["passed"] and not record["error"]]
    body = [f"\n{c['name']}:\n{case_text(c)}" for c in failing]
    notes = [f"note: {n}" for n in record.get("notes") or []]
    return _document(fraction, [*head, *body, *(["", *notes] if notes else [])])


def from_results(results: list) -> str:
    """One file checked (`cnncheck check`): the fraction of its cases that passed."""
    from cnncheck.grade import case_text
    from cnncheck.report import case_dict
    cases = [case_dict(r) for r in results]
    passed = sum(c["passed"] for c in cases)
    head = ["every check passed" if cases and passed == len(cases)
            else f"{passed} of {len(cases)} cases passed"]
    body = [f"\n{c['name']}:\n{case_text(c)}" for c in cases if not c["passed"]]
    return _document(passed / len(cases) if cases else 0.0, head + body)
