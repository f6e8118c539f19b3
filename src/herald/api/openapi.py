"""The OpenAPI 3.1 document of Herald's RPC actions, served at ``GET /openapi.json`` (docs/openapi.md).

ICE's RPC style has a single path, ``POST /``, and names the action in a parameter. OpenAPI needs one path
key per operation, so each action is keyed ``/#<Action>``: the fragment never leaves the client, the request
goes to ``/``, and the operation's required ``Action`` and ``Version`` query parameters (one allowed value
each) name it on the wire. Parameters and limits are those the handlers enforce (``instance_actions``,
``speech_actions``, ``channel_actions``, ``params``); error codes come from ``herald.errors`` and their
statuses from ``envelope.status_for``, the one map from codes to statuses.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse

from herald import errors
from herald.agents.registry import DEFAULT_AGENT_ID
from herald.agents.requests import SpeechKind
from herald.agents.settings import AgentConfigModel
from herald.agents.state import HangupRole, InstanceStatus
from herald.api.channel_actions import MAX_MESSAGE_CHARS
from herald.api.context import API_VERSION
from herald.api.envelope import status_for
from herald.api.idempotency import MAX_TOKEN_CHARS, TOKEN_PARAM
from herald.api.instance_actions import MAX_EXPIRE_S
from herald.api.signed import MAX_BODY_BYTES
from herald.api.speech_actions import MAX_SPEECH_CHARS, MAX_USER_TEXT_CHARS
from herald.speech.scheduler import ArrivalPolicy

Schema = dict[str, Any]

SECURITY_SCHEME: Final = "ACS3-HMAC-SHA256"
RETRY_AFTER_HEADER: Final = "x-acs-retry-after"
# Codes whose errors are raised by code being written alongside this document; their statuses are the
# wire contract's (docs/ice-wire.md), as envelope.status_for will give them.
PENDING_CODES: Final = {"Throttling.User": 400, "Forbidden.RAM": 403}
MAX_PAGE_NUMBER: Final = 1_000_000
MAX_PAGE_SIZE: Final = 100
MAX_DIALOGUE_MS: Final = 2**53
BLANK: Final = r"^\s*$"
"""A value that counts as absent, where one does."""
EMPTY: Final[dict[str, Any]] = {"const": ""}
"""An optional integer, number or boolean sent empty: its default."""

_DESCRIPTION = f"""\
Herald speaks the RPC wire protocol of Alibaba Cloud ICE (API version `{API_VERSION}`) for its AI-agent
actions; the official SDKs work against it with only the endpoint changed.

**One path, one operation per action.** Every action is `POST /`. OpenAPI needs one path key per operation,
so each is keyed `/#<Action>`: the fragment is never sent (clients drop it), the request goes to `/`, and the
operation's required query parameters `Action` (one allowed value: the action's name) and `Version`
(`{API_VERSION}`) name it. Clients signing with V3 may instead send them as the headers `x-acs-action` and
`x-acs-version`.

**Parameters** travel in the query string (as the SDK sends them) or, equally, in an
`application/x-www-form-urlencoded` body; a name may appear once. Every value is a string on the wire:
integers in decimal, booleans `true`/`false` in any case, and nested configurations (`AgentConfig`,
`RuntimeConfig`, ...) as one parameter holding a JSON object (`contentMediaType: application/json`, its
`contentSchema` saying what Herald checks inside; unknown keys are kept). An optional integer, boolean,
time or JSON parameter sent empty counts as absent. Unknown parameters are ignored. Parameters marked
"Herald's" are extensions the official SDKs never send.

**Signing**: every request carries an `ACS3-HMAC-SHA256` signature (or the older V1 `HMAC-SHA1` signature
parameters); see the security scheme and docs/ice-wire.md.

