"""PyTorch's own sample inputs, the way PyTorch tests itself: every sample of the OpInfo
entries nn.functional.conv2d, max_pool2d, avg_pool2d and unfold
(torch.testing._internal.common_methods_invocations.op_db) and of the ModuleInfo entries
nn.Conv2d, nn.MaxPool2d and nn.AvgPool2d (common_modules.module_db), each turned into a
cnncheck geometry. Every distinct geometry must be accepted by a config, its built-in layers
(naive and fast) must equal torch's, and the command line must check it and echo every
parameter in its JSON. Skipped when torch or expecttest is absent.
"""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from cnncheck import layers
from cnncheck.cli import main
from cnncheck.config import load_cases
from torch_reference import assert_equal_to_torch, random_arrays

torch = pytest.importorskip("torch")
pytest.importorskip("expecttest")

OPS = {"nn.functional.conv2d": "conv", "nn.functional.max_pool2d": "max_pool",
       "nn.functional.avg_pool2d": "avg_pool", "nn.functional.unfold": "im2col"}
MODULES = {"Conv2d": "conv", "MaxPool2d": "max_pool", "AvgPool2d": "avg_pool"}


def _pair(v):
    """An int, a 1-tuple or a pair as the config writes it: an int when both sides agree."""
    v = tuple(v) if isinstance(v, (list, tuple)) else (v, v)
    h, w = (v[0], v[0]) if len(v) == 1 else v
    return int(h) if h == w else [int(h), int(w)]


def _batched(shape) -> list:
    return [1, *shape] if len(shape) == 3 else list(shape)  # unbatched input: a batch of one


def conv_geometry(x, w, bias, stride=1, padding=0, dilation=1, groups=1):
    pad = padding if isinstance(padding, str) else _pair(padding)
    return {"layer": "conv", "x_shape": _batched(x), "w_shape": list(w),
            "conv_param": {"stride": _pair(stride), "pad": pad, "dilation": _pair(dilation), "groups": groups,
                           "bias": bias}}


def pool_geometry(layer, x, kernel_size, stride=None, padding=0, **extra):
    kh, kw = (_pair(kernel_size),) * 2 if isinstance(_pair(kernel_size), int) else _pair(kernel_size)
    stride = [kh, kw] if stride in (None, ()) else _pair(stride)
    param = {"pool_height": kh, "pool_width": kw, "stride": _pair(stride), "pad": _pair(padding)}
    keys = ("dilation", "ceil_mode") if layer == "max_pool" else ("ceil_mode", "count_include_pad", "divisor_override")
    defaults = {"dilation": 1, "ceil_mode": False, "count_include_pad": True, "divisor_override": None}
    param.update({k: _pair(extra[k]) if k == "dilation" and k in extra else extra.get(k, defaults[k]) for k in keys})
    return {"layer": layer, "x_shape": _batched(x), "pool_param": param}


def op_geometry(layer, sample):
    x, args, kw = tuple(sample.input.shape), list(sample.args), dict(sample.kwargs)
    if layer == "conv":
        w, b = args[0], args[1] if len(args) > 1 else None
        return conv_geometry(x, tuple(w.shape), b is not None, *args[2:], **kw)
    if layer == "im2col":
        names = ("kernel_size", "dilation", "padding", "stride")
        p = {**{"dilation": 1, "padding": 0, "stride": 1}, **dict(zip(names, args)), **kw}
        k = _pair(p["kernel_size"])
        kh, kw_ = (k, k) if isinstance(k, int) else k
        return {"layer": "im2col", "x_shape": _batched(x),
                "im2col_param": {"pool_height": kh, "pool_width": kw_, "stride": _pair(p["stride"]),
                                 "pad": _pair(p["padding"]), "dilation": _pair(p["dilation"])}}
    names = ("kernel_size", "stride", "padding") + (
        ("dilation", "ceil_mode") if layer == "max_pool" else ("ceil_mode", "count_include_pad", "divisor_override"))
    p = {**dict(zip(names, args)), **kw}
    p.pop("return_indices", None)  # what max_pool2d returns besides, not its geometry
    return pool_geometry(layer, x, **p)


