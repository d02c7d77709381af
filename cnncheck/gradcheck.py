"""The gradient check: numerical gradients by finite differences, compared noise-aware.

For a loss L = sum(f(p) * dout), the numerical derivative of element i is, where the layer's
record says the output is linear in p (conv in x, w and b; average pooling),
    n_i = sum((f(p + 2h e_i) - f(p)) * dout) / 2h          (one-sided: one call, f(p) is known)
and, where kinks need both sides (max pooling),
    n_i = sum((f(p + h e_i) - f(p - h e_i)) * dout) / 2h   (centred, CS231n's
`eval_numerical_gradient_array`). Both differences span 2h, so their rounding noise is the
same and one noise model serves both. Conv and pooling outputs depend on an
input element only through its receptive-field footprint, so elements whose output
footprints do not overlap are perturbed in the same forward call and their
derivatives read apart (Curtis, Powell and Reid, 1974). A "colour" is such a set. A dense
check costs one call per colour (two where centred) plus the base call, and a few spot
checks, one call each, that move a random half of a colour (`colours_verified`); when they
disagree the check goes element by element.

An element passes when
    |a_i - n_i| <= tolerance * (|a_i| + |n_i|) + noise_factor * noise_i
where noise_i estimates the finite difference's rounding error:
    noise_i = eps * (sqrt(sum_{j in footprint(i)} (|dout_j| * r_j)^2)  +  |n_i| * |p_i|) / h
with r_j = sqrt(K) * |f|_j the rounding scale of output j (|f| the layer run on
absolute values, K its reduction length). The footprint's outputs round
independently, so their errors add in quadrature (a linear sum over-estimated
them by up to 1000x on large convs and hid a float32 gradient off by 2x); over
600 random geometries, dtypes and input distributions the largest |a-n| seen was
0.5 noise_i, so noise_factor 10 leaves a wide margin. Projections use the same
estimate over every output. Conv and pooling are piecewise linear, so truncation
error is nil away from kinks. Max-pool kinks (x_i +- h changes a window's winner,
or the one-sided differences disagree) are counted and left out of the verdict.

The forward itself is judged at the base input and at FORWARD_POINTS perturbed inputs of
each parameter drawn at random from every call the check made, the element-wise fallback's
included (their outputs exist already; the draw comes from the operating system, so the
code cannot tell which calls are compared): against the reference, and for responding at
all (a forward that returns the same output for a different x is a fault). Where the
inputs have no kinks, the gradients are also compared with the reference's backward at the
same inputs: a forward that steers its own numerical gradient cannot pass.
Every number is screened here: a comparison with a non-finite side never passes.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace


import numpy as np

from cnncheck import layers
from cnncheck.case import Case, make_arrays
from cnncheck.layers._geometry import _crop, _pad, _window, windows
from cnncheck.layers.kind import Colour, single
from cnncheck.i18n import msg
from cnncheck.protocols import ImplError  # noqa: F401  (re-exported: the checker's error)
from cnncheck.protocols.functions import FunctionPair
from cnncheck.taylor import add_taylor

BATCH = 32  # forward calls per message to a worker process
BATCH_BYTES = 8 * 2**20  # outputs per message, at most
WORST = 5  # worst elements reported per failed gradient
SPOT_CHECKS = 3  # random colours (besides the first and last) whose structure is verified
FORWARD_POINTS = 2  # perturbed inputs per parameter at which the forward meets the reference
DENSE_BUDGET = 30.0  # seconds: auto mode runs dense checks under this estimate
PARAM_OF = {"dx": "x", "dw": "w", "db": "b"}
NAIVE_OUT_LIMIT = 2_000  # output elements above which the naive reference sees one sample
CRITERION = "|a - n| <= tolerance * (|a| + |n|) + noise_factor * noise"
_DRAW = np.random.default_rng()  # seeded by the operating system: which calls are compared


class Impl(FunctionPair):
    """A trusted pair of layer functions in the CS231n protocol, run in this process:
    `Impl(conv_forward_naive, conv_backward_naive, "label")`."""

    def __init__(self, forward, backward, label: str = "", spec=None):
        super().__init__(forward, backward, label, spec)


def builtin(layer: str, fast: bool = True) -> Impl:
    """cnncheck's own layer functions: the fast ones, or the naive reference."""
    kind = "fast" if fast else "naive"
    record = layers.get(layer)
    return Impl(*getattr(record, kind), f"cnncheck.layers ({kind})", record.reference_spec())


def grad_names(case: Case) -> tuple[str, ...]:
    return tuple("d" + n for n in case.input_shapes())  # a conv without bias has no db


