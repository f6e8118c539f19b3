"""RAM-style access policies: parse a policy document once, then decide each API request in microseconds.

A document is ``{"Version": "1", "Statement": [{"Effect", "Action", "Resource", "Condition"?}, ...]}``.
Everything that could change who may do what is checked at parse time and rejected with a ``PolicyError``
naming the place and the rule: unknown keys (a typo must neither widen nor narrow access), duplicate JSON
keys, bad patterns, unknown condition operators or keys, operators applied to the wrong kind of key, values
that do not parse. Patterns are compiled to regular expressions at parse time so ``evaluate`` only matches.

Decisions: any matching ``Deny`` statement wins (explicit deny); otherwise any matching ``Allow`` allows;
otherwise the request is denied by default (implicit deny). Order of statements and policies never matters.
A condition whose context value the request lacks (an unknown source IP) does not hold, negated or not, so
such a statement never applies, whether it allows or denies.
"""

from __future__ import annotations

import enum
import json
import operator
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_network
from typing import Any, ClassVar, Final

__all__ = [
    "BoolCondition",
    "Condition",
    "DateCondition",
    "DateOperator",
    "Decision",
    "Effect",
    "IpCondition",
    "Policy",
    "PolicyError",
    "RequestContext",
    "Statement",
    "evaluate",
    "parse_policy",
    "policy_json",
]

MAX_DOCUMENT_BYTES: Final = 64 * 1024
MAX_STATEMENTS: Final = 100
MAX_PATTERN_CHARS: Final = 512

SOURCE_IP: Final = "acs:SourceIp"
CURRENT_TIME: Final = "acs:CurrentTime"
SECURE_TRANSPORT: Final = "acs:SecureTransport"

_SERVICE_PREFIX = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*:.")
_IPV4_MAPPED = IPv6Network("::ffff:0:0/96")


class PolicyError(ValueError):
    """A policy document breaks a rule; the message names the place, e.g. ``Statement[1].Effect``."""


class Effect(enum.Enum):
    """What a statement does when it matches."""

    ALLOW = "Allow"
    DENY = "Deny"


class Decision(enum.Enum):
    """The outcome of ``evaluate``; only ``ALLOW`` lets the request through."""

    ALLOW = "Allow"
    IMPLICIT_DENY = "ImplicitDeny"
    EXPLICIT_DENY = "ExplicitDeny"


@dataclass(frozen=True, slots=True)
class RequestContext:
    """What a statement is matched against: the API action, the resource it acts on, and the context keys."""

    action: str  # "ice:SendAIAgentSpeech"
    resource: str  # "acs:ice:local:acme:ai-agent-instance/abc"
    source_ip: IPv4Address | IPv6Address | None  # None when unknown: IP conditions then never hold
    current_time: datetime  # aware
    secure_transport: bool

    def __post_init__(self) -> None:
        # A naive time would make the Date* comparisons raise on every request instead of once, here.
        if self.current_time.utcoffset() is None:
            raise ValueError("RequestContext.current_time must be timezone-aware")


