"""The key directory and the authorizer over a real SQLite database: keys and policies as the CLI writes
them, reloaded as a running server does, and the decisions a request gets from them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from herald.auth.authorize import Authorizer, Origin
from herald.auth.directory import MISS_RELOAD_S, DirectorySettings, KeyDirectory
from herald.auth.keys import AccessKey
from herald.auth.sealing import SecretBox, new_master_key, parse_master_key
from herald.errors import ForbiddenRam
from herald.store.db import create_schema, database_url_for_dir, open_database
from herald.store.iam import IamError, IamStore
from herald.store.records import AccessKeyRecord
from herald.testing.clock import VirtualClock

NOW = datetime(2026, 1, 1, tzinfo=UTC)
LOOPBACK = Origin.of("127.0.0.1", "http")
SECOND_NS = 1_000_000_000


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[IamStore]:
    engine = open_database(database_url_for_dir(tmp_path))
    await create_schema(engine)
    yield IamStore(engine)
    await engine.dispose()


@pytest.fixture
def sealer() -> SecretBox:
    return SecretBox(parse_master_key(new_master_key()))


async def add_key(
    store: IamStore, sealer: SecretBox, key_id: str, account: str, user: str | None = None
) -> None:
    await store.add_key(
        AccessKeyRecord(key_id, account, user, sealer.seal(f"secret-of-{key_id}", bound_to=key_id), True, NOW)
    )


def policy(*statements: dict[str, object]) -> str:
    return json.dumps({"Version": "1", "Statement": list(statements)})


async def test_database_keys_are_found_with_their_secret_account_and_user(
    store: IamStore, sealer: SecretBox
) -> None:
    await store.create_account("acme", NOW)
    await store.create_user("acme", "alice", NOW)
    await add_key(store, sealer, "K-ROOT", "acme")
    await add_key(store, sealer, "K-ALICE", "acme", "alice")
    directory = KeyDirectory([AccessKey("K-STATIC", "s")], store, sealer, VirtualClock())
    await directory.start()

    assert directory.get("K-ROOT") == AccessKey("K-ROOT", "secret-of-K-ROOT", True, "acme", None)
    alice = directory.get("K-ALICE")
    assert alice is not None
    assert (alice.account_id, alice.user_name, alice.principal) == ("acme", "alice", "acme/alice")
    assert directory.get("K-STATIC") == AccessKey("K-STATIC", "s")
    assert "default" in await store.accounts()  # the account of configured keys exists


async def test_changes_are_seen_after_a_reload_and_a_miss_reloads_at_most_twice_a_second(
    store: IamStore, sealer: SecretBox
) -> None:
    clock = VirtualClock()
    await store.create_account("acme", NOW)
    directory = KeyDirectory([], store, sealer, clock)
    await directory.start()
    await add_key(store, sealer, "K-NEW", "acme")
    assert directory.get("K-NEW") is None

    # Two misses right after a load share one reload, held until MISS_RELOAD_S after that load.
    misses = [asyncio.create_task(directory.reload_after_miss()) for _ in range(2)]
    await asyncio.sleep(0.01)
    assert not any(task.done() for task in misses)
    assert directory.get("K-NEW") is None
    await clock.advance(int(MISS_RELOAD_S * SECOND_NS))
    await asyncio.gather(*misses)
    assert directory.get("K-NEW") is not None

    await store.set_key_active("K-NEW", False)
    await directory.reload()
    key = directory.get("K-NEW")
    assert key is not None
    assert not key.active
    await store.delete_key("K-NEW")
    await directory.reload()
    assert directory.get("K-NEW") is None


async def test_a_secret_sealed_under_another_master_key_is_left_out(
    store: IamStore, sealer: SecretBox
) -> None:
    await store.create_account("acme", NOW)
    await add_key(store, sealer, "K-1", "acme")
    other = SecretBox(parse_master_key(new_master_key()))
    directory = KeyDirectory([], store, other, VirtualClock())
    await directory.start()
    assert directory.get("K-1") is None


async def test_a_configured_key_wins_over_a_database_key_with_the_same_id(
    store: IamStore, sealer: SecretBox
) -> None:
    await store.create_account("acme", NOW)
    await add_key(store, sealer, "K-1", "acme")
    directory = KeyDirectory([AccessKey("K-1", "configured")], store, sealer, VirtualClock())
    await directory.start()
    assert directory.get("K-1") == AccessKey("K-1", "configured")


async def test_the_store_refuses_what_does_not_exist_or_already_does(
    store: IamStore, sealer: SecretBox
) -> None:
    with pytest.raises(IamError, match="does not exist"):
        await store.create_user("nobody", "alice", NOW)
    await store.create_account("acme", NOW)
    with pytest.raises(IamError, match="already exists"):
        await store.create_account("acme", NOW)
    with pytest.raises(IamError, match="no user 'bob'"):
        await add_key(store, sealer, "K-1", "acme", "bob")
    with pytest.raises(IamError, match="is invalid"):
        await store.create_account("Not Valid", NOW)
    await store.create_user("acme", "alice", NOW)
    await store.put_policy("acme", "p", policy(), "", NOW, replace=False)
    with pytest.raises(IamError, match="already exists"):
        await store.put_policy("acme", "p", policy(), "", NOW, replace=False)
    await store.attach("acme", "p", "alice")
    with pytest.raises(IamError, match="attached to alice"):
        await store.delete_policy("acme", "p")
    await store.delete_user("acme", "alice")  # takes its attachments along
    await store.delete_policy("acme", "p")
    assert await store.policies("acme") == []


# -- authorization ---------------------------------------------------------------------------------------


async def authorizer_for(
    store: IamStore, sealer: SecretBox, *documents: str
) -> tuple[Authorizer, KeyDirectory]:
    await store.create_account("acme", NOW)
    await store.create_user("acme", "alice", NOW)
    for index, document in enumerate(documents):
        await store.put_policy("acme", f"p{index}", document, "", NOW, replace=False)
        await store.attach("acme", f"p{index}", "alice")
    clock = VirtualClock()
    directory = KeyDirectory([], store, sealer, clock, DirectorySettings(region="eu-1"))
    await directory.start()
    return Authorizer(directory, clock), directory


ALICE = AccessKey("K-A", "s", True, "acme", "alice")


async def test_an_accounts_own_key_may_do_anything_and_a_user_nothing_by_default(
    store: IamStore, sealer: SecretBox
) -> None:
    authorizer, _ = await authorizer_for(store, sealer)
    authorizer.check(AccessKey("K-R", "s", True, "acme"), "StopAIAgentInstance", "*", LOOPBACK)
    with pytest.raises(ForbiddenRam) as caught:
        authorizer.check(ALICE, "StopAIAgentInstance", "ai-agent-instance/i-1", LOOPBACK)
    assert caught.value.detail == {
        "AuthAction": "ice:StopAIAgentInstance",
        "AuthResource": "acs:ice:eu-1:acme:ai-agent-instance/i-1",
        "AuthPrincipalType": "SubUser",
        "AuthPrincipalOwnerId": "acme",
        "AuthPrincipalDisplayName": "alice",
        "PolicyType": "AccountLevelIdentityBasedPolicy",
        "NoPermissionType": "ImplicitDeny",
    }
    assert caught.value.envelope_fields() == {"AccessDeniedDetail": caught.value.detail}
    assert "no policy allows it" in caught.value.message


async def test_an_explicit_deny_wins_and_says_so(store: IamStore, sealer: SecretBox) -> None:
    authorizer, _ = await authorizer_for(
        store,
        sealer,
        policy({"Effect": "Allow", "Action": "ice:*", "Resource": "*"}),
        policy({"Effect": "Deny", "Action": "ice:Stop*", "Resource": "acs:ice:*:acme:ai-agent-instance/i-1"}),
    )
    authorizer.check(ALICE, "StopAIAgentInstance", "ai-agent-instance/i-2", LOOPBACK)
    authorizer.check(ALICE, "SendAIAgentSpeech", "ai-agent-instance/i-1", LOOPBACK)
    with pytest.raises(ForbiddenRam) as caught:
        authorizer.check(ALICE, "StopAIAgentInstance", "ai-agent-instance/i-1", LOOPBACK)
    assert caught.value.detail["NoPermissionType"] == "ExplicitDeny"
    assert "a policy denies it" in caught.value.message


async def test_conditions_see_the_source_address_and_the_transport(
    store: IamStore, sealer: SecretBox
) -> None:
    authorizer, _ = await authorizer_for(
        store,
        sealer,
        policy(
            {
                "Effect": "Allow",
                "Action": "ice:*",
                "Resource": "*",
                "Condition": {
                    "IpAddress": {"acs:SourceIp": "10.0.0.0/8"},
                    "Bool": {"acs:SecureTransport": True},
                },
            }
        ),
    )
    authorizer.check(ALICE, "SendAIAgentSpeech", "*", Origin.of("10.1.2.3", "https"))
    for origin in (Origin.of("10.1.2.3", "http"), Origin.of("192.0.2.1", "https"), Origin.of(None, "https")):
        with pytest.raises(ForbiddenRam):
            authorizer.check(ALICE, "SendAIAgentSpeech", "*", origin)


async def test_a_stored_policy_that_no_longer_parses_denies_everything(
    store: IamStore, sealer: SecretBox
) -> None:
    authorizer, _ = await authorizer_for(
        store, sealer, policy({"Effect": "Allow", "Action": "ice:*", "Resource": "*"}), "{not json"
    )
    with pytest.raises(ForbiddenRam) as caught:
        authorizer.check(ALICE, "SendAIAgentSpeech", "*", LOOPBACK)
    assert caught.value.detail["NoPermissionType"] == "ExplicitDeny"
