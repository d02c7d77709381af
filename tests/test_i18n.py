"""The reader's language: every message in every catalogue, and reports in Chinese, Japanese and
Korean on a real bad file (identifiers untranslated, machine formats English unless asked)."""
import gettext
import io
import json
import os
import re

import pytest
from click.testing import CliRunner

from cnncheck import catalogue, i18n
from cnncheck.cli import main
from students.bugs import write_bugs

SCRIPT = {"zh_CN": r"[\u4e00-\u9fff]", "ja": r"[\u3040-\u30ff]", "ko": r"[\uac00-\ud7af]"}
TERMS = {"zh_CN": ("梯度", "反向传播", "步幅"), "ja": ("勾配", "逆伝播", "ストライド"), "ko": ("기울기", "역전파", "스트라이드")}
ENVIRONMENT = ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")


@pytest.fixture(autouse=True)
def english_machine(monkeypatch):
    for var in ENVIRONMENT:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("COLUMNS", "100")


# -- the catalogues ----------------------------------------------------------------------------------
def test_every_message_has_a_translation_with_the_same_fields_in_every_catalogue_and_fresh_mo_files():
    assert catalogue.problems() == []
    assert len(catalogue.extract()) > 100


def test_the_extractor_finds_marked_messages_and_the_hints_of_records():
    source = '''
LONG = "a hint " + "in two parts"
x = msg("{q} is all zeros", q="dx")
y = _("rel error")
z = ngettext("{n} case", "{n} cases", 2)
Sign("zeros", test, "a plain hint")
Pattern("stride", holds, LONG, grads=("dx",))
Sign("f", test, lambda r, c: f"not {c}")
w = other("not a message")
'''
    found = {(m, p) for m, p, _ in catalogue.messages_of(source)}
    assert found == {("{q} is all zeros", None), ("rel error", None), ("{n} case", "{n} cases"),
                     ("a plain hint", None), ("a hint in two parts", None)}


def test_a_po_file_round_trips_and_compiles_to_a_mo_gettext_reads(tmp_path):
    found = {"a \"quoted\"\nline": {"plural": None, "where": ["x.py:1"]},
             "{n} case": {"plural": "{n} cases", "where": ["x.py:2"]}}
    path = str(tmp_path / "x.po")
    catalogue.write_po(path, "ja", {"a \"quoted\"\nline": {"str": ["引用\n行"]}, "{n} case": {"str": ["{n} ケース"]}}, found)
    entries = catalogue.read_po(path)
    assert entries["a \"quoted\"\nline"]["str"] == ["引用\n行"] and entries["{n} case"]["plural"] == "{n} cases"
    t = gettext.GNUTranslations(io.BytesIO(catalogue.mo_bytes(entries)))
    assert t.gettext("a \"quoted\"\nline") == "引用\n行" and t.ngettext("{n} case", "{n} cases", 5) == "{n} ケース"


# -- finding the language -------------------------------------------------------------------------------
@pytest.mark.parametrize("environ, lang", [
    ({"LANG": "zh_CN.UTF-8"}, "zh_CN"), ({"LANG": "ja_JP.UTF-8"}, "ja"), ({"LC_ALL": "ko_KR.UTF-8", "LANG": "ja_JP"}, "ko"),
    ({"LANGUAGE": "fr:ja", "LANG": "ko_KR"}, "ja"), ({"LANG": "C.UTF-8"}, "en"), ({"LANG": "fr_FR.UTF-8"}, "en"), ({}, "en"),
    ({"LANG": "zh_TW.UTF-8"}, "zh_CN"),
])
def test_the_language_follows_the_environment(environ, lang):
    assert i18n.from_environment(environ) == lang


def test_lang_overrides_and_machines_read_english():
    assert i18n.resolve("ja_JP.UTF-8") == "ja" and i18n.resolve(None, machine=True) == "en"
    with pytest.raises(ValueError, match="unknown language 'fr'"):
        i18n.resolve("fr")
    result = CliRunner().invoke(main, ["conv", "--lang", "fr"])
    assert result.exit_code == 2 and "unknown language 'fr'" in result.stderr and "Traceback" not in result.output