@dataclass(frozen=True, slots=True)
class IpCondition:
    """``IpAddress`` / ``NotIpAddress`` on ``acs:SourceIp``; IPv4-mapped IPv6 addresses count as IPv4."""

    negated: bool
    networks: tuple[IPv4Network | IPv6Network, ...]
    key: ClassVar[str] = SOURCE_IP

    @property
    def operator(self) -> str:
        return "NotIpAddress" if self.negated else "IpAddress"

    def holds(self, request: RequestContext) -> bool:
        ip = request.source_ip
        if ip is None:
            return False
        if isinstance(ip, IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        for network in self.networks:
            if ip in network:
                return not self.negated
        return self.negated


class DateOperator(enum.Enum):
    EQUALS = "DateEquals"
    NOT_EQUALS = "DateNotEquals"
    LESS_THAN = "DateLessThan"
    LESS_THAN_EQUALS = "DateLessThanEquals"
    GREATER_THAN = "DateGreaterThan"
    GREATER_THAN_EQUALS = "DateGreaterThanEquals"


_DATE_COMPARE: Final[dict[DateOperator, Callable[[datetime, datetime], bool]]] = {
    DateOperator.EQUALS: operator.eq,
    DateOperator.NOT_EQUALS: operator.eq,  # negated in DateCondition.holds: the time equals none of them
    DateOperator.LESS_THAN: operator.lt,
    DateOperator.LESS_THAN_EQUALS: operator.le,
    DateOperator.GREATER_THAN: operator.gt,
    DateOperator.GREATER_THAN_EQUALS: operator.ge,
}


@dataclass(frozen=True, slots=True)
class DateCondition:
    """``Date*`` on ``acs:CurrentTime``: the request time compared with each value (all aware, UTC)."""

    date_operator: DateOperator
    times: tuple[datetime, ...]
    key: ClassVar[str] = CURRENT_TIME

    @property
    def operator(self) -> str:
        return self.date_operator.value

    def holds(self, request: RequestContext) -> bool:
        now = request.current_time
        compare = _DATE_COMPARE[self.date_operator]
        hit = any(compare(now, t) for t in self.times)
        return not hit if self.date_operator is DateOperator.NOT_EQUALS else hit


@dataclass(frozen=True, slots=True)
class BoolCondition:
    """``Bool`` on ``acs:SecureTransport``."""

    values: tuple[bool, ...]
    key: ClassVar[str] = SECURE_TRANSPORT
    operator: ClassVar[str] = "Bool"

    def holds(self, request: RequestContext) -> bool:
        return request.secure_transport in self.values


Condition = IpCondition | DateCondition | BoolCondition


@dataclass(frozen=True, slots=True)
class Statement:
    """One statement; ``actions`` and ``resources`` are the patterns as written, compiled on construction."""

    effect: Effect
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    conditions: tuple[Condition, ...] = ()
    _action_regex: re.Pattern[str] = field(init=False, repr=False, compare=False)
    _resource_regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Action names are ASCII API names: ASCII-only case folding keeps "K" (Kelvin) from matching "k".
        object.__setattr__(self, "_action_regex", _compile(self.actions, re.IGNORECASE | re.ASCII))
        object.__setattr__(self, "_resource_regex", _compile(self.resources, 0))

    def matches(self, request: RequestContext) -> bool:
        """Action, resource and every condition match (the effect is not considered)."""
        if self._action_regex.fullmatch(request.action) is None:
            return False
        if self._resource_regex.fullmatch(request.resource) is None:
            return False
        return all(condition.holds(request) for condition in self.conditions)


@dataclass(frozen=True, slots=True)
class Policy:
    statements: tuple[Statement, ...]


def evaluate(policies: Iterable[Policy], request: RequestContext) -> Decision:
    """Any matching Deny wins, else any matching Allow allows, else deny by default."""
    allowed = False
    for policy in policies:
        for statement in policy.statements:
            if statement.effect is Effect.DENY:
                if statement.matches(request):
                    return Decision.EXPLICIT_DENY
            elif not allowed and statement.matches(request):
                allowed = True
    return Decision.ALLOW if allowed else Decision.IMPLICIT_DENY


def policy_json(policy: Policy) -> str:
    """Canonical compact JSON: lists everywhere, canonical operator and key names, CIDR blocks, UTC times.

    ``parse_policy(policy_json(p)) == p``; the original text (its formatting, its spellings) is not kept.
    """
    statements: list[dict[str, Any]] = []
    for statement in policy.statements:
        entry: dict[str, Any] = {
            "Effect": statement.effect.value,
            "Action": list(statement.actions),
            "Resource": list(statement.resources),
        }
        if statement.conditions:
            blocks: dict[str, dict[str, list[Any]]] = {}
            for condition in statement.conditions:
                block = blocks.setdefault(condition.operator, {})
                if condition.key in block:  # only a Statement built by hand can AND two such conditions
                    raise ValueError(
                        f"two {condition.operator} conditions on {condition.key} have no JSON form"
                    )
                block[condition.key] = _condition_values(condition)
            entry["Condition"] = blocks
        statements.append(entry)
    return json.dumps({"Version": "1", "Statement": statements}, separators=(",", ":"), ensure_ascii=False)


def parse_policy(document: str | Mapping[str, Any]) -> Policy:
    """Parse and check a policy document (JSON text or an already-decoded mapping); raises ``PolicyError``."""
    if isinstance(document, str):
        text = document
    else:
        # One path for both inputs: a mapping is measured and re-read as the JSON it stands for.
        try:
            text = json.dumps(
                document, separators=(",", ":"), ensure_ascii=False, default=_plain, allow_nan=False
            )
        except (TypeError, ValueError, RecursionError) as exc:
            raise PolicyError(f"policy document is not representable as JSON: {exc}") from None
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_DOCUMENT_BYTES:
        raise PolicyError(f"policy document must be at most {MAX_DOCUMENT_BYTES} bytes, got {size}")
    try:
        decoded = json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except RecursionError:
        raise PolicyError("policy document is nested too deeply") from None
    except ValueError as exc:  # json.JSONDecodeError, or an integer too long to convert
        if isinstance(exc, PolicyError):
            raise
        raise PolicyError(f"policy document is not valid JSON: {exc}") from None
    return _parse_document(decoded)


# --- parsing -------------------------------------------------------------------------------------------


def _parse_document(decoded: Any) -> Policy:
    if not isinstance(decoded, dict):
        raise PolicyError(f"policy document must be a JSON object, got {_show(decoded)}")
    _check_keys("policy document", "", decoded, required=("Version", "Statement"), optional=())
    if decoded["Version"] != "1":
        raise PolicyError(f'Version must be "1", got {_show(decoded["Version"])}')
    raw_statements = decoded["Statement"]
    if not isinstance(raw_statements, list) or not raw_statements:
        raise PolicyError(f"Statement must be a non-empty list of statements, got {_show(raw_statements)}")
    if len(raw_statements) > MAX_STATEMENTS:
        raise PolicyError(
            f"Statement must hold at most {MAX_STATEMENTS} statements, got {len(raw_statements)}"
        )
    return Policy(tuple(_parse_statement(f"Statement[{i}]", raw) for i, raw in enumerate(raw_statements)))


def _parse_statement(place: str, raw: Any) -> Statement:
    if not isinstance(raw, dict):
        raise PolicyError(f"{place} must be a JSON object, got {_show(raw)}")
    _check_keys(place, f"{place}.", raw, required=("Effect", "Action", "Resource"), optional=("Condition",))
    effect = raw["Effect"]
    if effect not in ("Allow", "Deny"):
        raise PolicyError(f'{place}.Effect must be "Allow" or "Deny", got {_show(effect)}')
    actions = _patterns(f"{place}.Action", raw["Action"])
    for i, action in enumerate(actions):
        if action != "*" and _SERVICE_PREFIX.match(action) is None:
            raise PolicyError(f'{place}.Action[{i}] must be "*" or "<service>:<action>", got {_show(action)}')
    resources = _patterns(f"{place}.Resource", raw["Resource"])
    for i, resource in enumerate(resources):
        if resource != "*" and not resource.startswith("acs:"):
            raise PolicyError(
                f'{place}.Resource[{i}] must be "*" or start with "acs:", got {_show(resource)}'
            )
    conditions = _parse_conditions(f"{place}.Condition", raw.get("Condition", {}))
    return Statement(Effect(effect), actions, resources, conditions)


def _patterns(place: str, raw: Any) -> tuple[str, ...]:
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list) or not items:
        raise PolicyError(f"{place} must be a string or a non-empty list of strings, got {_show(raw)}")
    for i, item in enumerate(items):
        if not isinstance(item, str) or not item:
            raise PolicyError(f"{place}[{i}] must be a non-empty string, got {_show(item)}")
        if len(item) > MAX_PATTERN_CHARS:
            raise PolicyError(f"{place}[{i}] must be at most {MAX_PATTERN_CHARS} characters, got {len(item)}")
    return tuple(items)


