"""Read gradient-check cases from YAML files and command-line flags.

A file holds one case (a mapping), or `cases:` (a list of mappings) with optional `defaults:`
merged into each. A `sweep:` of dotted keys to lists expands to the cartesian product.
Flags override every case and are validated like file values. Every mistake is a
`ConfigError` whose message names the file and line (or the flag) and the rule broken.

YAML is composed with the safe loader and turned into Python here, so no tag can run code
and every mapping remembers the line of each of its keys.
"""
from __future__ import annotations

import difflib
import functools
import itertools
import math
import os
import reprlib

import yaml

from cnncheck import layers
from cnncheck.case import DISTRIBUTIONS, DTYPES, LAYERS, Case
from cnncheck.i18n import msg
from cnncheck.layers._geometry import span
from cnncheck.layers.kind import DEFAULTS

KINDS = layers.KINDS.values()
MODES = ("auto", "dense", "sparse", "projection")
MAX_CASES = 10_000
PARAMS = {}  # each param mapping (conv_param, pool_param, ...) -> the keys any kind allows in it
for _k in KINDS:
    PARAMS.setdefault(_k.param_key, ())
    PARAMS[_k.param_key] += tuple(key for key in _k.param_keys if key not in PARAMS[_k.param_key])
SHAPES = tuple(dict.fromkeys(key for k in KINDS for key in k.shape_keys))  # x_shape, w_shape
WINDOW = ("pool_height", "pool_width")  # the window of kinds without w: a shape, no default
TOP_KEYS = ("name", "layer", *SHAPES, *PARAMS, "seed", "dtype", "h", "tolerance", "noise_factor",
            "inputs", "mode", "samples", "directions", "taylor", "sweep")
INPUTS = tuple(dict.fromkeys(n for k in KINDS for n in k.inputs))
SUB_KEYS = {**PARAMS, "inputs": INPUTS}
PARAM_KEYS = tuple(dict.fromkeys(key for keys in PARAMS.values() for key in keys))
MERGED = (*PARAMS, "inputs", "sweep")  # merged key by key with defaults
SWEEPABLE = tuple(k for k in TOP_KEYS if k not in SUB_KEYS and k not in ("name", "sweep")) + tuple(
    f"{p}.{k}" for p, keys in SUB_KEYS.items() for k in keys)
SAFE_TAGS = {"tag:yaml.org,2002:" + t for t in ("str", "int", "float", "bool", "null", "seq", "map")}

# Command-line flag of each override key, as the CLI spells it.
FLAGS = {
    "x_shape": "--x-shape", "w_shape": "--w-shape", "stride": "--stride", "pad": "--pad",
    "pool_height": "--pool-height", "pool_width": "--pool-width", "seed": "--seed", "h": "--h",
    "tolerance": "--tolerance", "noise_factor": "--noise-factor", "dtype": "--dtype",
    "layer": "--avg", "mode": "--mode", "samples": "--samples", "directions": "--directions",
    "taylor": "--taylor", "dilation": "--dilation", "groups": "--groups", "bias": "--no-bias",
    "ceil_mode": "--ceil-mode", "count_include_pad": "--no-count-include-pad",
    "divisor_override": "--divisor-override",
}
# The geometry: with any of these among the flags, the flags describe a case of their own.
GEOMETRY = (*SHAPES, *PARAM_KEYS)
PAD_MODES = ("same", "valid")  # conv's pad may be one of these words, as PyTorch's padding
# PyTorch's spellings, and what a cnncheck config calls them
ALIASES = {"padding": ("pad",), "kernel_size": ("pool_height", "pool_width"), "kernel": ("pool_height", "pool_width")}
NOT_YET = ("return_indices", "padding_mode", "output_padding", "output_size")


def _keys_of(command: str) -> set:
    """The geometry keys some kind of `command` takes."""
    return {key for k in layers.of_command(command) for key in (*k.shape_keys, *k.param_keys)}


