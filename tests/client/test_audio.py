"""Received audio: chunking to 20 ms and levels."""

from __future__ import annotations

import numpy as np

from herald.client.audio import AudioChunk, Rechunker, rms


def test_pieces_of_any_length_become_whole_chunks_in_order():
    rechunker = Rechunker(960)
    stream = np.arange(3000, dtype=np.int16)
    chunks = [
        *rechunker.push(stream[:500]),
        *rechunker.push(stream[500:2100]),
        *rechunker.push(stream[2100:]),
    ]
    assert [len(c) for c in chunks] == [960, 960, 960]
    np.testing.assert_array_equal(np.concatenate(chunks), stream[:2880])
    tail = rechunker.push(np.arange(3000, 3840, dtype=np.int16))  # 120 waiting + 840 = one more chunk
    np.testing.assert_array_equal(tail[0], np.arange(2880, 3840, dtype=np.int16))


def test_levels():
    assert rms(np.zeros(0, dtype=np.int16)) == 0.0
    assert rms(np.full(960, -1000, dtype=np.int16)) == 1000.0
    quiet = AudioChunk(1.0, np.full(960, 100, dtype=np.int16), 48_000)
    loud = AudioChunk(1.0, np.full(960, 3000, dtype=np.int16), 48_000)
    assert (quiet.is_speech, loud.is_speech) == (False, True)
    assert loud.duration_s == 0.02
