"""Properties of policy evaluation that hold for every policy set and every request (Hypothesis)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from functools import cache
from ipaddress import ip_address
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from herald.auth.policy import Decision, Policy, RequestContext, evaluate, parse_policy, policy_json

Document = list[dict[str, Any]]  # the statements of one policy document

# Small alphabets make matches frequent; ".", "+" and "(" are there to catch a pattern read as a regex.
LITERAL = "abAB.+("
WILDCARD = LITERAL + "*?"
RESOURCE_CHUNKS = ["ice:", "local:", "acme:", "ai-agent-instance/", "a", "B", ".", "+", "(", ":"]

NETWORKS = ["10.0.0.0/8", "10.1.2.3", "192.168.0.0/16", "::ffff:10.0.0.0/104", "2001:db8::/32", "0.0.0.0/0"]
SOURCE_IPS = ["10.1.2.3", "10.9.9.9", "192.168.1.1", "::ffff:10.1.2.3", "2001:db8::1", "8.8.8.8", None]
DATE_OPERATORS = ["DateEquals", "DateNotEquals", "DateLessThan", "DateLessThanEquals", "DateGreaterThan"]
TIMES = ["2026-01-01", "2026-03-01T12:00:00Z", "2026-03-01T20:00:00+08:00", "2026-06-01T00:00:00"]
NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
REQUEST_TIMES = [
    datetime(2026, 1, 1, tzinfo=UTC),
    NOW,
    NOW.astimezone(timezone(timedelta(hours=-5))),
    NOW + timedelta(microseconds=1),
    datetime(2027, 1, 1, tzinfo=UTC),
]

actions = st.builds("{}:{}".format, st.sampled_from(["ice", "ICE", "ecs"]), st.text(LITERAL, max_size=3))
action_patterns = st.one_of(
    st.just("*"),
    st.builds(
        "{}:{}".format, st.sampled_from(["ice", "Ice", "ecs"]), st.text(WILDCARD, min_size=1, max_size=4)
    ),
)
resources = st.lists(st.sampled_from(RESOURCE_CHUNKS), max_size=4).map(
    lambda chunks: "acs:" + "".join(chunks)
)
resource_patterns = st.one_of(
    st.just("*"),
    st.lists(st.sampled_from([*RESOURCE_CHUNKS, "*", "?"]), max_size=4).map(
        lambda chunks: "acs:" + "".join(chunks)
    ),
)


def _one_or_many(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(values, st.lists(values, min_size=1, max_size=2))


# Strategies are built once, here: building them inside a composite per draw is what makes Hypothesis slow.
def _maybe(part: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(st.just({}), part)


def _block(operators: list[str], key: str, values: list[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.tuples(st.sampled_from(operators), _one_or_many(st.sampled_from(values))).map(
        lambda drawn: {drawn[0]: {key: drawn[1]}}
    )


conditions = st.tuples(
    _maybe(_block(["IpAddress", "NotIpAddress", "notipaddress"], "acs:SourceIp", NETWORKS)),
    _maybe(_block(DATE_OPERATORS, "acs:CurrentTime", TIMES)),
    _maybe(_block(["Bool"], "ACS:SecureTransport", [True, False, "true", "FALSE"])),
).map(lambda blocks: {name: block for part in blocks for name, block in part.items()})


def _statement(effect: str, action: Any, resource: Any, condition: dict[str, Any]) -> dict[str, Any]:
    entry = {"Effect": effect, "Action": action, "Resource": resource}
    return {**entry, "Condition": condition} if condition else entry


def statements(effect: str | None = None) -> st.SearchStrategy[dict[str, Any]]:
    effects = st.sampled_from(["Allow", "Deny"]) if effect is None else st.just(effect)
    parts = (effects, _one_or_many(action_patterns), _one_or_many(resource_patterns), conditions)
    return st.tuples(*parts).map(lambda drawn: _statement(*drawn))


policy_sets = st.lists(st.lists(statements(), min_size=1, max_size=4), max_size=3)
requests = st.builds(
    RequestContext,
    action=actions,
    resource=resources,
    source_ip=st.sampled_from(SOURCE_IPS).map(lambda ip: None if ip is None else ip_address(ip)),
    current_time=st.sampled_from(REQUEST_TIMES),
    secure_transport=st.booleans(),
)


def parse_all(documents: list[Document]) -> list[Policy]:
    return [parse_policy({"Version": "1", "Statement": statements}) for statements in documents]


def policy_of(statement: dict[str, Any]) -> Policy:
    return parse_policy({"Version": "1", "Statement": [statement]})


def with_statement(documents: list[Document], index: int, added: dict[str, Any]) -> list[Document]:
    """``documents`` with ``added`` at the end of policy ``index``, or in a policy of its own past the end."""
    if index == len(documents):
        return [*documents, [added]]
    return [[*statements, added] if i == index else statements for i, statements in enumerate(documents)]


@given(policy_sets, statements(effect="Deny"), st.lists(requests, min_size=1, max_size=4), st.data())
def test_adding_a_deny_never_widens_access(
    documents: list[Document], deny: dict[str, Any], batch: list[RequestContext], data: st.DataObject
) -> None:
    index = data.draw(st.integers(0, len(documents)), label="policy that gets the deny")
    original, denied, deny_alone = (
        parse_all(documents),
        parse_all(with_statement(documents, index, deny)),
        policy_of(deny),
    )
    for request in batch:
        before, after = evaluate(original, request), evaluate(denied, request)
        if before is not Decision.ALLOW:
            assert after is not Decision.ALLOW
        # Exactly: the deny wins when it applies, and changes nothing when it does not.
        deny_applies = evaluate([deny_alone], request) is Decision.EXPLICIT_DENY
        assert after is (Decision.EXPLICIT_DENY if deny_applies else before)


@given(policy_sets, statements(effect="Allow"), st.lists(requests, min_size=1, max_size=4), st.data())
def test_adding_an_allow_never_narrows_access(
    documents: list[Document], allow: dict[str, Any], batch: list[RequestContext], data: st.DataObject
) -> None:
    index = data.draw(st.integers(0, len(documents)), label="policy that gets the allow")
    original, allowed, allow_alone = (
        parse_all(documents),
        parse_all(with_statement(documents, index, allow)),
        policy_of(allow),
    )
    for request in batch:
        before, after = evaluate(original, request), evaluate(allowed, request)
        if before is Decision.ALLOW:
            assert after is Decision.ALLOW
        elif before is Decision.EXPLICIT_DENY:
            assert after is Decision.EXPLICIT_DENY
        else:
            allow_applies = evaluate([allow_alone], request) is Decision.ALLOW
            assert after is (Decision.ALLOW if allow_applies else Decision.IMPLICIT_DENY)


@given(policy_sets, st.lists(requests, min_size=1, max_size=4), st.data())
def test_order_of_statements_and_policies_never_matters(
    documents: list[Document], batch: list[RequestContext], data: st.DataObject
) -> None:
    shuffled = [data.draw(st.permutations(statements), label="statements") for statements in documents]
    shuffled = data.draw(st.permutations(shuffled), label="policies")
    original, permuted = parse_all(documents), parse_all(shuffled)
    for request in batch:
        assert evaluate(permuted, request) is evaluate(original, request)


@given(st.text(LITERAL, min_size=1, max_size=6), st.data())
def test_an_action_without_wildcards_matches_exactly_its_own_text_ignoring_case(
    name: str, data: st.DataObject
) -> None:
    other = data.draw(
        st.one_of(
            st.just(name), st.just(name.swapcase()), st.just(name.upper()), st.text(LITERAL, max_size=6)
        ),
        label="requested action name",
    )
    parsed = parse_policy(
        {"Version": "1", "Statement": [{"Effect": "Allow", "Action": f"ice:{name}", "Resource": "*"}]}
    )
    request = RequestContext(f"ICE:{other}", "acs:x", None, NOW, True)
    expected = Decision.ALLOW if other.lower() == name.lower() else Decision.IMPLICIT_DENY
    assert evaluate([parsed], request) is expected


@given(st.text(LITERAL + ":/", max_size=6), st.data())
def test_a_resource_without_wildcards_matches_exactly_its_own_text(name: str, data: st.DataObject) -> None:
    other = data.draw(
        st.one_of(st.just(name), st.just(name.swapcase()), st.text(LITERAL + ":/", max_size=6)),
        label="requested resource",
    )
    parsed = parse_policy(
        {"Version": "1", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": f"acs:{name}"}]}
    )
    request = RequestContext("ice:A", f"acs:{other}", None, NOW, True)
    assert (evaluate([parsed], request) is Decision.ALLOW) is (other == name)


def glob_matches(pattern: str, text: str) -> bool:
    """The reference: ``*`` is any run, ``?`` one character, anything else itself (dynamic programming)."""

    @cache
    def match(p: int, t: int) -> bool:
        if p == len(pattern):
            return t == len(text)
        if pattern[p] == "*":
            return match(p + 1, t) or (t < len(text) and match(p, t + 1))
        return t < len(text) and pattern[p] in ("?", text[t]) and match(p + 1, t + 1)

    return match(0, 0)


@st.composite
def pattern_and_text(draw: st.DrawFn) -> tuple[str, str]:
    """A pattern, and a text that is either arbitrary or an instance of the pattern (so that it matches).

    A tiny alphabet makes the runs between stars recur in the text, where a wrong choice among them shows.
    """
    pattern = draw(st.text("aAb.*?", min_size=1, max_size=8), label="pattern")
    one = st.sampled_from("aAb.")
    arbitrary = st.text("aAb.", max_size=8)
    instance = st.tuples(
        *(st.text("aAb.", max_size=3) if c == "*" else one if c == "?" else st.just(c) for c in pattern)
    )
    return pattern, draw(st.one_of(arbitrary, instance.map("".join)), label="text")


@given(pattern_and_text())
def test_wildcard_matching_agrees_with_a_reference_matcher(case: tuple[str, str]) -> None:
    pattern, text = case
    by_resource = parse_policy(
        {"Version": "1", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": f"acs:{pattern}"}]}
    )
    by_action = parse_policy(
        {"Version": "1", "Statement": [{"Effect": "Allow", "Action": f"ice:{pattern}", "Resource": "*"}]}
    )
    resource_request = RequestContext("ice:A", f"acs:{text}", None, NOW, True)
    action_request = RequestContext(f"ice:{text}", "acs:x", None, NOW, True)
    assert (evaluate([by_resource], resource_request) is Decision.ALLOW) is glob_matches(pattern, text)
    assert (evaluate([by_action], action_request) is Decision.ALLOW) is glob_matches(
        pattern.lower(), text.lower()
    )


@given(policy_sets, st.lists(requests, min_size=1, max_size=4))
def test_canonical_json_round_trips(documents: list[Document], batch: list[RequestContext]) -> None:
    policies = parse_all(documents)
    again = [parse_policy(policy_json(policy)) for policy in policies]
    assert again == policies
    for request in batch:
        assert evaluate(again, request) is evaluate(policies, request)