def _command_only(command: str) -> tuple:
    """Flags that apply to `command` only: its kinds' geometry keys no other command has."""
    others = set().union(*(_keys_of(c) for c in layers.COMMANDS if c != command))
    extra = ("layer",) if len(layers.of_command(command)) > 1 else ()
    return tuple(sorted(k for k in _keys_of(command) - others if k in FLAGS)) + extra


class ConfigError(Exception):
    """A config or flag mistake; str(e) is the full user-facing message."""


class YamlMap(dict):
    """A YAML mapping that remembers its own line and the line of each key."""

    def __init__(self, line, items=(), lines=None):
        super().__init__(items)
        self.line = line
        self.lines = dict(lines or {})

    def line_of(self, key) -> int:
        return self.lines.get(key, self.line)


class _Repr(reprlib.Repr):
    repr_YamlMap = reprlib.Repr.repr_dict


_show = _Repr().repr  # short reprs, safe on huge or aliased values


def _fail(at: str, message: str):
    raise ConfigError(msg("{at}: {hint}", at=at, hint=message))


def _unknown(at, what, value, options):
    """A did-you-mean from the key's last part alone (`pool_param.ceil_mode` is not
    `pool_param.stride` for sharing `pool_param.`); PyTorch's names get cnncheck's."""
    prefix, _, last = str(value).rpartition(".")
    if last in NOT_YET:
        _fail(at, msg("cnncheck does not support {name} yet", name=last))
    near = [o for o in options if o.rpartition(".")[0] == prefix] or list(options)
    full = {}
    for o in near:  # the last part -> the first option ending in it, same mapping first
        full.setdefault(o.rpartition(".")[2], o)
    hint = [full[k] for k in ALIASES.get(last, ()) if k in full]
    if last in ALIASES and not hint:
        hint = [f"{prefix + '.' if prefix else ''}{k}" for k in ALIASES[last]]
    hint = hint or [full[k] for k in difflib.get_close_matches(last, list(full), n=1)]
    more = msg("did you mean {names}?", names=" and ".join(map(repr, hint))) if hint else \
        msg("expected one of: {names}", names=", ".join(options))
    _fail(at, msg("unknown {what} {value} ({hint})", what=what, value=_show(value), hint=more))


# -- YAML text to Python, with lines ---------------------------------------------------------
def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        _fail(path, msg("no such file"))
    except IsADirectoryError:
        _fail(path, msg("is a directory, not a YAML file"))
    except PermissionError:
        _fail(path, msg("permission denied"))
    except UnicodeDecodeError as e:
        _fail(path, msg("not UTF-8 text (bad byte at offset {offset})", offset=e.start))
    except OSError as e:
        _fail(path, msg("cannot read: {error}", error=e.strerror))


def _compose(text: str, path: str) -> yaml.Node:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        problem = ", ".join(p for p in (e.context, e.problem) if p)
        _fail(f"{path}:{mark.line + 1}:{mark.column + 1}", msg("malformed YAML: {problem}", problem=problem))
    except yaml.YAMLError as e:
        _fail(path, msg("malformed YAML: {problem}", problem=" ".join(str(e).split())))
    if node is None:
        _fail(path, msg("the file is empty (expected a case mapping or 'cases:')"))
    return node


