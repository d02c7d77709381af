"""The command line, through Click's runner: exit codes, JSON, errors without tracebacks."""
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cnncheck import __version__
from cnncheck.cli import main

CONFIGS = sorted(Path(__file__).parent.parent.joinpath("configs").glob("*.yaml"))


def run(*args):
    return CliRunner().invoke(main, list(args))


@pytest.mark.parametrize("command, shapes", [
    ("conv", {"x": [4, 3, 5, 5], "w": [2, 3, 3, 3], "b": [2]}),
    ("pool", {"x": [3, 2, 8, 8]}),
])
def test_default_runs_the_notebook_case_and_passes(command, shapes, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # from any folder
    result = run(command, "--format", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["passed"] is True
    (case,) = doc["cases"]
    assert case["input_shapes"] == shapes
    assert case["output_shape"] == case["expected_output_shape"]
    assert case["seconds"] > 0
    for check in case["checks"]:
        assert {"name", "rel_error", "abs_error", "passed", "noise", "criterion"} <= set(check)


def test_table_output_names_every_check():
    result = run("conv")
    assert result.exit_code == 0
    for word in ("out", "dx", "dw", "db", "pass", "4 checks: 4 passed, 0 failed"):
        assert word in result.stdout


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_pass(config):
    """Every command with cases in the file passes them; a file has cases for some command."""
    ran = 0
    for command in __import__("cnncheck.layers", fromlist=["COMMANDS"]).COMMANDS:
        result = run(command, "--config", str(config), "--format", "json")
        if result.exit_code == 2 and f"no {command} case here" in result.output:
            continue
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["passed"]
        ran += 1
    assert ran


def test_flags_override_the_config_and_shapes_follow_the_formula():
    result = run("conv", "--config", str(CONFIGS[0].parent / "conv.yaml"), "--x-shape", "2,3,7,5",
                 "--w-shape", "4,3,3,2", "--stride", "2,1", "--pad", "2,0", "--format", "json")
    assert result.exit_code == 0, result.output
    case = json.loads(result.stdout)["cases"][0]
    # H' = 1 + (7 + 4 - 3) // 2 = 5, W' = 1 + (5 + 0 - 2) // 1 = 4
    assert case["output_shape"] == [2, 4, 5, 4]


def test_avg_pool_flag():
    result = run("pool", "--avg", "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["cases"][0]["layer"] == "avg_pool"


@pytest.mark.parametrize("args, message", [
    (["conv", "--config", "missing.yaml"], "missing.yaml"),
    (["conv", "--x-shape", "4,3,x"], "--x-shape"),
    (["conv", "--x-shape", "4,3,5"], "4 comma-separated integers"),
    (["conv", "--stride", "0"], "stride"),
    (["conv", "--w-shape", "2,4,3,3"], "w_shape[1] = 4 must equal x_shape[1] = 3 (channels)"),
    (["pool", "--pool-height", "9"], "pool"),
    (["conv", "--dtype", "float16"], "float16"),
    (["conv", "--format", "xml"], "xml"),
    (["conv", "--nonsense"], "--nonsense"),
])
def test_usage_errors_exit_2_without_traceback(args, message):
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert result.stdout == "" or "Usage" in result.stdout


def test_config_errors_exit_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("layer: conv\nx_shape: [4, 3, 5, 5]\nw_shape: [2, 3, 3, 3]\nconv_parm: {pad: 1}\n")
    result = run("conv", "--config", str(bad))
    assert result.exit_code == 2
    assert "bad.yaml:4: unknown key 'conv_parm' (did you mean 'conv_param'?)" in result.stderr
    assert result.stdout == ""


def test_file_without_a_case_for_the_command(tmp_path):
    result = run("pool", "--config", str(CONFIGS[0].parent / "conv.yaml"))
    assert result.exit_code == 2
    assert "cnncheck conv" in result.stderr


def test_version_and_help_with_examples():
    assert __version__ in run("--version").output
    for command in ("conv", "pool"):
        result = run(command, "--help")
        assert result.exit_code == 0
        assert f"cnncheck {command} " in result.output  # a real example
