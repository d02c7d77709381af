"""What PyTorch's conv and pooling take, in cnncheck: dilation, groups, pad same/valid, no
bias, ceil_mode, average pooling's pad, count_include_pad and divisor_override, im2col's
dilation, an empty batch. The built-in layers against PyTorch (forward and every gradient,
naive and fast), the edge cases PyTorch settles, the checker passing them and failing a
layer that ignores them, the one rule for defaults, and the report naming every parameter.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from numpy.testing import assert_allclose, assert_array_equal

from cnncheck import layers
from cnncheck.case import Case
from cnncheck.cli import main
from cnncheck.config import ConfigError, load_cases
from cnncheck.gradcheck import Impl, check_case
from torch_reference import assert_equal_to_torch, builtin_layer, random_arrays, torch_layer

IMPLS = ("naive", "fast")
CONV = [  # x_shape, w_shape, conv_param (the config's spelling), bias
    ((2, 4, 8, 8), (2, 2, 3, 3), {"stride": [3, 2], "pad": [2, 1], "dilation": 4, "groups": 2}, True),
    ((1, 4, 5, 5), (1, 4, 2, 3), {"stride": 2, "pad": 1, "dilation": [2, 3]}, True),
    ((1, 4, 5, 5), (1, 4, 2, 3), {"stride": 1, "pad": "same", "dilation": 3}, True),  # odd total pad
    ((2, 4, 6, 7), (5, 4, 3, 3), {"stride": 1, "pad": "same"}, False),
    ((1, 4, 5, 5), (1, 4, 2, 3), {"stride": 2, "pad": "valid"}, True),
    ((2, 4, 6, 6), (4, 1, 3, 3), {"stride": 1, "pad": 1, "groups": 4}, True),  # depthwise
    ((2, 4, 6, 6), (8, 1, 3, 3), {"stride": [3, 2], "pad": 0, "groups": 4}, False),  # depthwise, multiplier 2
    ((2, 4, 6, 5), (6, 2, 3, 2), {"stride": 1, "pad": 0, "groups": 2}, True),
    ((2, 4, 5, 5), (2, 2, 3, 3), {"stride": 2, "pad": 1, "groups": 2}, True),  # one filter a group of 2 channels
    ((0, 4, 6, 6), (8, 1, 3, 3), {"stride": 1, "pad": 1, "groups": 4}, True),  # an empty batch
    ((0, 3, 5, 5), (2, 3, 3, 3), {"stride": 1, "pad": "same", "dilation": 2}, False),
]
MAX_POOL = [  # x_shape, pool_param
    ((1, 2, 3, 6), {"pool_height": 3, "pool_width": 3, "stride": 2, "pad": 1, "dilation": [1, 2], "ceil_mode": True}),
    ((1, 2, 6, 6), {"pool_height": 3, "pool_width": 2, "stride": [3, 2], "pad": 1, "ceil_mode": True}),
    ((2, 3, 7, 7), {"pool_height": 3, "pool_width": 3, "stride": 2, "pad": 1, "dilation": 2}),
    ((2, 2, 5, 8), {"pool_height": 2, "pool_width": 3, "stride": 2, "ceil_mode": True}),
    ((0, 2, 4, 4), {"pool_height": 2, "pool_width": 2, "stride": 2}),
    ((2, 3, 1, 2), {"pool_height": 2, "pool_width": 1, "stride": 3, "ceil_mode": True}),  # one overhanging window
]
AVG_POOL = [
    ((1, 3, 9, 9), {"pool_height": 3, "pool_width": 3, "stride": 1, "pad": 1, "ceil_mode": True,
                    "count_include_pad": False, "divisor_override": 2}),
    ((1, 3, 9, 9), {"pool_height": 6, "pool_width": 6, "stride": 3, "pad": [2, 3], "ceil_mode": True}),
    ((2, 3, 9, 9), {"pool_height": 3, "pool_width": 3, "stride": 2, "pad": 1, "ceil_mode": True,
                    "count_include_pad": False}),
    ((1, 1, 4, 4), {"pool_height": 2, "pool_width": 2, "stride": 2, "divisor_override": -2}),
    ((1, 2, 6, 6), {"pool_height": 4, "pool_width": 4, "stride": 2, "pad": 2, "ceil_mode": True}),
    ((0, 2, 4, 4), {"pool_height": 2, "pool_width": 2, "stride": 2, "pad": 1}),
]
IM2COL = [
    ((2, 3, 5, 5), {"pool_height": 2, "pool_width": 3, "stride": [1, 2], "pad": [1, 2], "dilation": [1, 2]}),
    ((1, 1, 5, 5), {"pool_height": 2, "pool_width": 2, "stride": 1, "pad": 1, "dilation": 2}),
    ((0, 1, 5, 5), {"pool_height": 2, "pool_width": 2, "stride": 1}),
]
GEOMETRIES = ([("conv", x, w, p, b) for x, w, p, b in CONV] + [("max_pool", x, None, p, True) for x, p in MAX_POOL]
              + [("avg_pool", x, None, p, True) for x, p in AVG_POOL] + [("im2col", x, None, p, True) for x, p in IM2COL])


def geometry_id(g):
    layer, x, w, p, b = g
    return f"{layer}-{'x'.join(map(str, x))}-" + "-".join(f"{k}{v}" for k, v in p.items()).replace(" ", "") + ("" if b else "-nobias")


def mapping(layer, x, w, p, bias) -> dict:
    """The geometry as a YAML case."""
    m = {"layer": layer, "x_shape": list(x), layers.get(layer).param_key: {**p, **({} if bias else {"bias": False})}}
    return {**m, "w_shape": list(w)} if w else m


def write_cases(path, geometries) -> str:
    import yaml

    path.write_text(yaml.safe_dump({"cases": [{"name": geometry_id(g), **mapping(*g)} for g in geometries]}))
    return str(path)


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


# -- the built-in layers against PyTorch -----------------------------------------------
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=geometry_id)
def test_builtin_layers_equal_torch(torch, geometry, impl):
    layer, x, w, p, bias = geometry
    assert_equal_to_torch(layer, impl, {**p, "bias": bias} if layer == "conv" else p,
                          random_arrays(layer, x, w, bias))


@pytest.mark.parametrize("impl", IMPLS)
def test_a_window_holding_nan_sends_its_gradient_to_the_nan(torch, impl):
    x = np.random.default_rng(2).standard_normal((1, 2, 4, 4))
    x[0, 0, 1, 0] = x[0, 1, 3, 3] = np.nan
    g = {"pool_height": 2, "pool_width": 2, "stride": 2}
    dout = np.ones((1, 2, 2, 2))
    out, grads = builtin_layer("max_pool", impl, g, {"x": x}, dout)
    ref_out, ref_grads = torch_layer("max_pool", g, {"x": x}, dout)
    assert_array_equal(out, ref_out)  # NaN where torch has NaN
    assert_array_equal(grads["dx"], ref_grads["dx"])
    assert grads["dx"][0, 0, 1, 0] == grads["dx"][0, 1, 3, 3] == 1


@pytest.mark.parametrize("impl", IMPLS)
def test_all_minus_inf_keeps_its_gradient_out_of_the_padding(torch, impl):
    x = np.full((1, 1, 4, 4), -np.inf)
    g = {"pool_height": 3, "pool_width": 3, "stride": 2, "pad": 1}
    dout = np.arange(1.0, 5.0).reshape(1, 1, 2, 2)
    _, grads = builtin_layer("max_pool", impl, g, {"x": x}, dout)
    _, ref_grads = torch_layer("max_pool", g, {"x": x}, dout)
    assert grads["dx"].sum() == ref_grads["dx"].sum() == dout.sum()
    assert_array_equal(grads["dx"], ref_grads["dx"])


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("x_shape, w_shape", [((2, 0, 6, 6), (3, 0, 3, 3)), ((2, 3, 6, 6), (0, 3, 3, 3))],
                         ids=["C=0", "F=0"])
def test_conv_without_channels_or_filters(impl, x_shape, w_shape):
    """Worked out by hand (PyTorch refuses F = 0 and drops the bias at C = 0): no channel
    leaves the bias alone, no filter an empty output; the gradients follow."""
    arrays = random_arrays("conv", x_shape, w_shape)
    N, F, (H, W) = x_shape[0], w_shape[0], x_shape[2:]
    dout = np.random.default_rng(3).standard_normal((N, F, H, W))
    out, grads = builtin_layer("conv", impl, {"stride": 1, "pad": 1}, arrays, dout)
    assert_array_equal(out, np.broadcast_to(arrays["b"].reshape(1, F, 1, 1), (N, F, H, W)))
    assert_array_equal(grads["dx"], np.zeros(x_shape))
    assert grads["dw"].shape == w_shape
    assert_allclose(grads["db"], dout.sum(axis=(0, 2, 3)))


def test_pad_same_with_an_even_span_pads_after_the_input(torch):
    """A 2-row kernel at dilation 3: three rows of padding, the second and third after (PyTorch's
    choice); by hand, output row 0 reads input rows -1 and 2."""
    x = np.arange(25.0).reshape(1, 1, 5, 5)
    w = np.zeros((1, 1, 2, 1))
    w[0, 0, 1, 0] = 1.0  # picks the second tap: input row i - 1 + 3 = i + 2
    out, _ = layers.conv_forward_fast(x, w, None, {"stride": 1, "pad": "same", "dilation": 3})
    assert_array_equal(out[0, 0, :3], x[0, 0, 2:])
    assert_array_equal(out[0, 0, 3:], 0)


def random_geometries(count, seed=5):
    """Seeded random geometries of every kind and feature that PyTorch and cnncheck accept."""
    import warnings

    from torch_reference import torch_call_out

    rng, found = np.random.default_rng(seed), []
    while len(found) < count:
        layer = str(rng.choice(list(layers.KINDS)))
        x = tuple(int(v) for v in (rng.integers(0, 3), rng.integers(1, 5), rng.integers(1, 9), rng.integers(1, 9)))
        k, s, d, p = ([int(v) for v in rng.integers(lo, hi, 2)] for lo, hi in ((1, 4), (1, 4), (1, 3), (0, 3)))
        w, bias = None, True
        if layer == "conv":
            G = int(rng.choice([1, x[1]]))
            w, bias = (G * int(rng.integers(1, 3)), x[1] // G, *k), bool(rng.integers(0, 2))
            pad = str(rng.choice(["same", "valid"])) if rng.integers(0, 3) == 0 else p
            g = {"stride": 1 if pad == "same" else s, "pad": pad, "dilation": d, "groups": G}
        else:
            g = {"pool_height": k[0], "pool_width": k[1], "stride": s, "pad": [min(a, b // 2) for a, b in zip(p, k)]}
            g.update({"max_pool": {"dilation": d, "ceil_mode": bool(rng.integers(0, 2))},
                      "avg_pool": {"ceil_mode": bool(rng.integers(0, 2)), "count_include_pad": bool(rng.integers(0, 2)),
                                   "divisor_override": [None, 2, -3][int(rng.integers(0, 3))]},
                      "im2col": {"dilation": d, "pad": p}}[layer])
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch_call_out(layer, g, random_arrays(layer, x, w, bias))
            load_cases([], layers.get(layer).command, {"layer": layer, "x_shape": x, **({"w_shape": w} if w else {}),
                                                       **g, **({} if bias else {"bias": False})})
        except (RuntimeError, ValueError, ConfigError):
            continue  # refused by PyTorch (or by cnncheck, where PyTorch's answer is wrong: padding alone)
        found.append((layer, x, w, g, bias))
    return found


def test_random_geometries_equal_torch(torch):
    for layer, x, w, g, bias in random_geometries(300):
        for impl in IMPLS:
            assert_equal_to_torch(layer, impl, {**g, "bias": bias} if layer == "conv" else g,
                                  random_arrays(layer, x, w, bias))


def test_a_dilated_window_of_padding_alone_is_refused(torch):
    """PyTorch's max_pool2d gives such a window -inf and an index outside the input (its
    gradient lands in the next sample); cnncheck says why it will not check it."""
    x = torch.zeros((2, 1, 1, 2), dtype=torch.float64)
    _, index = torch.nn.functional.max_pool2d(x, (2, 1), (1, 2), (1, 0), (2, 1), return_indices=True)
    assert index.max() >= 2  # outside the 1 x 2 input
    with pytest.raises(ConfigError, match="a window's taps all fall in the padding"):
        load_cases([], "pool", {"x_shape": (2, 1, 1, 2), "pool_height": 2, "pool_width": 1, "stride": (1, 2),
                                "pad": (1, 0), "dilation": (2, 1)})


# -- configs, records and the checker ----------------------------------------------------
def test_every_geometry_loads_and_names_each_parameter(tmp_path):
    path = write_cases(tmp_path / "features.yaml", GEOMETRIES)
    for command in ("conv", "pool", "im2col"):
        result = CliRunner().invoke(main, [command, "--config", path, "--format", "json"])
        assert result.exit_code == 0, result.output
        doc = json.loads(result.stdout)
        assert doc["passed"]
        named = {geometry_id(g): g for g in GEOMETRIES if layers.get(g[0]).command == command}
        assert len(doc["cases"]) == len(named)
        for case in doc["cases"]:
            layer, x, w, p, bias = named[case["name"]]
            kind = layers.get(layer)
            echoed = case["params"][kind.param_key]
            assert set(echoed) == set(kind.param_keys)
            assert {k: echoed[k] for k in p} == p
            assert echoed.get("bias", True) == bias
            assert case["input_shapes"]["x"] == list(x)


def test_the_colours_follow_groups_and_dilation():
    """Depthwise: one colouring serves every channel; a dilated window spans its taps."""
    (dw,) = load_cases([], "conv", {"x_shape": (2, 8, 9, 9), "w_shape": (8, 1, 3, 3), "groups": 8})
    (dense,) = load_cases([], "conv", {"x_shape": (2, 8, 9, 9), "w_shape": (8, 8, 3, 3)})
    assert dw.kind.colour_count(dw, "dx") == 9 and dense.kind.colour_count(dense, "dx") == 72
    (dil,) = load_cases([], "pool", {"x_shape": (1, 1, 9, 9), "pool_height": 2, "pool_width": 2, "stride": 1,
                                     "dilation": 2})
    assert dil.kind.colour_count(dil, "dx") == 9  # windows span 3 rows and 3 columns
    # dilation 4: rows share a window only 4, 8 apart, so rows 3 apart may share a colour
    (conv,) = load_cases([], "conv", {"x_shape": (2, 4, 8, 8), "w_shape": (2, 2, 3, 3), "groups": 2,
                                      "dilation": 4, "stride": (3, 2), "pad": (2, 1)})
    assert conv.kind.colour_count(conv, "dx") == 3 * 3 * 2


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=geometry_id)
def test_the_checker_passes_the_builtin_layers(geometry, tmp_path):
    (case,) = load_cases([write_cases(tmp_path / "one.yaml", [geometry])], layers.get(geometry[0]).command, {})
    result = check_case(case.with_(mode="dense"))
    assert result.passed, [(c.name, c.message, c.method) for c in result.checks]
    for chk in result.checks[1:]:  # by colours, none of them falling back to element by element
        assert chk.method == f"dense, {case.kind.colour_count(case, chk.name)} colour" + "s" * (
            case.kind.colour_count(case, chk.name) > 1), chk.method


def test_the_checker_passes_random_geometries_by_colours(torch):
    for layer, x, w, g, bias in random_geometries(80, seed=7):
        fields = {"layer": layer, "x_shape": x, **({"w_shape": w} if w else {}), **g, **({} if bias else {"bias": False})}
        (case,) = load_cases([], layers.get(layer).command, fields)
        result = check_case(case.with_(mode="dense"))
        assert result.passed, (fields, [(c.name, c.message) for c in result.checks], result.error)
        assert not any("element-wise" in c.method for c in result.checks), fields


def _ignoring(layer, key):
    """The built-in fast layer with one parameter dropped from its dict: a layer that ignores it."""
    forward, backward = layers.get(layer).fast

    def fwd(*args):
        *arrays, param = args
        return forward(*arrays, {k: v for k, v in param.items() if k != key})
    return Impl(fwd, backward, f"ignores {key}")


@pytest.mark.parametrize("layer, fields, key", [
    ("conv", {"x_shape": (2, 4, 7, 7), "w_shape": (2, 4, 3, 3), "pad": 2, "dilation": 2}, "dilation"),
    ("max_pool", {"x_shape": (1, 2, 5, 8), "pool_height": 2, "pool_width": 3, "stride": 2, "ceil_mode": True},
     "ceil_mode"),
    ("avg_pool", {"x_shape": (1, 2, 6, 6), "pool_height": 3, "pool_width": 3, "stride": 1, "pad": 1,
                  "count_include_pad": False}, "count_include_pad"),
    ("avg_pool", {"x_shape": (1, 2, 6, 6), "pool_height": 2, "pool_width": 2, "stride": 2, "divisor_override": 3},
     "divisor_override"),
    ("im2col", {"x_shape": (1, 2, 6, 6), "pool_height": 2, "pool_width": 2, "stride": 1, "dilation": 2}, "dilation"),
])
def test_a_layer_that_ignores_a_parameter_fails(layer, fields, key):
    from cnncheck.config import build_case

    case = build_case({"layer": layer, **fields}, key)
    assert not check_case(case, _ignoring(layer, key)).passed


def test_a_grouped_conv_that_ignores_groups_fails():
    """Without its groups, a depthwise w (F, 1, 3, 3) cannot even be applied: the check fails
    (an error, not a pass)."""
    from cnncheck.config import build_case

    case = build_case({"layer": "conv", "x_shape": (2, 4, 6, 6), "w_shape": (4, 1, 3, 3), "groups": 4}, "dw")
    assert not check_case(case, _ignoring("conv", "groups")).passed


def test_an_empty_batch_still_checks_dw():
    """N = 0: dx is empty, and dw and db must be zero; a backward that invents a dw fails."""
    from cnncheck.config import build_case

    case = build_case({"layer": "conv", "x_shape": (0, 3, 5, 5), "w_shape": (2, 3, 3, 3)}, "empty")
    assert check_case(case).passed
    forward, backward = layers.get("conv").fast
    bad = Impl(forward, lambda d, c: (lambda dx, dw, db: (dx, dw + 1, db))(*backward(d, c)), "dw + 1")
    result = check_case(case, bad)
    assert not next(c for c in result.checks if c.name == "dw").passed


# -- defaults, messages, the student's dict ----------------------------------------------
def test_one_rule_for_defaults_flags_yaml_and_api(tmp_path):
    """A parameter left out takes PyTorch's default, wherever it is left out: the flags'
    case has pad 0 as the YAML case has; with no geometry flag the notebook's case runs."""
    flags = CliRunner().invoke(main, ["conv", "--x-shape", "1,3,5,5", "--w-shape", "3,3,3,3", "--format", "json"])
    (yaml_case,) = load_cases([write_cases(tmp_path / "c.yaml", [("conv", (1, 3, 5, 5), (3, 3, 3, 3), {}, True)])],
                              "conv", {})
    from cnncheck.suites import cases_for

    (api_case,) = cases_for("conv", {"x_shape": (1, 3, 5, 5), "w_shape": (3, 3, 3, 3)})
    echoed = json.loads(flags.stdout)["cases"][0]["params"]["conv_param"]
    assert echoed == yaml_case.geometry() == api_case.geometry() == {
        "stride": 1, "pad": 0, "dilation": 1, "groups": 1, "bias": True}
    (notebook,) = load_cases([], "conv", {"seed": 1})
    assert notebook.pad == (1, 1)  # no geometry flag: the notebook's case, its pad 1
    (pool,) = load_cases([], "pool", {"pool_height": 3})
    assert pool.stride == (3, 2)  # pooling's stride: the window
    assert "PyTorch's default" in CliRunner().invoke(main, ["pool", "--help"]).output