def _to_python(node: yaml.Node, path: str, memo: dict, busy: set):
    """Plain Python from a node: YamlMap, list, or a scalar built by the safe constructor."""
    if id(node) in memo:
        return memo[id(node)]
    at = f"{path}:{node.start_mark.line + 1}"
    if node.tag not in SAFE_TAGS:
        tag = node.tag.replace("tag:yaml.org,2002:", "!!")
        _fail(at, f"unsupported YAML tag {tag} (only numbers, strings, lists and mappings)")
    if id(node) in busy:
        _fail(at, "recursive YAML alias")
    busy.add(id(node))
    if isinstance(node, yaml.ScalarNode):
        value = yaml.constructor.SafeConstructor().construct_object(node)
    elif isinstance(node, yaml.SequenceNode):
        value = [_to_python(n, path, memo, busy) for n in node.value]
    else:
        value = YamlMap(node.start_mark.line + 1)
        for key_node, value_node in node.value:
            key, line = _to_python(key_node, path, memo, busy), key_node.start_mark.line + 1
            if not isinstance(key, str):
                _fail(f"{path}:{line}", f"key {_show(key)} must be a string")
            if key in value:
                _fail(f"{path}:{line}", f"duplicate key '{key}' (first at line {value.lines[key]})")
            value[key], value.lines[key] = _to_python(value_node, path, memo, busy), line
    busy.discard(id(node))
    memo[id(node)] = value
    return value


# -- file structure: cases, defaults, sweeps -------------------------------------------------
def _file_cases(path: str) -> list[tuple[YamlMap, str]]:
    """The file's case mappings after merging defaults and expanding sweeps, with sweep labels."""
    node = _compose(_read(path), path)
    root = _to_python(node, path, {}, set())
    if not isinstance(root, YamlMap):
        _fail(f"{path}:{node.start_mark.line + 1}", msg("the top level must be a mapping (one case, or 'cases:')"))
    if "cases" not in root:
        if "defaults" in root:
            _fail(f"{path}:{root.line_of('defaults')}", "'defaults:' needs a 'cases:' list")
        return _expand(root, path)
    for key in root:
        if key not in ("cases", "defaults"):
            _fail(f"{path}:{root.line_of(key)}", f"key '{key}' next to 'cases:' (shared values go under 'defaults:')")
    cases, defaults = root["cases"], root.get("defaults", YamlMap(root.line))
    at = f"{path}:{root.line_of('cases')}"
    if not isinstance(cases, list) or not cases:
        _fail(at, msg("cases must be a non-empty list of mappings"))
    if not isinstance(defaults, YamlMap):
        _fail(f"{path}:{root.line_of('defaults')}", "defaults must be a mapping")
    for i, entry in enumerate(cases):
        if not isinstance(entry, YamlMap):
            _fail(at, f"cases[{i}] must be a mapping, not {_show(entry)}")
    return [c for entry in cases for c in _expand(_merge(defaults, entry), path)]


def _merge(base: YamlMap, top: YamlMap) -> YamlMap:
    """Shallow merge of top over base; MERGED mappings are merged key by key."""
    out = YamlMap(top.line, base, base.lines)
    for key, value in top.items():
        if key in MERGED and isinstance(value, YamlMap) and isinstance(base.get(key), YamlMap):
            value = _merge(base[key], value)
        out[key], out.lines[key] = value, top.lines[key]
    return out


def _expand(case: YamlMap, path: str) -> list[tuple[YamlMap, str]]:
    """One (case, label) per combination of the sweep's values; label like 'stride=1 pad=0'."""
    if "sweep" not in case:
        return [(case, "")]
    sweep, at = case["sweep"], f"{path}:{case.line_of('sweep')}"
    if not isinstance(sweep, YamlMap) or not sweep:
        _fail(at, "sweep must be a mapping of keys to lists of values")
    for key, values in sweep.items():
        if key not in SWEEPABLE:
            _unknown(f"{path}:{sweep.line_of(key)}", "sweep key", key, SWEEPABLE)
        if not isinstance(values, list) or not values:
            _fail(f"{path}:{sweep.line_of(key)}", f"sweep {key} must be a non-empty list, got {_show(values)}")
    count = math.prod(len(v) for v in sweep.values())
    if count > MAX_CASES:
        _fail(at, f"the sweep makes {count} cases, more than {MAX_CASES}")
    base = YamlMap(case.line, ((k, v) for k, v in case.items() if k != "sweep"), case.lines)
    return [_sweep_case(base, sweep, combo, path) for combo in itertools.product(*sweep.values())]


