"""Guessing a keyword's language, for the editor's default."""

import re

_HANGUL = re.compile(r"[\u1100-\u11ff\u3130-\u318f\uac00-\ud7a3]")


def guess_language(text: str) -> str:
    if _HANGUL.search(text):
        return "ko"
    if text.isascii():
        return "en"
    return "other"
