"""The command line: `cnncheck conv` and `cnncheck pool`.

Exit codes: 0 every check passed, 1 some check failed, 2 usage or config error.
stdout carries only the result; progress, estimates and warnings go to stderr.
"""
from __future__ import annotations

import functools
import os
import sys

import click
from rich.console import Console

from cnncheck import __version__, api, coursera, diagnose, i18n, report, runner, suites
from cnncheck.sandbox import impl, process as worker
from cnncheck.grade import grade
from cnncheck.options import LANG_OPTION
from cnncheck.config import PAD_MODES, ConfigError, load_cases


RUN_OPTIONS = ("impl", "forward", "backward", "timeout", "jobs", "memory_limit", "output_limit",
               "protocol", "class_name", "isolation")  # how to run, not what
ISOLATION_OPTION = click.option(
    "--isolation", type=click.Choice(["auto", "bwrap", "uid", "process"]), default="auto", show_default=True,
    help="How the checked code is kept apart: auto (the strongest this machine allows), bwrap "
         "(bubblewrap namespaces), uid (another user), process (a process of your own user).")


class UserError(click.ClickException):
    """A usage or config mistake: message on stderr, exit 2, in the reader's language (--lang,
    else the environment's)."""

    exit_code = 2

    def __init__(self, message: str):
        ctx = click.get_current_context(silent=True)
        super().__init__(i18n.in_language(message, ctx.params.get("lang") if ctx else None))


def _ints(value: str, flag: str, count: tuple[int, ...]) -> tuple[int, ...]:
    try:
        parts = tuple(int(p) for p in value.replace("x", ",").split(","))
    except ValueError:
        parts = ()
    if len(parts) not in count:
        want = " or ".join(str(c) for c in count)
        raise UserError(f"{flag} {value!r}: expected {want} comma-separated integers, e.g. "
                        f"{','.join(['4', '3', '16', '16'][: max(count)])}")
    return parts


def _pair(value: str, flag: str):
    if flag == "--pad" and value in PAD_MODES:  # conv's pad: same or valid, as PyTorch's padding
        return value
    parts = _ints(value, flag, (1, 2))
    return parts[0] if len(parts) == 1 else parts


def _bytes(ctx, param, value):
    units = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30}
    text = str(value).strip().upper().removesuffix("B")
    try:
        number, unit = (text[:-1], text[-1]) if text[-1:] in units else (text, "")
        n = int(float(number) * units[unit])
    except (ValueError, KeyError):
        n = 0
    if n <= 0:
        raise click.BadParameter(f"{value!r}: expected a size such as 4G, 512M or 65536")
    return n


def _jobs(ctx, param, value):
    try:
        return runner.jobs_count(value) if value is not None else 1
    except ValueError:
        raise click.BadParameter(f"{value!r}: expected a positive integer or 'auto'") from None


