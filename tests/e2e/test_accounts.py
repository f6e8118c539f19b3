"""Accounts, users, keys and policies end to end: managed with the ``herald`` CLI while a real server runs,
used with the official SDK.

What a user relies on: another account never sees an instance (``InstanceNotFound``, not in lists); a
user's key does only what its policies allow, with ICE's ``Forbidden.RAM`` and ``AccessDeniedDetail``
otherwise; a key made with the CLI works at once and a disabled one stops working; no secret is stored in
plain text; an account over its request rate gets the SDK's throttling error.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from alibabacloud_ice20201109 import models
from alibabacloud_tea_openapi.exceptions import ClientException, ThrottlingException

from herald.testing.server import HeraldServer

RELOAD_WAIT_S = 10.0
"""Changes other than a new key reach a running server within [auth] reload_s (1 s here); generous."""


@pytest.fixture(scope="module")
def server() -> Iterator[HeraldServer]:
    config = "[auth]\nreload_s = 1.0\n\n[throttling.actions.ListAIAgentDialogues]\nrate = 1\nburst = 3\n"
    with HeraldServer(check_exit=False, config=config) as running:
        yield running


def cli_ok(server: HeraldServer, *args: str) -> str:
    done = server.cli(*args)
    assert done.returncode == 0, f"herald {' '.join(args)} exited {done.returncode}: {done.stderr}"
    return done.stdout


def new_key(server: HeraldServer, account: str, user: str | None = None) -> dict[str, str]:
    args = ["keys", "create", account, "--json"] + (["--user", user] if user else [])
    key: dict[str, str] = json.loads(cli_ok(server, *args))
    return key


def client_for(server: HeraldServer, key: dict[str, str]) -> Any:
    return server.sdk_client(access_key_id=key["AccessKeyId"], access_key_secret=key["AccessKeySecret"])


def generate(client: Any) -> Any:
    return client.generate_aiagent_call(models.GenerateAIAgentCallRequest(aiagent_id="default")).body


def describe(client: Any, instance_id: str) -> Any:
    return client.describe_aiagent_instance(models.DescribeAIAgentInstanceRequest(instance_id=instance_id))


def speak(client: Any, instance_id: str, text: str = "Hello.") -> Any:
    return client.send_aiagent_speech(models.SendAIAgentSpeechRequest(instance_id=instance_id, text=text))


def refused(fn: Any, *args: Any) -> ClientException:
    with pytest.raises(ClientException) as caught:
        fn(*args)
    return caught.value


def fails_with(client: Any, code: str) -> None:
    """GenerateAIAgentCall with ``client`` fails with ``code`` (else an AssertionError, for eventually)."""
    try:
        generate(client)
    except ClientException as exc:
        error: ClientException | None = exc
    else:
        error = None
    assert error is not None, "the request was accepted"
    assert error.code == code, error


def write_policy(tmp_path: Path, statements: list[dict[str, Any]]) -> str:
    path = tmp_path / f"policy-{time.monotonic_ns()}.json"
    path.write_text(json.dumps({"Version": "1", "Statement": statements}))
    return str(path)


def eventually(check: Any, timeout_s: float = RELOAD_WAIT_S) -> Any:
    """``check()`` until it stops failing (a running server reloads every reload_s); its last failure if
    it never does."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return check()
        except (AssertionError, ClientException, pytest.fail.Exception):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


# -- accounts ------------------------------------------------------------------------------------------


def test_another_accounts_instances_are_not_found_and_never_listed(server: HeraldServer) -> None:
    cli_ok(server, "accounts", "create", "acme")
    cli_ok(server, "accounts", "create", "globex")
    acme, globex = client_for(server, new_key(server, "acme")), client_for(server, new_key(server, "globex"))

    call = generate(acme)  # a key made a moment ago works at once
    assert describe(acme, call.instance_id).body.instance.status in ("Created", "Executing")
    for fn in (describe, speak):
        error = refused(fn, globex, call.instance_id)
        assert (error.status_code, error.code) == (404, "InstanceNotFound"), error
    error = refused(
        globex.stop_aiagent_instance, models.StopAIAgentInstanceRequest(instance_id=call.instance_id)
    )
    assert error.code == "InstanceNotFound"

    def channels(client: Any) -> set[str]:
        request = models.ListAIAgentInstanceRequest(aiagent_id="default", page_size=100)
        listed = client.list_aiagent_instance(request).body.instances or []
        return {i.runtime_config.channel_id for i in listed}

    assert call.channel_id not in channels(globex)
    assert call.channel_id in channels(acme)
    # ... and the default account's key (the server's own) does not see acme's instance either.
    assert refused(describe, server.sdk_client(), call.instance_id).code == "InstanceNotFound"