def _sweep_case(base: YamlMap, sweep: YamlMap, combo: tuple, path: str) -> tuple[YamlMap, str]:
    case = YamlMap(base.line, base, base.lines)
    for key, value in zip(sweep, combo):
        line = sweep.line_of(key)
        if "." not in key:
            case[key], case.lines[key] = value, line
            continue
        parent, sub = key.split(".")
        old = case.get(parent, YamlMap(line))
        if not isinstance(old, YamlMap):
            _fail(f"{path}:{case.line_of(parent)}", f"{parent} must be a mapping to sweep {key}")
        case[parent] = YamlMap(old.line, old, old.lines)
        case[parent][sub], case[parent].lines[sub] = value, line
        case.lines.setdefault(parent, line)
    label = " ".join(f"{k.split('.')[-1]}={_label_value(v)}" for k, v in zip(sweep, combo))
    return case, label


def _label_value(v) -> str:
    return "x".join(map(str, v)) if isinstance(v, list) else str(v)


# -- one case mapping to flat fields -----------------------------------------------------------
def _flatten(case: YamlMap, path: str) -> tuple[dict, dict]:
    """Fields keyed like the override flags (stride, pool_height, inputs.x, ...) and where
    each came from ("file:line"; where[None] is the case's own line)."""
    home = f"{path}:{case.line}"
    for key in case:
        if key not in TOP_KEYS:
            _unknown(f"{path}:{case.line_of(key)}", "key", key, TOP_KEYS)
    if "layer" not in case:
        _fail(home, msg("missing key 'layer' ({names} or {last})", names=", ".join(LAYERS[:-1]), last=LAYERS[-1]))
    layer = _choice(case["layer"], f"{path}:{case.line_of('layer')}", "layer", LAYERS)
    kind = layers.get(layer)
    for key in (*SHAPES, *PARAMS):
        if key in case and key not in (*kind.shape_keys, kind.param_key):
            _fail(f"{path}:{case.line_of(key)}", msg("'{key}' does not apply to a {layer} case", key=key, layer=layer))
    fields = {k: v for k, v in case.items() if k not in SUB_KEYS}
    where = {None: home, **{k: f"{path}:{case.line_of(k)}" for k in fields}}
    for parent in (kind.param_key, "inputs"):
        _flatten_sub(case, parent, kind, path, fields, where)
    return fields, where


def _flatten_sub(case, parent, kind, path, fields, where):
    needed = [k for k in kind.param_keys if k not in (*DEFAULTS, "stride")]
    if parent == kind.param_key and needed and parent not in case:
        example = ", ".join(f"{k}: 2" for k in (*needed, "stride"))
        _fail(where[None], f"missing key '{parent}' (e.g. {{{example}}})")
    sub, at = case.get(parent, YamlMap(case.line)), f"{path}:{case.line_of(parent)}"
    if not isinstance(sub, YamlMap):
        _fail(at, f"{parent} must be a mapping, got {_show(sub)}")
    allowed = kind.param_keys if parent != "inputs" else kind.inputs
    prefix = "inputs." if parent == "inputs" else ""
    where.update({prefix + k: at for k in allowed})
    for key, value in sub.items():
        if key in PARAM_KEYS + INPUTS and key not in allowed:
            _fail(f"{path}:{sub.line_of(key)}", f"'{parent}.{key}' does not apply to a {kind.name} case")
        if key not in allowed:
            _unknown(f"{path}:{sub.line_of(key)}", "key", f"{parent}.{key}", [f"{parent}.{k}" for k in allowed])
        fields[prefix + key], where[prefix + key] = value, f"{path}:{sub.line_of(key)}"


# -- value checks ------------------------------------------------------------------------------
def _choice(v, at, label, options):
    if isinstance(v, str) and v in options:
        return v
    _unknown(at, label, v, options)


