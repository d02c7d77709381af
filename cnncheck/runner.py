"""Run cases (check_case, and the contract checks for code under test): serially in this
process, or several at a time.

Code under check runs in worker processes (cnncheck.sandbox), which keep their own time
limits: several jobs are threads of this judge, each with workers of its own (the judge's
work is numpy, which leaves the interpreter lock while it computes). Nothing crosses from
a process that ran the checked code but the worker's schema-checked replies. cnncheck's
own layers (no code under check) run several jobs in forked judge children, with a per-case
timeout. Results come back in the order of the cases, identical to a serial run.
"""
from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import wait

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from cnncheck.case import Case
from cnncheck import contract
from cnncheck.sandbox import process as worker
from cnncheck.gradcheck import CaseResult, check_case
from cnncheck.protocols import StudentTimeout

ESTIMATE_NOTICE = 3.0  # seconds: announce dense checks expected to take longer
GRACE = 2.0  # seconds past the timeout before a child that ignores its alarm is killed


def jobs_count(jobs) -> int:
    """`auto` -> the machine's cores; otherwise a positive int."""
    n = (os.cpu_count() or 1) if jobs == "auto" else int(jobs)
    if n < 1:
        raise ValueError(f"jobs must be a positive integer or 'auto', got {jobs!r}")
    return n


def _impl_for(impl, case: Case):
    """impl may be one Impl, a mapping layer -> Impl, or None (the built-in layers)."""
    return impl.get(case.layer) if isinstance(impl, dict) else impl


def _check(case: Case, impl, progress=None) -> CaseResult:
    """check_case, the contract checks, and the notes the student's code left on its Impl."""
    impl = _impl_for(impl, case)
    hooks = {"on_call": getattr(progress, "on_call", None),
             "on_estimate": getattr(progress, "on_estimate", None)}
    result = check_case(case, impl, **hooks)
    if impl and result.error is None and result.output_shape == result.expected_output_shape:
        start = time.perf_counter()  # the contract of code under test (the built-in layers keep it)
        result.checks.append(contract.check(impl, case))
        result.seconds += time.perf_counter() - start
    if hasattr(impl, "take_notes"):
        result.notes.extend(impl.take_notes())
    return result


def _timed_out(case: Case, timeout: float, how: str) -> CaseResult:
    return CaseResult(case, case.output_shape(), error=f"timed out after {timeout:g} s ({how})",
                      seconds=timeout)


def _isolated(impl) -> bool:
    """Code in a worker process: the worker enforces its own time limits."""
    impls = impl.values() if isinstance(impl, dict) else [impl]
    return any(getattr(i, "isolated", False) for i in impls)


def _child(case: Case, impl, timeout, conn) -> None:
    """In a forked judge process: check one case and send the result back."""
    sys.stdout = sys.stderr = sys.__stderr__ or sys.stderr  # never the parent's display
    start = time.perf_counter()
    if timeout and not _isolated(impl):
        def alarm(*_):
            raise StudentTimeout(f"{timeout:g} s")
        signal.signal(signal.SIGALRM, alarm)
        signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        result = _check(case, impl)
    except StudentTimeout:
        result = _timed_out(case, timeout, "interrupted")
    except BaseException as e:  # noqa: BLE001 - the parent must hear of anything
        result = CaseResult(case, case.output_shape(), error=f"{type(e).__name__}: {e}")
    signal.setitimer(signal.ITIMER_REAL, 0)
    worker.shutdown()  # this judge process's own workers end before its result is sent
    result.seconds = time.perf_counter() - start
    conn.send(result)
    conn.close()


def _forked(cases, impl, timeout, jobs, progress) -> list[CaseResult]:
    ctx = multiprocessing.get_context("fork")
    results = [None] * len(cases)
    todo = list(enumerate(cases))[::-1]
    running = {}  # connection -> (index, process, kill deadline)
    try:
        while todo or running:
            while todo and len(running) < jobs:
                i, case = todo.pop()
                recv, send = ctx.Pipe(duplex=False)
                p = ctx.Process(target=_child, args=(case, impl, timeout, send), daemon=True)
                p.start()
                send.close()
                limited = timeout and not _isolated(impl)
                running[recv] = (i, p, time.monotonic() + timeout + GRACE if limited else None)
                _tell(progress, "case_started", case)
            deadlines = [d for _, _, d in running.values() if d is not None]
            wait_for = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
            for conn in wait(list(running), timeout=wait_for):
                i, p, _ = running.pop(conn)
                results[i] = _receive(conn, p, cases[i])
                _tell(progress, "case_done", results[i])
            for conn, (i, p, deadline) in list(running.items()):
                if deadline is not None and time.monotonic() > deadline:
                    p.kill()
                    p.join()
                    del running[conn]
                    results[i] = _timed_out(cases[i], timeout, "stopped: the layer did not return")
                    _tell(progress, "case_done", results[i])
    finally:
        for _, p, _ in running.values():
            p.kill()
            p.join()
    return results


