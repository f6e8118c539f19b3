"""AgentConfig: ICE's limits enforced with the field named, unknown keys kept, merges key by key."""

from __future__ import annotations

import pytest

from herald.agents.settings import deep_merge, validate_agent_config, voice_settings
from herald.errors import InvalidParameter

VOICES = ("en_US-joe-medium",)


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"TtsConfig": {"SpeechRate": 2.5}}, "AgentConfig.TtsConfig.SpeechRate"),
        ({"TtsConfig": {"SpeechRate": 0.4}}, "AgentConfig.TtsConfig.SpeechRate"),
        ({"Volume": 401}, "AgentConfig.Volume"),
        ({"Volume": -1}, "AgentConfig.Volume"),
        ({"TtsConfig": {"VoiceId": "x" * 65}}, "AgentConfig.TtsConfig.VoiceId"),
        ({"TtsConfig": {"VoiceId": "nobody"}}, "AgentConfig.TtsConfig.VoiceId"),
        ({"MaxIdleTime": "soon"}, "AgentConfig.MaxIdleTime"),
        ({"TtsConfig": "fast"}, "AgentConfig.TtsConfig"),
    ],
)
def test_out_of_range_values_are_refused_naming_the_field(config: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidParameter) as caught:
        validate_agent_config(config, voice_ids=VOICES)
    assert caught.value.parameter == field
    assert field in caught.value.message


def test_unknown_keys_and_the_sdks_empty_lists_are_tolerated() -> None:
    config = {
        "BackChannelingConfig": [],
        "Future": {"x": 1},
        "TtsConfig": {"PronunciationRules": [], "Odd": 1},
    }
    model = validate_agent_config(config, voice_ids=VOICES)
    assert model.model_extra == {"BackChannelingConfig": [], "Future": {"x": 1}}


def test_voice_settings_default_to_the_engines_first_voice_at_natural_pace() -> None:
    voice = voice_settings(validate_agent_config({}, voice_ids=VOICES), default_voice_id="en_US-joe-medium")
    assert (voice.voice_id, voice.speech_rate, voice.volume_percent) == ("en_US-joe-medium", 1.0, 100)
    tuned = validate_agent_config({"TtsConfig": {"SpeechRate": 1.5}, "Volume": 250}, voice_ids=VOICES)
    voice = voice_settings(tuned, default_voice_id="en_US-joe-medium")
    assert (voice.speech_rate, voice.volume_percent) == (1.5, 250)


def test_merge_is_key_by_key_for_objects_and_replaces_everything_else() -> None:
    base = {"TtsConfig": {"VoiceId": "a", "SpeechRate": 1.0}, "Words": ["x"], "Volume": 100}
    merged = deep_merge(base, {"TtsConfig": {"SpeechRate": 1.5}, "Words": ["y"]})
    assert merged == {"TtsConfig": {"VoiceId": "a", "SpeechRate": 1.5}, "Words": ["y"], "Volume": 100}
    assert base["TtsConfig"] == {"VoiceId": "a", "SpeechRate": 1.0}  # the agent's defaults are untouched


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"TtsConfig": {"SpeechRate": 2.5}}, "must be between 0.5 and 2.0 (got 2.5)"),
        ({"Volume": 401}, "must be between 0 and 400 (got 401)"),
    ],
)
def test_range_errors_state_the_whole_range(config: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidParameter) as caught:
        validate_agent_config(config, voice_ids=VOICES)
    assert message in caught.value.message