def _int(v, at, label, lo, hi=None):
    if type(v) is not int:  # bool is an int subclass; 2.0 is not an integer here
        _fail(at, msg("{label} = {value} must be an integer", label=label, value=_show(v)))
    if v < lo or (hi is not None and v > hi):
        _fail(at, msg("{label} = {value} must be >= {lo}", label=label, value=v, lo=lo) if hi is None else
              msg("{label} = {value} must be >= {lo} and <= {hi}", label=label, value=v, lo=lo, hi=hi))
    return v


def _shape(v, at, label, dims, empty_batch=False):
    """Four positive integers; the first may be 0 where empty_batch (x: N = 0, as PyTorch)."""
    if not isinstance(v, (list, tuple)) or len(v) != 4:
        _fail(at, msg("{label} must be a list of 4 integers [{dims}], got {value}", label=label, dims=dims, value=_show(v)))
    return tuple(_int(n, at, f"{label}[{i}]", int(not (empty_batch and i == 0))) for i, n in enumerate(v))


def _pair(v, at, label, lo):
    """An int or an [h, w] pair, as an (h, w) tuple."""
    if isinstance(v, (list, tuple)):
        if len(v) != 2:
            _fail(at, msg("{label} must be an integer or an [h, w] pair, got {value}", label=label, value=_show(v)))
        return tuple(_int(n, at, f"{label}[{i}]", lo) for i, n in enumerate(v))
    n = _int(v, at, label, lo)
    return (n, n)


def _positive(v, at, label):
    if isinstance(v, str):  # PyYAML reads 1e-5 (no dot) as a string
        try:
            v = float(v)
        except ValueError:
            _fail(at, msg("{label} = {value} must be a number", label=label, value=_show(v)))
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        _fail(at, msg("{label} = {value} must be a number", label=label, value=_show(v)))
    if not (math.isfinite(v) and v > 0):
        _fail(at, msg("{label} = {value} must be a finite number > 0", label=label, value=v))
    return float(v)


def _bool(v, at, label):
    if type(v) is not bool:
        _fail(at, msg("{label} = {value} must be true or false", label=label, value=_show(v)))
    return v


def _divisor(v, at, label):
    if v is not None and (type(v) is not int or v == 0):
        _fail(at, f"{label} = {_show(v)} must be a non-zero integer (or null: the window's size)")
    return v


# Geometry parameters beyond the shapes, stride and pad: key -> check(value, at, label)
GEOMETRY_CHECKS = {
    "dilation": lambda v, at, k: _pair(v, at, k, 1),
    "groups": lambda v, at, k: _int(v, at, k, 1),
    "bias": _bool, "ceil_mode": _bool, "count_include_pad": _bool,
    "divisor_override": _divisor,
}


def _text(v, at, label):
    if isinstance(v, bool) or not isinstance(v, (str, int, float)):
        _fail(at, f"{label} = {_show(v)} must be a string")
    return str(v)


OPTIONS = {  # optional Case fields: key -> check(value, at, label)
    "seed": lambda v, at, k: _int(v, at, k, 0, 2**32 - 1),
    "dtype": lambda v, at, k: _choice(v, at, k, DTYPES),
    "h": _positive,
    "tolerance": _positive,
    "noise_factor": _positive,
    "mode": lambda v, at, k: _choice(v, at, k, MODES),
    "samples": lambda v, at, k: _int(v, at, k, 1),
    "directions": lambda v, at, k: _int(v, at, k, 1),
    "taylor": lambda v, at, k: _bool(v, at, k),
}


