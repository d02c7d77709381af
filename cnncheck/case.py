"""One gradient-check case: the layer, its geometry, and the arrays it runs on.

A `Case` is plain, validated data. `config.py` builds cases from YAML and flags;
`gradcheck.py` runs them; this module only knows shapes and how to draw inputs.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import numpy.random  # noqa: F401  numpy imports it lazily, on first use: here, at start-up

LAYERS = ("conv", "max_pool", "avg_pool")
POOL_LAYERS = ("max_pool", "avg_pool")
DTYPES = ("float64", "float32")
DISTRIBUTIONS = ("normal", "uniform", "linspace", "integers")

# Per-dtype defaults: finite-difference step and relative tolerance. Conv and average
# pooling are linear, so truncation error is nil and a large step only divides the
# rounding noise (float32 needs that); max pooling keeps a small step so that few
# elements sit at kinks.
DEFAULT_H = {"float64": 1e-5, "float32": 1e-2}
LINEAR_FLOAT32_H = 1.0  # conv and avg_pool in float32
DEFAULT_TOLERANCE = {"float64": 1e-6, "float32": 1e-3}
DEFAULT_NOISE_FACTOR = 10.0

# The course notebook's linspace ranges (forward-test style).
LINSPACE = {
    "conv": {"x": (-0.1, 0.5), "w": (-0.2, 0.3), "b": (-0.1, 0.2)},
    "pool": {"x": (-0.3, 0.4)},
}


def pair(v) -> tuple[int, int]:
    """`2` -> (2, 2); `[2, 1]` -> (2, 1)."""
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _plain(p: tuple[int, int]):
    """The form a CS231n layer expects: an int when both sides agree."""
    return p[0] if p[0] == p[1] else list(p)


@dataclass(frozen=True)
class Case:
    layer: str  # conv | max_pool | avg_pool
    x_shape: tuple[int, ...]  # (N, C, H, W)
    w_shape: tuple[int, ...] | None = None  # (F, C, HH, WW), conv only
    stride: tuple[int, int] = (1, 1)
    pad: tuple[int, int] = (0, 0)  # conv only
    pool: tuple[int, int] | None = None  # (pool_height, pool_width), pooling only
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

    # -- geometry -------------------------------------------------------------
    @property
    def is_conv(self) -> bool:
        return self.layer == "conv"

    @property
    def kernel(self) -> tuple[int, int]:
        """(HH, WW) for conv, (pool_height, pool_width) for pooling."""
        return tuple(self.w_shape[2:]) if self.is_conv else tuple(self.pool)

    @property
    def padding(self) -> tuple[int, int]:
        return self.pad if self.is_conv else (0, 0)

    def out_hw(self) -> tuple[int, int]:
        """H' = 1 + (H + 2*pad - HH) // stride, and the same for W (floor, as PyTorch)."""
        return tuple(
            1 + (size + 2 * p - k) // s
            for size, p, k, s in zip(self.x_shape[2:], self.padding, self.kernel, self.stride)
        )

    def output_shape(self) -> tuple[int, ...]:
        n, c = self.x_shape[:2]
        return (n, self.w_shape[0] if self.is_conv else c, *self.out_hw())

    def exact(self) -> bool:
        """True when every output-size division is exact (CS231n's contract)."""
        return all(
            (size + 2 * p - k) % s == 0
            for size, p, k, s in zip(self.x_shape[2:], self.padding, self.kernel, self.stride)
        )

    def param(self) -> dict:
        """A fresh conv_param or pool_param dict, as the layer functions take it."""
        if self.is_conv:
            return {"stride": _plain(self.stride), "pad": _plain(self.pad)}
        return {"pool_height": self.pool[0], "pool_width": self.pool[1], "stride": _plain(self.stride)}

    def param_name(self) -> str:
        return "conv_param" if self.is_conv else "pool_param"

    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        if self.is_conv:
            return {"x": self.x_shape, "w": self.w_shape, "b": (self.w_shape[0],)}
        return {"x": self.x_shape}

    def step(self) -> float:
        if self.h is not None:
            return self.h
        linear = self.layer != "max_pool"
        return LINEAR_FLOAT32_H if self.dtype == "float32" and linear else DEFAULT_H[self.dtype]

    def rtol(self) -> float:
        return DEFAULT_TOLERANCE[self.dtype] if self.tolerance is None else self.tolerance

    def nbytes(self) -> int:
        """Rough peak memory of the check: inputs, outputs, gradients and work copies."""
        elems = sum(int(np.prod(s)) for s in self.input_shapes().values())
        elems += int(np.prod(self.output_shape()))
        if self.is_conv:  # im2col columns: C*HH*WW x N*H'*W'
            n, c = self.x_shape[:2]
            elems += c * int(np.prod(self.kernel)) * n * int(np.prod(self.out_hw()))
        return 8 * 8 * elems

    def describe(self) -> str:
        """A short label: `conv s1 p1` or `max_pool 2x2 s2`."""
        s = "x".join(map(str, sorted(set(self.stride)))) if self.stride[0] == self.stride[1] else "x".join(map(str, self.stride))
        if self.is_conv:
            p = str(self.pad[0]) if self.pad[0] == self.pad[1] else "x".join(map(str, self.pad))
            return f"conv s{s} p{p}"
        return f"{self.layer} {self.pool[0]}x{self.pool[1]} s{s}"

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
            lo, hi = LINSPACE["conv" if case.is_conv else "pool"].get(name, (-0.1, 0.5))
            a = np.linspace(lo, hi, num=int(np.prod(shape))).reshape(shape)
        arrays[name] = a.astype(case.dtype)
    arrays["dout"] = rng.randn(*case.output_shape()).astype(case.dtype)
    return arrays
