"""The reader's language: gettext catalogues in cnncheck/locale/<lang>/LC_MESSAGES/cnncheck.mo.

Two kinds of text pass through here:

- the report's own words (headings, the summary line): `_("...")` and `ngettext` translate at
  once, into the language `use(lang)` chose (English outside it);
- messages made while checking (hints, check messages, notes): written in English with
  `msg("{q} is all zeros ...", q="dx")`, carried as plain English text (JSON, JUnit and CSV
  keep it, and it crosses process boundaries), and translated only where a person reads it:
  `tr(text)` finds the catalogue's template that the text fills and fills the translation with
  the same values. Values named `hint...` are translated in turn; code, names and numbers stay.
  Text the catalogue has no template for (the checked code's own messages) stays as it is.

`msg` and `_` are the keywords the extractor reads (python -m cnncheck.locale.tool).
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import gettext
import os
import re
import string

LOCALE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "locale")
DOMAIN = "cnncheck"
LANGUAGES = ("en", "ja", "ko", "zh_CN")
ALIASES = {"zh": "zh_CN", "zh_hans": "zh_CN", "zh_sg": "zh_CN", "jp": "ja", "kr": "ko", "c": "en", "posix": "en"}
_current = contextvars.ContextVar("cnncheck_language", default="en")


def msg(template: str, **values) -> str:
    """An English message from its catalogue template: the marker of text translated later."""
    return template.format(**values) if values else template


def normalize(code: str) -> str | None:
    """'ja_JP.UTF-8' -> 'ja', 'zh_CN' -> 'zh_CN', 'C' -> 'en'; None for a language without a catalogue."""
    code = code.split(".")[0].split("@")[0].replace("-", "_").strip()
    if not code:
        return None
    by_lower = {lang.lower(): lang for lang in LANGUAGES}
    for c in (code.lower(), code.lower().split("_")[0]):
        if c in by_lower or c in ALIASES:
            return by_lower.get(c) or ALIASES[c]
    return None


def from_environment(environ=os.environ) -> str:
    """The language of LANGUAGE, LC_ALL, LC_MESSAGES or LANG (the first one set, as gettext reads
    them); English when it names no language cnncheck has."""
    for var in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        value = environ.get(var)
        if value:
            return next((lang for lang in map(normalize, value.split(":")) if lang), "en")
    return "en"


def resolve(lang: str | None = None, machine: bool = False) -> str:
    """The language to write in: `lang` when given (ValueError for one without a catalogue),
    else English for machine formats (JSON, JUnit, CSV), else the environment's."""
    if lang:
        found = normalize(lang)
        if found is None:
            raise ValueError(f"unknown language {lang!r}: use one of {', '.join(LANGUAGES)}")
        return found
    return "en" if machine else from_environment()


@functools.cache
def catalogue(lang: str) -> gettext.NullTranslations:
    if lang == "en":
        return gettext.NullTranslations()
    return gettext.translation(DOMAIN, LOCALE, languages=[lang])


@contextlib.contextmanager
def use(lang: str | None):
    """Translate into lang (None: leave the current language) inside the block."""
    token = _current.set(lang or _current.get())
    try:
        yield
    finally:
        _current.reset(token)


def current() -> str:
    return _current.get()


def _(text: str) -> str:
    """The report's own words, in the current language."""
    return catalogue(_current.get()).gettext(text)


def ngettext(singular: str, plural: str, n: int) -> str:
    return catalogue(_current.get()).ngettext(singular, plural, n)


# -- messages made while checking: English text back to its template ------------------------------
FIELD = re.compile(r"\{(\w+)(?:[:!][^{}]*)?\}")
SCOPED = re.compile(r"(.+?), in (the forward|\w+): (.+)", re.S)


def scoped(hint: str, where: str) -> str:
    """A pattern's hint for one quantity: 'fails only at stride > 1: ...' becomes 'fails only at
    stride > 1, in dw: ...'. tr() reads the result back the same way."""
    return hint.replace(": ", f", in {where}: ", 1)


