"""Who is asking and may they: the checks every signed route makes, in order.

1. Authenticate (``Authenticator``): the signature, key, time and nonce. A key the directory does not
   know yet makes it reload once (a key just created with ``herald keys create`` works at once).
2. Throttle (``RateLimiter``): the account's rate for the action.
3. Authorize (``Authorizer``): the user's policies for the action on the resource.
"""

from __future__ import annotations

import logging

from starlette.requests import HTTPConnection

from herald.api.signing import SignedRequest
from herald.auth.authorize import Origin
from herald.auth.keys import AccessKey
from herald.errors import InvalidAccessKeyIdNotFound
from herald.runtime import Runtime

_log = logging.getLogger(__name__)

INSTANCE_RESOURCE = "ai-agent-instance/"
AGENT_RESOURCE = "ai-agent/"
MAX_RESOURCE_ID = 256


async def authenticate(runtime: Runtime, signed: SignedRequest) -> AccessKey:
    try:
        return runtime.authenticator.authenticate(signed)
    except InvalidAccessKeyIdNotFound:
        try:
            await runtime.keys.reload_after_miss()
        except Exception:
            _log.warning("reloading access keys failed; answering with the keys known", exc_info=True)
            raise
    return runtime.authenticator.authenticate(signed)


def relative_id(values: dict[str, str] | None = None, *, instance_id: str | None = None) -> str:
    """The resource a request acts on: its instance, else its agent, else every resource (``*``)."""
    values = values or {}
    instance_id = instance_id or values.get("InstanceId")
    if instance_id:
        return INSTANCE_RESOURCE + instance_id[:MAX_RESOURCE_ID]
    agent_id = values.get("AIAgentId")
    if agent_id:
        return AGENT_RESOURCE + agent_id[:MAX_RESOURCE_ID]
    return "*"


def admit(runtime: Runtime, key: AccessKey, action: str, relative: str, connection: HTTPConnection) -> None:
    """Throttle, then authorize, ``key`` doing ``action`` on ``relative``; raises what the caller sees."""
    runtime.limiter.take(key.account_id, action)
    client = connection.client
    origin = Origin.of(client.host if client else None, connection.url.scheme)
    runtime.authorizer.check(key, action, relative, origin)
