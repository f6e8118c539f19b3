"""The RAM-style policy evaluator: parse errors, pattern matching, conditions, and how decisions combine."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta, timezone
from ipaddress import IPv4Address, IPv6Address, ip_address
from types import MappingProxyType
from typing import Any

import pytest

from herald.auth.policy import (
    MAX_DOCUMENT_BYTES,
    BoolCondition,
    DateCondition,
    DateOperator,
    Decision,
    Effect,
    IpCondition,
    Policy,
    PolicyError,
    RequestContext,
    evaluate,
    parse_policy,
    policy_json,
)

INSTANCE = "acs:ice:local:acme:ai-agent-instance/3f2a"
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def request(
    action: str = "ice:SendAIAgentSpeech",
    resource: str = INSTANCE,
    *,
    source_ip: str | None = "10.1.2.3",
    current_time: datetime = NOW,
    secure_transport: bool = True,
) -> RequestContext:
    ip: IPv4Address | IPv6Address | None = None if source_ip is None else ip_address(source_ip)
    return RequestContext(action, resource, ip, current_time, secure_transport)


def statement(
    effect: str = "Allow", action: Any = "*", resource: Any = "*", condition: Any = None
) -> dict[str, Any]:
    entry: dict[str, Any] = {"Effect": effect, "Action": action, "Resource": resource}
    if condition is not None:
        entry["Condition"] = condition
    return entry


def policy(*statements: dict[str, Any]) -> Policy:
    return parse_policy({"Version": "1", "Statement": list(statements)})


def decide(*statements: dict[str, Any], req: RequestContext | None = None) -> Decision:
    return evaluate([policy(*statements)], req or request())


def allows(actions: Any = "*", resources: Any = "*", condition: Any = None, *, on: RequestContext) -> bool:
    return decide(statement("Allow", actions, resources, condition), req=on) is Decision.ALLOW


def allows_action(pattern: Any, action: str) -> bool:
    return allows(actions=pattern, on=request(action=action))


def allows_resource(pattern: Any, resource: str = INSTANCE) -> bool:
    return allows(resources=pattern, on=request(resource=resource))


# --- parsing ---------------------------------------------------------------------------------------------


def test_a_minimal_policy_parses_from_text_and_from_a_mapping() -> None:
    document = {"Version": "1", "Statement": [statement(action="ice:Describe*")]}
    from_text = parse_policy(json.dumps(document))
    assert from_text == parse_policy(document)
    assert from_text == parse_policy(MappingProxyType(document))
    (only,) = from_text.statements
    assert only.effect is Effect.ALLOW
    assert only.actions == ("ice:Describe*",)
    assert only.resources == ("*",)
    assert only.conditions == ()


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("[]", "policy document must be a JSON object, got []"),
        ("{", "policy document is not valid JSON"),
        ('{"Version": "1"}', "Statement is required"),
        ('{"Statement": []}', "Version is required"),
        ('{"Version": 1, "Statement": []}', 'Version must be "1", got 1'),
        ('{"Version": "2012-10-17", "Statement": []}', 'Version must be "1", got "2012-10-17"'),
        ('{"Version": "1", "Statement": []}', "Statement must be a non-empty list of statements, got []"),
        ('{"Version": "1", "Statement": {}}', "Statement must be a non-empty list"),
        (
            '{"Version": "1", "Statement": [], "Statment": []}',
            'policy document has an unknown key "Statment"',
        ),
        ('{"Version": "1", "Statement": ["x"]}', 'Statement[0] must be a JSON object, got "x"'),
        (
            '{"Version": "1", "Version": "1", "Statement": []}',
            'policy document has a duplicate key "Version"',
        ),
    ],
)
def test_document_errors_name_the_place_and_the_rule(document: str, message: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy(document)
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"Effect": "allow!"}, 'Statement[1].Effect must be "Allow" or "Deny", got "allow!"'),
        ({"Effect": "allow"}, 'Statement[1].Effect must be "Allow" or "Deny", got "allow"'),
        ({"Effect": None}, 'Statement[1].Effect must be "Allow" or "Deny", got null'),
        ({"Effect": ...}, "Statement[1].Effect is required"),
        ({"Action": ...}, "Statement[1].Action is required"),
        ({"Resource": ...}, "Statement[1].Resource is required"),
        (
            {"Sid": "x"},
            'Statement[1] has an unknown key "Sid" (allowed: Action, Condition, Effect, Resource)',
        ),
        ({"NotAction": "ice:*"}, 'Statement[1] has an unknown key "NotAction"'),
        ({"Action": []}, "Statement[1].Action must be a string or a non-empty list of strings, got []"),
        ({"Action": 3}, "Statement[1].Action must be a string or a non-empty list of strings, got 3"),
        ({"Action": ["ice:A", 3]}, "Statement[1].Action[1] must be a non-empty string, got 3"),
        ({"Action": ""}, 'Statement[1].Action[0] must be a non-empty string, got ""'),
        ({"Action": "SendAIAgentSpeech"}, 'Statement[1].Action[0] must be "*" or "<service>:<action>"'),
        (
            {"Action": ["ice:A", "ice:"]},
            'Statement[1].Action[1] must be "*" or "<service>:<action>", got "ice:"',
        ),
        ({"Action": "*:Send*"}, 'Statement[1].Action[0] must be "*" or "<service>:<action>"'),
        ({"Action": "ice:" + "a" * 509}, "Statement[1].Action[0] must be at most 512 characters, got 513"),
        (
            {"Resource": "ice:local"},
            'Statement[1].Resource[0] must be "*" or start with "acs:", got "ice:local"',
        ),
        ({"Resource": "ACS:ice:*"}, 'Statement[1].Resource[0] must be "*" or start with "acs:"'),
        ({"Resource": ["*", None]}, "Statement[1].Resource[1] must be a non-empty string, got null"),
        ({"Condition": []}, "Statement[1].Condition must be a JSON object of operators, got []"),
    ],
)
def test_statement_errors_name_the_place_and_the_rule(changes: dict[str, Any], message: str) -> None:
    broken = statement(action="ice:Describe*")
    for key, value in changes.items():
        if value is ...:
            del broken[key]
        else:
            broken[key] = value
    with pytest.raises(PolicyError) as caught:
        policy(statement(), broken)
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        (
            {"IpAdress": {"acs:SourceIp": "10.0.0.0/8"}},
            'Statement[0].Condition has an unknown operator "IpAdress" (supported: Bool, DateEquals,',
        ),
        (
            {"StringEquals": {"acs:SourceIp": "x"}},
            'Statement[0].Condition has an unknown operator "StringEquals"',
        ),
        (
            {"IpAddress": {"acs:SourceIP4": "10.0.0.0/8"}},
            'Statement[0].Condition.IpAddress has an unknown key "acs:SourceIP4" (supported: acs:',
        ),
        (
            {"IpAddress": {"acs:CurrentTime": "10.0.0.0/8"}},
            "Statement[0].Condition.IpAddress.acs:CurrentTime: "
            "operator IpAddress applies only to acs:SourceIp, not to acs:CurrentTime",
        ),
        (
            {"DateLessThan": {"acs:SourceIp": "2026-01-01"}},
            "Statement[0].Condition.DateLessThan.acs:SourceIp: "
            "operator DateLessThan applies only to acs:CurrentTime",
        ),
        (
            {"Bool": {"acs:SourceIp": "true"}},
            "Statement[0].Condition.Bool.acs:SourceIp: operator Bool applies only to acs:SecureTransport",
        ),
        (
            {"IpAddress": {}},
            "Statement[0].Condition.IpAddress must be a non-empty JSON object of condition keys",
        ),
        ({"IpAddress": "10.0.0.0/8"}, "Statement[0].Condition.IpAddress must be a non-empty JSON object"),
        (
            {"IpAddress": {"acs:SourceIp": []}},
            "Statement[0].Condition.IpAddress.acs:SourceIp must be a value or",
        ),
        (
            {"IpAddress": {"acs:SourceIp": ["10.0.0.0/8", "10.0.0.300"]}},
            "Statement[0].Condition.IpAddress.acs:SourceIp[1] must be an IP address or CIDR block, "
            'got "10.0.0.300"',
        ),
        (
            {"NotIpAddress": {"acs:SourceIp": "fe80::1%eth0"}},
            "Statement[0].Condition.NotIpAddress.acs:SourceIp must be an IP address or CIDR block",
        ),
        (
            {"IpAddress": {"acs:SourceIp": 167772160}},
            "Statement[0].Condition.IpAddress.acs:SourceIp must be an IP",
        ),
        (
            {"DateEquals": {"acs:CurrentTime": "2026-13-01"}},
            "Statement[0].Condition.DateEquals.acs:CurrentTime must be an ISO 8601 time",
        ),
        (
            {"DateGreaterThan": {"acs:CurrentTime": [1767225600]}},
            "Statement[0].Condition.DateGreaterThan.acs:CurrentTime[0] must be an ISO 8601 time",
        ),
        (
            {"Bool": {"acs:SecureTransport": "yes"}},
            "Statement[0].Condition.Bool.acs:SecureTransport must be true or",
        ),
        (
            {"Bool": {"acs:SecureTransport": 1}},
            "Statement[0].Condition.Bool.acs:SecureTransport must be true or",
        ),
        (
            {"IpAddress": {"acs:SourceIp": "10.0.0.0/8"}, "ipaddress": {"acs:SourceIp": "10.0.0.0/8"}},
            'Statement[0].Condition names one operator twice: "IpAddress" and "ipaddress"',
        ),
        (
            {"IpAddress": {"acs:SourceIp": "10.0.0.0/8", "ACS:SOURCEIP": "10.0.0.0/8"}},
            'Statement[0].Condition.IpAddress names one key twice: "acs:SourceIp" and "ACS:SOURCEIP"',
        ),
    ],
)
def test_condition_errors_name_the_place_and_the_rule(condition: Any, message: str) -> None:
    with pytest.raises(PolicyError) as caught:
        policy(statement(condition=condition))
    assert str(caught.value).startswith(message)


def test_limits_on_statements_patterns_and_size() -> None:
    policy(*[statement()] * 100)
    with pytest.raises(PolicyError, match=r"^Statement must hold at most 100 statements, got 101$"):
        policy(*[statement()] * 101)
    policy(statement(action="ice:" + "a" * 508, resource="acs:" + "r" * 508))
    with pytest.raises(PolicyError, match=r"^Statement\[0\]\.Resource\[0\] must be at most 512 characters"):
        policy(statement(resource="acs:" + "r" * 509))
    big = {"Version": "1", "Statement": [statement(resource=["acs:" + "r" * 500] * 140)]}
    with pytest.raises(PolicyError, match=r"^policy document must be at most 65536 bytes, got \d+$"):
        parse_policy(big)
    with pytest.raises(PolicyError, match=r"^policy document must be at most 65536 bytes"):
        parse_policy(" " * MAX_DOCUMENT_BYTES + json.dumps({"Version": "1", "Statement": [statement()]}))


def test_hostile_json_is_a_policy_error() -> None:
    with pytest.raises(PolicyError, match="nested too deeply"):
        parse_policy("[" * 60_000)
    with pytest.raises(PolicyError, match="not valid JSON"):
        parse_policy('{"Version": ' + "9" * 5000 + "}")
    with pytest.raises(PolicyError, match="not representable as JSON"):
        parse_policy({"Version": "1", "Statement": [{1, 2}]})
    with pytest.raises(PolicyError, match="not representable as JSON"):
        parse_policy({"Version": float("nan")})
    circular: dict[str, Any] = {}
    circular["Version"] = circular
    with pytest.raises(PolicyError, match="not representable as JSON"):
        parse_policy(circular)
    deep: dict[str, Any] = {}
    for _ in range(100_000):
        deep = {"Version": deep}
    with pytest.raises(PolicyError, match="not representable as JSON"):
        parse_policy(deep)


def test_a_duplicate_key_cannot_turn_a_deny_into_an_allow() -> None:
    text = (
        '{"Version": "1", '
        '"Statement": [{"Effect": "Deny", "Effect": "Allow", "Action": "*", "Resource": "*"}]}'
    )
    with pytest.raises(PolicyError, match=r'^policy document has a duplicate key "Effect"$'):
        parse_policy(text)


def test_policy_json_is_canonical_and_round_trips() -> None:
    parsed = policy(
        statement(
            "Deny",
            "ice:Stop*",
            INSTANCE,
            {
                "notipaddress": {"ACS:SourceIp": ["10.0.0.5/8", "::ffff:192.168.0.0/112", "2001:db8::1"]},
                "DATELESSTHAN": {"acs:currenttime": ["2026-01-01", "2026-06-01T08:00:00+08:00"]},
                "Bool": {"acs:SecureTransport": ["TRUE", False]},
            },
        )
    )
    assert json.loads(policy_json(parsed)) == {
        "Version": "1",
        "Statement": [
            {
                "Effect": "Deny",
                "Action": ["ice:Stop*"],
                "Resource": [INSTANCE],
                "Condition": {
                    "NotIpAddress": {"acs:SourceIp": ["10.0.0.0/8", "192.168.0.0/16", "2001:db8::1/128"]},
                    "DateLessThan": {"acs:CurrentTime": ["2026-01-01T00:00:00Z", "2026-06-01T00:00:00Z"]},
                    "Bool": {"acs:SecureTransport": [True, False]},
                },
            }
        ],
    }
    assert parse_policy(policy_json(parsed)) == parsed
    assert policy_json(parse_policy(policy_json(parsed))) == policy_json(parsed)


def test_conditions_parse_to_typed_values() -> None:
    (only,) = policy(
        statement(
            condition={
                "IpAddress": {"acs:SourceIp": "10.0.0.0/8"},
                "DateGreaterThanEquals": {"acs:CurrentTime": "2026-01-01T08:00:00"},
                "Bool": {"acs:SecureTransport": True},
            }
        )
    ).statements
    ip, date, secure = only.conditions
    assert isinstance(ip, IpCondition)
    assert ip.operator == "IpAddress"
    assert not ip.negated
    assert isinstance(date, DateCondition)
    assert date.date_operator is DateOperator.GREATER_THAN_EQUALS
    assert date.times == (datetime(2026, 1, 1, 8, tzinfo=UTC),)  # naive means UTC
    assert secure == BoolCondition((True,))


def test_a_request_time_must_be_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        RequestContext("ice:A", INSTANCE, None, datetime(2026, 1, 1), True)


# --- patterns --------------------------------------------------------------------------------------------


def test_actions_match_case_insensitively() -> None:
    assert allows_action("ice:SendAIAgentSpeech", "ice:sendaiagentspeech")
    assert allows_action("ICE:sendAIagentSPEECH", "ice:SendAIAgentSpeech")
    assert allows_action("ice:send*", "ice:SendAIAgentSpeech")
    assert not allows_action("ice:SendAIAgentSpeech", "ice:SendAIAgentSpeechX")
    assert not allows_action("ice:SendAIAgentSpeech", "ice:SendAIAgentSpee")
    assert not allows_action("ice:SendAIAgentSpeech", "ecs:SendAIAgentSpeech")


def test_action_case_folding_is_ascii_only() -> None:
    assert not allows_action("ice:k*", "ice:\u212aey")  # KELVIN SIGN is not a "k"


def test_resources_match_case_sensitively() -> None:
    assert allows_resource(INSTANCE)
    assert not allows_resource(INSTANCE, INSTANCE.upper())
    assert not allows_resource(INSTANCE, INSTANCE.replace("3f2a", "3F2A"))
    assert not allows_resource("acs:ice:local:ACME:*")
    assert allows_resource("acs:ice:local:acme:*")


def test_star_matches_any_run_including_an_empty_one() -> None:
    assert allows_action("*", "ice:Anything")
    assert allows_action("*", "")
    assert allows_action("ice:Describe*", "ice:Describe")
    assert allows_action("ice:*AIAgent*", "ice:SendAIAgentSpeech")
    assert allows_action("ice:*AIAgent*", "ice:AIAgent")
    assert not allows_action("ice:*AIAgent*", "ice:AIAgen")
    assert allows_resource("*")
    assert allows_resource("acs:ice:*:*:ai-agent-instance/*")
    assert allows_resource("acs:*/3f2a")
    assert allows_resource("acs:*a*a*", "acs:aa")
    assert not allows_resource("acs:*a*a*", "acs:a")
    assert not allows_resource("acs:*/3f2")
    assert allows_resource("acs:*", "acs:line\nbreak")


def test_question_mark_is_exactly_one_character() -> None:
    assert allows_resource("acs:ice:local:acme:ai-agent-instance/3f2?")
    assert allows_resource("acs:ice:local:acme:ai-agent-instance/????")
    assert not allows_resource("acs:ice:local:acme:ai-agent-instance/???")
    assert not allows_resource("acs:ice:local:acme:ai-agent-instance/?????")
    assert allows_action("ice:Sen?AIAgentSpeech", "ice:SendAIAgentSpeech")
    assert not allows_action("ice:Sen??AIAgentSpeech", "ice:SendAIAgentSpeech")
    assert allows_resource("acs:?*?", "acs:ab")
    assert not allows_resource("acs:?*?", "acs:a")


@pytest.mark.parametrize("meta", [".", "+", "(", ")", "[", "]", "{2}", "^", "$", "|", "\\", "\\d"])
def test_regex_metacharacters_in_patterns_are_literal(meta: str) -> None:
    literal = f"acs:ice:local:acme:a{meta}b"
    assert allows_resource(literal, literal)
    assert allows_resource(f"acs:*{meta}*", literal)
    for near_miss in ("acs:ice:local:acme:axb", "acs:ice:local:acme:ab", "acs:ice:local:acme:a1b", INSTANCE):
        assert not allows_resource(literal, near_miss)
    assert allows_action(f"ice:A{meta}B", f"ice:a{meta}b")
    assert not allows_action(f"ice:A{meta}B", "ice:AxB")


def test_any_pattern_of_a_list_may_match() -> None:
    assert allows_action(["ice:Describe*", "ice:Send*"], "ice:SendAIAgentSpeech")
    assert allows_resource(["acs:ice:local:other:*", "acs:ice:local:acme:*"])
    assert not allows_action(["ice:Describe*", "ice:Stop*"], "ice:SendAIAgentSpeech")
    assert not allows_resource(["acs:ice:local:other:*", "acs:ice:local:acm"])


def test_many_stars_do_not_backtrack_exponentially() -> None:
    pattern = "acs:" + "*a" * 200 + "*b"
    started = time.perf_counter()
    for _ in range(20):
        assert not allows_resource(pattern, "acs:" + "a" * 5000)
    assert time.perf_counter() - started < 1.0
    assert allows_resource(pattern, "acs:" + "a" * 5000 + "b")


# --- conditions ------------------------------------------------------------------------------------------


def ip_allows(operator: str, values: Any, source_ip: str | None) -> bool:
    return allows(condition={operator: {"acs:SourceIp": values}}, on=request(source_ip=source_ip))


def test_ip_address() -> None:
    blocks = ["10.0.0.0/8", "192.168.1.7", "2001:db8::/32"]
    assert ip_allows("IpAddress", blocks, "10.200.0.1")
    assert ip_allows("IpAddress", blocks, "192.168.1.7")
    assert not ip_allows("IpAddress", blocks, "192.168.1.8")
    assert ip_allows("IpAddress", blocks, "2001:db8::42")
    assert not ip_allows("IpAddress", blocks, "2001:db9::42")
    assert not ip_allows("IpAddress", blocks, None)
    assert ip_allows("ipaddress", "10.0.0.0/8", "10.0.0.1")  # operator and key names ignore case
    assert ip_allows("IpAddress", "0.0.0.0/0", "8.8.8.8")
    assert not ip_allows("IpAddress", "0.0.0.0/0", "2001:db8::1")


def test_not_ip_address_holds_when_no_block_matches() -> None:
    blocks = ["10.0.0.0/8", "2001:db8::/32"]
    assert not ip_allows("NotIpAddress", blocks, "10.0.0.1")
    assert not ip_allows("NotIpAddress", blocks, "2001:db8::1")
    assert ip_allows("NotIpAddress", blocks, "172.16.0.1")
    assert not ip_allows("NotIpAddress", blocks, None)  # unknown source: the condition does not hold


def test_ipv4_mapped_addresses_match_ipv4_blocks_both_ways() -> None:
    assert ip_allows("IpAddress", "10.0.0.0/8", "::ffff:10.1.2.3")
    assert not ip_allows("NotIpAddress", "10.0.0.0/8", "::ffff:10.1.2.3")
    assert not ip_allows("IpAddress", "10.0.0.0/8", "::ffff:11.1.2.3")
    assert ip_allows("IpAddress", "::ffff:10.0.0.0/104", "10.1.2.3")
    assert ip_allows("IpAddress", "::ffff:10.0.0.0/104", "::ffff:10.1.2.3")


def time_allows(operator: str, values: Any, now: datetime = NOW) -> bool:
    return allows(condition={operator: {"acs:CurrentTime": values}}, on=request(current_time=now))


def test_date_operators() -> None:
    at = "2026-03-01T12:00:00Z"
    before, after = NOW - timedelta(seconds=1), NOW + timedelta(seconds=1)
    cases = {
        "DateEquals": (False, True, False),
        "DateNotEquals": (True, False, True),
        "DateLessThan": (True, False, False),
        "DateLessThanEquals": (True, True, False),
        "DateGreaterThan": (False, False, True),
        "DateGreaterThanEquals": (False, True, True),
    }
    for operator, expected in cases.items():
        assert tuple(time_allows(operator, at, now) for now in (before, NOW, after)) == expected, operator


def test_date_values_in_other_forms() -> None:
    assert time_allows("DateEquals", "2026-03-01T20:00:00+08:00")
    assert time_allows("DateEquals", "2026-03-01T12:00:00")  # naive is UTC
    assert time_allows("DateEquals", "2026-03-01", datetime(2026, 3, 1, tzinfo=UTC))  # midnight UTC
    assert not time_allows("DateEquals", "2026-03-01")
    assert time_allows("DateLessThan", "2026-03-02")
    assert time_allows("DateEquals", "2026-03-01T12:00:00Z", NOW.astimezone(timezone(timedelta(hours=-5))))


def test_date_values_any_of_or_none_of() -> None:
    assert time_allows("DateEquals", ["2020-01-01", "2026-03-01T12:00:00Z"])
    assert not time_allows("DateNotEquals", ["2020-01-01", "2026-03-01T12:00:00Z"])
    assert time_allows("DateNotEquals", ["2020-01-01", "2021-01-01"])
    assert time_allows("DateLessThan", ["2020-01-01", "2027-01-01"])


def test_bool_secure_transport() -> None:
    for written in (True, "true", "TRUE", "True"):
        assert allows(condition={"Bool": {"acs:SecureTransport": written}}, on=request(secure_transport=True))
        assert not allows(
            condition={"Bool": {"acs:SecureTransport": written}}, on=request(secure_transport=False)
        )
    for written in (False, "false", "FaLsE"):
        assert allows(
            condition={"bool": {"ACS:SECURETRANSPORT": written}}, on=request(secure_transport=False)
        )
        assert not allows(
            condition={"Bool": {"acs:SecureTransport": written}}, on=request(secure_transport=True)
        )
    assert allows(
        condition={"Bool": {"acs:SecureTransport": [True, False]}}, on=request(secure_transport=False)
    )


def test_every_operator_and_key_of_a_condition_must_hold() -> None:
    condition = {
        "IpAddress": {"acs:SourceIp": "10.0.0.0/8"},
        "DateLessThan": {"acs:CurrentTime": "2027-01-01"},
        "Bool": {"acs:SecureTransport": "true"},
    }
    assert allows(condition=condition, on=request())
    assert not allows(condition=condition, on=request(source_ip="11.0.0.1"))
    assert not allows(condition=condition, on=request(source_ip=None))
    assert not allows(condition=condition, on=request(current_time=datetime(2027, 1, 1, tzinfo=UTC)))
    assert not allows(condition=condition, on=request(secure_transport=False))
    assert allows(condition={}, on=request(source_ip=None))


def test_a_deny_whose_condition_lacks_its_context_does_not_apply() -> None:
    deny = statement("Deny", condition={"NotIpAddress": {"acs:SourceIp": "10.0.0.0/8"}})
    assert decide(statement(), deny, req=request(source_ip="192.168.0.1")) is Decision.EXPLICIT_DENY
    assert decide(statement(), deny, req=request(source_ip="10.0.0.1")) is Decision.ALLOW
    assert decide(statement(), deny, req=request(source_ip=None)) is Decision.ALLOW


# --- decisions -------------------------------------------------------------------------------------------


def test_nothing_matches_means_implicit_deny() -> None:
    assert evaluate([], request()) is Decision.IMPLICIT_DENY
    assert decide(statement("Allow", "ice:Describe*")) is Decision.IMPLICIT_DENY
    assert decide(statement("Deny", "ice:Describe*")) is Decision.IMPLICIT_DENY


def test_an_explicit_deny_wins_wherever_it_is() -> None:
    allow, deny = statement("Allow"), statement("Deny", "ice:Send*")
    assert decide(allow, deny) is Decision.EXPLICIT_DENY
    assert decide(deny, allow) is Decision.EXPLICIT_DENY
    assert decide(deny) is Decision.EXPLICIT_DENY
    assert evaluate([policy(allow), policy(deny)], request()) is Decision.EXPLICIT_DENY
    assert evaluate([policy(deny), policy(allow)], request()) is Decision.EXPLICIT_DENY
    assert evaluate([policy(allow), policy(deny)], request("ice:StopAIAgentInstance")) is Decision.ALLOW


def test_policies_combine() -> None:
    describe = policy(statement(action="ice:Describe*"))
    speak = policy(statement(action="ice:SendAIAgentSpeech", resource="acs:ice:local:acme:*"))
    assert evaluate([describe, speak], request()) is Decision.ALLOW
    assert evaluate([describe], request()) is Decision.IMPLICIT_DENY
    assert evaluate(iter([describe, speak]), request("ice:DescribeAIAgentInstance")) is Decision.ALLOW
    assert evaluate([describe, speak], request(resource="acs:ice:local:beta:x")) is Decision.IMPLICIT_DENY
    no_stop = policy(statement("Deny", action="ice:Stop*"))
    assert evaluate([speak, no_stop], request()) is Decision.ALLOW
    assert evaluate([speak, no_stop], request("ice:StopAIAgentInstance")) is Decision.EXPLICIT_DENY


def test_evaluate_is_cheap() -> None:
    parsed = policy(
        statement(
            action=["ice:*AIAgent*", "ice:Describe*"], resource="acs:ice:local:acme:ai-agent-instance/*"
        ),
        statement("Deny", "ice:Stop*", condition={"NotIpAddress": {"acs:SourceIp": ["10.0.0.0/8"]}}),
        statement(condition={"Bool": {"acs:SecureTransport": "true"}}),
    )
    req = request()
    runs = 2000
    started = time.perf_counter()
    for _ in range(runs):
        evaluate([parsed], req)
    # Generous for a loaded CI machine; on a laptop it is about 1.5 us.
    assert (time.perf_counter() - started) / runs < 100e-6