**Errors** answer with a 4xx or 5xx status and the ICE envelope
`{{RequestId, HostId, Code, Message, Recommend}}`; each error response lists the codes it carries.
A request body over {MAX_BODY_BYTES} bytes is refused with 413.
"""

_SIGNING = """\
Alibaba Cloud's V3 signature (docs/ice-wire.md, "Signature V3"):
`Authorization: ACS3-HMAC-SHA256 Credential=<AccessKeyId>,SignedHeaders=<h1;h2;...>,Signature=<hex>`,
an HMAC-SHA256 with the AccessKeySecret over the canonical request (method, path, sorted RFC 3986-encoded
query, the signed headers, the body's SHA-256). `SignedHeaders` must include `host` and every `x-acs-*` header
sent; `x-acs-date` (UTC, within 15 minutes of the server's clock), `x-acs-signature-nonce` (never reused) and
`x-acs-content-sha256` are required. The V1 `HMAC-SHA1` signature in the parameters `AccessKeyId`,
`Signature`, `SignatureMethod`, `SignatureVersion`, `SignatureNonce` and `Timestamp` is accepted too.
"""

_JSON_NOTE = "A JSON object as one string; unknown keys are kept."
_ABSENT_NOTE = "Empty or blank counts as absent."

# ---- parameters ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    schema: Schema
    description: str
    required: bool = False

    def as_openapi(self) -> Schema:
        return {
            "name": self.name,
            "in": "query",
            "required": self.required,
            "description": self.description,
            "schema": self.schema,
        }


def text(
    name: str,
    description: str,
    *,
    max_len: int | None = None,
    required: bool = False,
    allow_empty: bool = False,
    **extra: Any,
) -> Param:
    """A string as ``Params.text`` reads it: empty is refused unless ``allow_empty``."""
    schema: Schema = {"type": "string"}
    if not allow_empty:
        schema["minLength"] = 1
    if max_len is not None:
        schema["maxLength"] = max_len
    return Param(name, schema | extra, description, required)


def integer(name: str, description: str, *, minimum: int, maximum: int, default: int | None = None) -> Param:
    """An integer as ``Params.integer`` reads it (decimal; empty means the default)."""
    schema: Schema = {"anyOf": [{"type": "integer", "minimum": minimum, "maximum": maximum}, EMPTY]}
    if default is not None:
        schema["default"] = default
    return Param(name, schema, description)


def iso_time(name: str, description: str) -> Param:
    """A time as ``Params.time`` reads it: ISO 8601, as Python's ``datetime.fromisoformat`` reads it."""
    return Param(
        name,
        {
            "type": "string",
            "anyOf": [{"format": "date-time"}, {"pattern": BLANK}],
            "examples": ["2026-11-21T08:00:00Z"],
        },
        f"{description} ISO 8601 (RFC 3339 date-times, and the other forms Python's "
        f"`datetime.fromisoformat` reads); no zone means UTC. {_ABSENT_NOTE}",
    )


def flag(name: str, description: str, *, default: bool) -> Param:
    schema: Schema = {"anyOf": [{"type": "boolean"}, EMPTY], "default": default}
    return Param(name, schema, f"{description} `true` or `false`, any case.")


def json_object(
    name: str,
    description: str,
    content_schema: Schema | None = None,
    *,
    required: bool = False,
    example: dict[str, Any] | None = None,
) -> Param:
    """A JSON object in one string parameter, as ``Params.json_object`` reads it."""
    json_text: Schema = {
        "contentMediaType": "application/json",
        "contentSchema": content_schema or {"type": "object"},
    }
    if required:  # a blank value is then refused, not taken as absent
        schema: Schema = {"type": "string", "minLength": 1, **json_text}
    else:
        schema = {"type": "string", "anyOf": [json_text, {"pattern": BLANK}]}
    if example is not None:
        schema["examples"] = [json.dumps(example)]
    note = _JSON_NOTE if required else f"{_JSON_NOTE} {_ABSENT_NOTE}"
    return Param(name, schema, f"{description} {note}", required)


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


INSTANCE_ID = text("InstanceId", "The instance (as GenerateAIAgentCall or StartAIAgentInstance returned it).",
                   max_len=64, required=True)  # fmt: skip
AGENT_ID = text("AIAgentId", "The agent; one the server does not know gives `AgentNotFound`.",
                max_len=128, required=True, examples=[DEFAULT_AGENT_ID])  # fmt: skip
CLIENT_TOKEN = text(
    TOKEN_PARAM,
    "Idempotency key: a retry with the same token and parameters (within 24 h) gets the first answer and "
    "acts once; the same token with other parameters gives `IdempotentParameterMismatch`. "
    f"1 to {MAX_TOKEN_CHARS} printable ASCII characters.",
    max_len=MAX_TOKEN_CHARS,
    pattern="^[ -~]+$",
)
AGENT_CONFIG = json_object(
    "AgentConfig",
    "Settings over the agent's defaults (merged key by key), checked against the `AgentConfig` schema; "
    "`TtsConfig.VoiceId` must be a voice the server has and `CallbackConfig.Url` an http(s) URL.",
    _ref("AgentConfig"),
    example={"Greeting": "Hello! How can I help?", "TtsConfig": {"SpeechRate": 1.1}, "Volume": 120},
)
TEMPLATE_CONFIG = json_object("TemplateConfig", "The older form of configuration, stored and returned as is.")
CHAT_SYNC_CONFIG = json_object("ChatSyncConfig", "Stored as is.")
SESSION_ID = text("SessionId", "The session the dialogues are filed under (default: the instance's id).",
                  max_len=128)  # fmt: skip
USER_DATA = text("UserData", "Caller's data, stored and returned as is.", max_len=8192, allow_empty=True)


def _new_instance_params() -> list[Param]:
    return [AGENT_ID, AGENT_CONFIG, TEMPLATE_CONFIG, CHAT_SYNC_CONFIG, SESSION_ID, USER_DATA]


# ---- response bodies -----------------------------------------------------------------------------------

_STRING: Schema = {"type": "string"}
_TIME: Schema = {"type": "string", "format": "date-time", "description": "UTC, `YYYY-MM-DDTHH:MM:SSZ`."}

INSTANCE: Schema = {
    "type": "object",
    "required": ["InstanceId", "AIAgentId", "AgentConfig", "CallInfo", "CallLogUrl", "GmtCreate",
                 "GmtModified", "RuntimeConfig", "SessionId", "Status"],
    "properties": {
        "InstanceId": _STRING,
        "AIAgentId": _STRING,
        "AgentConfig": {"type": "object", "description": "In effect; the callback token shown as `******`."},
        "CallInfo": {
            "type": "object",
            "properties": {
                "CallStartTime": _TIME,
                "CallEndTime": _TIME,
                "CallDuration": {"type": "integer", "minimum": 0, "description": "Seconds."},
                "HangupRole": {"type": "integer", "enum": [int(r) for r in HangupRole],
                               "description": "0 agent, 1 user, 2 system."},
            },
        },
        "CallLogUrl": _STRING,
        "GmtCreate": _TIME,
        "GmtModified": _TIME,
        "RuntimeConfig": {
            "type": "object",
            "properties": {"ChannelId": _STRING, "AgentUserId": _STRING},
        },
        "SessionId": _STRING,
        "Status": {"type": "string", "enum": [s.value for s in InstanceStatus]},
        "TemplateConfig": {"type": "object"},
        "UserData": _STRING,
    },
}  # fmt: skip

DIALOGUE: Schema = {
    "type": "object",
    "required": ["DialogueId", "RoundId", "Producer", "Text", "Time", "Source", "Type", "Extend"],
    "properties": {
        "DialogueId": _STRING,
        "RoundId": _STRING,
        "Producer": {"type": "string", "enum": ["user", "agent"]},
        "Text": {"type": "string", "description": "For the agent: what was actually heard."},
        "Time": {"type": "integer", "description": "Unix time in milliseconds."},
        "Source": {"type": "string", "description": "`call` or `chat`."},
        "Type": {"type": "string", "description": "`speech` (pushed), `greeting`, `normal`, ..."},
        "Extend": {"type": "string", "contentMediaType": "application/json",
                   "description": "Herald's outcome details (RequestId, Outcome, PlayedMs, Reason, ...)."},
    },
}  # fmt: skip

# ---- errors --------------------------------------------------------------------------------------------

COMMON_ERRORS: Final[tuple[type[errors.HeraldError], ...]] = (
    errors.MissingParameter,
    errors.InvalidParameter,
    errors.IncompleteSignature,
    errors.SignatureDoesNotMatch,
    errors.InvalidTimeStampFormat,
    errors.InvalidTimeStampExpired,
    errors.SignatureNonceUsed,
    errors.InvalidAccessKeyIdInactive,
    errors.InvalidAccessKeyIdNotFound,
    errors.ApiNotFound,
    errors.RequestTooLarge,
    errors.MethodNotAllowed,
    errors.InternalError,
    errors.ServiceUnavailable,
)
"""What any action can answer: bad parameters, signature and key problems, an unknown action or version,
an oversized body, a bug, a server that is draining."""

_ERROR_MEANINGS: Final = {
    errors.MissingParameter.code: "a required parameter is absent (the message names it)",
    errors.InvalidParameter.code: "a value is malformed, out of range or repeated (the message names it)",
    errors.IncompleteSignature.code: "the request is not signed, or its signature fields are malformed",
    errors.SignatureDoesNotMatch.code: "the signature differs from the server's",
    errors.InvalidTimeStampFormat.code: "`x-acs-date`/`Timestamp` is not `YYYY-MM-DDTHH:MM:SSZ`",
    errors.InvalidTimeStampExpired.code: "the request's time is over 15 minutes from the server's",
    errors.SignatureNonceUsed.code: "the signature nonce was used recently",
    errors.InvalidAccessKeyIdInactive.code: "the AccessKeyId is disabled",
    errors.InvalidAccessKeyIdNotFound.code: "the AccessKeyId is unknown",
    errors.ApiNotFound.code: "the action or version is not supported",
    errors.RequestTooLarge.code: f"the body is over {MAX_BODY_BYTES} bytes",
    errors.MethodNotAllowed.code: "an HTTP method other than POST or GET (`Allow` names them)",
    errors.InternalError.code: "a bug in Herald (never bad input)",
    errors.ServiceUnavailable.code: "the server is draining or overloaded; retry later",
    errors.AgentNotFound.code: "the AIAgentId is unknown",
    errors.InstanceNotFound.code: "the instance does not exist, or is another account's",
    errors.IncorrectInstanceStatus.code: "the instance is not running (finished or stopping)",
    errors.IdempotentParameterMismatch.code: "the ClientToken was used with other parameters",
    "Throttling.User": f"the per-account rate limit; `{RETRY_AFTER_HEADER}` says when to retry",
    "Forbidden.RAM": "a policy does not allow the action (`AccessDeniedDetail` says which)",
}


def status_of(error: type[errors.HeraldError]) -> int:
    """The HTTP status ``envelope.status_for`` gives an error of class ``error``."""
    # status_for reads only the class's code and type; the message is irrelevant.
    return status_for(error.__new__(error))


def codes_by_status(specific: Iterable[type[errors.HeraldError]]) -> dict[int, list[str]]:
    """Every code an action with the errors ``specific`` (besides the common ones) can answer, by status."""
    by_status: dict[int, list[str]] = {}
    for error in (*COMMON_ERRORS, *specific):
        by_status.setdefault(status_of(error), []).append(error.code)
    for code, status in PENDING_CODES.items():
        by_status.setdefault(status, []).append(code)
    return dict(sorted(by_status.items()))


ERROR_ENVELOPE: Schema = {
    "type": "object",
    "required": ["RequestId", "HostId", "Code", "Message", "Recommend"],
    "properties": {
        "RequestId": _STRING,
        "HostId": _STRING,
        "Code": _STRING,
        "Message": _STRING,
        "Recommend": _STRING,
        "AccessDeniedDetail": {
            "type": "object",
            "description": "With `Forbidden.RAM`: the policy decision (action, resource, policy type).",
        },
    },
}


def error_response(status: int, codes: list[str]) -> Schema:
    lines = "\n".join(f"- `{code}`: {_ERROR_MEANINGS.get(code, '')}" for code in codes)
    schema: Schema = {"allOf": [_ref("ErrorEnvelope"), {"properties": {"Code": {"enum": codes}}}]}
    if status == PENDING_CODES["Forbidden.RAM"]:
        schema["allOf"].append({"required": ["AccessDeniedDetail"]})
    response: Schema = {
        "description": f"The ICE error envelope; `Code` is one of:\n{lines}",
        "content": {"application/json": {"schema": schema}},
    }
    if "Throttling.User" in codes:
        response["headers"] = {
            RETRY_AFTER_HEADER: {
                "description": "With `Throttling.User`: milliseconds to wait before retrying.",
                "schema": {"type": "integer", "minimum": 0},
            }
        }
    return response


# ---- the actions ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ActionSpec:
    summary: str
    params: list[Param]
    body: Schema = field(default_factory=dict)
    """The 200 body's fields besides ``RequestId`` (all of them always present)."""
    errors: tuple[type[errors.HeraldError], ...] = ()
    """The action's own errors, besides ``COMMON_ERRORS``."""
    tag: str = "instances"


_BY_INSTANCE = (errors.InstanceNotFound, errors.IncorrectInstanceStatus)

SPECS: Final[dict[str, ActionSpec]] = {
    "StartAIAgentInstance": ActionSpec(
        "Start an agent in a channel the caller names.",
        [
            AGENT_ID,
            json_object(
                "RuntimeConfig",
                "Where the agent joins: `ChannelId` (required: 1 to 128 characters, not blank) and "
                "`AgentUserId` (at most 64), at the top level or, in the older form, nested under "
                "`VoiceChat`, `VisionChat` or `AvatarChat3D`. A channel with a live instance is refused.",
                _ref("RuntimeConfig"),
                required=True,
                example={"ChannelId": "room-1", "AgentUserId": "agent-1"},
            ),
            *_new_instance_params()[1:],
            CLIENT_TOKEN,
        ],
        {"InstanceId": _STRING},
        (errors.AgentNotFound, errors.IdempotentParameterMismatch),
    ),
    "StopAIAgentInstance": ActionSpec(
        "Stop an instance (with `GracefulShutdown`, after the current utterance, at most 10 s).",
        [INSTANCE_ID],
        errors=_BY_INSTANCE,
    ),
    "UpdateAIAgentInstance": ActionSpec(
        "Change a running instance's settings; they apply from the next utterance.",
        [INSTANCE_ID, AGENT_CONFIG, TEMPLATE_CONFIG, USER_DATA],
        errors=_BY_INSTANCE,
    ),
    "DescribeAIAgentInstance": ActionSpec(
        "An instance's state, settings and call times.",
        [INSTANCE_ID],
        {"Instance": _ref("Instance")},
        (errors.InstanceNotFound,),
    ),
    "ListAIAgentInstance": ActionSpec(
        "The caller's instances of an agent, newest first.",
        [
            AGENT_ID,
            iso_time("StartTime", "Only instances created at or after this time."),
            iso_time("EndTime", "Only instances created at or before this time; not before StartTime."),
            integer("PageNumber", "Page, from 1.", minimum=1, maximum=MAX_PAGE_NUMBER, default=1),
            integer("PageSize", "Instances per page.", minimum=1, maximum=MAX_PAGE_SIZE, default=10),
        ],
        {
            "Instances": {"type": "array", "items": _ref("Instance")},
            "PageNumber": {"type": "integer"},
            "PageSize": {"type": "integer"},
        },
        (errors.AgentNotFound,),
    ),
    "GenerateAIAgentCall": ActionSpec(
        "A new channel with an agent in it, and a call token for the user to join.",
        [
            *_new_instance_params(),
            text("UserId", "The user's id in the call (default: generated).", max_len=64),
            integer(
                "Expire", "The token's lifetime in seconds.", minimum=1, maximum=MAX_EXPIRE_S, default=3600
            ),
            CLIENT_TOKEN,
        ],
        {
            "InstanceId": _STRING,
            "ChannelId": _STRING,
            "UserId": _STRING,
            "AIAgentUserId": _STRING,
            "AvatarUserId": _STRING,
            "Token": {
                "type": "string",
                "description": "The call token (JWT) for the audio WebSocket or WebRTC.",
            },
        },
        (errors.AgentNotFound, errors.IdempotentParameterMismatch),
    ),
    "SendAIAgentSpeech": ActionSpec(
        "Make the agent say a text, or play an audio URL, now (the speech's id is this request's RequestId).",
        [
            INSTANCE_ID,
            text(
                "Text",
                f"What to say, at most {MAX_SPEECH_CHARS} characters, not only white space; with "
                "`Type=AudioUrl`, the http(s) URL of the audio (no user name or password; an IP address "
                "must be public unless the server allows it).",
                max_len=MAX_SPEECH_CHARS,
                required=True,
                pattern=r"\S",
                examples=["Your order has shipped; it arrives tomorrow."],
            ),
            flag(
                "EnableInterrupt",
                "Whether it cuts what the agent is saying (else it is queued).",
                default=True,
            ),
            Param(
                "Type",
                {"type": "string", "enum": [k.value for k in SpeechKind], "default": SpeechKind.TEXT.value},
                "What `Text` holds.",
            ),
            text("VoiceId", "Herald's: a voice the server has, for this speech only.", max_len=64),
            Param(
                "Policy",
                {"type": "string", "enum": [p.value for p in ArrivalPolicy]},
                "Herald's: what it does to speech already playing or queued (any case; overrides "
                "`EnableInterrupt`, which when also given must agree: `true` only with `interrupt`).",
            ),
            flag("Protected", "Herald's: whether the user's voice may not interrupt it.", default=False),
            flag("EndCallAfterSpoken", "Herald's: whether the call ends once it is spoken.", default=False),
            Param(
                "SpeechRate",
                {"anyOf": [{"type": "number", "minimum": 0.5, "maximum": 2.0}, EMPTY]},
                "Herald's: speed for this speech.",
            ),
            integer("Volume", "Herald's: volume in percent for this speech.", minimum=0, maximum=400),
            flag(
                "AddToHistory",
                "Herald's: whether what the user hears of it joins the LLM's history.",
                default=False,
            ),
            CLIENT_TOKEN,
        ],
        errors=(*_BY_INSTANCE, errors.IdempotentParameterMismatch),
        tag="speech",
    ),
    "SendAIAgentText": ActionSpec(
        "Give the agent a user turn as text: what is playing is cut (`1016` reason 5) and the agent's LLM "
        "answers it aloud.",
        [
            INSTANCE_ID,
            text(
                "Text",
                f"What the user says, at most {MAX_USER_TEXT_CHARS} characters, not only white space.",
                max_len=MAX_USER_TEXT_CHARS,
                required=True,
                pattern=r"\S",
                examples=["What time do you open tomorrow?"],
            ),
            CLIENT_TOKEN,
        ],
        errors=(*_BY_INSTANCE, errors.IdempotentParameterMismatch, errors.NoLlm),
        tag="speech",
    ),
    "ListAIAgentDialogues": ActionSpec(
        "What was said in a session (an unknown session has none).",
        [
            text("SessionId", "The session (an instance's SessionId).", max_len=128, required=True),
            integer(
                "StartTime",
                "From this Unix time in milliseconds.",
                minimum=0,
                maximum=MAX_DIALOGUE_MS,
                default=0,
            ),
            integer(
                "EndTime",
                "Until this Unix time in milliseconds; not before StartTime.",
                minimum=0,
                maximum=MAX_DIALOGUE_MS,
                default=MAX_DIALOGUE_MS,
            ),
            Param(
                "Order", {"type": "string", "enum": ["ASC", "DESC"], "default": "DESC"}, "By time; any case."
            ),
            integer("RoundLimit", "At most this many rounds.", minimum=1, maximum=1000),
            integer("PageNumber", "Page, from 1.", minimum=1, maximum=MAX_PAGE_NUMBER, default=1),
            integer("PageSize", "Dialogues per page.", minimum=1, maximum=MAX_PAGE_SIZE, default=20),
        ],
        {"Dialogues": {"type": "array", "items": _ref("Dialogue")}},
        tag="speech",
    ),
    "SendAIAgentDataChannelMessage": ActionSpec(
        "Send a custom message (`1011`) to everyone in the instance's call.",
        [
            INSTANCE_ID,
            text(
                "Message",
                f"Any JSON value as a string, at most {MAX_MESSAGE_CHARS} characters.",
                max_len=MAX_MESSAGE_CHARS,
                required=True,
                contentMediaType="application/json",
                examples=['{"type": "notice", "text": "The agent will call you back."}'],
            ),
        ],
        errors=_BY_INSTANCE,
        tag="channel",
    ),
}


def _operation(action: str, spec: ActionSpec) -> Schema:
    dispatch = [
        Param("Action", {"type": "string", "enum": [action]}, "The action's name.", required=True),
        Param("Version", {"type": "string", "enum": [API_VERSION]}, "The ICE API version.", required=True),
    ]
    body: Schema = {
        "type": "object",
        "required": ["RequestId", *spec.body],
        "properties": {"RequestId": _STRING, **spec.body},
    }
    responses: Schema = {
        "200": {"description": "Done.", "content": {"application/json": {"schema": body}}},
    }
    for status, codes in codes_by_status(spec.errors).items():
        responses[str(status)] = error_response(status, codes)
    return {
        "operationId": action,
        "summary": spec.summary,
        "tags": [spec.tag],
        "parameters": [p.as_openapi() for p in (*dispatch, *spec.params)],
        "responses": responses,
    }


def _components() -> Schema:
    agent_config = AgentConfigModel.model_json_schema(ref_template="#/components/schemas/AgentConfig.{model}")
    nested = {f"AgentConfig.{name}": schema for name, schema in agent_config.pop("$defs", {}).items()}
    channel: Schema = {
        "type": "object",
        "properties": {
            "ChannelId": {"type": "string", "minLength": 1, "maxLength": 128, "pattern": r"\S"},
            "AgentUserId": {"type": "string", "maxLength": 64},
            "AuthToken": _STRING,
        },
    }
    nests = {nest: _ref("RuntimeConfig.Channel") for nest in ("VoiceChat", "VisionChat", "AvatarChat3D")}
    runtime = {**channel, "properties": {**channel["properties"], **nests}}
    return {
        "schemas": {
            "ErrorEnvelope": ERROR_ENVELOPE,
            "Instance": INSTANCE,
            "Dialogue": DIALOGUE,
            "AgentConfig": agent_config,
            **nested,
            "RuntimeConfig": runtime,
            "RuntimeConfig.Channel": channel,
        },
        "securitySchemes": {
            SECURITY_SCHEME: {
                "type": "apiKey",
                "in": "header",
                "name": "Authorization",
                "description": _SIGNING,
            }
        },
    }


@functools.cache
def openapi_document() -> Schema:
    """The document, built once. Callers must not change it."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Herald: the ICE AI-agent API",
            "version": API_VERSION,
            "description": _DESCRIPTION,
        },
        "tags": [
            {
                "name": "instances",
                "description": "Agent instances: start, call, describe, list, update, stop.",
            },
            {"name": "speech", "description": "Speaking now, and what was said."},
            {"name": "channel", "description": "Messages over the call's data channel."},
        ],
        "security": [{SECURITY_SCHEME: []}],
        "paths": {f"/#{action}": {"post": _operation(action, spec)} for action, spec in SPECS.items()},
        "components": _components(),
    }


async def openapi_endpoint(request: Request) -> JSONResponse:
    """``GET /openapi.json``: the document (no signature needed)."""
    return JSONResponse(openapi_document())
