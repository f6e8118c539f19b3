"""Cutting a model's streamed reply into clauses to speak, each as soon as it is certain.

    clauses = ClauseBuffer()
    for delta in ("Well", ", it costs 3", ".5 dollars", ". Shall I"):
        clauses.push(delta)          # [], [], ["Well,"], []
    clauses.flush()                  # ["it costs 3.5 dollars.", "Shall I"]

The pieces follow ``split_for_streaming``'s policy and share its boundaries (``clause_boundaries``): the
first piece is the first clause alone, cut at a word past ``first_max_chars``, so the first audio comes
fast; the later ones are whole sentences, an over-long sentence being cut into runs of clauses that grow
(``RAMP``) up to ``chunk_max_chars``, then at words. Unlike ``split_for_streaming`` later sentences are not
grouped together: a piece goes out as soon as it is complete rather than waiting to see the next.

A boundary is settled only once the next word character arrives (or at ``flush``): a "." ending a delta
may be the "3." of "3.5", and "Well, ..." joins the "..." to its clause. So the pieces depend on the text
alone, never on how it was cut into deltas. Markdown that a model may emit and TTS must not read is
dropped on the way in: ``*``, backticks, and at the start of a line a heading's ``#``s or a list marker
("- ", "* ", "+ ", "1. ", "2) ").
"""

from __future__ import annotations

import re
from typing import Final

from herald.speech.text import RAMP, clause_boundaries, word_cut

_LAST_WORD: Final = re.compile(r"\w\W*\Z")  # the last word character ("\w", as clause_boundaries counts)
_INLINE_MARKUP: Final = frozenset("*`")
_LINE_MARKER: Final = re.compile(r"[ \t]*(?:#{1,6}|[-*+•]|\d{1,3}[.)])[ \t]")
_LINE_MARKER_PREFIX: Final = re.compile(r"[ \t]*(?:#{1,6}|[-*+•]|\d{1,3}[.)]?)?")


class ClauseBuffer:
    """Text deltas in, clauses to speak out; one per reply (``flush`` ends it and starts afresh).

    ``min_chars`` (like ICE's ``OutputMinLength``): a piece shorter than this is held and joined with the
    next, so the engine is not asked for a word or two at a time; the last piece of a reply goes out at
    ``flush`` however short. 0 (the default) sends every piece as it comes.
    """

    def __init__(self, *, first_max_chars: int = 60, chunk_max_chars: int = 240, min_chars: int = 0) -> None:
        if first_max_chars < 1 or chunk_max_chars < 1:
            raise ValueError("piece limits must be at least one character")
        if min_chars < 0:
            raise ValueError(f"min_chars must not be negative (got {min_chars})")
        self.first_max_chars = first_max_chars
        self.chunk_max_chars = chunk_max_chars
        self.min_chars = min_chars
        self._reset()

    def _reset(self) -> None:
        self._text = ""  # cleaned text not yet cut off, whitespace single spaces, none leading
        self._line_head: str | None = ""  # the start of a line, until it is known to hold no marker
        self._held = ""  # a piece shorter than min_chars, waiting for the next
        self._held_gap = ""  # what separated it from the text after it: " " or nothing
        self._emitted = 0

    def push(self, delta: str) -> list[str]:
        """The pieces that ``delta`` completed (often none)."""
        for char in delta:
            self._take(char)
        return self._cut(final=False)

    def flush(self) -> list[str]:
        """The reply ended: every piece left. The buffer is then ready for a new reply."""
        if self._line_head:
            self._put(self._line_head)  # an unfinished "12" at the end is text, not a marker
        self._line_head = None
        pieces = self._cut(final=True)
        if self._held:
            pieces.append(self._held)
        self._reset()
        return pieces

    # -- markdown ---------------------------------------------------------------------------------------

    def _take(self, char: str) -> None:
        if char == "\n":
            if self._line_head:
                self._put(self._line_head)
            self._put(" ")
            self._line_head = ""
            return
        if self._line_head is None:
            self._put(char)
            return
        head = self._line_head + char
        if _LINE_MARKER.fullmatch(head):
            self._line_head = None  # a heading or list marker: dropped
        elif _LINE_MARKER_PREFIX.fullmatch(head):
            self._line_head = head  # may still become one
        else:
            self._line_head = None
            self._put(head)

    def _put(self, text: str) -> None:
        for char in text:
            if char in _INLINE_MARKUP:
                continue
            if char.isspace():  # the whitespace str.split() knows, as split_for_streaming normalises
                if self._text and self._text[-1] != " ":
                    self._text += " "
            else:
                self._text += char

    # -- cutting ----------------------------------------------------------------------------------------

    def _cut(self, *, final: bool) -> list[str]:
        pieces: list[str] = []
        while (end := self._next_end(final)) is not None:
            piece = self._text[:end].rstrip(" ")
            gap = " " if self._text[end : end + 1] == " " else ""
            self._text = self._text[end:].lstrip(" ")
            if self._held:
                piece = self._held + self._held_gap + piece
                self._held = ""
            if len(piece) < self.min_chars and (self._text or not final):
                self._held, self._held_gap = piece, gap
                continue
            pieces.append(piece)
            self._emitted += 1
        return pieces

    def _next_end(self, final: bool) -> int | None:
        """Where the next piece ends, or ``None`` while more text could still move it."""
        text = self._text
        size = len(text.rstrip(" "))
        if size == 0:
            return None
        if final:
            horizon = size
        else:
            # Boundaries up to the last word character are settled: nothing after it can move them.
            last_word = _LAST_WORD.search(text)
            if last_word is None:
                return None
            horizon = last_word.start()
        known = [(end, is_sentence) for end, is_sentence in clause_boundaries(text) if end <= horizon]
        known = [(end, is_sentence) for end, is_sentence in known if end < size]
        if final:
            known.append((size, True))  # the end of the reply ends its last clause and sentence
        clause_ends = [end for end, _ in known]

        if not self._emitted:
            limit = self.first_max_chars
            if clause_ends:
                return clause_ends[0] if clause_ends[0] <= limit else word_cut(text, 0, limit)
            return word_cut(text, 0, limit) if horizon >= limit else None

        limit = self.chunk_max_chars
        sentence = next((end for end, is_sentence in known if is_sentence), None)
        if sentence is not None and sentence <= limit:
            return sentence
        if sentence is None and horizon < limit:
            return None  # the sentence may still end within the limit
        # An over-long sentence: runs of its clauses, each run no longer than the ramp allows.
        clauses = [end for end in clause_ends if sentence is None or end <= sentence]
        if not clauses or clauses[0] > limit:
            return word_cut(text, 0, limit)
        ramp = min(RAMP[min(self._emitted - 1, len(RAMP) - 1)], limit)
        if clauses[0] > ramp:
            return clauses[0]
        return max(end for end in clauses if end <= ramp)
