"""Which layers a module defines, and the adapter that calls each.

For every layer kind, each protocol its record lists (`LayerKind.protocols`) is asked in
turn what the module defines: CS231n's functions (`conv_forward_naive` / ...), the book's
classes (`Convolution`, `Pooling`), or another pair of functions (the book's `im2col` /
`col2im`). A class the book names otherwise (`Pool`, `MaxPooling`, `Conv`) is found by what
it is: `forward` and `backward` methods and a constructor that takes the book's arguments;
a note names the class used. `protocol=` keeps one protocol, `forward=`/`backward=` name
functions, `class_name=` names a class.
"""
from __future__ import annotations

import difflib
import functools
import inspect
import types

from cnncheck import layers
from cnncheck.sandbox.impl import ImplLoadError, functions_of, import_spec, load_error, load_notes
from cnncheck.layers.kind import ChannelsLast, Classes, Functions
from cnncheck.protocols.classes import LayerClass
from cnncheck.protocols.dlai import ChannelsLastPair

PICK = "pick one with --forward/--backward NAME or --class NAME"


def adapters(module, root: str, label: str, *, wanted=None, protocol=None, forward=None,
             backward=None, class_name=None) -> dict:
    """{layer: adapter} for the layers `module` defines (or exactly `wanted`, a list of layer
    names: a missing one raises ImplLoadError naming what the file defines instead)."""
    known = sorted({p for kind in layers.KINDS.values() for p in kind.protocols})
    if protocol is not None and protocol not in known:
        raise ImplLoadError(f"unknown protocol {protocol!r}: one of {', '.join(known)}")
    found = {}
    for kind in layers.KINDS.values():
        if wanted is not None and kind.name not in wanted:
            continue
        adapter = _find(module, kind, label, wanted is not None, protocol, forward, backward, class_name)
        if adapter is not None:
            adapter.root = root
            for note in load_notes(module):
                adapter.note(note)
            found[kind.name] = adapter
    if not found:
        raise ImplLoadError(load_error(module) or f"{label} defines no layer cnncheck knows "
                            f"({', '.join(layers.KINDS)}): {_defines(module)}; {PICK}")
    return found


def _find(module, kind, label, required, protocol, forward, backward, class_name):
    """The adapter for one kind, None when the module has none (an ImplLoadError when
    `required`)."""
    specs = {p: s for p, s in kind.protocols.items() if protocol in (None, p)}
    if not specs:
        if not required:
            return None
        raise ImplLoadError(f"{kind.name} has no {protocol} protocol: use one of {', '.join(kind.protocols)}")
    if class_name:
        return _named_class(module, kind, label, required, specs, class_name)
    dlai = next((s for s in specs.values() if isinstance(s, ChannelsLast)), None)
    if dlai and forward and _channels_last_names(getattr(module, forward, None)):
        return _channels_last(module, label, dlai, forward, backward or dlai.backward)
    if forward or backward:
        return _named_functions(module, kind, label, required, specs, forward, backward)
    for spec in specs.values():
        if isinstance(spec, Functions) and callable(getattr(module, spec.forward, None)):
            return _pair(module, kind, label, spec)
        if isinstance(spec, Classes):
            adapter = _book_class(module, kind, label, spec)
            if adapter is not None:
                return adapter
        if isinstance(spec, ChannelsLast) and _takes(getattr(module, spec.forward, None), 3 if spec.mode else 4):
            return _channels_last(module, label, spec)
    if required:
        raise _missing(module, kind, label, specs)
    return None


def _takes(fn, n: int) -> bool:
    """Can fn be called with n positional arguments (the Deep Learning Specialization's
    `conv_forward(A_prev, W, b, hparameters)`, `pool_forward(A_prev, hparameters, mode)`)?"""
    try:
        inspect.signature(fn).bind(*range(n))
        return True
    except (TypeError, ValueError):
        return False


def _channels_last_names(fn) -> bool:
    """Does fn name its parameters as the Deep Learning Specialization does (A_prev first, or
    hparameters)? Functions passed by name are then called in that protocol."""
    try:
        names = list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return False
    return bool(names) and (names[0] == "A_prev" or "hparameters" in names)