def test_the_students_dict_gets_a_key_only_when_asked():
    (default,) = load_cases([], "conv", {})
    assert default.param() == {"stride": 1, "pad": 1}  # as the course has it
    (dilated,) = load_cases([], "conv", {"dilation": 2, "groups": 1})
    assert dilated.param() == {"stride": 1, "pad": 0, "dilation": 2}
    (pool,) = load_cases([], "pool", {"ceil_mode": True})
    assert pool.param() == {"pool_height": 2, "pool_width": 2, "stride": 2, "ceil_mode": True}
    for kind in layers.KINDS.values():  # the default suites' dicts hold the course's keys only
        for _, fields in kind.suite:
            case = load_cases([], kind.command, {k: v for k, v in fields.items() if k != "inputs"}
                              | {"layer": kind.name})[0]
            assert set(case.param()) <= {"stride", "pad", "pool_height", "pool_width"}


@pytest.mark.parametrize("args, message", [
    (["conv", "--groups", "2"], "groups = 2: x_shape[1] = 3 and w_shape[0] = 2 must be multiples of it"),
    (["conv", "--pad", "same", "--stride", "2"], "pad 'same' takes stride 1"),
    (["conv", "--dilation", "0"], "dilation = 0 must be >= 1"),
    (["pool", "--divisor-override", "2"], "divisor_override does not apply to a max_pool case"),
    (["pool", "--avg", "--dilation", "2"], "dilation does not apply to a avg_pool case"),
    (["conv", "--padding", "1"], "--pad"),
    (["conv", "--x-shape", "1,3,5,5", "--w-shape", "2,3,3,3", "--dilation", "3"], "the kernel is larger"),
])
def test_usage_errors_exit_2(args, message):
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_a_case_may_not_hold_an_empty_channel_axis():
    with pytest.raises(ConfigError, match=r"x_shape\[1\] = 0 must be >= 1"):
        load_cases([], "conv", {"x_shape": (2, 0, 5, 5)})


def test_describe_names_the_extras():
    (case,) = load_cases([], "pool", {"dilation": 2, "ceil_mode": True, "pad": 1})
    assert case.describe() == "max_pool 2x2 s2 p1 d2 ceil"
    assert Case("conv", (1, 2, 5, 5), (2, 1, 3, 3), groups=2, bias=False).describe() == "conv s1 p0 g2 no-bias"
