"""``AgentConfig``: validated against ICE's rules, unknown keys kept, merged over the agent's defaults.

Only the fields Herald acts on are typed here; everything else a client sends is stored and returned as is.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Annotated, Any, Literal, cast, get_args

import annotated_types
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from herald.errors import InvalidParameter
from herald.events.model import ALL_EVENTS, CallbackTarget
from herald.media.fetch import check_url
from herald.speech.tts import VoiceSettings


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="allow")


class PronunciationRule(_Lenient):
    Type: str = "replacement"
    Word: str = Field(min_length=1)
    Pronunciation: str


class TtsSection(_Lenient):
    VoiceId: str | None = Field(default=None, max_length=64)
    SpeechRate: float | None = Field(default=None, ge=0.5, le=2.0)
    PronunciationRules: list[PronunciationRule] = Field(default_factory=list)


class InterruptSection(_Lenient):
    EnableVoiceInterrupt: bool = True
    InterruptWords: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default_factory=list, max_length=128
    )
    KeepInterruptWordsForLlm: bool = False
    NoInterruptMode: Literal["cache", "discard"] = "cache"
    """What becomes of the user's words spoken over a protected speech: a turn after it, or nothing."""


class EndpointSection(_Lenient):
    """Herald's extension: an OpenAI-compatible endpoint (``Url`` is the API's base, ``…/v1``)."""

    Url: str | None = Field(default=None, min_length=1, max_length=2048)
    Model: str | None = Field(default=None, min_length=1, max_length=256)
    ApiKey: str | None = Field(default=None, max_length=1024)
    """A secret: write-only, masked when the config is read back."""

    @field_validator("Url")
    @classmethod
    def _url(cls, url: str | None) -> str | None:
        if url is not None:
            violation = check_url(url)
            if violation is not None:
                raise ValueError(violation)
        return url

    @field_validator("ApiKey")
    @classmethod
    def _key(cls, key: str | None) -> str | None:
        if key is not None and not all(" " < c <= "~" for c in key):
            raise ValueError("must be printable ASCII without spaces: it is sent in the Authorization header")
        return key


class AsrSection(EndpointSection):
    AsrMaxSilence: int | None = Field(default=None, ge=200, le=1200)
    """Silence (ms) that ends what the user says: 200 to 1200, default 400."""
    VadLevel: int | None = Field(default=None, ge=0, le=11)
    """How hard the user's voice must be to barge in: 0 voice never barges in, 1 (easiest) to 10
    (hardest), 11 (default) Silero's own balance."""
    VadDuration: int | None = Field(default=None, ge=0, le=2000)
    """Continuous speech (ms) it takes to barge in: 0 or omitted, as soon as speech is detected."""
    AsrLanguageId: str | None = Field(default=None, max_length=32)

    @field_validator("VadDuration")
    @classmethod
    def _duration(cls, value: int | None) -> int | None:
        if value is not None and 0 < value < 200:
            raise ValueError("must be 0 (off) or between 200 and 2000")
        return value


class HistoryItem(_Lenient):
    Role: Literal["system", "user", "assistant"]
    Content: str = Field(max_length=16384)


class LlmSection(EndpointSection):
    LlmSystemPrompt: str | None = Field(default=None, max_length=16384)
    LlmHistory: list[HistoryItem] = Field(default_factory=list, max_length=200)
    LlmHistoryLimit: int | None = Field(default=None, ge=0, le=100)
    """How many recent turns (a user message and the agent's answer) go to the LLM; default 10."""
    HistorySyncWithTTS: bool = False
    OutputMinLength: int | None = Field(default=None, ge=0, le=100)


class AutoSpeechMessage(_Lenient):
    Text: str = Field(min_length=1, max_length=100)
    Probability: float | None = Field(default=None, ge=0, le=1)


