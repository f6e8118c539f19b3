"""How urgently a piece of audio is needed: the slack, i.e. how much audio is already buffered before it.

The speech scheduler sets ``slack`` in each producer task's context; the synthesiser reads it to order its
queue earliest-deadline-first: the piece whose call will run out of audio soonest is made first, whatever
instance it belongs to. Without it (a direct call), work counts as due now.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar

slack_ns: ContextVar[Callable[[], int] | None] = ContextVar("slack_ns", default=None)
"""Returns, when called, the nanoseconds of audio already buffered ahead of the piece being produced."""


def current_slack_ns() -> int:
    get = slack_ns.get()
    return 0 if get is None else max(0, get())
