"""Sweeps: the issue's config (stride [1, 2] x pad [0, 1, 2]) gives six cases, each named by
its values and run with exactly those values."""
import itertools
import json

from click.testing import CliRunner

from cnncheck.cli import main

ISSUE_SWEEP = """\
layer: conv
x_shape: [2, 3, 8, 8]
w_shape: [4, 3, 3, 3]
conv_param: {stride: 1, pad: 1}
sweep:
  conv_param.stride: [1, 2]
  conv_param.pad: [0, 1, 2]      # 6 cases
"""


def run_json(*args):
    result = CliRunner().invoke(main, [*args, "--format", "json"])
    return result, json.loads(result.stdout)


def test_the_issues_sweep_gives_six_cases_named_by_their_values(tmp_path):
    config = tmp_path / "sweep.yaml"
    config.write_text(ISSUE_SWEEP)
    result, doc = run_json("conv", "--config", str(config))
    assert result.exit_code == 0, result.output
    cases = doc["cases"]
    assert len(cases) == 6
    combos = list(itertools.product([1, 2], [0, 1, 2]))
    assert [c["name"] for c in cases] == [f"stride={s} pad={p}" for s, p in combos]
    for case, (s, p) in zip(cases, combos):
        assert case["params"]["conv_param"] == {"stride": s, "pad": p, "dilation": 1, "groups": 1, "bias": True}
        # H' = 1 + (8 + 2 * pad - 3) // stride, by hand
        h = 1 + (8 + 2 * p - 3) // s
        assert case["output_shape"] == case["expected_output_shape"] == [2, 4, h, h]
        assert case["source"].endswith("sweep.yaml:1")


def test_a_named_sweep_and_flags_over_it(tmp_path):
    config = tmp_path / "sweep.yaml"
    config.write_text("name: mine\n" + ISSUE_SWEEP)
    result, doc = run_json("conv", "--config", str(config), "--seed", "7", "--taylor")
    assert result.exit_code == 0, result.output
    assert [c["name"] for c in doc["cases"]][:2] == ["mine stride=1 pad=0", "mine stride=1 pad=1"]
    assert {c["params"]["seed"] for c in doc["cases"]} == {7}
    assert all(ch["taylor"]["passed"] for c in doc["cases"] for ch in c["checks"] if "taylor" in ch)


def test_a_sweep_over_the_layer_splits_between_pool_kinds(tmp_path):
    config = tmp_path / "pool.yaml"
    config.write_text("layer: max_pool\nx_shape: [2, 3, 6, 6]\n"
                      "pool_param: {pool_height: 2, pool_width: 2}\n"
                      "sweep:\n  layer: [max_pool, avg_pool]\n  pool_param.stride: [1, 2]\n")
    result, doc = run_json("pool", "--config", str(config))
    assert result.exit_code == 0, result.output
    assert [(c["name"], c["layer"]) for c in doc["cases"]] == [
        ("layer=max_pool stride=1", "max_pool"), ("layer=max_pool stride=2", "max_pool"),
        ("layer=avg_pool stride=1", "avg_pool"), ("layer=avg_pool stride=2", "avg_pool")]