def _channels_last(module, label, spec, forward=None, backward=None):
    """The learner's functions in the Deep Learning Specialization's protocol (the record's
    names, or forward/backward); a backward not defined (the 2021 notebook's optional part)
    fails each case's backward, not the load."""
    forward, backward_name = forward or spec.forward, backward or spec.backward
    backward = getattr(module, backward_name, None)
    mode = f" mode={spec.mode!r}" if spec.mode else ""
    adapter = ChannelsLastPair(getattr(module, forward), backward if callable(backward) else None,
                               f"{label}: {forward} / {backward_name}{mode}", spec,
                               skipped=getattr(module, "__cnncheck_skipped__", {}),
                               helpers={h: getattr(module, h) for h in spec.helpers if callable(getattr(module, h, None))})
    return adapter


def _pair(module, kind, label, spec, forward=None, backward=None):
    return functions_of(module, kind, label, forward, backward, spec=spec)


def _named_functions(module, kind, label, required, specs, forward, backward):
    spec = next((s for s in specs.values() if isinstance(s, Functions)), None)
    if spec is None:
        if not required:
            return None
        raise ImplLoadError(f"--forward/--backward name functions, and {kind.name} in the "
                            f"{'/'.join(specs)} protocol is a class: use --class NAME")
    prefix = spec.forward.split("_")[0]  # conv, max, avg, im2col: whose functions they are
    if required or (forward and prefix in forward and callable(getattr(module, forward, None))):
        return _pair(module, kind, label, spec, forward, backward)
    return None


def _named_class(module, kind, label, required, specs, name):
    spec = next((s for s in specs.values() if isinstance(s, Classes)), None)
    cls = getattr(module, name, None)
    if spec is None or not isinstance(cls, type):
        if not required:
            return None
        if spec is None:
            raise ImplLoadError(f"--class names a class, and {kind.name} in the {'/'.join(specs)} "
                                "protocol is a pair of functions: use --forward/--backward NAME")
        close = difflib.get_close_matches(name, _public(module, type), n=1)
        did = f"did you mean {close[0]}?" if close else _defines(module)
        raise ImplLoadError(f"{label} has no class {name}; {did}")
    if not required and not _fits(cls, kind, spec):
        return None
    return LayerClass(cls, f"{label}: {name}", spec)


def _book_class(module, kind, label, spec):
    """The book's class for this kind: by its name, else a renamed class that fits."""
    for name in spec.names:
        cls = getattr(module, name, None)
        if isinstance(cls, type):
            return LayerClass(cls, f"{label}: {name}", spec)
    fits = {n: c for n, c in _public(module, type).items() if _layer_like(c) and _fits(c, kind, spec)}
    if not fits:
        return None
    name = max(fits, key=lambda n: max(_likeness(n, book) for book in spec.names))
    adapter = LayerClass(fits[name], f"{label}: {name}", spec)
    adapter.note(f"checking class {name} as the book's {spec.names[0]} (another with --class NAME)")
    return adapter


def _missing(module, kind, label, specs) -> ImplLoadError:
    """Why the module has no `kind`: CS231n's did-you-mean when it looks like CS231n's
    functions, else what it defines and how to pick."""
    stood_in = load_error(module)
    if stood_in:
        return ImplLoadError(stood_in)
    dlai = next((s for s in specs.values() if isinstance(s, ChannelsLast)), None)
    if dlai and any(callable(getattr(module, n, None)) for n in (dlai.backward, *dlai.helpers)):
        unparsed = [n for n in load_notes(module) if "does not parse" in n]
        why = f" ({unparsed[0]})" if unparsed else ""
        return ImplLoadError(f"{label} defines no {kind.name} layer: no function {dlai.forward}(A_prev, "
                             f"...){why}; {_defines(module)}")
    cs231n = next((s for s in specs.values() if isinstance(s, Functions)), None)
    classes = [s for s in specs.values() if isinstance(s, Classes)]
    if cs231n and not (classes and any(_layer_like(c) for c in _public(module, type).values())):
        try:
            _pair(module, kind, label, cs231n)
        except ImplLoadError as e:
            return e
    wants = [f"function {s.forward}" for s in specs.values() if isinstance(s, Functions)]
    wants += [f"class {' or '.join(s.names)}" for s in classes]
    close = [m for s in classes for n in s.names
             for m in difflib.get_close_matches(n, _public(module, type), n=1, cutoff=0.6)]
    did = f"; did you mean class {close[0]}?" if close else ""
    return ImplLoadError(f"{label} defines no {kind.name} layer: no {', no '.join(wants)}{did}; "
                         f"{_defines(module)}; {PICK}")