# -- flat fields to a validated Case -----------------------------------------------------------
def _build(f: dict, where: dict, label: str) -> Case:
    at = lambda key: where.get(key, where[None])  # noqa: E731
    name = lambda key: _name_of(key, f["layer"], at(key))  # noqa: E731
    kind = layers.get(_choice(f["layer"], at("layer"), "layer", LAYERS))
    kw = {"layer": kind.name, "source": where[None]}
    for key in (*SHAPES, *PARAM_KEYS):
        if key in f and key not in (*kind.shape_keys, *kind.param_keys):
            _fail(at(key), f"{name(key)} does not apply to a {kind.name} case")
    for key, dims in zip(kind.shape_keys, kind.shape_dims):
        kw[key] = _shape(_need(f, key, where), at(key), name(key), dims, empty_batch=key == "x_shape")
    if "pool_height" in kind.param_keys:
        kw["pool"] = tuple(_int(_need(f, k, where), at(k), name(k), 1) for k in ("pool_height", "pool_width"))
    # the one rule: what a case leaves out takes PyTorch's default (stride: the window for pooling)
    kw["stride"] = _pair(f.get("stride", kw["pool"] if kind.window_stride else 1), at("stride"), name("stride"), 1)
    pad = f.get("pad", 0)
    if pad in PAD_MODES and "w_shape" in kind.shape_keys:
        kw["pad_mode"] = pad
    elif "pad" in kind.param_keys:
        kw["pad"] = _pair(pad, at("pad"), name("pad"), 0)
    kw.update({k: check(f[k], at(k), name(k)) for k, check in GEOMETRY_CHECKS.items() if k in f})
    kw.update({k: check(f[k], at(k), name(k)) for k, check in OPTIONS.items() if k in f})
    kw["inputs"] = {k[7:]: _choice(v, at(k), k, DISTRIBUTIONS) for k, v in f.items() if k.startswith("inputs.")}
    case = Case(**kw)
    case = case.with_(pad=kind.pads(case)[0])  # pad: same, as rows and columns before the input
    mismatch = kind.mismatch(case)
    if mismatch:
        _fail(_blame(where, *mismatch[0]), mismatch[1])
    _check_geometry(case, where)
    _check_memory(case, where)
    return case.with_(name=_case_name(f, case, label, at("name")))


def build_case(fields: dict, name: str) -> Case:
    """A validated Case from config fields (a default suite's rows)."""
    return _build({**fields, "name": name}, {None: "default suite"}, "")


def _need(f, key, where):
    if key not in f:
        sub = {"pool_height": "pool_param.pool_height", "pool_width": "pool_param.pool_width"}
        _fail(where.get(key, where[None]), f"missing key '{sub.get(key, key)}'")
    return f[key]


def _name_of(key, layer, at):
    """How a message names a field: its flag's key, or its dotted path in the file."""
    if at.startswith("--") or key not in PARAM_KEYS:
        return key
    return f"{layers.get(layer).param_key}.{key}"


def _blame(where, *keys):
    """The first flag among keys if any set one, else where the first key came from."""
    flags = [where[k] for k in keys if where.get(k, "").startswith("--")]
    return flags[0] if flags else where.get(keys[0], where[None])


def _check_geometry(case: Case, where: dict):
    kind = case.kind
    kernel_keys = ("w_shape", "w_shape") if "w_shape" in kind.shape_keys else ("pool_height", "pool_width")
    spans = [span(k, d) for k, d in zip(case.kernel, case.dilation)]
    dims = zip(("height", "width"), kernel_keys, case.x_shape[2:], *kind.pads(case), spans, case.stride, case.out_hw())
    for dim, key, size, p, e, k, s, out in dims:
        if out < 1:
            padded = p + e > 0 or kind.window == "kernel"
            _fail(_blame(where, key, "x_shape", "pad", "dilation", "stride"),
                  f"output {dim} 1 + ({size}{f' + {p + e}' if padded else ''} - {k}) // {s} < 1: "
                  f"the {kind.window} is larger than the {'padded ' if padded else ''}input")


