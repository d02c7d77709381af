"""Command-line options shared by `cnncheck check|conv|pool|im2col` and `cnncheck grade`."""
from __future__ import annotations

import click

from cnncheck import i18n


def _lang(ctx, param, value):
    try:
        return i18n.resolve(value) if value else None
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


LANG_OPTION = click.option("--lang", callback=_lang, metavar="LANG",
                           help="Language of the report: en, zh_CN, ja or ko (default: from LANG, LC_ALL or "
                                "LANGUAGE for what people read; English for json, junit and csv).")
