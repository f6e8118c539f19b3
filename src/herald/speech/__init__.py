"""Speech: utterance handles, the per-instance scheduler, TTS engines and the audio sources they feed."""
