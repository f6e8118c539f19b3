"""Listening: what people in a call say — voice activity detection (Silero) and speech recognition.

``vad.VoiceActivity`` turns a participant's canonical 20 ms frames into ``SpeechStarted`` / ``SpeechEnded``
events; a ``asr.SpeechRecognizer`` turns each ended utterance (16 kHz) into text. Nothing here is imported
at package import: the PocketSphinx worker process imports this package and must start light.
"""
