"""Which layers a module defines, and the adapter that calls each."""
from __future__ import annotations

from cnncheck import layers
from cnncheck.impl import ImplLoadError, functions_of


def adapters(module, root: str, label: str, *, wanted=None, protocol=None, forward=None,
             backward=None, class_name=None) -> dict:
    """{layer: adapter} for the layers `module` defines (or exactly `wanted`, a list of layer
    names: a missing one raises ImplLoadError naming what the file defines instead)."""
    found = {}
    for kind in layers.KINDS.values():
        if wanted is not None and kind.name not in wanted:
            continue
        spec = kind.protocols.get("cs231n")
        named = callable(getattr(module, spec.forward, None)) if spec else False
        if wanted is not None or named:
            found[kind.name] = functions_of(module, kind, label, forward, backward)
            found[kind.name].root = root
    if not found:
        raise ImplLoadError(f"{label} defines no layer cnncheck knows (conv, max_pool, avg_pool)")
    return found
