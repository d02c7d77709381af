"""Config loading: every bad file in tests/data/bad_configs/ fails with its expected message;
every shipped config in configs/ loads into the cases it promises."""
import os
import re
import time
from pathlib import Path

import pytest

from cnncheck.case import Case
from cnncheck.config import ConfigError, load_cases

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"
BAD = Path(__file__).parent / "data" / "bad_configs"
EXPECT = re.compile(r"# expect: (?:(\d+(?::\d+)?): )?(.*)")

CONV_CASE = """\
layer: conv
x_shape: [4, 3, 5, 5]
w_shape: [2, 3, 3, 3]
conv_param: {stride: 1, pad: 1}
"""


@pytest.fixture(autouse=True)
def in_root(monkeypatch):
    monkeypatch.chdir(ROOT)  # messages cite paths as given, relative to the repository


def write(tmp_path, text, name="case.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def load_error(paths, command="conv", overrides=None) -> str:
    with pytest.raises(ConfigError) as info:
        load_cases(paths, command, overrides or {})
    return str(info.value)


# -- bad configs, data-driven -------------------------------------------------------------
@pytest.mark.parametrize("path", sorted(BAD.glob("*.yaml")), ids=lambda p: p.stem)
def test_bad_config(path):
    line, fragment = EXPECT.match(path.read_text().splitlines()[0]).groups()
    rel = str(path.relative_to(ROOT))
    message = load_error([rel])
    assert fragment in message
    assert message.startswith(f"{rel}:{line}: " if line else rel)
    assert "\n" not in message


def test_empty_file(tmp_path):
    path = write(tmp_path, "")
    assert load_error([path]) == f"{path}: the file is empty (expected a case mapping or 'cases:')"


def test_missing_file():
    assert load_error(["configs/nope.yaml"]) == "configs/nope.yaml: no such file"


def test_directory():
    assert load_error(["configs"]) == "configs: is a directory, not a YAML file"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(tmp_path):
    path = write(tmp_path, CONV_CASE)
    os.chmod(path, 0)
    assert load_error([path]) == f"{path}: permission denied"


def test_not_utf8(tmp_path):
    path = tmp_path / "latin.yaml"
    path.write_bytes(b"layer: conv\nname: caf\xe9\n")
    assert load_error([str(path)]) == f"{path}: not UTF-8 text (bad byte at offset 21)"


def test_python_tag_does_not_run(tmp_path):
    marker = tmp_path / "pwned"
    path = write(tmp_path, f"layer: conv\nname: !!python/object/apply:os.system ['touch {marker}']\n")
    assert "unsupported YAML tag !!python/object/apply:os.system" in load_error([path])
    assert not marker.exists()


def test_recursive_alias(tmp_path):
    path = write(tmp_path, CONV_CASE + "name: &a [*a]\n")
    assert f"{path}:5: " in load_error([path])


def test_memory_refused_before_allocation():
    start = time.perf_counter()
    message = load_error(["tests/data/bad_configs/too_much_memory.yaml"], "pool")
    assert time.perf_counter() - start < 0.5
    assert re.search(r"about 31250\.0 GiB, more than this machine can hold \(\d+\.\d GiB\)$", message)


# -- shipped configs ----------------------------------------------------------------------
COUNTS = {  # file -> cases per command (a command missing: the file has none for it)
    "conv.yaml": {"conv": 1},
    "pool.yaml": {"pool": 1},
    "cs231n.yaml": {"conv": 2, "pool": 2},
    "examples.yaml": {"conv": 7, "pool": 6},
    "sweep.yaml": {"conv": 2 * 3, "pool": 2 * 2},
    "pool_pad.yaml": {"pool": 3},
    "im2col.yaml": {"im2col": 3},
}


def test_every_config_is_counted():
    assert sorted(p.name for p in CONFIGS.glob("*.yaml")) == sorted(COUNTS)


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_config_loads(name):
    path = f"configs/{name}"
    for command in ("conv", "pool", "im2col"):
        count = COUNTS[name].get(command, 0)
        if count == 0:
            assert f"no {command} case here" in load_error([path], command)
            continue
        cases = load_cases([path], command, {})
        assert len(cases) == count
        assert len({c.name for c in cases}) == count
        assert all(c.source.startswith(f"{path}:") for c in cases)
        assert all(c.exact() for c in cases)
        assert all(n <= 2000 for c in cases for n in map(_size, c.input_shapes().values()))


def _size(shape):
    n = 1
    for d in shape:
        n *= d
    return n


OUTPUT_SHAPES = {  # (file, command) -> {case name: output shape}, by hand from H' = 1 + (H + 2p - HH) // s
    ("cs231n.yaml", "conv"): {"cs231n conv forward": (2, 3, 2, 2), "cs231n conv backward": (4, 2, 5, 5)},
    ("cs231n.yaml", "pool"): {"cs231n max-pool forward": (2, 3, 2, 2), "cs231n max-pool backward": (3, 2, 4, 4)},
    ("examples.yaml", "conv"): {
        "conv s2 p0 2x3x7x7": (2, 4, 3, 3),
        "conv s1 p1 2x3x7x5": (2, 4, 7, 6),
        "conv s2x1 p0x1 2x2x6x9": (2, 3, 3, 8),
        "conv s1x2 p1x0 2x3x6x9": (2, 2, 6, 4),
    },
    ("examples.yaml", "pool"): {
        "max_pool 3x3 s1 2x3x6x6": (2, 3, 4, 4),
        "max_pool 3x2 s1 2x2x7x5": (2, 2, 5, 4),
        "max_pool 3x3 s2 2x3x7x7": (2, 3, 3, 3),
        "avg_pool 2x2 s2 2x3x6x8": (2, 3, 3, 4),
    },
    ("sweep.yaml", "conv"): {"stride=1 pad=0": (2, 4, 7, 7), "stride=2 pad=2": (2, 4, 6, 6)},
    ("sweep.yaml", "pool"): {"layer=avg_pool stride=1": (2, 3, 5, 5), "layer=max_pool stride=2": (2, 3, 3, 3)},
}


@pytest.mark.parametrize("file, command", sorted(OUTPUT_SHAPES))
def test_output_shapes(file, command):
    cases = {c.name: c for c in load_cases([f"configs/{file}"], command, {})}
    assert {name: cases[name].output_shape() for name in OUTPUT_SHAPES[file, command]} == OUTPUT_SHAPES[file, command]


def test_cs231n_cases():
    forward, backward = load_cases(["configs/cs231n.yaml"], "conv", {})
    assert forward == Case("conv", (2, 3, 4, 4), (3, 3, 4, 4), stride=(2, 2), pad=(1, 1), seed=231,
                           inputs={"x": "linspace", "w": "linspace", "b": "linspace"},
                           name="cs231n conv forward", source="configs/cs231n.yaml:7")
    assert backward.with_(source="default") == load_cases([], "conv", {})[0]


# -- defaults and overrides ---------------------------------------------------------------
def test_default_cases():
    (conv,) = load_cases([], "conv", {})
    assert conv == Case("conv", (4, 3, 5, 5), (2, 3, 3, 3), pad=(1, 1), seed=231, name="cs231n conv backward")
    (pool,) = load_cases([], "pool", {})
    assert pool == Case("max_pool", (3, 2, 8, 8), stride=(2, 2), pool=(2, 2), seed=231, name="cs231n max-pool backward")


def test_default_overrides():
    # a geometry flag: the notebook's shapes (its window), every parameter not given PyTorch's
    # default (pooling's stride: the window)
    (pool,) = load_cases([], "pool", {"pool_height": 3, "layer": "avg_pool"})
    assert (pool.layer, pool.pool, pool.stride, pool.source) == ("avg_pool", (3, 2), (3, 2), "default")
    (pool,) = load_cases([], "pool", {"stride": 1})
    assert (pool.pool, pool.stride) == ((2, 2), (1, 1))


def test_overrides_win_over_the_file():
    cases = load_cases(["configs/sweep.yaml"], "conv", {"stride": (2, 1), "x_shape": (1, 3, 9, 9), "h": 1e-4})
    assert {(c.stride, c.x_shape, c.h) for c in cases} == {((2, 1), (1, 3, 9, 9), 1e-4)}
    assert len({c.name for c in cases}) == 6  # the sweep's names, made unique


def test_override_errors_name_the_flag():
    assert load_error([], "conv", {"w_shape": (2, 4, 3, 3)}) == "--w-shape: w_shape[1] = 4 must equal x_shape[1] = 3 (channels)"
    assert load_error(["configs/conv.yaml"], "conv", {"x_shape": (4, 2, 5, 5)}).startswith("--x-shape: ")
    assert load_error([], "pool", {"stride": 0}) == "--stride: stride = 0 must be >= 1"
    assert load_error([], "pool", {"pool_width": 9}).startswith("--pool-width: output width 1 + (8 - 9) // 9 < 1")
    assert load_error([], "conv", {"h": "tiny"}) == "--h: h = 'tiny' must be a number"
    assert load_error([], "pool", {"w_shape": (2, 3, 3, 3)}) == "--w-shape: applies to 'cnncheck conv' only"


def test_overrides_skip_the_other_command():
    case = load_cases(["configs/cs231n.yaml"], "pool", {"pool_height": 3, "stride": 1})[0]
    assert (case.pool, case.stride) == ((3, 2), (1, 1))


# -- values -------------------------------------------------------------------------------
def test_numeric_string_floats(tmp_path):
    path = write(tmp_path, CONV_CASE + "h: 1e-5\ntolerance: 1e-7\nnoise_factor: 3\n")
    (case,) = load_cases([path], "conv", {})
    assert (case.h, case.tolerance, case.noise_factor) == (1e-5, 1e-7, 3.0)


def test_conv_param_defaults(tmp_path):
    path = write(tmp_path, "layer: conv\nx_shape: [1, 1, 4, 4]\nw_shape: [1, 1, 2, 2]\n")
    (case,) = load_cases([path], "conv", {})
    assert (case.stride, case.pad, case.output_shape()) == ((1, 1), (0, 0), (1, 1, 3, 3))


def test_inexact_division_is_valid(tmp_path):
    path = write(tmp_path, "layer: max_pool\nx_shape: [1, 1, 5, 5]\npool_param: {pool_height: 2, pool_width: 2}\n")
    (case,) = load_cases([path], "pool", {})
    assert (case.stride, case.output_shape(), case.exact()) == ((2, 2), (1, 1, 2, 2), False)


def test_defaults_merge_params_key_by_key(tmp_path):
    text = """\
defaults:
  layer: conv
  x_shape: [2, 3, 6, 6]
  conv_param: {stride: 2, pad: 1}
  sweep: {seed: [1, 2]}
cases:
  - {w_shape: [2, 3, 2, 2], conv_param: {pad: 0}, name: small}
  - {w_shape: [2, 3, 3, 3], sweep: {dtype: [float64, float32]}}
"""
    cases = load_cases([write(tmp_path, text)], "conv", {})
    assert [(c.name, c.stride, c.pad) for c in cases[:2]] == [("small seed=1", (2, 2), (0, 0)), ("small seed=2", (2, 2), (0, 0))]
    assert [c.name for c in cases[2:]] == ["seed=1 dtype=float64", "seed=1 dtype=float32", "seed=2 dtype=float64", "seed=2 dtype=float32"]


def test_names_unique_across_files():
    names = [c.name for c in load_cases(["configs/conv.yaml", "configs/conv.yaml"], "conv", {})]
    assert names == ["cs231n conv backward #1", "cs231n conv backward #2"]


def test_alias_bomb_is_fast(tmp_path):
    lines = ["a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 12)]
    start = time.perf_counter()
    assert "unknown key 'a0'" in load_error([write(tmp_path, "\n".join(lines) + "\n")])
    assert time.perf_counter() - start < 0.5