def _threaded(cases, impl, jobs, progress) -> list[CaseResult]:
    """The cases in `jobs` threads, each thread with its own workers for the same code."""
    local, clones = threading.local(), []

    def run(case):
        if not hasattr(local, "impl"):
            local.impl = _clone(impl)
            clones.append(local.impl)
        _tell(progress, "case_started", case)
        result = _check(case, local.impl)
        _tell(progress, "case_done", result)
        return result
    try:
        with ThreadPoolExecutor(jobs) as pool:
            return list(pool.map(run, cases))
    finally:
        for mine in clones:
            for layer in (mine.values() if isinstance(mine, dict) else [mine]):
                layer.worker.close()


def _clone(impl):
    """The same layers on workers of their own (one clone per worker)."""
    if not isinstance(impl, dict):
        return type(impl)(impl.worker.clone(), impl.layer)
    clones = {}
    return {name: type(layer)(clones.setdefault(id(layer.worker), layer.worker.clone()), layer.layer)
            for name, layer in impl.items()}


def _receive(conn, p, case: Case) -> CaseResult:
    try:
        result = conn.recv()
    except EOFError:
        p.join()
        return CaseResult(case, case.output_shape(),
                          error=f"the process checking this case died (exit code {p.exitcode})")
    p.join()
    return result


def _tell(progress, event: str, arg) -> None:
    hook = getattr(progress, event, None)
    if hook:
        hook(arg)


def run_cases(cases: list[Case], impl=None, timeout: float | None = None, jobs=1,
              on_progress=None) -> list[CaseResult]:
    """check_case for every case, results in the order of the cases.

    impl: an Impl, a mapping layer -> Impl, or None for the built-in layers.
    timeout: seconds per case (None: no limit). jobs: worker processes, or "auto".
    on_progress: an object with any of case_started(case), case_done(result), and, for a
    serial run, on_call() and on_estimate(case, mode, calls, seconds) (see TerminalProgress).
    """
    jobs = min(jobs_count(jobs), max(1, len(cases)))
    impls = impl.values() if isinstance(impl, dict) else [impl]
    early = [n for i in impls if hasattr(i, "take_notes") for n in i.take_notes()]  # from loading
    if jobs > 1 and _isolated(impl):
        results = _threaded(cases, impl, jobs, on_progress)
    elif jobs > 1 or (timeout and not _isolated(impl)):
        results = _forked(cases, impl, timeout, jobs, on_progress)
    else:
        results = []
        for case in cases:
            _tell(on_progress, "case_started", case)
            results.append(_check(case, impl, on_progress))
            _tell(on_progress, "case_done", results[-1])
    if results:
        results[0].notes[:0] = early
    return results


# -- the progress display --------------------------------------------------------------------
class TerminalProgress:
    """A rich bar on stderr (only when stderr is a terminal) and notices of long checks.

    One bar counts the cases; a long case (estimated over ESTIMATE_NOTICE seconds) gets a
    second bar counting its forward calls.
    """

    def __init__(self, bar: Progress, console: Console, total: int):
        self.bar, self.console = bar, console
        self.task = bar.add_task("checking", total=total)
        self.calls = None  # the current long case's task

    def case_started(self, case: Case) -> None:
        self.bar.update(self.task, description=f"checking {case.name}")

    def on_estimate(self, case: Case, mode: str, calls, secs: float) -> None:
        if secs > ESTIMATE_NOTICE:
            what = f"{calls} forward calls" if calls else mode
            self.console.print(f"[dim]{case.name}: {mode} check, about {secs:.0f} s ({what})[/dim]")
            self.calls = self.bar.add_task("  forward calls", total=calls)

    def on_call(self) -> None:
        if self.calls is not None:
            self.bar.advance(self.calls)

    def case_done(self, result: CaseResult) -> None:
        if self.calls is not None:
            self.bar.remove_task(self.calls)
            self.calls = None
        self.bar.advance(self.task)


@contextlib.contextmanager
def terminal_progress(total: int):
    err = Console(stderr=True)
    with Progress(TextColumn("{task.description}"), BarColumn(), TimeRemainingColumn(),
                  console=err, transient=True, disable=not err.is_terminal) as bar:
        yield TerminalProgress(bar, err, total)
