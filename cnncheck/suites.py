"""The default suite: the cases `--impl` runs when no config is given.

Each layer's record lists its suite (`LayerKind.suite`): small cases inside CS231n's contract
(every output-size division is exact, stride and pad the same along height and width), chosen
so that each bug class the course notebook cannot see fails a set of cases no other class
fails: pad 0 only, stride > 1 only, overlapping windows only, non-square inputs only,
non-square kernels only, non-square outputs only (see diagnose). The notebook's own cases
come first.
"""
from __future__ import annotations

from cnncheck import layers
from cnncheck.case import Case
from cnncheck.config import GEOMETRY, build_case, load_cases  # noqa: F401  GEOMETRY: flags that set the
# geometry; with one of them the flags describe a single case instead


def default_suite(layer: str, protocol: str = "") -> list[Case]:
    """The default cases of a layer kind ("conv", "max_pool", ...), or of its protocol when
    the protocol's record has a suite of its own (the Deep Learning Specialization's, "dlai")."""
    kind = layers.get(layer)
    suite = getattr(kind.protocols.get(protocol), "suite", None) or kind.suite
    return [build_case({"layer": layer, **fields}, f"{layer} {name}").with_(source="default suite", protocol=protocol)
            for name, fields in suite]


def for_protocols(cases: list[Case], impls, suite: bool) -> list[Case]:
    """The cases in the protocol each layer's code was found to have (impls: {layer: adapter},
    None for cnncheck's own): the protocol's own default suite in place of the record's (when
    `suite`), each case tagged with it."""
    from cnncheck.protocols.dlai import protocol_of  # what the adapter's label says
    out = []
    for layer in dict.fromkeys(c.layer for c in cases):
        protocol = protocol_of(getattr((impls or {}).get(layer), "label", ""))
        mine = [c for c in cases if c.layer == layer]
        if suite and protocol and getattr(layers.get(layer).protocols.get(protocol), "suite", None):
            settings = {k: v for k, v in vars(mine[0]).items()
                        if k in ("seed", "dtype", "h", "tolerance", "noise_factor", "mode", "samples",
                                 "directions", "taylor")}
            mine = [c.with_(**settings) for c in default_suite(layer, protocol)]
        out += [c.with_(protocol=protocol) for c in mine]
    return out


def cases_for(command: str, overrides: dict) -> list[Case]:
    """The default suite for `command` with the flags' settings (seed, dtype, ...) applied.

    Geometry flags (--x-shape, --stride, ...) describe one case of their own: that case runs
    instead. Raises ConfigError for a bad flag, as config.load_cases does.
    """
    flagged = load_cases([], command, overrides)  # validates every flag
    if any(k in overrides for k in GEOMETRY):
        return flagged
    settings = {k: getattr(flagged[0], k) for k in overrides if k != "layer"}  # seed, dtype, ...
    return [case.with_(**settings) for case in default_suite(flagged[0].layer)]