_KEYS: Final = {key.lower(): key for key in (SOURCE_IP, CURRENT_TIME, SECURE_TRANSPORT)}
_OPERATORS: Final = {
    name.lower(): (name, key)
    for name, key in [
        ("IpAddress", SOURCE_IP),
        ("NotIpAddress", SOURCE_IP),
        ("Bool", SECURE_TRANSPORT),
        *((op.value, CURRENT_TIME) for op in DateOperator),
    ]
}


def _parse_conditions(place: str, raw: Any) -> tuple[Condition, ...]:
    if not isinstance(raw, dict):
        raise PolicyError(f"{place} must be a JSON object of operators, got {_show(raw)}")
    _no_case_duplicates(place, raw, "operator")
    conditions: list[Condition] = []
    for written_operator, block in raw.items():
        if written_operator.lower() not in _OPERATORS:
            supported = ", ".join(sorted(name for name, _ in _OPERATORS.values()))
            raise PolicyError(
                f"{place} has an unknown operator {_show(written_operator)} (supported: {supported})"
            )
        operator_name, operator_key = _OPERATORS[written_operator.lower()]
        block_place = f"{place}.{written_operator}"
        if not isinstance(block, dict) or not block:
            raise PolicyError(
                f"{block_place} must be a non-empty JSON object of condition keys, got {_show(block)}"
            )
        _no_case_duplicates(block_place, block, "key")
        for written_key, values in block.items():
            key = _KEYS.get(written_key.lower())
            if key is None:
                supported = ", ".join(sorted(_KEYS.values()))
                raise PolicyError(
                    f"{block_place} has an unknown key {_show(written_key)} (supported: {supported})"
                )
            if key != operator_key:
                raise PolicyError(
                    f"{block_place}.{written_key}: operator {operator_name} applies only to {operator_key}, "
                    f"not to {key}"
                )
            conditions.append(_parse_condition(f"{block_place}.{written_key}", operator_name, values))
    return tuple(conditions)