def common_options(f):
    """Options every command shares, written once."""
    options = [
        click.option("--impl", metavar="FILE_OR_MODULE",
                     help="Check your own layers: a .py file (e.g. assignment2/cs231n/layers.py) or a "
                          "module name. Without --config, runs the default suite."),
        click.option("--forward", metavar="NAME", help="Forward function name (default: the CS231n one, "
                                                       "e.g. conv_forward_naive)."),
        click.option("--backward", metavar="NAME",
                     help="Backward function name (default: the one matching --forward)."),
        click.option("--config", "configs", multiple=True, metavar="FILE",
                      help="YAML config file (repeatable). Without one, the embedded default runs."),
        click.option("--protocol", type=click.Choice(["cs231n", "dlfs", "dlai"]),
                     help="How --impl's layers are called (default: detected from what the file defines; "
                          "dlai: the Deep Learning Specialization's conv_forward(A_prev, W, b, hparameters))."),
        click.option("--class", "class_name", metavar="NAME",
                     help="The layer class to check in --impl (the book's protocol), e.g. Pooling."),
        click.option("--timeout", type=click.FloatRange(0, min_open=True), metavar="SECONDS",
                     default=worker.DEFAULT_TIMEOUT, show_default=True,
                     help="Wall time per case for --impl code; the process running it is killed after."),
        click.option("--memory-limit", callback=_bytes, default="4G", show_default=True, metavar="SIZE",
                     help="Memory for the process running --impl code, e.g. 4G or 512M."),
        click.option("--output-limit", callback=_bytes, default="64K", show_default=True, metavar="SIZE",
                     help="What --impl code may print that is kept and shown (on stderr)."),
        click.option("--jobs", callback=_jobs, metavar="N|auto",
                     help="Run cases in N worker processes (auto: one per core)."),
        click.option("--x-shape", metavar="N,C,H,W", help="Input shape, e.g. 4,3,16,16."),
        click.option("--stride", metavar="S|SH,SW", help="Stride, e.g. 2 or 2,1."),
        click.option("--seed", type=int, help="Random seed for inputs and dout."),
        click.option("--h", "h", type=float, help="Finite-difference step (default 1e-5 in float64)."),
        click.option("--tolerance", type=float, help="Relative tolerance (default 1e-6 in float64)."),
        click.option("--noise-factor", type=float,
                     help="How many times the estimated rounding noise a discrepancy may reach."),
        click.option("--dtype", type=click.Choice(["float64", "float32"]), help="Layer dtype."),
        click.option("--mode", type=click.Choice(["auto", "dense", "sparse", "projection"]),
                     help="auto (default): dense when affordable, else projection plus sparse."),
        click.option("--samples", type=int, help="Sparse mode: random elements per gradient."),
        click.option("--directions", type=int, help="Projection mode: random directions."),
        click.option("--taylor", is_flag=True, default=None,
                     help="Also run the Taylor test: residuals at steps 0.1 ... 2e-4 and their order."),
        click.option("--format", "fmt", type=click.Choice(["table", "json", "junit"]), default="table",
                     show_default=True, help="Output format on stdout."),
        click.option("-v", "--verbose", is_flag=True, help="Table: every case's table, passing ones too."),
        LANG_OPTION,
        ISOLATION_OPTION,
    ]
    return functools.reduce(lambda g, opt: opt(g), reversed(options), f)


def overrides(opts: dict) -> dict:
    """Flags the user gave, in the config's own terms."""
    skip = ("configs", "fmt", "avg", "verbose", "lang", *RUN_OPTIONS)
    out = {k: v for k, v in opts.items() if v is not None and k not in skip}
    for key, count in (("x_shape", (4,)), ("w_shape", (4,))):
        if key in out:
            out[key] = _ints(out[key], "--" + key.replace("_", "-"), count)
    for key in ("stride", "pad", "dilation"):
        if key in out:
            out[key] = _pair(out[key], "--" + key)
    if opts.get("avg"):
        out["layer"] = "avg_pool"
    return out


def run(command: str, opts: dict) -> None:
    try:
        if opts["impl"] and not opts["configs"]:
            cases = suites.cases_for(command, overrides(opts))
        else:
            cases = load_cases(list(opts["configs"]), command, overrides(opts))
    except ConfigError as e:
        raise UserError(str(e)) from None
    try:
        impls = load_impls(cases, opts)
        fresh = bool(opts["impl"]) and not opts["configs"] and not set(suites.GEOMETRY) & set(overrides(opts))
        cases = suites.for_protocols(cases, impls, suite=fresh)  # the Deep Learning Specialization's suite
        results = check_all(cases, impls, opts["timeout"], opts["jobs"])
        results = diagnose.diagnose(results, source=_file(opts["impl"]))
    finally:
        worker.shutdown()  # every worker is gone before the verdict is written
    emit(results, opts["fmt"], opts["verbose"], opts["lang"])
    sys.exit(0 if all(r.passed for r in results) else 1)


def emit(results, fmt: str, verbose: bool = False, lang: str | None = None) -> None:
    """The result on stdout, in the chosen format and language (--lang, else the environment's
    for the table and English for machines), with the isolation the checked code ran under."""
    lang = i18n.resolve(lang, machine=fmt in ("json", "junit"))
    wall = worker.isolation()
    if fmt == "json":
        click.echo(report.to_json(results, lang, {"isolation": wall}))
    elif fmt == "junit":
        click.echo(report.to_junit(results, lang))
    elif fmt == "coursera":  # a Coursera custom grader's feedback.json
        with i18n.use(lang):
            click.echo(coursera.from_results(results))
    else:
        footer = [f"isolation: {wall['description']}"] if wall else []
        report.print_table(results, Console(), verbose=verbose, lang=lang, footer=footer)


