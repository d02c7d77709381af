"""The message catalogues' tooling (stdlib only): extract, update, compile, check.

    python -m cnncheck.catalogue update    # every message of the code into every .po (new ones untranslated)
    python -m cnncheck.catalogue compile   # each .po to its .mo (shipped in the package)
    python -m cnncheck.catalogue check     # what is missing, untranslated, mismatched or stale

A message is the first argument of `msg(...)`, `_(...)` or `ngettext(...)` (both forms), a
`_("...")` inside a Jinja2 template string, or the hint of a `Sign(...)` / `Pattern(...)` record
written as a string constant: a layer's or a
protocol's new hint needs nothing more than `update` and its translations. Text with `{name}`
fields is a template; a translation keeps every field of its msgid (i18n.tr fills them).
"""
from __future__ import annotations

import ast
import io
import os
import re
import struct
import sys

from cnncheck.i18n import DOMAIN, FIELD, LANGUAGES, LOCALE

PACKAGE = os.path.dirname(os.path.abspath(__file__))
KEYWORDS = {"msg", "_", "ngettext"}
RECORDS = {"Sign": 2, "Pattern": 2}  # the position of their hint argument
TEMPLATE_CALL = re.compile(r'_\("((?:[^"\\]|\\.)*)"\)')  # _("...") in a Jinja2 template
HEADER = ("Project-Id-Version: cnncheck\nMIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\n"
          "Content-Transfer-Encoding: 8bit\nLanguage: {lang}\nPlural-Forms: nplurals=1; plural=0;\n")


def _text(node, consts: dict) -> str | None:
    """The string a node is: a constant, a module-level name bound to one, or a sum of these."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value or None
    if isinstance(node, ast.Name):
        return consts.get(node.id)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _text(node.left, consts), _text(node.right, consts)
        return left + right if left and right else None
    if isinstance(node, ast.Call) and _name(node.func) == "msg" and node.args and not node.keywords:
        return _text(node.args[0], consts)
    return None


def _name(func) -> str:
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


def messages_of(source: str) -> list[tuple]:
    """(msgid, msgid_plural or None, line) for every message of one module's source."""
    tree, found, consts = ast.parse(source), [], {}
    for node in tree.body:  # NAME = "text" (or "text" + OTHER) at the top of the module
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            text = _text(node.value, consts)
            if text:
                consts[node.targets[0].id] = text
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and "{{" in node.value:
            found += [(ast.literal_eval(f'"{m}"'), None, node.lineno) for m in TEMPLATE_CALL.findall(node.value)]
        if not isinstance(node, ast.Call):
            continue
        name, args = _name(node.func), node.args
        if name in KEYWORDS and args and _text(args[0], consts):
            plural = _text(args[1], consts) if name == "ngettext" and len(args) > 1 else None
            found.append((_text(args[0], consts), plural, node.lineno))
        elif name in RECORDS:
            hint = args[RECORDS[name]] if len(args) > RECORDS[name] else \
                next((k.value for k in node.keywords if k.arg == "hint"), None)
            if hint is not None and _text(hint, consts):
                found.append((_text(hint, consts), None, node.lineno))
    return found


def extract(root: str = PACKAGE) -> dict[str, dict]:
    """{msgid: {"plural": ..., "where": ["cnncheck/report.py:12", ...]}} over the package's modules."""
    out = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "__")))
        for f in sorted(x for x in files if x.endswith(".py")):
            path = os.path.join(folder, f)
            with open(path, encoding="utf-8") as fh:
                where = os.path.relpath(path, os.path.dirname(root))
                for msgid, plural, line in messages_of(fh.read()):
                    entry = out.setdefault(msgid, {"plural": plural, "where": []})
                    entry["where"].append(f"{where}:{line}")
    return out


# -- .po files --------------------------------------------------------------------------------------
def po_path(lang: str) -> str:
    return os.path.join(LOCALE, lang, "LC_MESSAGES", f"{DOMAIN}.po")


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t") + '"'


def read_po(path: str) -> dict[str, dict]:
    """{msgid: {"plural": ..., "str": [msgstr, ...]}} of a .po file (the header under "")."""
    entries, cur, key = {}, None, None
    with open(path, encoding="utf-8") as f:
        lines = [line.strip() for line in f]
    for line in [*lines, "msgid END"]:
        if line.startswith("msgid ") and cur is not None:
            entries[cur["id"]] = {"plural": cur["plural"], "str": cur["str"]}
        if line == "msgid END":
            break
        if line.startswith('"') and cur is not None:
            value = ast.literal_eval(line)
            if key in ("id", "plural"):
                cur[key] += value
            else:
                cur["str"][key] += value
        elif line.startswith("msgid_plural "):
            cur["plural"], key = ast.literal_eval(line[13:]), "plural"
        elif line.startswith("msgid "):
            cur, key = {"id": ast.literal_eval(line[6:]), "plural": None, "str": []}, "id"
        elif line.startswith("msgstr"):
            cur["str"].append(ast.literal_eval(line.split(" ", 1)[1]))
            key = len(cur["str"]) - 1
    return entries