def _parse_condition(place: str, operator_name: str, raw: Any) -> Condition:
    items = raw if isinstance(raw, list) else [raw]
    if not items:
        raise PolicyError(f"{place} must be a value or a non-empty list of values, got []")
    places = [f"{place}[{i}]" if isinstance(raw, list) else place for i in range(len(items))]
    if operator_name in ("IpAddress", "NotIpAddress"):
        networks = tuple(_network(p, item) for p, item in zip(places, items, strict=True))
        return IpCondition(negated=operator_name == "NotIpAddress", networks=networks)
    if operator_name == "Bool":
        return BoolCondition(tuple(_bool(p, item) for p, item in zip(places, items, strict=True)))
    times = tuple(_time(p, item) for p, item in zip(places, items, strict=True))
    return DateCondition(DateOperator(operator_name), times)


def _network(place: str, raw: Any) -> IPv4Network | IPv6Network:
    # strict=False: "10.0.0.5/24" means the /24 that holds it. Zones ("%eth0") are refused: they name a
    # link on one host, which a policy cannot sensibly mean.
    try:
        if not isinstance(raw, str) or "%" in raw:
            raise ValueError
        network = ip_network(raw, strict=False)
    except ValueError:
        raise PolicyError(f"{place} must be an IP address or CIDR block, got {_show(raw)}") from None
    if isinstance(network, IPv6Network) and network.subnet_of(_IPV4_MAPPED):
        # Matched in IPv4 space, where IPv4-mapped source addresses are matched too.
        mapped = network.network_address.ipv4_mapped
        assert mapped is not None  # in ::ffff:0:0/96
        return IPv4Network((mapped, network.prefixlen - 96))
    return network


def _bool(place: str, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    raise PolicyError(f"{place} must be true or false, got {_show(raw)}")


def _time(place: str, raw: Any) -> datetime:
    try:
        if not isinstance(raw, str):
            raise ValueError
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        raise PolicyError(
            f"{place} must be an ISO 8601 time such as 2026-01-01T00:00:00Z, got {_show(raw)}"
        ) from None
    # A date-only or naive value is UTC, so a policy means the same wherever the server runs.
    return parsed.replace(tzinfo=UTC) if parsed.utcoffset() is None else parsed.astimezone(UTC)


def _check_keys(
    place: str, prefix: str, raw: dict[str, Any], *, required: tuple[str, ...], optional: tuple[str, ...]
) -> None:
    allowed = required + optional
    for key in raw:
        if key not in allowed:
            names = ", ".join(sorted(allowed))
            raise PolicyError(f"{place} has an unknown key {_show(key)} (allowed: {names})")
    for key in required:
        if key not in raw:
            raise PolicyError(f"{prefix}{key} is required")


def _no_case_duplicates(place: str, raw: dict[str, Any], what: str) -> None:
    seen: dict[str, str] = {}
    for name in raw:
        first = seen.setdefault(name.lower(), name)
        if first != name:
            raise PolicyError(
                f"{place} names one {what} twice: {_show(first)} and {_show(name)} ({what}s ignore case)"
            )


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json.loads would keep the last of two equal keys: {"Effect": "Deny", "Effect": "Allow"} must not allow.
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise PolicyError(f"policy document has a duplicate key {_show(key)}")
        result[key] = value
    return result


def _plain(value: object) -> object:
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not a JSON value")


def _show(value: Any) -> str:
    """A value as JSON, cut short: error messages quote what the document said."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _condition_values(condition: Condition) -> list[Any]:
    if isinstance(condition, IpCondition):
        return [str(network) for network in condition.networks]
    if isinstance(condition, DateCondition):
        return [t.isoformat().replace("+00:00", "Z") for t in condition.times]
    return list(condition.values)


# --- patterns ------------------------------------------------------------------------------------------


def _compile(patterns: tuple[str, ...], flags: int) -> re.Pattern[str]:
    return re.compile("|".join(_glob(p) for p in patterns), flags | re.DOTALL)


def _glob(pattern: str) -> str:
    """``*`` and ``?`` as a regular expression that runs in time linear in the pattern times the text.

    A naive ``.*a.*a.*b`` backtracks exponentially in the number of stars. Here each literal run between
    two stars is found at its leftmost place and that choice is made atomic ``(?>...)``: with fixed-length
    runs, the leftmost place always leaves the most text for the rest, so nothing is lost by committing.
    """
    runs = [_literal(run) for run in pattern.split("*")]
    if len(runs) == 1:
        return f"(?:{runs[0]})"
    middle = "".join(f"(?>.*?{run})" for run in runs[1:-1] if run)
    return f"(?:{runs[0]}{middle}.*{runs[-1]})"


def _literal(run: str) -> str:
    return "".join("." if char == "?" else re.escape(char) for char in run)