# -- recognising a renamed class ----------------------------------------------------------
def _fits(cls, kind, spec) -> bool:
    """Can cls stand for the kind's book class: its constructor takes the book's arguments
    (in order), named as the book names most of them or the class named like the book's,
    and its name holds no word of another kind's name (`AvgPooling` is not max pooling)?"""
    keys = _build_keys(kind.name)
    try:
        params = [p for p in inspect.signature(cls).parameters]
        inspect.signature(cls).bind(*keys)
    except (TypeError, ValueError):
        return False
    name = cls.__name__.lower()
    own = set(kind.name.split("_"))
    foreign = {w for k in layers.KINDS.values() for w in k.name.split("_")} - own
    if any(w in name for w in foreign):
        return False
    named = sum(k.lower() in {p.lower() for p in params} for k in keys)
    return 2 * named > len(keys) or any(n[:4].lower() in name for n in spec.names)


@functools.lru_cache(maxsize=None)
def _build_keys(layer: str) -> tuple:
    """The constructor arguments the record builds for a layer kind (its first default case)."""
    from cnncheck.case import make_arrays
    from cnncheck.suites import default_suite
    case = default_suite(layer)[0]
    arrays = {k: v for k, v in make_arrays(case).items() if k != "dout"}
    spec = next(s for s in layers.get(layer).protocols.values() if isinstance(s, Classes))
    return tuple(spec.build(case, arrays))


def _layer_like(cls) -> bool:
    return callable(getattr(cls, "forward", None)) and callable(getattr(cls, "backward", None))


def _likeness(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a.lower(), b.lower()).ratio()


def _public(module, kind) -> dict:
    return {n: v for n, v in vars(module).items() if isinstance(v, kind) and not n.startswith("_")}


def _defines(module) -> str:
    """'it defines classes Relu, Affine; functions im2col' (or 'it defines no class or function')."""
    classes = list(_public(module, type))
    functions = [n for n, v in vars(module).items() if inspect.isfunction(v) and not n.startswith("_")]
    parts = [f"{what} {', '.join(names[:8])}{', ...' if len(names) > 8 else ''}"
             for what, names in (("classes", classes), ("functions", functions)) if names]
    return f"it defines {'; '.join(parts)}" if parts else "it defines no class or function"


def load(spec: str | types.ModuleType, layer: str, forward: str | None = None,
         backward: str | None = None, *, protocol: str | None = None, class_name: str | None = None):
    """The student's adapter for `layer` ("conv", "max_pool", "avg_pool"), to run in this
    process (the judge runs student code in a worker: cnncheck.sandbox.process): a FunctionPair for
    CS231n functions, a LayerClass for the book's classes.

    spec: a path to a .py file (or a directory holding layers.py), a dotted module name, or a
    module. forward/backward: function names; defaults are the CS231n ones, and a forward
    named *_forward_* alone implies the matching *_backward_*. protocol: "cs231n" or "dlfs"
    (default: what the file defines). class_name: the class to check (the book's protocol).
    Raises ImplLoadError when the code cannot be loaded or lacks the layer.
    """
    layers.get(layer)
    module, root = import_spec(spec)
    label = spec.__name__ if isinstance(spec, types.ModuleType) else spec
    return adapters(module, root, label, wanted=[layer], protocol=protocol, forward=forward,
                    backward=backward, class_name=class_name)[layer]
