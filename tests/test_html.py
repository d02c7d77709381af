"""The HTML report of `cnncheck grade --html`: hostile text stays text, heat maps are SVG, and
the page renders in headless Chromium (skipped where Chromium is absent)."""
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest
from click.testing import CliRunner

from cnncheck import grade as g
from cnncheck.html import heat_svg, render
from students.bugs import write_bug

GOOD = Path(__file__).absolute().parent / "data" / "assert_layer" / "good_layers.py"
EVIL = '<script>alert("x")</script><img src=x onerror=alert(1)>'
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def record(path: str, error=None, message=EVIL, hint=EVIL, notes=(EVIL,), rubric=None) -> dict:
    """A graded record from plain data, as a judge child would send it."""
    check = {"name": "dx", "passed": False, "rel_error": 0.5, "abs_error": 1.0, "message": message,
             "worst": [{"index": [0, 1, 2, 3], "analytic": 1.0, "numerical": 2.0, "allowed": 1e-6}],
             "error_map": [[0.0, 1.0], [2.0, 3.0]]}
    case = {"name": "conv pad 0", "layer": "conv", "passed": False, "error": None, "hint": hint,
            "notes": list(notes), "checks": [check], "seconds": 0.1}
    data = {"label": path, "error": error, "notes": list(notes), "seconds": 1.0,
            "cases": [] if error else [case],
            "findings": [] if error else [{"text": hint, "where": f"{path}:39", "code": EVIL, "pattern": EVIL,
                                           "cases": ["conv pad 0"], "layer": "conv", "kind": "hint"}]}
    return g.score(path, data, rubric, {"conv": ["conv pad 0"], "max_pool": ["max_pool 3x3 stride 1"]})


def test_student_text_is_escaped_everywhere():
    page = render([record(EVIL), record("loads/not.py", error=EVIL)])
    assert "<script>alert" not in page and "<img src=x" not in page
    assert page.count("&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;") >= 5
    assert len(re.findall(r"<script>", page)) == 1  # the page's own sorting script


def test_the_page_needs_no_network():
    page = render([record("a.py")])
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)


def test_heat_maps_are_svg_scaled_to_the_largest_error():
    svg = heat_svg([[0.0, 1.0], [2.0, 4.0]])
    assert svg.startswith("<svg") and svg.count("<rect") == 4
    assert 'fill="rgb(255,255,255)"' in svg and 'fill="rgb(255,0,0)"' in svg
    assert heat_svg([[0.0, 0.0]]) is None
    assert heat_svg([[1.0] * 100] * 70).count("<rect") == 24 * 20  # pooled by 3 and 5 to <= 24 a side


def test_a_missing_layer_and_a_load_error_say_so():
    rubric = {"conv": {"conv pad 0": 1.0}, "max_pool": {"max_pool 3x3 stride 1": 1.0}}
    page = render([record("a.py", rubric=rubric), record("b.py", error="cannot load b.py: SyntaxError")])
    assert "the file defines no max_pool layer" in page
    assert "cannot check this submission: cannot load b.py: SyntaxError" in page
    assert "the file defines no" not in render([record("a.py")])  # only the layers it defines count


def test_the_page_opens_each_submission_with_its_findings_in_the_graders_language():
    hint = "dx is empty at pad 0: `dx_pad[:, :, pad:-pad, pad:-pad]` is `0:0` when pad is 0: use `dx_pad[:, :, pad:pad + H, pad:pad + W]`"
    page = render([record("a.py", hint=hint)])
    assert '<ol class="findings"><li><span class="hint">dx is empty at pad 0' in page and "at a.py:39" in page
    zh = render([record("a.py", hint=hint)], "zh_CN")
    assert '<html lang="zh-CN">' in zh and "pad 为 0 时 dx 是空的" in zh and "位置 a.py:39" in zh
    assert "<title>cnncheck 成绩</title>" in zh and "<script>alert" not in zh


def png_colours(path: Path) -> int:
    """How many distinct byte values the PNG's decompressed pixel rows hold (blank: 1 or 2)."""
    data, pos, idat = path.read_bytes(), 8, b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IDAT":
            idat += data[pos + 8:pos + 8 + length]
        pos += 12 + length
    return len(set(zlib.decompress(idat)))


def chromium(*args, cwd):
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                           "--user-data-dir=" + str(cwd / "profile"), "--enable-logging=stderr",
                           "--v=0", *args], capture_output=True, text=True, timeout=120, cwd=cwd)


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")
def test_the_report_renders_in_chromium_with_every_submission(tmp_path):
    bad = write_bug("broken_conv.py", tmp_path)
    broken = write_bug("conv/py2_print.py", tmp_path)
    page = tmp_path / "report.html"
    result = CliRunner().invoke(g.grade, [str(GOOD), bad, broken, "--html", str(page), "--format", "csv"])
    assert result.exit_code == 0, result.stderr
    dom = chromium("--dump-dom", page.as_uri(), cwd=tmp_path)
    assert 'data-ready="1"' in dom.stdout, dom.stderr[-2000:]  # the script ran to its end
    assert not re.search(r"<body[^>]*data-js-error", dom.stdout)
    assert "Uncaught" not in dom.stderr
    for path in (str(GOOD), bad, broken):
        assert f"<h2>{path}" in dom.stdout
    assert len(re.findall(r'<tr class="submission">', dom.stdout)) == 3
    shot = chromium("--screenshot=" + str(tmp_path / "shot.png"), "--window-size=1200,900",
                    page.as_uri(), cwd=tmp_path)
    assert (tmp_path / "shot.png").is_file(), shot.stderr[-2000:]
    assert png_colours(tmp_path / "shot.png") > 16
