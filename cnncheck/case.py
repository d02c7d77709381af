"""One gradient-check case: the layer, its geometry, and the arrays it runs on.

A `Case` is plain, validated data. `config.py` builds cases from YAML and flags;
`gradcheck.py` runs them; this module only knows shapes and how to draw inputs.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import numpy.random  # noqa: F401  numpy imports it lazily, on first use: here, at start-up

from cnncheck import layers

LAYERS = tuple(layers.KINDS)
DTYPES = ("float64", "float32")
DISTRIBUTIONS = ("normal", "uniform", "linspace", "integers")
DEFAULT_TOLERANCE = {"float64": 1e-6, "float32": 1e-3}
DEFAULT_NOISE_FACTOR = 10.0


def pair(v) -> tuple[int, int]:
    """`2` -> (2, 2); `[2, 1]` -> (2, 1)."""
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


@dataclass(frozen=True)
class Case:
    layer: str  # a name in cnncheck.layers.KINDS
    x_shape: tuple[int, ...]  # (N, C, H, W)
    w_shape: tuple[int, ...] | None = None  # (F, C, HH, WW), conv only
    stride: tuple[int, int] = (1, 1)
    pad: tuple[int, int] = (0, 0)
    pool: tuple[int, int] | None = None  # (pool_height, pool_width): the window of kinds without w
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1  # conv: w is (F, C / groups, HH, WW)
    bias: bool = True  # conv: False, no b and no db
    pad_mode: str | None = None  # conv: "same" or "valid" as the config said (pad: the rows before)
    ceil_mode: bool = False  # pooling: output sizes rounded up
    count_include_pad: bool = True  # average pooling: padding counts in the divisor
    divisor_override: int | None = None  # average pooling: every window's divisor
    seed: int = 231
    dtype: str = "float64"
    h: float | None = None  # None: DEFAULT_H[dtype]
    tolerance: float | None = None  # None: DEFAULT_TOLERANCE[dtype]
    noise_factor: float = DEFAULT_NOISE_FACTOR
    inputs: dict = field(default_factory=dict)  # name -> distribution; missing: normal
    name: str = ""
    source: str = "default"  # where the case came from, "file.yaml:12" or "default"
    mode: str = "auto"  # auto | dense | sparse | projection
    samples: int = 20  # sparse mode: elements per gradient
    directions: int = 4  # projection mode: random directions
    taylor: bool = False  # also run the Taylor (convergence) test, cnncheck.taylor
    protocol: str = ""  # the calling convention of the code checked ("dlai"; "": as the record's first)

    # -- geometry: asked of the layer's record -----------------------------------------
    @property
    def kind(self) -> "layers.LayerKind":
        return layers.get(self.layer)

    @property
    def kernel(self) -> tuple[int, int]:
        """(HH, WW) for conv, (pool_height, pool_width) for pooling."""
        return self.kind.kernel(self)

    @property
    def padding(self) -> tuple[int, int]:
        return self.pad

    def out_hw(self) -> tuple[int, int]:
        return self.kind.out_hw(self)

    def arrays(self) -> dict:
        """make_arrays(self): the case's inputs and dout, drawn from its seed (what the
        layer records read, without importing this module)."""
        return make_arrays(self)

    def output_shape(self) -> tuple[int, ...]:
        return self.kind.output_shape(self)

    def exact(self) -> bool:
        """True when every output-size division is exact (CS231n's contract)."""
        return self.kind.exact(self)

    def param(self) -> dict:
        """A fresh conv_param or pool_param dict, as the layer functions take it."""
        return self.kind.param(self)

    def geometry(self) -> dict:
        """Every parameter of the geometry, defaults included (what the report names)."""
        return self.kind.geometry(self)

    def param_name(self) -> str:
        return self.kind.param_key

    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        return self.kind.input_shapes(self)

    def step(self) -> float:
        return self.kind.step(self.dtype) if self.h is None else self.h

    def rtol(self) -> float:
        return DEFAULT_TOLERANCE[self.dtype] if self.tolerance is None else self.tolerance

    def nbytes(self) -> int:
        """Rough peak memory of the check: inputs, outputs, gradients and work copies."""
        elems = sum(int(np.prod(s)) for s in self.input_shapes().values())
        elems += int(np.prod(self.output_shape())) + self.kind.work_elements(self)
        return 8 * 8 * elems

    def describe(self) -> str:
        """A short label: `conv s1 p1` or `max_pool 2x2 s2`."""
        return self.kind.describe(self)

    def with_(self, **changes) -> "Case":
        return replace(self, **changes)


def make_arrays(case: Case) -> dict[str, np.ndarray]:
    """Draw x (and w, b) then dout, in that order, from RandomState(seed).

    With the default `normal` inputs this is exactly the course notebook's
    `np.random.seed(231); x = randn(...); w = randn(...); b = randn(...);
    dout = randn(...)`, so its published errors can be reproduced.
    """
    rng = np.random.RandomState(case.seed)
    arrays = {}
    for name, shape in case.input_shapes().items():
        kind = case.inputs.get(name, "normal")
        if kind == "normal":
            a = rng.randn(*shape)
        elif kind == "uniform":
            a = rng.uniform(-1.0, 1.0, size=shape)
        elif kind == "integers":  # small integers: pool windows hold ties
            a = rng.randint(-3, 4, size=shape).astype(np.float64)
        else:  # linspace, the notebook's forward-test style
            lo, hi = case.kind.linspace.get(name, (-0.1, 0.5))
            a = np.linspace(lo, hi, num=int(np.prod(shape))).reshape(shape)
        arrays[name] = a.astype(case.dtype)
    arrays["dout"] = rng.randn(*case.output_shape()).astype(case.dtype)
    return arrays