class UserIdleSection(_Lenient):
    WaitTime: int = Field(ge=5000, le=600000)
    """Silence (ms) after which the agent prompts the user."""
    MaxRepeats: int = Field(ge=0, le=10)
    """Prompts in a row without an answer; one more silence and the agent hangs up."""
    Messages: list[AutoSpeechMessage] = Field(min_length=1, max_length=10)


class LlmPendingSection(_Lenient):
    WaitTime: int = Field(ge=500, le=10000)
    """How long (ms) the LLM may keep the user waiting before the agent says a filler."""
    Mode: Literal["random", "sequence"] = "random"
    Messages: list[AutoSpeechMessage] = Field(min_length=1, max_length=10)


class ApologySection(_Lenient):
    """Herald's extension: what the agent says when the LLM or the speech recogniser fails."""

    Messages: list[AutoSpeechMessage] = Field(min_length=1, max_length=10)


class AutoSpeechSection(_Lenient):
    UserIdle: UserIdleSection | None = None
    LlmPending: LlmPendingSection | None = None
    Apology: ApologySection | None = None


class CallbackSection(_Lenient):
    """Herald's extension: where the instance's events are POSTed (``docs/events.md``)."""

    Url: str = Field(min_length=1, max_length=2048)
    Token: str | None = Field(default=None, max_length=1024)
    Events: list[str] | None = None
    """Only these events (omitted or empty: every event)."""

    @field_validator("Token")
    @classmethod
    def _token(cls, token: str | None) -> str | None:
        if token is not None and not all(" " <= c <= "~" for c in token):
            raise ValueError("must be printable ASCII: it is sent as the Authorization header")
        return token

    @field_validator("Url")
    @classmethod
    def _url(cls, url: str) -> str:
        violation = check_url(url)
        if violation is not None:
            raise ValueError(violation)
        return url

    @field_validator("Events")
    @classmethod
    def _events(cls, events: list[str] | None) -> list[str] | None:
        unknown = sorted(set(events or ()) - ALL_EVENTS)
        if unknown:
            raise ValueError(f"unknown events {unknown}; known: {sorted(ALL_EVENTS)}")
        return events


class AgentConfigModel(_Lenient):
    Greeting: str | None = Field(default=None, max_length=1024)
    GracefulShutdown: bool | None = None
    MaxIdleTime: int | None = Field(default=None, ge=0)
    UserOnlineTimeout: int | None = Field(default=None, ge=0)
    UserOfflineTimeout: int | None = Field(default=None, ge=0)
    Volume: int | None = Field(default=None, ge=0, le=400)
    TtsConfig: TtsSection | None = None
    InterruptConfig: InterruptSection | None = None
    AsrConfig: AsrSection | None = None
    LlmConfig: LlmSection | None = None
    AutoSpeechConfig: AutoSpeechSection | None = None
    CallbackConfig: CallbackSection | None = None


def field_range(loc: tuple[str, ...]) -> tuple[float, float] | None:
    """The ``ge``/``le`` bounds the model declares for the field at ``loc``, when it declares both.

    Read from the model itself, so an out-of-range message states the whole range (pydantic names only
    the bound that was crossed) without a second copy of the limits.
    """
    model: type[BaseModel] = AgentConfigModel
    info = None
    for name in loc:
        info = model.model_fields.get(name)
        if info is None:
            return None
        nested = next(
            (a for a in get_args(info.annotation) if isinstance(a, type) and issubclass(a, BaseModel)), None
        )
        model = nested if nested is not None else model
    low = next((m.ge for m in info.metadata if isinstance(m, annotated_types.Ge)), None) if info else None
    high = next((m.le for m in info.metadata if isinstance(m, annotated_types.Le)), None) if info else None
    # Kept as declared (ints stay ints), so the message reads "between 0 and 400".
    return None if low is None or high is None else cast(tuple[float, float], (low, high))


_OUT_OF_RANGE = frozenset({"greater_than_equal", "less_than_equal", "greater_than", "less_than"})


