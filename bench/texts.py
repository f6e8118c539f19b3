"""Texts to speak, different for every run: the server caches synthesised phrases, so a text said twice
would measure the cache, not the engine.

Every text made here opens with a sentence of one clause (``opener``), which is exactly the first piece
``split_for_streaming`` gives the engine; ``seed`` picks it (143 distinct openers) and shuffles the rest.
"""

from __future__ import annotations

import random
from typing import Final

_NOUNS: Final = (
    "table", "order", "parcel", "car", "room", "ticket", "refund", "report", "coffee", "invoice",
    "prescription", "taxi", "badge", "laptop", "booking", "package", "receipt", "delivery", "key card",
)  # fmt: skip
# 11 subjects x 13 predicates: coprime lengths, so seeds 0..142 give distinct openers.
_SUBJECTS: Final = (
    "The train to the airport", "The weather this afternoon", "Our support team", "The second floor office",
    "The quarterly review", "Your new account", "The river crossing", "The evening flight to Lisbon",
    "The main library", "Our garden service", "The morning bus",
)  # fmt: skip
_PREDICATES: Final = (
    "is running a little late today", "looks better than expected", "will be ready in ten minutes",
    "has moved to a new address", "needs one more signature", "opens again on Monday morning",
    "was confirmed a moment ago", "is waiting for your answer", "has a few seats left",
    "changed its schedule last week", "sends you warm regards", "is closed for maintenance",
    "has everything you asked for",
)  # fmt: skip
_POOL: Final = (
    "Please keep your reference number at hand when you call us again.",
    "If anything is unclear, our team is happy to walk you through the details.",
    "The next update will arrive by message as soon as it is available.",
    "We have checked the records twice and everything looks in order.",
    "You can change the time of your appointment up to one day in advance.",
    "A confirmation has been sent to the address we have on file for you.",
    "Most of our customers find the new process quicker than the old one.",
    "There is no need to print anything, the digital copy is enough.",
    "The building is open from eight in the morning until six in the evening.",
    "Parking is free for the first two hours, and the entrance is on the left.",
    "Our opening hours are longer during the holidays, so there is plenty of time.",
    "If you would like a copy of the documents, just let us know.",
    "The fee is included in the price you were quoted last week.",
    "We will remind you one day before, so you do not have to write it down.",
    "Some roads near the station are closed, so please allow a few extra minutes.",
    "The form takes about five minutes to fill in, and you can save it halfway.",
    "Your feedback helps us improve, and we read every single message.",
    "Payments made before noon are processed on the same day.",
    "The old card stays valid until the new one arrives in the post.",
    "You will hear a short tone when the recording starts.",
    "Our colleagues in the other office can help with questions about billing.",
    "Children under twelve travel free when they are with an adult.",
    "The lift at the back of the building goes to every floor.",
    "Please remember to bring a photo identity document with you.",
    "We are sorry for the wait, and we appreciate your patience.",
    "The results are usually ready within three working days.",
    "There is a quiet room on the ground floor if you need one.",
    "Your seat is near the window, in the middle of the carriage.",
    "The instructions are also available in several other languages.",
    "Thank you for choosing us, and have a pleasant rest of the day.",
)


def opener(seed: int) -> str:
    """A sentence of one clause, 30 to 60 characters, distinct for seeds 0 to 142."""
    return f"{_SUBJECTS[seed % len(_SUBJECTS)]} {_PREDICATES[seed % len(_PREDICATES)]}."


def short_text(seed: int) -> str:
    """About one second of speech, one clause: the whole text is the first piece."""
    return f"Your {_NOUNS[seed % len(_NOUNS)]} is ready."


def cached_phrase(seed: int) -> str:
    """A phrase of one clause, distinct from every ``short_text``, for the cache to keep."""
    return f"We have found your {_NOUNS[seed % len(_NOUNS)]}."


def text_of(seed: int, min_chars: int, max_chars: int = 1024) -> str:
    """``opener(seed)``, then shuffled sentences up to at least ``min_chars`` (at most ``max_chars``)."""
    rng = random.Random(seed)
    parts = [opener(seed)]
    length = len(parts[0])
    while length < min_chars:
        sentence = rng.choice(_POOL)
        if length + 1 + len(sentence) > max_chars:
            break
        parts.append(sentence)
        length += 1 + len(sentence)
    return " ".join(parts)


def medium_text(seed: int) -> str:
    """About ten seconds of speech: the opener and two or three sentences."""
    return text_of(seed, 180)


def long_text(seed: int) -> str:
    """About a minute of speech (close to the 1024-character limit of ``SendAIAgentSpeech``)."""
    return text_of(seed, 960)
