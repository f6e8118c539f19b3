"""Silero VAD (v6) on onnxruntime, without torch: the model shared, its recurrent state kept per stream.

The ``silero-vad`` package is installed only for its model file (``--no-deps``: its Python code imports
torch, which Herald does not install); ``SileroStream.probability`` does what the package's
``OnnxWrapper.__call__`` does at 16 kHz: the model sees each 512-sample window after the last 64 samples of
the window before it, and carries a ``[2, 1, 128]`` state from one window to the next.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import onnxruntime

from herald.listening.asr import SAMPLE_RATE_HZ

WINDOW_SAMPLES: Final = 512
"""The model's step at 16 kHz: 32 ms."""
CONTEXT_SAMPLES: Final = 64
"""Samples of the previous window prepended to each one, as Silero's own wrapper does at 16 kHz."""
_STATE_SHAPE: Final = (2, 1, 128)
_SAMPLE_RATE: Final = np.array(SAMPLE_RATE_HZ, dtype=np.int64)

Float32Array = npt.NDArray[np.float32]


def default_model_path() -> Path:
    """The ONNX model shipped in the ``silero-vad`` package (located without importing that package)."""
    located = importlib.metadata.distribution("silero-vad").locate_file("silero_vad/data/silero_vad.onnx")
    return Path(str(located))


class SileroModel:
    """The loaded model; share one per process (``run`` is thread-safe), one ``stream()`` per participant."""

    def __init__(self, session: Any) -> None:
        self._session = session

    @classmethod
    def load(cls, path: Path | None = None) -> SileroModel:
        """Load the model (~60 ms) from ``path``, by default the one in the ``silero-vad`` package."""
        options = onnxruntime.SessionOptions()
        # A 32 ms window is a tiny graph: extra threads would only spin; every call runs on its caller's.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(
            str(path or default_model_path()), sess_options=options, providers=["CPUExecutionProvider"]
        )
        return cls(session)

    def stream(self) -> SileroStream:
        """A fresh stream: its own state and context, starting from silence."""
        return SileroStream(self)

    def run(self, samples: Float32Array, state: Float32Array) -> tuple[float, Float32Array]:
        """One step: ``samples`` is context + window, shape ``[1, 576]``; the speech probability and the
        next state."""
        probability, next_state = self._session.run(
            None, {"input": samples, "state": state, "sr": _SAMPLE_RATE}
        )
        return float(probability[0, 0]), np.asarray(next_state, dtype=np.float32)


class SileroStream:
    """One audio stream's view of the model. Not thread-safe: one stream, one owner."""

    def __init__(self, model: SileroModel) -> None:
        self._model = model
        self._input = np.zeros((1, CONTEXT_SAMPLES + WINDOW_SAMPLES), dtype=np.float32)
        self._state = np.zeros(_STATE_SHAPE, dtype=np.float32)

    def probability(self, window: Float32Array) -> float:
        """The probability (0 to 1) that ``window`` — 512 samples at 16 kHz in [-1, 1], following the
        previous window of this stream — is speech."""
        if window.shape != (WINDOW_SAMPLES,):
            raise ValueError(f"a window is {WINDOW_SAMPLES} samples, got shape {window.shape}")
        # The input buffer holds the previous window's last 64 samples, then this window.
        self._input[0, CONTEXT_SAMPLES:] = window
        probability, self._state = self._model.run(self._input, self._state)
        self._input[0, :CONTEXT_SAMPLES] = self._input[0, -CONTEXT_SAMPLES:]
        return probability

    def reset(self) -> None:
        """Forget the audio heard so far, as if the stream had just begun."""
        self._input.fill(0.0)
        self._state = np.zeros(_STATE_SHAPE, dtype=np.float32)
