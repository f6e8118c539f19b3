"""Pronunciation rules: ICE's ``TtsConfig.PronunciationRules`` of type ``replacement``, Word → Pronunciation.

Rules change what the TTS engine is given, never the caption. A Latin word is replaced only as a whole
word and whatever its case ("SQL" rule matches "sql", not "SQLite"); a CJK word is replaced wherever it
appears, since those scripts put no spaces between words. At one place the longest word wins, and the text
is scanned once, so a replacement's output is never replaced again.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

# Han (with extensions and compatibility ideographs), kana, Hangul: scripts written without spaces.
_CJK = (
    "\u1100-\u11ff\u3040-\u30ff\u31f0-\u31ff\u3130-\u318f\u3400-\u4dbf\u4e00-\u9fff"
    "\uac00-\ud7af\uf900-\ufaff\U00020000-\U0003134f"
)
# A word is never glued to a letter or digit, even by punctuation at its edge (".NET" is not in "ASP.NET",
# "C++" not in "C++11"), but CJK next to it is a boundary ("Herald你好" holds "Herald"), and a CJK edge
# needs none. Asserted once around all the words, looking at the matched word's own first and last
# characters; a failed check backtracks into the next (shorter) word. [^\W...] is a letter or digit, not CJK.
# (?-i:) because case-folding these large classes makes compiling three times slower (~20 ms).
_START = rf"(?-i:(?=[{_CJK}])|(?<![^\W{_CJK}]))"
_END = rf"(?-i:(?<=[{_CJK}])|(?![^\W{_CJK}]))"


def apply_rules(text: str, rules: Sequence[tuple[str, str]]) -> str:
    """Replace each rule's word in ``text`` by its pronunciation (see the module docstring)."""
    if not rules:
        return text
    compiled = _compile(tuple((word, spoken) for word, spoken in rules))
    if compiled is None:
        return text
    pattern, replacements = compiled
    # Each alternative is one capturing group, so the group that matched names the rule.
    return pattern.sub(lambda match: replacements[(match.lastindex or 1) - 1], text)


@functools.lru_cache(maxsize=64)
def _compile(rules: tuple[tuple[str, str], ...]) -> tuple[re.Pattern[str], list[str]] | None:
    # Stable sort: among words of one length, the first rule listed wins.
    ordered = sorted((rule for rule in rules if rule[0]), key=lambda rule: len(rule[0]), reverse=True)
    if not ordered:
        return None
    words = "|".join(f"({re.escape(word)})" for word, _ in ordered)
    return re.compile(f"{_START}(?:{words}){_END}", re.IGNORECASE), [spoken for _, spoken in ordered]