def forward(impl, case: Case, arrays: dict, changed=None) -> np.ndarray:
    """The layer's output for these arrays (the adapter keeps what backward needs).

    changed: (name, index, bases) when arrays[name] differs from bases[name] only at index
    and the other arrays are bases: code in a worker process is then sent the change alone,
    and the output it returns is a read-only view, valid until the next call."""
    if changed is not None and getattr(impl, "isolated", False):
        return impl.run_forward(case, arrays, changed)
    return impl.run_forward(case, arrays)


def backward(impl, case: Case, dout) -> dict:
    """{'dx': ..., 'dw': ..., 'db': ...} for the latest forward."""
    return impl.run_backward(case, dout)


# -- results ------------------------------------------------------------------
@dataclass
class Check:
    name: str  # out | dx | dw | db | contract
    passed: bool
    rel_error: float | None = None  # CS231n: max |a-n| / max(1e-8, |a|+|n|)
    abs_error: float | None = None
    noise: float | None = None  # largest noise estimate
    margin: float | None = None  # largest |a-n| / allowed discrepancy
    criterion: str = CRITERION
    method: str = ""
    elements: int = 0  # elements compared
    failed: int = 0
    kinks: int = 0
    worst: list = field(default_factory=list)
    error_map: list | None = None  # |a-n| over the spatial grid, summed over N and C
    message: str | None = None
    taylor: dict | None = None  # the Taylor (convergence) test, cnncheck.taylor

    @classmethod
    def from_dict(cls, d: dict) -> "Check":
        """A check from its JSON (report.check_dict): what it adds (not_finite) left out."""
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


@dataclass
class CaseResult:
    case: Case
    expected_output_shape: tuple
    output_shape: tuple | None = None
    checks: list = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    notes: list = field(default_factory=list)
    hint: str | None = None
    calls: dict = field(default_factory=lambda: {"forward": 0, "backward": 0})  # of the checked code
    colour_minimum: int = 0  # the fewest forward calls a dense check can make

    @property
    def passed(self) -> bool:
        return self.error is None and all(c.passed for c in self.checks)


def rel_error(a, n) -> float:
    """CS231n: max(|a - n| / max(1e-8, |a| + |n|))."""
    a, n = np.asarray(a, np.float64), np.asarray(n, np.float64)
    if a.size == 0:
        return 0.0
    with np.errstate(invalid="ignore", over="ignore"):  # inf on a side: NaN, shown as such
        return float(np.max(np.abs(a - n) / np.maximum(1e-8, np.abs(a) + np.abs(n))))


def compare(name, analytic, numeric, noise, case: Case, kinks=None, method="") -> Check:
    """Element-wise noise-aware verdict with the worst elements and an error map."""
    a = np.asarray(analytic, np.float64)
    n = np.asarray(numeric, np.float64)
    with np.errstate(invalid="ignore", over="ignore"):  # a non-finite side: NaN ratios, which fail
        err = np.abs(a - n)
        allowed = case.rtol() * (np.abs(a) + np.abs(n)) + case.noise_factor * noise
        ratio = err / np.maximum(allowed, np.finfo(np.float64).tiny)
    if kinks is not None:
        ratio = np.where(kinks, 0.0, ratio)
    bad = ~(ratio <= 1)  # NaN (an overflowed difference, say) fails
    order = _largest(ratio, WORST if bad.any() else 1)
    worst = [
        {"index": [int(i) for i in np.unravel_index(k, a.shape)], "analytic": float(a.flat[k]),
         "numerical": float(n.flat[k]), "allowed": float(allowed.flat[k])}
        for k in order if a.size
    ]
    counted = ~kinks if kinks is not None else np.ones(a.shape, bool)  # errors leave kinks out
    return Check(
        name, passed=not bad.any(), rel_error=rel_error(a[counted], n[counted]),
        abs_error=float(err[counted].max(initial=0.0)),
        noise=float(np.max(noise)) if np.size(noise) else 0.0,
        margin=float(ratio.max()) if ratio.size else 0.0, method=method,
        elements=int(a.size if kinks is None else a.size - kinks.sum()),
        failed=int(bad.sum()), kinks=0 if kinks is None else int(kinks.sum()),
        worst=worst, error_map=_error_map(err) if bad.any() and a.ndim == 4 else None,
    )


def _largest(a: np.ndarray, k: int) -> np.ndarray:
    """Flat indices of the k largest entries, largest first (a partition, not a full sort)."""
    flat = a.ravel()
    if flat.size <= k:
        return np.argsort(-flat, kind="stable")
    top = np.argpartition(-flat, k - 1)[:k]
    return top[np.argsort(-flat[top], kind="stable")]


def _error_map(err: np.ndarray) -> list:
    return err.sum(axis=(0, 1)).tolist()