def _pattern(template: str) -> re.Pattern:
    """A regex the English text of template matches, each {field} a named group."""
    parts, seen = [], set()
    for literal, field, _spec, _conv in string.Formatter().parse(template):
        parts.append(re.escape(literal))
        if field is not None:
            parts.append(f"(?P={field})" if field in seen else f"(?P<{field}>.+?)")
            seen.add(field)
    return re.compile("".join(parts), re.S)


@functools.cache
def _templates(lang: str) -> tuple[dict, list]:
    """(exact msgid -> msgstr, [(regex, msgstr, strict)] for templates, most literal text first;
    strict: a template of fields and punctuation alone, which fits only when it has `hint`
    fields and each is a message too)."""
    entries = {k: v for k, v in catalogue(lang)._catalog.items() if isinstance(k, str) and k and v}
    exact = {k: v for k, v in entries.items() if not FIELD.search(k)}
    fields = sorted((k for k in entries if FIELD.search(k)), key=lambda k: -len(FIELD.sub("", k)))
    return exact, [(_pattern(k), entries[k], not re.search(r"[^\W\d_]", FIELD.sub("", k))) for k in fields]


@functools.lru_cache(maxsize=4096)
def _translate(text: str, lang: str, part: bool = False) -> str | None:
    """text's translation: its msgid, else the template it fills (templates with words of their
    own first, then a pattern hint scoped to a quantity, then hints joined by "; ", then
    templates of fields and punctuation alone). `part`: text fills a field of another message,
    where one word alone ("no", "max": the report's labels) is no message."""
    exact, templates = _templates(lang)
    if text in exact and (" " in text or not part):
        return exact[text]
    for regex, target, strict in (t for t in templates if not t[2]):
        m = regex.fullmatch(text)
        if m:
            return _fill(m, target, lang, strict)
    m = SCOPED.fullmatch(text)
    whole = m and _translate(f"{m.group(1)}: {m.group(3)}", lang)
    if whole:  # the scope goes where the translation's first colon is
        cut = min((i for i in (whole.find("："), whole.find(": ")) if i >= 0), default=len(whole))
        scope = catalogue(lang).gettext(msg(", in {where}")).format(where=catalogue(lang).gettext(m.group(2)))
        return whole[:cut] + scope + whole[cut:]
    parts = text.split("; ")  # a case's hints, a contract's problems
    if len(parts) > 1:
        done = [_translate(p, lang, True) for p in parts]
        return "; ".join(d or p for d, p in zip(done, parts)) if any(done) else None
    for regex, target, strict in (t for t in templates if t[2]):
        m = regex.fullmatch(text)
        filled = m and _fill(m, target, lang, strict)
        if filled:
            return filled
    return None


def _fill(m: re.Match, target: str, lang: str, strict: bool) -> str | None:
    """The translation with m's values, `hint` fields translated in turn; None when a strict
    template's hint fields are not all messages."""
    values = {k: _translate(v, lang, True) if k.startswith("hint") else v for k, v in m.groupdict().items()}
    if strict and (None in values.values() or not any(k.startswith("hint") for k in values)):
        return None  # "{hint} ({names})" fits any text ending in ")": only where the hint is a message
    values = {k: m.group(k) if v is None else v for k, v in values.items()}
    return FIELD.sub(lambda f: values[f.group(1)], target)


def in_language(text: str, lang: str | None = None) -> str:
    """A message in lang (None: the environment's language), for what goes to stderr."""
    with use(resolve(lang)):
        return tr(text)


def tr(text: str | None) -> str | None:
    """A message made while checking, in the current language (unchanged where the catalogue has
    no template it fills: student code's own text, say)."""
    lang = _current.get()
    if not text or lang == "en":
        return text
    return _translate(text, lang) or text
