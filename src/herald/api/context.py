"""What every action handler is given, and its signature."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from herald.agents.manager import InstanceManager
from herald.api.idempotency import Idempotency
from herald.api.params import Params
from herald.media.netguard import AddressPolicy

API_VERSION = "2020-11-09"


@dataclass(frozen=True, slots=True)
class ActionContext:
    instances: InstanceManager
    idempotency: Idempotency
    owner: str
    """The account of the key that signed the request: everything it creates is the account's."""
    request_id: str
    params: Params
    fetch_policy: AddressPolicy
    """Which addresses audio URLs may point to (refused up front when the URL names an IP)."""


Action = Callable[[ActionContext, Params], Awaitable[dict[str, Any]]]