def write_po(path: str, lang: str, entries: dict, found: dict) -> None:
    """The .po of lang: the header, then every message of the code in the order found, with its
    translation from entries (empty when there is none yet)."""
    out = [f"# cnncheck messages, {lang}. Update: python -m cnncheck.catalogue update", 'msgid ""',
           'msgstr ""', *(_quote(h + "\n") for h in HEADER.format(lang=lang).splitlines()), ""]
    for msgid, info in found.items():
        have = entries.get(msgid, {}).get("str") or [""]
        out += [f"#: {w}" for w in info["where"][:3]]
        if FIELD.search(msgid):
            out.append("#, python-brace-format")
        out.append(f"msgid {_quote(msgid)}")
        if info["plural"]:
            out += [f"msgid_plural {_quote(info['plural'])}", f"msgstr[0] {_quote(have[0])}"]
        else:
            out.append(f"msgstr {_quote(have[0])}")
        out.append("")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(out))


# -- .mo files (GNU gettext's format) ------------------------------------------------------------------
def mo_bytes(entries: dict) -> bytes:
    """A .mo of the translated entries (plural entries as msgid\\0plural -> msgstr[0]\\0...)."""
    pairs = []
    for msgid, e in entries.items():
        if not any(e["str"]) and msgid:
            continue
        key = msgid + ("\0" + e["plural"] if e["plural"] else "")
        pairs.append((key.encode(), "\0".join(e["str"]).encode()))
    pairs.sort()
    n, ids, strs = len(pairs), b"", b""
    offsets = []
    for k, v in pairs:
        offsets.append((len(ids), len(k), len(strs), len(v)))
        ids += k + b"\0"
        strs += v + b"\0"
    start = 7 * 4 + 16 * n
    table = b"".join(struct.pack("<II", ln, start + o) for o, ln, _, _ in offsets)
    table += b"".join(struct.pack("<II", ln, start + len(ids) + o) for _, _, o, ln in offsets)
    return struct.pack("<7I", 0x950412de, 0, n, 7 * 4, 7 * 4 + 8 * n, 0, 0) + table + ids + strs


def mo_path(lang: str) -> str:
    return po_path(lang)[:-3] + ".mo"


# -- the commands -------------------------------------------------------------------------------------
def update() -> None:
    found = extract()
    for lang in LANGUAGES[1:]:
        path = po_path(lang)
        write_po(path, lang, read_po(path) if os.path.exists(path) else {}, found)


def compile_all() -> None:
    for lang in LANGUAGES[1:]:
        with open(mo_path(lang), "wb") as f:
            f.write(mo_bytes(read_po(po_path(lang))))


def fields(text: str) -> list[str]:
    """Its {fields}, format specs included, in sorted order: what a translation must keep."""
    return sorted(re.findall(r"\{[^{}]*\}", text))


def problems() -> list[str]:
    """Every message without a translation in some catalogue, every translation whose fields
    differ from its msgid's, every .mo that is not its .po compiled."""
    found, out = extract(), []
    for lang in LANGUAGES[1:]:
        entries = read_po(po_path(lang))
        for msgid, info in found.items():
            have = entries.get(msgid, {}).get("str") or [""]
            if not all(have):
                out.append(f"{lang}: no translation of {msgid!r} ({info['where'][0]})")
            elif any(fields(s) != fields(msgid) for s in have):
                out.append(f"{lang}: the fields of {msgid!r} differ in {have[0]!r}")
        mo = mo_path(lang)
        with open(mo, "rb") if os.path.exists(mo) else io.BytesIO() as f:
            stale = f.read() != mo_bytes(entries)
        if stale:
            out.append(f"{lang}: {mo} is stale: python -m cnncheck.catalogue compile")
    return out


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "check"
    if command == "update":
        update()
    elif command == "compile":
        compile_all()
    else:
        found = problems()
        print("\n".join(found) or f"{len(extract())} messages, every one translated in {', '.join(LANGUAGES[1:])}")
        return 1 if found else 0
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