def colours(case: Case, name: str) -> list[Colour]:
    """Structured perturbations for one gradient, from the layer's record."""
    return case.kind.colours(case, name)


# -- the numerical side ---------------------------------------------------------
class Evaluator:
    """Runs the layer's forward with some parameters replaced, counting calls and keeping
    the first FORWARD_POINTS perturbed inputs of each parameter with their outputs."""

    def __init__(self, impl: Impl, case: Case, arrays: dict, on_call=None, calls: dict | None = None):
        self.impl, self.case, self.arrays, self.on_call = impl, case, arrays, on_call
        self.out_shape = case.output_shape()
        self.counts = calls if calls is not None else {"forward": 0}
        self.kept: dict = {}  # parameter names -> [(replaced arrays, output)], drawn at random
        self.seen: dict = {}  # parameter names -> calls made
        self.moved: set = set()  # parameter names whose perturbations changed the output
        self.base = None  # the output at the unperturbed input
        self.seconds_per_call = 0.0  # set from the first, unperturbed call

    @property
    def calls(self) -> int:
        return self.counts["forward"]

    def __call__(self, name: str, value: np.ndarray) -> np.ndarray:
        return self.run({name: value})

    def run(self, replaced: dict) -> np.ndarray:
        """The layer's output in float64 with `replaced` ({'x': ..., ...}) swapped in."""
        return self.raw(replaced).astype(np.float64)  # a copy: a layer may reuse one buffer

    def delta(self, replaced: dict, base: np.ndarray, index=None) -> np.ndarray:
        """f(p') - f(p) in float64, straight from the layer's output (no copy first).
        index: where the one replaced parameter differs from its unperturbed value."""
        return np.subtract(self.raw(replaced, index), base, dtype=np.float64)

    def deltas(self, pname: str, work: np.ndarray, changes: list, base: np.ndarray):
        """f(p with p[index] = values) - f(p) in float64 for each (index, values), in order.

        Code in a worker process gets them in batches (one message for many forward calls,
        each sent as its change alone); each batch is sent as soon as the one before
        arrives, so the worker computes it while the judge reads that one. Other code is
        called one at a time on `work`, which is restored after each call."""
        p = self.arrays[pname]
        send = getattr(self.impl, "send_forward_many", None)
        if send is None:
            for index, values in changes:
                work[index] = values
                D = self.delta({pname: work}, base, index)
                work[index] = p[index]
                yield D
            return
        size = max(1, min(BATCH, BATCH_BYTES // max(1, 8 * int(np.prod(self.out_shape)))))
        chunks = [changes[start:start + size] for start in range(0, len(changes), size)]
        sent = send(self.case, pname, chunks[0], self.arrays, 0) if chunks else None
        for k, chunk in enumerate(chunks):
            outs = self.impl.receive_forward_many(sent)
            if k + 1 < len(chunks):  # sent while the worker waits: it computes while we read
                sent = send(self.case, pname, chunks[k + 1], self.arrays, k + 1)
            for out, (index, values) in zip(outs, chunk):
                work[index] = values
                D = np.subtract(self.check_out(out, {pname: work}), base, dtype=np.float64)
                work[index] = p[index]
                yield D

    def raw(self, replaced: dict, index=None) -> np.ndarray:
        changed = (*replaced, index, self.arrays) if index is not None and len(replaced) == 1 else None
        return self.check_out(forward(self.impl, self.case, {**self.arrays, **replaced}, changed), replaced)

    def check_out(self, out, replaced: dict) -> np.ndarray:
        """Count the call, check the output's shape, keep the first points of each parameter."""
        self.counts["forward"] += 1
        if self.on_call:
            self.on_call()
        if out.shape != self.out_shape:
            raise ImplError(f"forward returned out of shape {out.shape} for a perturbed "
                            f"{', '.join(replaced)}")
        key = tuple(replaced)
        kept = self.kept.setdefault(key, [])
        seen = self.seen[key] = self.seen.get(key, 0) + 1
        slot = len(kept) if len(kept) < FORWARD_POINTS else int(_DRAW.integers(seen))  # reservoir
        if slot < FORWARD_POINTS:
            point = ({k: v.copy() for k, v in replaced.items()}, out.astype(np.float64))
            kept[slot:slot + 1] = [point]
        if key not in self.moved and not np.array_equal(out, self.base):
            self.moved.add(key)
        return out


@dataclass
class Numerical:
    value: np.ndarray
    plus: np.ndarray | None = None  # one-sided halves of a centred difference (kinks)
    minus: np.ndarray | None = None
    leaked: bool = False  # an output outside every perturbed footprint changed


def one_sided(case: Case, gname: str) -> bool:
    """The output is linear in the parameter and has no kinks: f(p + 2h e) - f(p) is exact."""
    return PARAM_OF[gname] in case.kind.linear_in and gname not in case.kind.kinks


def numerical(f: Evaluator, pname: str, cols, base, dout, centred=False) -> Numerical:
    """Finite differences for every element of the given colours, each spanning 2h.

    one-sided: n_i = read((f(p + 2h e) - f(p)) * dout) / 2h, one call per colour;
    centred:   n_i = read((f(p + h e) - f(p - h e)) * dout) / 2h, with the halves
               plus_i = read((f(p + h e) - f(p)) * dout) / h, minus_i likewise, for kinks.
    As CS231n's `eval_numerical_gradient_array` does, a work copy of the parameter is
    perturbed in place and restored; float64 divides by the nominal step, float32 by the
    step it could represent.
    """
    p, h = f.arrays[pname], f.case.step()
    work = p.copy()
    res = Numerical(np.zeros(p.shape))
    if centred:
        res.plus, res.minus = np.zeros(p.shape), np.zeros(p.shape)
    olds = [np.asarray(p[col.index], np.float64) for col in cols]
    steps = (h, -h) if centred else (2 * h,)
    changes = [(col.index, (old + s).astype(p.dtype)) for col, old in zip(cols, olds) for s in steps]
    outs = f.deltas(pname, work, changes, base)
    for col, old in zip(cols, olds):
        up = (old + (h if centred else 2 * h)).astype(p.dtype)
        D = next(outs)  # f(p + s e) - f(p)
        hp = _step(up, old, h if centred else 2 * h, p.dtype)
        if centred:
            down = (old - h).astype(p.dtype)
            Dm = next(outs)  # f(p - h e) - f(p)
            hm = _step(old, down, h, p.dtype)
            res.plus[col.index] = col.read(D * dout) / hp
            res.minus[col.index] = -col.read(Dm * dout) / hm
            D -= Dm
            hp = hp + hm
        if col.covered is not None and not res.leaked:
            res.leaked = bool(np.any(D[(..., ~col.covered)]))
        res.value[col.index] = col.read(np.multiply(D, dout, out=D)) / hp  # D is this call's own
    if not np.array_equal(work, p, equal_nan=True):
        raise ImplError(f"forward changed its input {pname} in place")
    return res


def _step(hi, lo, nominal, dtype):
    """The step taken: nominal in float64, as represented in float32."""
    return nominal if dtype == np.float64 else np.asarray(hi, np.float64) - lo


def rounding_scale(case: Case, arrays: dict) -> np.ndarray:
    """r_j = sqrt(K) * |f|_j: how large output j's rounding error can be, per unit eps."""
    ref = builtin(case.layer)
    absolute = {k: np.abs(v) for k, v in arrays.items()}
    fabs = forward(ref, case, absolute).astype(np.float64)
    return np.sqrt(case.kind.reduction(case)) * fabs


def footprint_rss(case: Case, name: str, T: np.ndarray, cols=None) -> np.ndarray:
    """S_i = sqrt(sum of T^2 over element i's output footprint), for every element."""
    S = np.zeros(case.input_shapes()[PARAM_OF[name]])
    T2 = T * T
    for col in cols or colours(case, name):
        S[col.index] = col.read(T2)
    return np.sqrt(S)


def noise(case: Case, name: str, p, num, T, S=None) -> np.ndarray:
    """noise_i = eps * (sqrt(sum over i's footprint of (|dout| r)^2)  +  |n_i| * |p_i|) / h."""
    eps = np.finfo(case.dtype).eps
    S = footprint_rss(case, name, T) if S is None else S
    return eps * (S + np.abs(num) * np.abs(p.astype(np.float64))) / case.step()


def _kinky(case: Case, gname: str) -> bool:
    return gname in case.kind.kinks


def kinks(case: Case, p, num: Numerical, nz) -> np.ndarray | None:
    """Max-pool elements at a kink: x_i +- h changes a window's winner, or the one-sided
    differences disagree (whatever the checked forward computes)."""
    if num.plus is None:
        return None
    allowed = case.rtol() * (np.abs(num.plus) + np.abs(num.minus)) + 2 * case.noise_factor * nz
    disagree = np.abs(num.plus - num.minus) > allowed
    return disagree | _tied(case, p.astype(np.float64), 2 * case.step())


def _tied(case: Case, x: np.ndarray, margin: float | None = None) -> np.ndarray:
    """Elements within `margin` (default 4h) of their window's maximum where the window
    holds another such element: moving them by up to margin/2 can change the winner."""
    margin = 4 * case.step() if margin is None else margin
    g = case.kind.grid(case)
    xp = _pad(x, g, -np.inf)  # padding never wins
    win = windows(xp, g)
    near = win >= win.max(axis=(4, 5), keepdims=True) - margin
    tied = near & (near.sum(axis=(4, 5), keepdims=True) > 1)
    out = np.zeros(xp.shape, bool)
    for i in range(g.kernel[0]):
        for j in range(g.kernel[1]):
            at = _window(out, i, j, g)
            at |= tied[..., i, j]
    return _crop(out, g, *x.shape[2:])


# -- checking one gradient ------------------------------------------------------
def dense(f: Evaluator, case, gname, analytic, base, dout, T, rng, budget) -> Check:
    """Every element, by colours; the colours verified by half-colour calls, with fallbacks."""
    pname, centred = PARAM_OF[gname], not one_sided(case, gname)
    p = f.arrays[pname]
    cols = colours(case, gname)
    num = numerical(f, pname, cols, base, dout, centred)
    S = footprint_rss(case, gname, T, cols)
    method = f"dense, {len(cols)} colour{'s' if len(cols) > 1 else ''}"
    nz = noise(case, gname, p, num.value, T, S)
    if num.leaked or not colours_verified(f, pname, cols, num, base, dout, nz, rng, centred):
        why = "outputs outside the receptive field changed" if num.leaked else "spot checks disagreed"
        if (1 + centred) * p.size * f.seconds_per_call <= budget:
            num = numerical(f, pname, [single(p.shape, k) for k in range(p.size)], base, dout, centred)
            method = f"dense, element-wise ({why} with colours)"
        else:
            return sparse(f, case, gname, analytic, base, dout, T, rng,
                          note=f"sparse ({why}; element by element too costly)")
    return _verdict(case, gname, analytic, num, p, S, method)


def colours_verified(f: Evaluator, pname, cols, num: Numerical, base, dout, nz, rng, centred) -> bool:
    """Spot checks of the colour structure, one call each: move a random half A of a colour
    (the first, the last and SPOT_CHECKS others) by the step s of its one-sided difference;
        read((f(p + s 1_A) - f(p)) * dout) / s  =  n_i for i in A,  0 for i not in A
    within the verdict's allowance. A forward that reads outside its receptive field within
    a colour credits one element with another's effect, and a random half tells them apart."""
    p, h = f.arrays[pname], f.case.step()
    s, full = (h, num.plus) if centred else (2 * h, num.value)
    picks = {0, len(cols) - 1, *rng.randint(0, len(cols), SPOT_CHECKS)}
    work, tried = p.copy(), []
    for k in sorted(picks):
        col = cols[k]
        old = np.asarray(p[col.index], np.float64)
        up = (old + s).astype(p.dtype)
        half = rng.rand(*old.shape) < 0.5
        tried.append((col, old, up, half))
    changes = [(col.index, np.where(half, up, p[col.index])) for col, _, up, half in tried]
    for (col, old, up, half), D in zip(tried, f.deltas(pname, work, changes, base)):
        got = col.read(D * dout) / _step(up, old, s, p.dtype)
        want = np.where(half, full[col.index], 0.0)
        if col.covered is not None and np.any(D[(..., ~col.covered)]):
            return False
        if not _agree(f.case, got, want, nz[col.index]):
            return False
    return True


def _agree(case, a, b, nz) -> bool:
    """Two differences agree within the verdict's own allowance."""
    return bool(np.all(np.abs(a - b) <= case.rtol() * (np.abs(a) + np.abs(b)) + case.noise_factor * nz))


def sparse(f, case, gname, analytic, base, dout, T, rng, note="sparse") -> Check:
    """`samples` random elements plus the corners and borders, one at a time."""
    pname = PARAM_OF[gname]
    p = f.arrays[pname]
    picks = np.union1d(_spot_elements(p.shape, rng, case.samples), _border_elements(p.shape))
    num = numerical(f, pname, [single(p.shape, k) for k in picks], base, dout, not one_sided(case, gname))
    chk = _verdict(case, gname, analytic, num, p, footprint_rss(case, gname, T), "", picks)
    chk.method = f"{note}, {len(picks)}/{p.size}"
    return chk


def _verdict(case, gname, analytic, num: Numerical, p, S, method, picks=None) -> Check:
    nz = noise(case, gname, p, num.value, None, S)
    kk = kinks(case, p, num, nz)
    sel = (lambda a: a.flat[picks]) if picks is not None else (lambda a: a)
    chk = compare(gname, sel(analytic), sel(num.value), sel(nz), case,
                  None if kk is None else sel(kk), method)
    if picks is not None:
        for w in chk.worst:  # report indices in the parameter's own shape
            w["index"] = [int(i) for i in np.unravel_index(picks[w["index"][0]], p.shape)]
    return chk


def _spot_elements(shape, rng, k) -> np.ndarray:
    size = int(np.prod(shape))
    if size == 0:  # an empty batch
        return np.zeros(0, np.intp)
    return np.unique(np.concatenate([[0, size - 1], rng.randint(0, size, size=k)]))[: k + 2]


def _border_elements(shape) -> np.ndarray:
    """Spatial corners, edge midpoints and centre, in the first and last sample/channel/filter."""
    grid = np.zeros(shape, bool)
    if grid.size == 0:  # an empty batch: no element to pick
        return np.flatnonzero(grid)
    ix = [sorted({0, s - 1}) for s in shape[:-2]] + [sorted({0, s // 2, s - 1}) for s in shape[-2:]]
    grid[np.ix_(*ix)] = True
    return np.flatnonzero(grid)


def projection(f: Evaluator, case, grads, base, dout, T, rng, budget) -> dict[str, Check]:
    """v . J u against u . (J^T v) along random directions u (v = dout), per gradient.

    One direction moves x, w and b together (a conv is bilinear, so the centred difference
    is still exact); when that fails, each gradient is projected alone, and a failing one
    is located by a dense check where affordable (else sparse).
    """
    names = list(grads)
    joint = _project(f, case, grads, names, dout, T, rng)
    if joint.passed or len(names) == 1:
        if len(names) > 1:
            joint.method += f" moving {', '.join(PARAM_OF[g] for g in names)} together"
        checks = {g: replace(joint, name=g, worst=list(joint.worst)) for g in names}
    else:
        checks = {g: _project(f, case, grads, [g], dout, T, rng) for g in names}
    for g, chk in checks.items():
        if not chk.passed:
            checks[g] = _locate(chk, f, case, g, grads[g], base, dout, T, rng, budget)
    return checks


def _project(f: Evaluator, case, grads, names, dout, T, rng) -> Check:
    """One Check over `case.directions` random directions moving the named parameters.

    u is uniform in [-1, 1] and zero on max-pool elements within 3h of a tie, so no
    window's winner changes between p + h u and p - h u (those elements count as kinks).
    """
    h, eps = case.step(), np.finfo(case.dtype).eps
    params = {PARAM_OF[g]: (f.arrays[PARAM_OF[g]], grads[g].astype(np.float64)) for g in names}
    masks = {PARAM_OF[g]: ~_tied(case, f.arrays["x"].astype(np.float64), 3 * h)
             for g in names if _kinky(case, g)}
    anas, nums, nzs = [], [], []
    for _ in range(case.directions):
        ups, downs, ana, nz = {}, {}, 0.0, np.sum(T * T)
        for pname, (p, g) in params.items():
            p64 = p.astype(np.float64)
            u = rng.uniform(-1.0, 1.0, p.shape) * masks.get(pname, 1.0)
            ups[pname], downs[pname] = (p64 + h * u).astype(p.dtype), (p64 - h * u).astype(p.dtype)
            u_real = (ups[pname].astype(np.float64) - downs[pname]) / (2 * h)
            ana += np.sum(u_real * g)
            nz += np.sum((u * p64 * g) ** 2)
        nums.append(np.sum((f.run(ups) - f.run(downs)) * dout) / (2 * h))
        anas.append(ana)
        nzs.append(eps * np.sqrt(nz) / h)
    chk = compare(names[0], np.array(anas), np.array(nums), np.array(nzs), case,
                  method=f"projection, {case.directions} directions")
    chk.kinks = int(sum((~m).sum() for m in masks.values()))
    for w in chk.worst:
        w["direction"] = w.pop("index")[0]
    return chk


def _locate(chk: Check, f, case, gname, analytic, base, dout, T, rng, budget) -> Check:
    """A failed projection names its elements: dense where affordable, else sparse.

    A complete dense check is the finer test and gives the verdict; a sparse one only
    says where, and the gradient stays failed."""
    args = (f, case, gname, analytic, base, dout, T, rng)
    where = (dense(*args, budget) if dense_calls(case, gname) * f.seconds_per_call <= budget
             else sparse(*args))
    where.method = f"{chk.method}: failed, margin {chk.margin:.3g}; located by {where.method}"
    if not where.method.split("located by ")[1].startswith("dense"):
        where.passed = False
    if where.passed:
        where.message = msg("the projection failed, but every element passes the dense check")
    return where


def check_gradients(f: Evaluator, case, grads, base, dout, T, rng, mode, budget) -> dict:
    """{name: Check} for every gradient in `mode` (dense, sparse or projection; in auto
    mode a projection is joined by a sparse check of each gradient it passed)."""
    one = {"dense": lambda *a: dense(*a, budget), "sparse": sparse}.get(mode)
    if one:
        return {g: one(f, case, g, grads[g], base, dout, T, rng) for g in grads}
    checks = projection(f, case, grads, base, dout, T, rng, budget)
    if case.mode == "auto":  # projection says whether, sparse says where
        for g, chk in checks.items():
            if chk.passed:
                extra = sparse(f, case, g, grads[g], base, dout, T, rng)
                chk.passed, chk.method = extra.passed, f"{chk.method} + {extra.method}"
                chk.worst = chk.worst if extra.passed else extra.worst
    return checks


def colour_count(case: Case, gname: str) -> int:
    """len(colours(case, gname)), without building them."""
    return case.kind.colour_count(case, gname)


def dense_calls(case: Case, gname: str) -> int:
    """Forward calls a dense check of one gradient takes (colours, then spot checks)."""
    n = colour_count(case, gname)
    return (1 + (not one_sided(case, gname))) * n + min(n, SPOT_CHECKS + 2)


def colour_minimum(case: Case) -> int:
    """The fewest forward calls any dense check can make: the base call and one per colour."""
    return 1 + sum(colour_count(case, g) for g in grad_names(case))


def mode_calls(case: Case, mode: str) -> int:
    """Forward calls a check of every gradient in `mode` takes when it passes."""
    names = grad_names(case)
    sparse_calls = sum((1 + (not one_sided(case, g))) * min(case.samples + 2 + _border_elements(s).size,
                                                            int(np.prod(s)))
                       for g, s in ((g, case.input_shapes()[PARAM_OF[g]]) for g in names))
    if mode == "dense":
        return sum(dense_calls(case, g) for g in names)
    if mode == "sparse":
        return sparse_calls
    return 2 * case.directions + (sparse_calls if case.mode == "auto" else 0)


# -- one case -------------------------------------------------------------------
def out_check(case: Case, out, reference: Impl, arrays: dict, rscale) -> Check:
    """The forward output against a second implementation, within rounding.

    The naive reference is slow on large inputs: there it runs on the first sample only.
    """
    method = "vs reference"
    if reference.label.endswith("(naive)") and out.size > NAIVE_OUT_LIMIT and len(out) > 1:
        arrays, out, rscale = {**arrays, "x": arrays["x"][:1]}, out[:1], rscale[:1]
        method = "vs naive, first sample"
    eps = np.finfo(case.dtype).eps
    return compare("out", out, forward(reference, case, arrays), eps * rscale, case,
                   method=method)


def against_reference(case: Case, reference: Impl, arrays: dict, dout, checks: list, grads: dict) -> None:
    """Gradients that passed against numerical gradients of the code's own forward, held to
    the reference's backward at the same inputs too (where no input sits at a kink), with the
    same allowance (the check's largest noise): the first that differs replaces its check,
    with a message naming the forward."""
    if case.kind.kinks and _tied(case, arrays["x"], 0.0).any():
        return
    forward(reference, case, arrays)
    want = backward(reference, case, dout)
    for k, chk in enumerate(checks):
        if chk.name not in want or not chk.passed or chk.name not in grads:
            continue
        ref = compare(chk.name, grads[chk.name], want[chk.name], chk.noise or 0.0, case,
                      method="vs reference backward")
        if not ref.passed:
            ref.message = msg("your {q} matches numerical gradients of your own forward but not the reference "
                              "backward: your forward differs from the reference where it was not compared", q=chk.name)
            checks[k] = ref


def forward_points(f: Evaluator, case: Case, reference: Impl, base, rscale) -> Check | None:
    """The forward at the perturbed inputs the check kept: the first failure, else None.

    Each must meet the reference within rounding. A parameter whose perturbations never
    changed the output is moved once more, every element by 2h: a forward that returns its
    base output for a changed input (one that memoizes its first answer, say) is named."""
    for key in [k for k in f.kept if k not in f.moved]:
        shifted = {n: (f.arrays[n].astype(np.float64) + 2 * case.step()).astype(f.arrays[n].dtype) for n in key}
        f.kept[key].insert(0, (shifted, f.run(shifted)))
    for names, points in f.kept.items():
        for replaced, out in points:
            arrays = {**f.arrays, **replaced}
            # float64 steps (2h) leave the rounding scale as it was; float32 ones (up to 2) may not
            rs = rscale if case.dtype == "float64" else rounding_scale(case, arrays)
            chk = out_check(case, out, reference, arrays, rs)
            if chk.passed:
                continue
            what = " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)
            chk.method += f" at a perturbed {what}"
            chk.message = (msg("your forward returned the same output for a different {what}", what=what)
                           if np.array_equal(out, base) else
                           msg("your forward disagrees with the reference at a perturbed {what}", what=what))
            return chk
    return None


def check_case(case: Case, impl: Impl | None = None, reference: Impl | None = None,
               on_call=None, on_estimate=None, budget: float = DENSE_BUDGET) -> CaseResult:
    """Run one case: output shape, out against a reference, and every gradient.

    `seconds` counts the checking, from the first forward call on; drawing the inputs,
    like a peer's test setup, is not counted.
    """
    arrays = make_arrays(case)
    if hasattr(impl, "ready"):  # a worker (re)started now is not counted as the code's time
        try:
            impl.ready(case)
        except ImplError:
            pass  # the first call says so
    start = time.perf_counter()
    fast = builtin(case.layer)
    impl = impl or fast
    # the built-in fast layers are checked against the naive ones, everything else against fast
    reference = reference or (builtin(case.layer, fast=False) if impl.label == fast.label else fast)
    result = CaseResult(case, case.output_shape())
    if not case.exact():
        result.notes.append(msg("the output size division is not exact: outside CS231n's contract"
                                " (sizes are floored, as PyTorch does)"))
    if isinstance(case.param()["stride"], list) or isinstance(case.param().get("pad"), list):
        result.notes.append(msg("stride or pad is an [h, w] pair: outside CS231n's contract"
                                " (its layers take one int for both)"))
    try:
        with np.errstate(over="ignore", invalid="ignore"):  # huge outputs: screened, never warned of
            _run(case, arrays, impl, reference, result, on_call, on_estimate, budget)
    except ImplError as e:
        result.error = str(e)
    result.seconds = time.perf_counter() - start
    return result


def _run(case, arrays, impl, reference, result, on_call, on_estimate, budget):
    dout = arrays.pop("dout")
    t0 = time.perf_counter()
    out = forward(impl, case, arrays)
    result.output_shape = tuple(out.shape)
    expected = case.output_shape()
    if out.shape != expected:
        swapped = out.shape == (*expected[:2], *expected[:1:-1])
        why = msg("H' and W' swapped") if swapped else "1 + (H + 2*pad - HH) // stride"
        result.checks.append(Check("out", False, message=msg("output shape {shape}, expected {expected}: {hint}",
                                                             shape=out.shape, expected=expected, hint=why)))
        return
    result.calls["forward"] = 1
    result.colour_minimum = colour_minimum(case)
    f = Evaluator(impl, case, arrays, on_call, result.calls)
    f.seconds_per_call, f.base = time.perf_counter() - t0, out.astype(np.float64)
    rscale = rounding_scale(case, arrays)
    result.checks.append(out_check(case, out, reference, arrays, rscale))
    result.calls["backward"] += 1
    grads = backward(impl, case, dout)  # a backward that raises still leaves `out` shown
    shaped = {g: a for g, a in grads.items() if a.shape == arrays[PARAM_OF[g]].shape}
    wrong = {g: Check(g, False, message=msg("{q} has shape {shape}, expected {expected}", q=g, shape=a.shape,
                                            expected=arrays[PARAM_OF[g]].shape), method="shape")
             for g, a in grads.items() if g not in shaped}
    if not result.checks[-1].passed:
        result.notes.append(msg("the gradients are checked against numerical gradients of your own "
                                "forward, which does not match the reference: fix `out` first"))
    secs = mode_calls(case, "dense") * f.seconds_per_call  # what a dense check would take
    mode = case.mode if case.mode != "auto" else ("dense" if secs <= budget else "projection")
    if on_estimate and shaped:
        n = mode_calls(case, mode)
        on_estimate(case, mode, n, n * f.seconds_per_call)
    dout64, base = dout.astype(np.float64), f.base
    T = np.abs(dout64) * rscale
    rng = np.random.RandomState(case.seed + 1)
    found = check_gradients(f, case, shaped, base, dout64, T, rng, mode, budget)
    for g in grad_names(case):
        chk = found.get(g) or wrong[g]
        if g in found and case.taylor:  # the step-free verdict joins the check's
            add_taylor(chk, f, case, g, grads[g], base, dout64, T, _tied)
        result.checks.append(chk)
    case.kind.finish(case, found, grads, dout)
    against_reference(case, reference, arrays, dout, result.checks, grads)
    if result.checks[0].passed:  # the forward met the reference at the base input: and elsewhere?
        # the base input met the reference given; the other points meet the fast one (itself
        # held to the naive one by the tests), so our own layers need no naive run per point
        result.checks[0] = forward_points(f, case, builtin(case.layer), base, rscale) or result.checks[0]
    if case.mode == "auto" and mode != "dense":
        result.notes.append(msg("auto mode: a dense check would take about {secs} s;"
                                " ran projection plus sparse checks instead", secs=f"{secs:.0f}"))
