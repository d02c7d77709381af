"""Time `cnncheck grade` on a class against the shell loop it replaces.

    python bench/bench_grade.py [--students 8] [--jobs 2]

The class: N files with conv and max pool (the good files of tests/ and a dw bug among them,
copied round-robin). Side by side, best of `repeats`:
  grade  one command, `cnncheck grade FILES --format json --jobs J`
  loop   `cnncheck conv --impl F` and `cnncheck pool --impl F` for each file, `xargs -P J`
Prints both times and their ratio, with the target: grade / loop <= 1.0.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from students.bugs import write_bug  # noqa: E402

GOOD = [ROOT / "tests" / "data" / "assert_layer" / "good_layers.py", ROOT / "tests" / "students" / "good_quirks.py"]
TARGET = 1.0
PY = shlex.quote(sys.executable)
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


def make_class(folder: Path, n: int) -> list[str]:
    """n student files: the good ones and a bugged one, round-robin."""
    sources = [*GOOD, Path(write_bug("broken_conv.py", folder / "bug"))]
    files = []
    for i in range(n):
        path = folder / f"student{i:03d}.py"
        path.write_text(sources[i % len(sources)].read_text())
        files.append(str(path))
    return files


def timed(command: str) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(command, shell=True, env=ENV, capture_output=True, text=True)
    return time.perf_counter() - start, proc.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--students", type=int, default=8)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        files = make_class(Path(tmp), args.students)
        quoted = " ".join(shlex.quote(f) for f in files)
        grade = f"{PY} -m cnncheck.grade {quoted} --format json --jobs {args.jobs}"
        loop = (f"printf '%s\\n' {quoted} | xargs -P {args.jobs} -I{{}} sh -c "
                f"'{PY} -m cnncheck conv --impl \"$1\" >/dev/null; {PY} -m cnncheck pool --impl \"$1\" >/dev/null' _ {{}}")
        grade_runs = [timed(grade) for _ in range(args.repeats)]
        loop_s = min(timed(loop)[0] for _ in range(args.repeats))
    grade_s = min(s for s, _ in grade_runs)
    subs = json.loads(grade_runs[0][1])["submissions"]
    passed = sum(s["passed"] for s in subs)
    ratio = grade_s / loop_s
    print(f"{args.students} submissions ({passed} passed), --jobs {args.jobs}, best of {args.repeats}")
    print(f"{'cnncheck grade':<28} {grade_s:>7.2f} s")
    print(f"{'conv + pool, xargs -P ' + str(args.jobs):<28} {loop_s:>7.2f} s")
    print(f"{'ratio':<28} {ratio:>7.2f}   {'within' if ratio <= TARGET else 'OVER'} the target {TARGET:g}")


if __name__ == "__main__":
    main()