def test_the_event_stream_is_the_accounts_and_needs_its_own_permission(
    server: HeraldServer, tmp_path: Path
) -> None:
    cli_ok(server, "accounts", "create", "streams")
    cli_ok(server, "users", "create", "streams", "carol")
    owner_key, carol_key = new_key(server, "streams"), new_key(server, "streams", "carol")
    call = generate(client_for(server, owner_key))
    path = f"/v1/instances/{call.instance_id}/events"

    def first_answer(key: dict[str, str]) -> httpx.Response:
        headers = server.signed_get(
            path, access_key_id=key["AccessKeyId"], access_key_secret=key["AccessKeySecret"]
        )
        with httpx.stream("GET", server.url + path, headers=headers, timeout=10) as response:
            if response.status_code != 200:  # an error envelope; a 200 is a stream that goes on
                response.read()
            return response

    assert first_answer(owner_key).status_code == 200
    foreign = first_answer(new_key(server, "default"))
    assert (foreign.status_code, foreign.json()["Code"]) == (404, "InstanceNotFound")
    denied = first_answer(carol_key)
    assert (denied.status_code, denied.json()["Code"]) == (403, "Forbidden.RAM")
    assert denied.json()["AccessDeniedDetail"]["AuthAction"] == "ice:DescribeAIAgentInstanceEvents"
    allow = write_policy(
        tmp_path, [{"Effect": "Allow", "Action": "ice:DescribeAIAgentInstanceEvents", "Resource": "*"}]
    )
    cli_ok(server, "policies", "create", "streams", "follow", allow)
    cli_ok(server, "policies", "attach", "streams", "follow", "carol")

    def allowed() -> None:
        assert first_answer(carol_key).status_code == 200

    eventually(allowed)


# -- keys ----------------------------------------------------------------------------------------------


def test_secrets_are_not_stored_in_plain_text(server: HeraldServer) -> None:
    cli_ok(server, "accounts", "create", "sealed")
    key = new_key(server, "sealed")
    database = (server.data_dir / "herald.db").read_bytes()
    wal = server.data_dir / "herald.db-wal"
    stored = database + (wal.read_bytes() if wal.exists() else b"")
    assert key["AccessKeyId"].encode() in stored
    assert key["AccessKeySecret"].encode() not in stored
    listing = cli_ok(server, "keys", "list", "sealed")
    assert key["AccessKeyId"] in listing
    assert key["AccessKeySecret"] not in listing
    with sqlite3.connect(server.data_dir / "herald.db") as db:
        (sealed,) = db.execute(
            "SELECT sealed_secret FROM access_keys WHERE access_key_id = ?", (key["AccessKeyId"],)
        ).fetchone()
    assert sealed.startswith("v1:")
    assert key["AccessKeySecret"] not in sealed


def test_a_disabled_key_is_refused_and_an_enabled_one_works_again(server: HeraldServer) -> None:
    cli_ok(server, "accounts", "create", "toggled")
    key = new_key(server, "toggled")
    client = client_for(server, key)
    generate(client)
    cli_ok(server, "keys", "disable", key["AccessKeyId"])

    eventually(lambda: fails_with(client, "InvalidAccessKeyId.Inactive"))
    cli_ok(server, "keys", "enable", key["AccessKeyId"])
    eventually(lambda: generate(client))
    cli_ok(server, "keys", "delete", key["AccessKeyId"])

    eventually(lambda: fails_with(client, "InvalidAccessKeyId.NotFound"))


def test_cli_errors_are_one_clear_line(server: HeraldServer, tmp_path: Path) -> None:
    cases = [
        (("keys", "create", "nobody-here"), "account 'nobody-here' does not exist"),
        (("accounts", "create", "Bad Name"), "account name 'Bad Name' is invalid"),
        (("users", "create", "default", "x/y"), "user name 'x/y' is invalid"),
        (("keys", "disable", "HRLDNOPE"), "no access key 'HRLDNOPE'"),
        (("policies", "attach", "default", "nope", "nobody"), "has no policy 'nope'"),
    ]
    bad = tmp_path / "bad.json"
    bad.write_text('{"Version": "1", "Statement": [{"Effect": "Maybe", "Action": "*", "Resource": "*"}]}')
    cases.append((("policies", "create", "default", "bad", str(bad)), "Statement[0].Effect"))
    for args, expected in cases:
        done = server.cli(*args)
        assert done.returncode == 1, (args, done)
        assert expected in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr


# -- users and policies --------------------------------------------------------------------------------