def module_geometry(layer, m):
    ctor, fwd = m.constructor_input, m.forward_input
    x = tuple(fwd.args[0].shape)
    if layer == "conv":
        c_in, c_out, k, *rest = ctor.args
        kw = dict(ctor.kwargs)
        bias = kw.pop("bias", True)
        kk = _pair(k)
        kh, kw_ = (kk, kk) if isinstance(kk, int) else kk
        return conv_geometry(x, (c_out, c_in // kw.get("groups", 1), kh, kw_), bias, *rest, **kw)
    kw = {k: v for k, v in ctor.kwargs.items() if k != "return_indices"}
    names = ("kernel_size", "stride", "padding")
    return pool_geometry(layer, x, **dict(zip(names, ctor.args)), **kw)


def draw_samples() -> tuple[list, int]:
    """(distinct geometries, samples drawn)."""
    with warnings.catch_warnings():  # torch's test utilities warn when hypothesis is not installed
        warnings.simplefilter("ignore", ImportWarning)
        from torch.testing._internal.common_methods_invocations import op_db
        from torch.testing._internal.common_modules import module_db

    found, drawn = [], 0
    for op in op_db:
        if op.name in OPS and not op.variant_test_name:
            for sample in op.sample_inputs("cpu", torch.float64, requires_grad=False):
                found.append(op_geometry(OPS[op.name], sample))
                drawn += 1
    for m in module_db:
        layer = MODULES.get(m.module_cls.__name__)
        if layer:
            for mi in m.module_inputs_func(m, device="cpu", dtype=torch.float64, requires_grad=False, training=True):
                found.append(module_geometry(layer, mi))
                drawn += 1
    distinct = {json.dumps(g, sort_keys=True): g for g in found}
    return list(distinct.values()), drawn


@pytest.fixture(scope="module")
def geometries():
    found, drawn = draw_samples()
    assert drawn > len(found) > 300  # 1600-odd samples, 340-odd geometries (torch 2.13)
    assert {g["layer"] for g in found} == set(OPS.values())
    return found


def _shapes(g):
    kind = layers.get(g["layer"])
    return g["x_shape"], g.get("w_shape"), g.get(kind.param_key, {}).get("bias", True)


def test_every_sample_geometry_is_accepted(geometries, tmp_path):
    path = tmp_path / "samples.yaml"
    path.write_text(yaml.safe_dump({"cases": geometries}))
    for command in layers.COMMANDS:
        mine = [g for g in geometries if layers.get(g["layer"]).command == command]
        cases = load_cases([str(path)], command, {})
        assert len(cases) == len(mine)
        for case, g in zip(cases, mine):
            assert case.geometry() == g[case.kind.param_key]  # every parameter, as PyTorch had it


def test_the_builtin_layers_equal_torch_on_every_sample_geometry(geometries):
    rng = np.random.default_rng(0)
    for g in geometries:
        kind = layers.get(g["layer"])
        arrays = random_arrays(g["layer"], *_shapes(g), rng=rng)
        for impl in ("naive", "fast"):
            assert_equal_to_torch(g["layer"], impl, g[kind.param_key], arrays)


def test_the_command_line_checks_sample_geometries_and_echoes_them(geometries, tmp_path):
    """One config holding every geometry, through each command (a few seconds in all)."""
    named = {f"sample {i}": g for i, g in enumerate(geometries)}
    path = tmp_path / "samples.yaml"
    path.write_text(yaml.safe_dump({"cases": [{"name": name, **g} for name, g in named.items()]}))
    for command in layers.COMMANDS:
        result = CliRunner().invoke(main, [command, "--config", str(path), "--format", "json"])
        assert result.exit_code == 0, result.output[-2000:]
        doc = json.loads(result.stdout)
        assert len(doc["cases"]) == sum(layers.get(g["layer"]).command == command for g in geometries)
        for case in doc["cases"]:
            g = named[case["name"]]
            kind = layers.get(g["layer"])
            assert case["passed"], case["name"]
            assert case["params"][kind.param_key] == g[kind.param_key]
            assert case["input_shapes"]["x"] == g["x_shape"]