def merge_agent_config(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``override`` over ``base`` as ``deep_merge``, except that a ``CallbackConfig`` naming a ``Url``
    replaces the base's whole, and an ``LlmConfig`` or ``AsrConfig`` naming a ``Url`` drops the base's
    ``ApiKey``: a caller who names their own URL never inherits the base's secret."""
    merged = deep_merge(base, override)
    callback = override.get("CallbackConfig")
    if isinstance(callback, dict) and "Url" in callback:
        merged["CallbackConfig"] = copy.deepcopy(callback)
    for section in ("LlmConfig", "AsrConfig"):  # the base's key is never sent to the caller's own URL
        part = override.get(section)
        if isinstance(part, dict) and "Url" in part and "ApiKey" not in part:
            merged[section].pop("ApiKey", None)
    return merged


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``override`` over ``base``: nested objects merge key by key, anything else is replaced."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def validate_agent_config(
    raw: dict[str, Any], *, voice_ids: Sequence[str], parameter: str = "AgentConfig"
) -> AgentConfigModel:
    """Check ``raw`` against ICE's rules; errors name the field (``AgentConfig.TtsConfig.SpeechRate``)."""
    try:
        model = AgentConfigModel.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = tuple(str(part) for part in first["loc"])
        path = ".".join((parameter, *loc))
        bounds = field_range(loc)
        if bounds is not None and first["type"] in _OUT_OF_RANGE:
            rule = f"must be between {bounds[0]} and {bounds[1]} (got {first.get('input')!r})."
        else:
            rule = f"{first['msg']} (got {first.get('input')!r})."
        raise InvalidParameter(path, rule) from None
    voice_id = model.TtsConfig.VoiceId if model.TtsConfig else None
    if voice_id is not None and voice_id not in voice_ids:
        raise InvalidParameter(
            f"{parameter}.TtsConfig.VoiceId",
            f"unknown voice {voice_id!r}; available: {', '.join(voice_ids)}.",
        )
    return model


def voice_settings(model: AgentConfigModel, *, default_voice_id: str) -> VoiceSettings:
    tts = model.TtsConfig
    return VoiceSettings(
        voice_id=(tts.VoiceId if tts and tts.VoiceId else default_voice_id),
        speech_rate=(tts.SpeechRate if tts and tts.SpeechRate is not None else 1.0),
        volume_percent=(model.Volume if model.Volume is not None else 100),
    )


def pronunciation_rules(model: AgentConfigModel) -> list[tuple[str, str]]:
    """``TtsConfig.PronunciationRules`` of type ``replacement``, as ``(word, pronunciation)`` pairs."""
    tts = model.TtsConfig
    if tts is None:
        return []
    return [(r.Word, r.Pronunciation) for r in tts.PronunciationRules if r.Type.lower() == "replacement"]


def callback_target(model: AgentConfigModel) -> CallbackTarget | None:
    """Where the instance's events go, if anywhere (``AgentConfig.CallbackConfig``)."""
    section = model.CallbackConfig
    if section is None:
        return None
    return CallbackTarget(section.Url, section.Token or "", frozenset(section.Events or ()))


def stored_callback_target(raw: dict[str, Any]) -> CallbackTarget | None:
    """The callback of a stored ``AgentConfig`` (validated when it was stored); ``None`` if it has none
    or no longer reads as valid."""
    try:
        return callback_target(AgentConfigModel.model_validate(raw))
    except ValidationError:
        return None


REDACTED = "******"


_SECRETS = (("CallbackConfig", "Token"), ("LlmConfig", "ApiKey"), ("AsrConfig", "ApiKey"))
"""Write-only fields of ``AgentConfig``: (section, key)."""


def without_secrets(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` as shown to callers: secrets (the callback token, API keys) masked."""
    shown = config
    for section, key in _SECRETS:
        part = config.get(section)
        if isinstance(part, dict) and part.get(key):
            if shown is config:
                shown = copy.deepcopy(config)
            shown[section][key] = REDACTED
    return shown
