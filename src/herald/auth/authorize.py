"""May this key do this? An account's own keys may do anything within the account; a user's keys what the
policies attached to the user allow (``herald.auth.policy``: default deny, an explicit Deny wins).

A refusal is ``Forbidden.RAM`` with ICE's ``AccessDeniedDetail``: the action, the resource, who asked,
and whether a Deny said no (``ExplicitDeny``) or nothing said yes (``ImplicitDeny``).
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address, ip_address

from herald.auth.directory import KeyDirectory
from herald.auth.keys import AccessKey
from herald.auth.policy import Decision, RequestContext, evaluate
from herald.clock import Clock
from herald.errors import ForbiddenRam

SERVICE = "ice"


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a request came from, for policy conditions. The address is parsed only when a policy is
    evaluated: an account's own keys never need it."""

    host: str | None
    secure_transport: bool

    @classmethod
    def of(cls, host: str | None, scheme: str) -> Origin:
        return cls(host, scheme in ("https", "wss"))

    @property
    def source_ip(self) -> IPv4Address | IPv6Address | None:
        try:
            return ip_address(self.host) if self.host else None
        except ValueError:
            return None


class Authorizer:
    def __init__(self, directory: KeyDirectory, clock: Clock) -> None:
        self._directory = directory
        self._clock = clock

    def resource(self, account_id: str, relative_id: str) -> str:
        """``acs:ice:<region>:<account>:<relative id>``."""
        return f"acs:{SERVICE}:{self._directory.settings.region}:{account_id}:{relative_id}"

    def check(self, key: AccessKey, action: str, relative_id: str, origin: Origin) -> None:
        """Raise ``ForbiddenRam`` unless ``key`` may do ``action`` (a wire name) on the resource."""
        if key.user_name is None:
            return
        auth_action = f"{SERVICE}:{action}"
        resource = self.resource(key.account_id, relative_id)
        decision = evaluate(
            self._directory.policies_for(key.account_id, key.user_name),
            RequestContext(
                action=auth_action,
                resource=resource,
                source_ip=origin.source_ip,
                current_time=self._clock.now(),
                secure_transport=origin.secure_transport,
            ),
        )
        if decision is Decision.ALLOW:
            return
        why = "a policy denies it" if decision is Decision.EXPLICIT_DENY else "no policy allows it"
        raise ForbiddenRam(
            f"The user {key.user_name!r} of the account {key.account_id!r} may not do {auth_action} "
            f"on {resource}: {why}.",
            {
                "AuthAction": auth_action,
                "AuthResource": resource,
                "AuthPrincipalType": "SubUser",
                "AuthPrincipalOwnerId": key.account_id,
                "AuthPrincipalDisplayName": key.user_name,
                "PolicyType": "AccountLevelIdentityBasedPolicy",
                "NoPermissionType": decision.value,
            },
        )