def _file(spec) -> str | None:
    """The student's file when spec names one (hints then point at its lines)."""
    return spec if spec and os.path.isfile(spec) else None


def load_impls(cases, opts) -> dict | None:
    """--impl's layers among the cases, run in a worker process (None: the built-in layers)."""
    if not opts["impl"]:
        for flag in ("forward", "backward", "protocol", "class_name"):
            if opts[flag]:
                raise UserError(f"--{flag.replace('_name', '')} names what to check in --impl FILE_OR_MODULE: give it too")
        return None
    wanted = sorted({c.layer for c in cases})
    load = {"wanted": wanted, "forward": opts["forward"], "backward": opts["backward"],
            "protocol": opts["protocol"], "class_name": opts["class_name"]}
    try:
        w = worker.Worker(opts["impl"], load={k: v for k, v in load.items() if v}, timeout=opts["timeout"],
                          memory_limit=opts["memory_limit"], output_limit=opts["output_limit"],
                          isolation=opts["isolation"])
        w.start()
    except ValueError as e:  # the isolation asked for cannot be had here
        raise UserError(str(e)) from None
    except impl.ImplLoadError as e:
        raise UserError(str(e)) from None
    return {layer: w.for_layer(layer) for layer in wanted}


def check_all(cases, impls=None, timeout=None, jobs=1) -> list:
    """The cases checked; --timeout limits --impl code (in its worker), not cnncheck's own layers."""
    with runner.terminal_progress(len(cases)) as progress:
        return runner.run_cases(cases, impls, timeout if impls else None, jobs, on_progress=progress)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="cnncheck")
def main():
    """Gradient checks for numpy convolution and pooling layers.

    Runs forward and backward, computes numerical gradients by finite
    differences, and reports output shapes and errors. Exit code 0 when every
    check passed, 1 when some check failed, 2 for a usage or config error.
    """
    worker.keep_freed_memory()


DEFAULTS_RULE = """Defaults, one rule for flags, YAML and the API: a parameter not given takes
    PyTorch's default (stride 1, for pooling the window; pad 0; dilation 1; groups 1; a
    bias; ceil_mode off; count_include_pad on; no divisor_override). With no geometry flag
    the notebook's case runs as it is; geometry flags describe a case of their own, its
    shapes the notebook's where not given."""


def dilation_option(f):
    return click.option("--dilation", metavar="D|DH,DW", help="Step between a window's taps, e.g. 2 or 2,1.")(f)


@main.command()
@common_options
@click.option("--w-shape", metavar="F,C,HH,WW", help="Filter shape, e.g. 8,3,3,3 (F, C / groups, HH, WW).")
@click.option("--pad", metavar="P|PH,PW|same|valid", help="Zero padding, e.g. 1 or 1,2, or same or valid.")
@dilation_option
@click.option("--groups", type=click.IntRange(1), help="Filter groups: C and F are multiples of it (C: depthwise).")
@click.option("--bias/--no-bias", default=None, help="A conv with or without bias (b and db).")
def conv(**opts):
    """Check convolution layers.

    \b
    Examples:
      cnncheck conv                                   # the course notebook's case
      cnncheck conv --x-shape 4,3,16,16 --w-shape 8,3,3,3 --stride 1 --pad 1
      cnncheck conv --x-shape 2,8,9,9 --w-shape 8,1,3,3 --groups 8 --dilation 2 --pad same --no-bias
      cnncheck conv --config configs/examples.yaml --format json
      cnncheck conv --impl assignment2/cs231n/layers.py   # your own layers, default suite
      cnncheck conv --impl cs231n.fast_layers --forward conv_forward_fast --timeout 60
    """
    run("conv", opts)


@main.command()
@common_options
@click.option("--pool-height", type=int, help="Pool window height.")
@click.option("--pool-width", type=int, help="Pool window width.")
@click.option("--avg", is_flag=True, default=None, help="Average pooling instead of max pooling.")
@click.option("--pad", metavar="P|PH,PW", help="Padding (max pooling: it never wins, as PyTorch's), e.g. 1.")
@click.option("--dilation", metavar="D|DH,DW", help="Max pooling: step between a window's elements, e.g. 2.")
@click.option("--ceil-mode", "ceil_mode", is_flag=True, default=None, help="Round output sizes up, as PyTorch's ceil_mode.")
@click.option("--count-include-pad/--no-count-include-pad", default=None,
              help="Average pooling: does padding count in a window's size (default: it does).")