def test_a_users_key_does_what_its_policies_allow_and_nothing_else(
    server: HeraldServer, tmp_path: Path
) -> None:
    cli_ok(server, "accounts", "create", "studio")
    cli_ok(server, "users", "create", "studio", "alice")
    alice = client_for(server, new_key(server, "studio", "alice"))

    # No policy yet: everything is denied, implicitly.
    error = refused(generate, alice)
    assert (error.status_code, error.code) == (403, "Forbidden.RAM"), error
    detail = error.data["AccessDeniedDetail"]
    assert detail["AuthAction"] == "ice:GenerateAIAgentCall"
    assert detail["NoPermissionType"] == "ImplicitDeny"
    assert detail["AuthPrincipalOwnerId"] == "studio"
    assert detail["AuthPrincipalDisplayName"] == "alice"

    operator = client_for(server, new_key(server, "studio"))  # the account's own key
    call = generate(operator)
    allow = write_policy(
        tmp_path,
        [{"Effect": "Allow", "Action": ["ice:Describe*", "ice:SendAIAgent?peech"], "Resource": "*"}],
    )
    cli_ok(server, "policies", "create", "studio", "speaker", allow)
    cli_ok(server, "policies", "attach", "studio", "speaker", "alice")

    eventually(lambda: describe(alice, call.instance_id))  # the account's instance, allowed by the policy
    speak(alice, call.instance_id)
    assert refused(generate, alice).code == "Forbidden.RAM"  # not in the policy

    deny = write_policy(
        tmp_path,
        [
            {
                "Effect": "Deny",
                "Action": "ice:sendaiagentspeech",  # actions are case-insensitive
                "Resource": f"acs:ice:*:studio:ai-agent-instance/{call.instance_id}",
            }
        ],
    )
    cli_ok(server, "policies", "create", "studio", "quiet", deny)
    cli_ok(server, "policies", "attach", "studio", "quiet", "alice")

    def explicitly_denied() -> None:
        error = refused(speak, alice, call.instance_id)
        assert error.code == "Forbidden.RAM", error
        assert error.data["AccessDeniedDetail"]["NoPermissionType"] == "ExplicitDeny"
        assert error.data["AccessDeniedDetail"]["AuthResource"].endswith(call.instance_id)

    eventually(explicitly_denied)
    describe(alice, call.instance_id)  # the Deny names one action only

    cli_ok(server, "policies", "detach", "studio", "quiet", "alice")
    eventually(lambda: speak(alice, call.instance_id))


def test_conditions_on_the_source_address(server: HeraldServer, tmp_path: Path) -> None:
    cli_ok(server, "accounts", "create", "netco")
    cli_ok(server, "users", "create", "netco", "bob")
    bob = client_for(server, new_key(server, "netco", "bob"))
    call = generate(client_for(server, new_key(server, "netco")))
    only_office = write_policy(
        tmp_path,
        [
            {
                "Effect": "Allow",
                "Action": "ice:*",
                "Resource": "*",
                "Condition": {"IpAddress": {"acs:SourceIp": ["203.0.113.0/24"]}},
            }
        ],
    )
    cli_ok(server, "policies", "create", "netco", "office", only_office)
    cli_ok(server, "policies", "attach", "netco", "office", "bob")
    time.sleep(2.5)  # past a reload: the refusal below is the condition's, not a stale directory's
    error = refused(describe, bob, call.instance_id)
    assert error.code == "Forbidden.RAM"
    assert error.data["AccessDeniedDetail"]["NoPermissionType"] == "ImplicitDeny"

    loopback = write_policy(
        tmp_path,
        [
            {
                "Effect": "Allow",
                "Action": "ice:*",
                "Resource": "*",
                "Condition": {
                    "IpAddress": {"acs:SourceIp": "127.0.0.0/8"},
                    "Bool": {"acs:SecureTransport": "false"},
                },
            }
        ],
    )
    cli_ok(server, "policies", "create", "netco", "office", loopback, "--replace")
    eventually(lambda: describe(bob, call.instance_id))


# -- throttling ----------------------------------------------------------------------------------------


def test_an_account_over_its_rate_gets_the_sdks_throttling_error(server: HeraldServer) -> None:
    cli_ok(server, "accounts", "create", "busy")
    busy = client_for(server, new_key(server, "busy"))
    calm = server.sdk_client()
    request = models.ListAIAgentDialoguesRequest(session_id="s-1")
    for _ in range(3):  # the configured burst, at 1 per second
        busy.list_aiagent_dialogues(request)
    with pytest.raises(ThrottlingException) as caught:
        busy.list_aiagent_dialogues(request)
    error = caught.value
    assert error.code == "Throttling.User"
    assert error.status_code == 400
    assert 1 <= error.retry_after <= 1000, error.retry_after  # milliseconds until the next token
    calm.list_aiagent_dialogues(request)  # another account's rate is its own
    generate(busy)  # and another action's
    time.sleep(error.retry_after / 1000 + 0.05)
    busy.list_aiagent_dialogues(request)