@functools.cache
def _memory_limit() -> float | None:
    """Half the machine's physical memory, in bytes (None where sysconf cannot say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2
    except (AttributeError, ValueError, OSError):
        return None


def _check_memory(case: Case, where: dict):
    limit = _memory_limit()
    if limit is None:
        return
    # Exact lower bound first: Case.nbytes() uses numpy products that could overflow int64.
    need = 8 * 8 * sum(math.prod(s) for s in (*case.input_shapes().values(), case.output_shape()))
    need = need if need > limit else case.nbytes()
    if need > limit:
        _fail(_blame(where, "x_shape", "w_shape"),
              f"x_shape {list(case.x_shape)}: the check would need about {_gib(need)} GiB, "
              f"more than this machine can hold ({_gib(limit)} GiB)")


def _gib(nbytes: float) -> str:
    gib = nbytes / 2**30
    return f"{gib:.1f}" if gib < 1e7 else f"{gib:.1e}"


def _case_name(f, case, label, at):
    name = _text(f["name"], at, "name") if "name" in f else ""
    if label:
        return f"{name} {label}" if name else label
    return name or f"{case.describe()} {'x'.join(map(str, case.x_shape))}"


# -- the API -----------------------------------------------------------------------------------
def load_cases(paths: list[str], command: str, overrides: dict) -> list[Case]:
    """The cases to run for `command` ("conv", "pool", ...): from the files, or the notebook's
    default case when paths is empty; flag overrides applied and validated."""
    _check_overrides(command, overrides)
    if not paths:
        kind = layers.get(overrides.get("layer", layers.of_command(command)[0].name))
        fields = {"layer": kind.name, **kind.default}
        fields = {k: v for k, v in fields.items() if not (overrides and k == "name")}
        if any(k in GEOMETRY for k in overrides):  # a case of the flags' own: the notebook's shapes
            fields = {k: v for k, v in fields.items() if k not in GEOMETRY or k in SHAPES + WINDOW}
        where = {None: "default", **{k: FLAGS[k] for k in overrides}}
        return [_build({**fields, **overrides}, where, "").with_(source="default")]
    cases = [case for path in paths for case in _load_file(path, command, overrides)]
    if len(cases) > MAX_CASES:
        raise ConfigError(f"{len(cases)} cases in all, more than {MAX_CASES}")
    return _unique(cases)


def _check_overrides(command, overrides):
    if command not in layers.COMMANDS:
        raise ValueError(f"unknown command {command!r}")
    if set(overrides) - set(FLAGS):
        raise ValueError(f"unknown override keys {sorted(set(overrides) - set(FLAGS))}")
    for other in layers.COMMANDS:
        for key in _command_only(other) if other != command else ():
            if key in overrides and key != "layer" and key not in _keys_of(command):
                _fail(FLAGS[key], f"applies to 'cnncheck {other}' only")
    if "layer" in overrides:
        _choice(overrides["layer"], FLAGS["layer"], "layer", [k.name for k in layers.of_command(command)])


def _load_file(path, command, overrides) -> list[Case]:
    """Every case in the file is validated; those for `command` get the overrides."""
    kept, found = [], set()
    for raw, label in _file_cases(path):
        fields, where = _flatten(raw, path)
        found.add(fields["layer"])
        if layers.get(fields["layer"]).command != command:
            _build(fields, where, label)
            continue
        where.update({k: FLAGS[k] for k in overrides})
        kept.append(_build({**fields, **overrides}, where, label))
    if not kept:
        names = ", ".join(sorted(found))
        _fail(path, f"no {command} case here (its {names} cases run with "
                    f"'cnncheck {layers.get(min(found)).command}')")
    return kept


def _unique(cases: list[Case]) -> list[Case]:
    """Suffix repeated names with #1, #2, ... so every name in the run is distinct."""
    total = {}
    for c in cases:
        total[c.name] = total.get(c.name, 0) + 1
    seen, out = {}, []
    for c in cases:
        if total[c.name] > 1:
            seen[c.name] = seen.get(c.name, 0) + 1
            c = c.with_(name=f"{c.name} #{seen[c.name]}")
        out.append(c)
    return out