@click.option("--divisor-override", type=int, help="Average pooling: divide every window's sum by this.")
def pool(**opts):
    """Check max pooling (or average pooling with --avg) layers.

    \b
    Examples:
      cnncheck pool                                   # the course notebook's case
      cnncheck pool --x-shape 2,3,8,8 --pool-height 3 --pool-width 3 --stride 1
      cnncheck pool --x-shape 2,3,6,6 --pool-height 2 --pool-width 2 --stride 2 --pad 1
      cnncheck pool --x-shape 1,2,3,6 --pool-height 3 --pool-width 3 --stride 2 --dilation 1,2 --ceil-mode
      cnncheck pool --avg --config configs/pool.yaml --format json
      cnncheck pool --impl assignment2/cs231n/layers.py --jobs auto --format json
    """
    run("pool", opts)


@main.command()
@common_options
@click.option("--pool-height", type=int, help="Filter height (FH).")
@click.option("--pool-width", type=int, help="Filter width (FW).")
@click.option("--pad", metavar="P|PH,PW", help="Zero padding, e.g. 1 or 1,2.")
@dilation_option
def im2col(**opts):
    """Check im2col as a layer: forward im2col, backward col2im.

    \b
    Examples:
      cnncheck im2col                                     # the built-in pair, one case
      cnncheck im2col --config configs/im2col.yaml
      cnncheck im2col --impl common/util.py               # the book's im2col / col2im
      cnncheck im2col --impl cs231n/im2col.py             # the course's im2col_indices / col2im_indices
    """
    run("im2col", opts)


@main.command("check")
@click.argument("path", metavar="FILE")
@click.option("--config", "configs", multiple=True, metavar="FILE",
              help="YAML config file (repeatable): its cases of the file's layers run instead of the default suites.")
@click.option("--protocol", type=click.Choice(["cs231n", "dlfs", "dlai"]),
              help="How the file's layers are called (default: detected).")
@click.option("--timeout", type=click.FloatRange(0, min_open=True), default=worker.DEFAULT_TIMEOUT,
              show_default=True, metavar="SECONDS", help="Wall time per case.")
@click.option("--memory-limit", callback=_bytes, default="4G", show_default=True, metavar="SIZE",
              help="Memory for the process running the file's code.")
@click.option("--jobs", callback=_jobs, metavar="N|auto", help="Run cases in N judge processes.")
@click.option("--seed", type=int, help="Random seed for inputs and dout.")
@click.option("--dtype", type=click.Choice(["float64", "float32"]), help="Layer dtype.")
@click.option("--mode", type=click.Choice(["auto", "dense", "sparse", "projection"]), help="Check mode.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "junit", "coursera"]), default="table",
              show_default=True, help="Output format on stdout.")
@click.option("-v", "--verbose", is_flag=True, help="Table: every case's table, passing ones too.")
@ISOLATION_OPTION
@LANG_OPTION
def check_command(path, configs, protocol, timeout, memory_limit, jobs, fmt, verbose, lang, isolation, **settings):
    """Check every layer FILE defines (conv, max pool, avg pool, im2col; CS231n functions or
    the book's classes), each through its default suite, in one report.

    \b
    Examples:
      cnncheck check assignment2/cs231n/layers.py
      cnncheck check common/layers.py --format json
    """
    overrides = {k: v for k, v in settings.items() if v is not None}
    try:
        with runner.terminal_progress(0) as progress:
            rep = api.check_file(path, config=list(configs) or None, timeout=timeout, memory_limit=memory_limit,
                                 protocol=protocol, jobs=jobs, on_progress=progress, isolation=isolation,
                                 **overrides)
    except (ConfigError, ValueError) as e:
        raise UserError(str(e)) from None
    finally:
        worker.shutdown()
    if rep.error:
        raise UserError(rep.error)
    emit(rep.results, fmt, verbose, lang)
    sys.exit(0 if rep.passed else 1)


for _command in (conv, pool, im2col):  # each geometry command's --help states the rule
    _command.help += "\n\n    " + DEFAULTS_RULE

main.add_command(grade)
