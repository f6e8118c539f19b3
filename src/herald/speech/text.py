"""Cutting text into pieces for TTS, so the first audio comes fast and the rest flows in natural units."""

from __future__ import annotations

import re
from typing import Final

_CLOSERS: Final = "\"'”’)\\]}»」』）》〉】"
_BOUNDARY: Final = re.compile(
    # CJK punctuation and the ellipsis end a clause wherever they stand ...
    rf"(?P<cjk>[…。！？；：、，]+)[{_CLOSERS}]*"
    # ... Latin punctuation only before a space or the end, so "1,000", "3.5" and "a.com" stay whole.
    rf"|(?P<latin>[.!?]+|[,;:])[{_CLOSERS}]*(?=\s|$)"
)
_SENTENCE_ENDS: Final = frozenset(".!?…。！？")
# Words whose period rarely ends a sentence ("etc." and "Inc." often do, so they are not here).
_ABBREVIATIONS: Final = frozenset(
    {"mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "vs", "cf", "fig", "approx", "dept"}
    | {"gen", "col", "lt", "sgt", "capt", "rev", "hon", "ave"}
)
_DOTTED: Final = re.compile(r"(?:[a-z]\.)+[a-z]")  # e.g, i.e, u.s, p.m
_OPENERS: Final = "\"'“‘([{«"
_WORD: Final = re.compile(r"\w")

_Span = tuple[int, int]


RAMP = (90, 160, 240)
"""Length limits of the pieces after the first clause, then ``chunk_max_chars`` for the rest."""


def split_for_streaming(text: str, *, first_max_chars: int = 60, chunk_max_chars: int = 240) -> list[str]:
    """Split ``text`` into pieces to synthesise one after another.

    The first piece is the first clause alone (cut at a word if longer than ``first_max_chars``), so the
    first audio is ready quickly; the rest are whole sentences grouped up to ``chunk_max_chars``, an
    over-long sentence being cut at clauses, then words, then characters. Whitespace is normalised to
    single spaces. Joining the pieces with a space — or with nothing where a cut fell between two
    non-space characters, as in CJK text — gives back the normalised text.
    """
    if first_max_chars < 1 or chunk_max_chars < 1:
        raise ValueError("piece limits must be at least one character")
    norm = " ".join(text.split())
    if not norm:
        return []
    boundaries = clause_boundaries(norm)
    clause_ends = [pos for pos, _ in boundaries]
    sentence_ends = [pos for pos, is_sentence in boundaries if is_sentence]

    first_end = next((pos for pos in clause_ends if pos < len(norm)), len(norm))
    if first_end > first_max_chars:
        first_end = word_cut(norm, 0, first_max_chars)
    pieces: list[_Span] = [(0, first_end)]

    rest = _strip(norm, first_end, len(norm))
    if rest[0] < rest[1]:
        atoms: list[_Span] = []
        for sentence in _cut(norm, rest, sentence_ends):
            atoms += _atoms(norm, sentence, clause_ends, chunk_max_chars)
        pieces += _pack(atoms, chunk_max_chars)
    return [norm[start:end] for start, end in pieces]


def clause_boundaries(norm: str) -> list[tuple[int, bool]]:
    """Positions just after each clause boundary in ``norm`` (text whose whitespace is single spaces),
    each with whether it also ends a sentence."""
    found: list[tuple[int, bool]] = []
    last = 0
    for match in _BOUNDARY.finditer(norm):
        latin = match.group("latin")
        if latin == "." and _is_abbreviation(norm, match.start()):
            continue
        punctuation = match.group("cjk") or latin
        is_sentence = any(char in _SENTENCE_ENDS for char in punctuation)
        if _WORD.search(norm, last, match.start()) is None:
            # Punctuation with no words since the last boundary ("Well, ... so") joins the boundary before.
            if found:
                found[-1] = (match.end(), found[-1][1] or is_sentence)
                last = match.end()
            continue
        found.append((match.end(), is_sentence))
        last = match.end()
    return found


def _is_abbreviation(norm: str, period: int) -> bool:
    word = norm[norm.rfind(" ", 0, period) + 1 : period].lstrip(_OPENERS)
    lowered = word.lower()
    is_initial = len(word) == 1 and word.isupper() and word != "I"  # "John F. Kennedy"
    return lowered in _ABBREVIATIONS or _DOTTED.fullmatch(lowered) is not None or is_initial


def _atoms(norm: str, span: _Span, clause_ends: list[int], limit: int) -> list[_Span]:
    """Cut ``span`` into units no longer than ``limit``: itself, else its clauses, words, characters."""
    if span[1] - span[0] <= limit:
        return [span]
    atoms: list[_Span] = []
    for clause in _cut(norm, span, clause_ends):
        if clause[1] - clause[0] <= limit:
            atoms.append(clause)
            continue
        start = clause[0]
        while clause[1] - start > limit:
            end = word_cut(norm, start, start + limit)
            atoms.append((start, end))
            start = _strip(norm, end, clause[1])[0]
        atoms.append((start, clause[1]))
    return atoms


def _pack(atoms: list[_Span], limit: int) -> list[_Span]:
    """Group consecutive atoms greedily into spans, the first ones shorter, none longer than ``limit``.

    Piece sizes ramp up (``RAMP``): a piece is synthesised while the one before it plays, so each must take
    less time to make than its predecessor takes to say. A short first clause followed by a 240-character
    chunk would leave a gap of silence on a busy engine.
    """
    packed: list[_Span] = []
    for start, end in atoms:
        current = min(RAMP[min(len(packed) - 1, len(RAMP) - 1)], limit) if packed else limit
        if packed and end - packed[-1][0] <= current:
            packed[-1] = (packed[-1][0], end)
        else:
            packed.append((start, end))
    return packed


def word_cut(norm: str, start: int, max_end: int) -> int:
    """Where a piece from ``start`` ends, no later than ``max_end``: at the last space, or at ``max_end``."""
    space = norm.rfind(" ", start + 1, max_end + 1)
    return space if space > start else max_end


def _cut(norm: str, span: _Span, cuts: list[int]) -> list[_Span]:
    """Split ``span`` at the positions in ``cuts`` that fall inside it, dropping the spaces at the cuts."""
    parts: list[_Span] = []
    start = span[0]
    for cut in cuts:
        if span[0] < cut < span[1]:
            parts.append(_strip(norm, start, cut))
            start = cut
    parts.append(_strip(norm, start, span[1]))
    return [part for part in parts if part[0] < part[1]]


def _strip(norm: str, start: int, end: int) -> _Span:
    while start < end and norm[start] == " ":
        start += 1
    while end > start and norm[end - 1] == " ":
        end -= 1
    return start, end
