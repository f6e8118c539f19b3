"""A bounded cache of synthesised speech, so a repeated phrase ("please hold") plays without inference."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, NamedTuple

from herald.media.frames import Pcm

if TYPE_CHECKING:  # tts.py imports this module: the Synthesizer uses the cache
    from herald.speech.tts import VoiceSettings

DEFAULT_MAX_BYTES = 64 * 1024 * 1024
_ENTRY_OVERHEAD_BYTES = 256
"""Counted per entry besides its audio and text, so even empty clips cannot grow the cache without bound."""


class CacheKey(NamedTuple):
    """What decides the audio: volume is applied after the cache, so it is not part of the key."""

    voice_id: str
    speech_rate: float
    text: str

    @classmethod
    def of(cls, text: str, voice: VoiceSettings) -> CacheKey:
        return cls(voice.voice_id, voice.speech_rate, text)


class SynthesisCache:
    """Least-recently-used clips of PCM, bounded by their total size; safe to share between threads.

    A clip larger than ``max_entry_fraction`` of ``max_bytes`` is not kept: one long text would evict many
    short, often repeated phrases. Cached clips are read-only.
    """

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES, *, max_entry_fraction: float = 0.125) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        if not 0 < max_entry_fraction <= 1:
            raise ValueError(f"max_entry_fraction must be in (0, 1], got {max_entry_fraction}")
        self.max_bytes = max_bytes
        self.max_entry_bytes = int(max_bytes * max_entry_fraction)
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[CacheKey, tuple[Pcm, int]] = OrderedDict()
        self._size_bytes = 0
        self._lock = threading.Lock()

    @property
    def size_bytes(self) -> int:
        """The bytes counted against ``max_bytes`` now."""
        return self._size_bytes

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: CacheKey) -> Pcm | None:
        """The clip stored under ``key`` (now the most recently used), or ``None``; counts a hit or a miss."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry[0]

    def put(self, key: CacheKey, pcm: Pcm) -> None:
        """Keep a read-only copy of ``pcm`` under ``key``, evicting the least recently used to make room."""
        cost = pcm.nbytes + len(key.text.encode("utf-8")) + _ENTRY_OVERHEAD_BYTES
        if cost > self.max_entry_bytes:
            return
        stored = pcm.copy()
        stored.setflags(write=False)
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._size_bytes -= old[1]
            self._entries[key] = (stored, cost)
            self._size_bytes += cost
            while self._size_bytes > self.max_bytes:
                _, (_, evicted) = self._entries.popitem(last=False)
                self._size_bytes -= evicted