# -- messages made while checking, read back in another language -----------------------------------------
def test_a_message_is_translated_by_its_template_and_code_stays_as_it_is():
    with i18n.use("zh_CN"):
        assert i18n.tr("dx is all zeros: is the gradient written into a local name (`window = window + ...`) "
                       "instead of into dx?") == "dx 全为零：梯度是不是写进了局部变量（`window = window + ...`），而不是写进 dx？"
        scoped = i18n.scoped("fails only at stride > 1: the stride is left out of the window indexing "
                             "(use `i * stride`, not `i`)", "dw")
        assert i18n.tr(i18n.msg("{hint} (see {where})", hint=scoped, where="layers.py:39: `x`")) == \
            "只在步幅 > 1 时失败，在 dw 中：窗口索引漏掉了步幅（应写 `i * stride`，而不是 `i`）（见 layers.py:39: `x`）"
        assert i18n.tr("ValueError: [bold]nope[/bold] (x)") == "ValueError: [bold]nope[/bold] (x)"  # data
        assert i18n.tr("H' and W' swapped; ValueError: no") == "H' 和 W' 颠倒了; ValueError: no"
    assert i18n.tr("H' and W' swapped") == "H' and W' swapped"  # English outside use()


# -- reports on a real bad file, as a student runs them --------------------------------------------------
def check(path, *args, env=None):
    os.chdir(os.path.dirname(path))
    return CliRunner(env=env).invoke(main, ["check", os.path.basename(path), *args])


@pytest.mark.parametrize("lang", ["zh_CN", "ja", "ko"])
def test_a_report_in_each_language_on_real_bad_files(lang, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    conv = write_bugs("conv/dx_local_and_db_factor.py", tmp_path)
    pool = write_bugs("pool/assign_and_stride.py", tmp_path)
    env = {"LANG": {"zh_CN": "zh_CN.UTF-8", "ja": "ja_JP.UTF-8", "ko": "ko_KR.UTF-8"}[lang]}
    texts = []
    for path in (conv, pool):
        result = check(path, env=env)
        lines = result.stdout.splitlines()
        findings = [line for line in lines if re.match(r"\s?\d  ", line)]
        assert result.exit_code == 1 and len(findings) == 2 and len(lines) <= 40
        assert all(re.search(SCRIPT[lang], line) for line in findings), findings
        assert any(re.search(SCRIPT[lang], line) and line.endswith(" s)") for line in lines[-4:])  # the summary
        texts.append(" ".join(result.stdout.split()))
        doc = json.loads(check(path, "--format", "json", env=env).stdout)  # machines: English
        assert not re.search(SCRIPT[lang], json.dumps(doc, ensure_ascii=False))
        asked = json.loads(check(path, "--format", "json", "--lang", lang).stdout)
        assert all(re.search(SCRIPT[lang], f["text"]) for f in asked["findings"])
    both = " ".join(texts)
    assert all(term in both for term in TERMS[lang]), [t for t in TERMS[lang] if t not in both]
    assert "`window = window + ...`" in both and "`i * stride`" in both  # code as it is
    assert "dx " in both and "dout" in both and "max_pool 3x3 stride 1" in both  # names as they are
    english = check(conv, "--lang", "en", env=env).stdout
    assert not re.search(SCRIPT[lang], english) and "dx is all zeros" in english


def test_the_notebook_api_takes_lang(tmp_path):
    import cnncheck
    rep = cnncheck.check("conv", write_bugs("conv/dx_local_and_db_factor.py", tmp_path), lang="ko", seed=0)
    assert re.search(SCRIPT["ko"], str(rep)) and "기울기" in rep._repr_html_()
    assert re.search(SCRIPT["ko"], json.loads(rep.to_json())["findings"][0]["text"])  # lang= given: JSON too
    assert json.loads(cnncheck.check("conv", write_bugs("conv/dx_local_and_db_factor.py", tmp_path / "b"),
                                     seed=0).to_json())["findings"][0]["text"].startswith("dx is all zeros")
    with pytest.raises(ValueError, match="unknown language"):
        cnncheck.check("conv", "x.py", lang="xx")


def test_a_config_mistake_is_told_in_the_readers_language(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("layer: conv\nx_shape: [2, 3, 4]\n")
    result = CliRunner(env={"LANG": "ja_JP.UTF-8"}).invoke(main, ["conv", "--config", str(bad)])
    assert result.exit_code == 2 and "x_shape は 4 つの整数のリスト [N, C, H, W] でなければなりません" in result.stderr
    result = CliRunner().invoke(main, ["conv", "--config", str(tmp_path / "none.yaml"), "--lang", "zh_CN"])
    assert result.exit_code == 2 and "没有这个文件" in result.stderr and "Traceback" not in result.output
    english = CliRunner().invoke(main, ["conv", "--config", str(bad)])
    assert "x_shape must be a list of 4 integers [N, C, H, W], got [2, 3, 4]" in english.stderr
