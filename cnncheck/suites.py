"""The default suite: the cases `--impl` runs when no config is given.

Small cases, all inside CS231n's contract (every output-size division is exact, stride and pad
the same along height and width), chosen so that each bug class the course notebook cannot see
fails a set of cases no other class fails: pad 0 only, stride > 1 only, overlapping windows only,
non-square inputs only, non-square kernels only, non-square outputs only (see diagnose.PATTERNS;
with one stride and pad for both axes a square input and kernel give a square output, so
non-square outputs differ from non-square inputs by a non-square input whose output is square).
The notebook's own cases come first.
"""
from __future__ import annotations

from cnncheck.case import Case
from cnncheck.config import load_cases

NOTEBOOK_FORWARD = {"x": "linspace", "w": "linspace", "b": "linspace"}

# name, x_shape, w_shape, stride, pad, inputs
CONV = [
    ("notebook backward", (4, 3, 5, 5), (2, 3, 3, 3), 1, 1, {}),
    ("notebook forward", (2, 3, 4, 4), (3, 3, 4, 4), 2, 1, NOTEBOOK_FORWARD),
    ("pad 0", (2, 3, 6, 6), (2, 3, 3, 3), 1, 0, {}),
    ("pad 2", (2, 2, 5, 5), (3, 2, 3, 3), 1, 2, {}),
    ("stride 2", (2, 3, 7, 7), (2, 3, 3, 3), 2, 1, {}),
    ("2x2 kernel stride 2, no overlap", (2, 2, 6, 6), (3, 2, 2, 2), 2, 0, {}),
    ("non-square input", (2, 3, 5, 7), (2, 3, 3, 3), 1, 1, {}),
    ("3x1 kernel", (2, 2, 6, 6), (2, 2, 3, 1), 1, 1, {}),
    ("non-square input, stride 2, pad 2", (2, 2, 7, 5), (2, 2, 3, 3), 2, 2, {}),
    ("3x2 kernel on 7x8, stride 2, pad 0", (2, 2, 7, 8), (3, 2, 3, 2), 2, 0, {}),
    ("3x5 kernel on 5x7, square output", (2, 2, 5, 7), (2, 2, 3, 5), 1, 1, {}),
]

# name, x_shape, (pool_height, pool_width), stride, inputs
POOL = [
    ("notebook backward", (3, 2, 8, 8), (2, 2), 2, {}),
    ("notebook forward", (2, 3, 4, 4), (2, 2), 2, {"x": "linspace"}),
    ("3x3 stride 1", (2, 3, 6, 6), (3, 3), 1, {}),
    ("3x2 stride 1 on 6x5", (2, 2, 6, 5), (3, 2), 1, {}),
    ("3x3 stride 2", (2, 2, 7, 7), (3, 3), 2, {}),
    ("2x2 stride 2 on 4x6", (2, 3, 4, 6), (2, 2), 2, {}),
    ("2x3 stride 1", (2, 2, 5, 5), (2, 3), 1, {}),
]

# flags that set the geometry: with one of them the flags describe a single case instead
GEOMETRY = ("x_shape", "w_shape", "stride", "pad", "pool_height", "pool_width")


def default_suite(layer: str) -> list[Case]:
    """The default cases for layer "conv", "max_pool" or "avg_pool"."""
    if layer == "conv":
        return [Case("conv", x, w, stride=(s, s), pad=(p, p), inputs=inputs, name=f"{layer} {name}",
                     source="default suite") for name, x, w, s, p, inputs in CONV]
    if layer not in ("max_pool", "avg_pool"):
        raise ValueError(f"unknown layer {layer!r}")
    return [Case(layer, x, pool=pool, stride=(s, s), inputs=inputs, name=f"{layer} {name}",
                 source="default suite") for name, x, pool, s, inputs in POOL]


def cases_for(command: str, overrides: dict) -> list[Case]:
    """The default suite for `command` with the flags' settings (seed, dtype, ...) applied.

    Geometry flags (--x-shape, --stride, ...) describe one case of their own: that case runs
    instead. Raises ConfigError for a bad flag, as config.load_cases does.
    """
    flagged = load_cases([], command, overrides)  # validates every flag
    if any(k in overrides for k in GEOMETRY):
        return flagged
    settings = {k: getattr(flagged[0], k) for k in overrides if k != "layer"}  # seed, dtype, ...
    layer = "conv" if command == "conv" else overrides.get("layer", "max_pool")
    return [case.with_(**settings) for case in default_suite(layer)]

