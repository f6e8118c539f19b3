"""Herald's one error tree.

Every error a caller can see is a ``HeraldError`` carrying its ICE wire ``code``; the HTTP status for each
code is decided in ``herald.api.envelope`` and nowhere else.

    HeraldError
    ├── BadRequest                  (the caller sent something wrong)
    │   ├── MissingParameter        MissingParameter
    │   ├── InvalidParameter        InvalidParameter
    │   ├── RequestTooLarge         (a body over 1 MiB; HTTP 413)
    │   ├── IdempotentParameterMismatch
    │   ├── MethodNotAllowed        UnsupportedHTTPMethod (HTTP 405)
    │   └── IncorrectInstanceStatus  (the instance cannot do that in its state)
    ├── AuthError                   (who is calling, and may they)
    │   ├── IncompleteSignature, SignatureDoesNotMatch, InvalidTimeStampFormat, InvalidTimeStampExpired,
    │   ├── SignatureNonceUsed, InvalidAccessKeyIdNotFound, InvalidAccessKeyIdInactive
    │   ├── InvalidToken            (a call token that is malformed, forged, expired or for another channel)
    │   └── ForbiddenRam            Forbidden.RAM (a policy does not allow it; HTTP 403, AccessDeniedDetail)
    ├── Throttled                   Throttling.User (over the account's rate; HTTP 400, x-acs-retry-after)
    ├── NotFound
    │   ├── ApiNotFound             InvalidApi.NotFound (unknown action or version)
    │   ├── AgentNotFound
    │   ├── InstanceNotFound
    │   └── ChannelNotFound         (no live agent in that channel)
    ├── ServiceUnavailable
    └── InternalError               (a bug; never raised for bad input)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar


class HeraldError(Exception):
    """Base of every error with a wire code."""

    code: ClassVar[str] = "InternalError"
    recommend: ClassVar[str] = ""

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code  # type: ignore[misc]  # an instance may refine its class's code

    def envelope_fields(self) -> Mapping[str, object]:
        """Fields the error adds to the envelope besides ``Code``, ``Message`` and the rest."""
        return {}

    def headers(self) -> Mapping[str, str]:
        """Headers the error response carries."""
        return {}


class BadRequest(HeraldError):
    code = "InvalidParameter"


class MissingParameter(BadRequest):
    code = "MissingParameter"

    def __init__(self, name: str) -> None:
        super().__init__(f"The required parameter {name} is missing.")
        self.parameter = name


class InvalidParameter(BadRequest):
    code = "InvalidParameter"

    def __init__(self, name: str, rule: str) -> None:
        super().__init__(f"The parameter {name} is invalid: {rule}")
        self.parameter = name


class RequestTooLarge(BadRequest):
    code = "RequestTooLarge"


class UnsupportedMediaType(BadRequest):
    code = "UnsupportedMediaType"


class IdempotentParameterMismatch(BadRequest):
    code = "IdempotentParameterMismatch"


class MethodNotAllowed(BadRequest):
    code = "UnsupportedHTTPMethod"


class IncorrectInstanceStatus(BadRequest):
    code = "IncorrectInstanceStatus"


class NoLlm(BadRequest):
    """``SendAIAgentText`` to an agent that has no LLM to answer it."""

    code = "InvalidParameter.NoLlm"


class AuthError(HeraldError):
    code = "IncompleteSignature"


class IncompleteSignature(AuthError):
    code = "IncompleteSignature"


class SignatureDoesNotMatch(AuthError):
    code = "SignatureDoesNotMatch"
    recommend = "Check that the AccessKeySecret is right and that nothing rewrote the request on the way."


class InvalidTimeStampFormat(AuthError):
    code = "InvalidTimeStamp.Format"


class InvalidTimeStampExpired(AuthError):
    code = "InvalidTimeStamp.Expired"
    recommend = (
        "Synchronise the client's clock; requests are accepted within 15 minutes of the server's time."
    )


class SignatureNonceUsed(AuthError):
    code = "SignatureNonceUsed"


class InvalidAccessKeyIdNotFound(AuthError):
    code = "InvalidAccessKeyId.NotFound"


class InvalidAccessKeyIdInactive(AuthError):
    code = "InvalidAccessKeyId.Inactive"


class InvalidToken(AuthError):
    code = "InvalidToken"


class ForbiddenRam(AuthError):
    """A policy does not allow the action: ``AccessDeniedDetail`` says which action and why (ICE's fields)."""

    code = "Forbidden.RAM"

    def __init__(self, message: str, detail: Mapping[str, str]) -> None:
        super().__init__(message)
        self.detail = dict(detail)

    def envelope_fields(self) -> Mapping[str, object]:
        return {"AccessDeniedDetail": self.detail}


class Throttled(HeraldError):
    """The account is over its request rate for the action; the client may retry after ``retry_after_ms``."""

    code = "Throttling.User"
    recommend = "Slow down: retry after the time given in the x-acs-retry-after header (milliseconds)."

    def __init__(self, message: str, retry_after_ms: int) -> None:
        super().__init__(message)
        self.retry_after_ms = max(1, retry_after_ms)

    def headers(self) -> Mapping[str, str]:
        return {"x-acs-retry-after": str(self.retry_after_ms)}


class NotFound(HeraldError):
    code = "NotFound"


class ApiNotFound(NotFound):
    code = "InvalidApi.NotFound"


class AgentNotFound(NotFound):
    code = "AgentNotFound"


class InstanceNotFound(NotFound):
    code = "InstanceNotFound"


class ChannelNotFound(NotFound):
    code = "ChannelNotFound"


class SessionNotFound(NotFound):
    code = "SessionNotFound"


class ServiceUnavailable(HeraldError):
    code = "ServiceUnavailable"


class InternalError(HeraldError):
    code = "InternalError"
