"""``herald accounts|users|keys|policies``: manage who may call Herald, in the database the server uses.

They write to the database directly (the one ``HERALD_DATABASE_URL`` or the data directory names), so
they work whether the server runs or not; a running server sees new keys at once and other changes within
``[auth] reload_s`` (2 s by default). A key's secret is printed once, on creation, and stored sealed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from herald.auth.keys import principal
from herald.auth.policy import MAX_DOCUMENT_BYTES, PolicyError, parse_policy
from herald.auth.sealing import SecretBox
from herald.clock import SystemClock
from herald.config import Settings, ensure_master_key
from herald.store.db import create_schema, database_url_for_dir, open_database
from herald.store.iam import IamError, IamStore
from herald.store.records import AccessKeyRecord

_WHERE = (
    "Changes go to the database the server uses (HERALD_DATABASE_URL, else the data directory), whether "
    "the server runs or not; a running server sees a new key at once and other changes within "
    "[auth] reload_s (2 s by default)."
)
KEY_ID_PREFIX = "HRLD"

Handler = Callable[[IamStore, argparse.Namespace, Settings], Awaitable[int]]


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    accounts = _group(commands, "accounts", "accounts: the owners of instances, users, keys and policies")
    _command(accounts, "create", _create_account, "create an account").add_argument("account")
    _command(accounts, "list", _list_accounts, "list the accounts")
    _command(
        accounts, "delete", _delete_account, "delete an account with its users, keys and policies"
    ).add_argument("account")

    users = _group(commands, "users", "users of an account; their keys may do what their policies allow")
    for name, handler, text in (
        ("create", _create_user, "create a user"),
        ("delete", _delete_user, "delete a user with its keys"),
    ):
        cmd = _command(users, name, handler, text)
        cmd.add_argument("account")
        cmd.add_argument("user")
    _command(users, "list", _list_users, "list an account's users").add_argument("account")

    keys = _group(commands, "keys", "access keys (AccessKeyId/AccessKeySecret pairs)")
    create = _command(keys, "create", _create_key, "create a key; its secret is printed once")
    create.add_argument("account")
    create.add_argument("--user", help="the key is this user's (else the account's own: allowed everything)")
    create.add_argument("--json", action="store_true", help="print the key as JSON")
    _command(keys, "list", _list_keys, "list keys (never their secrets)").add_argument("account", nargs="?")
    key_commands: tuple[tuple[str, Handler, str], ...] = (
        ("disable", _key_activation(False), "disable a key (requests signed with it are refused)"),
        ("enable", _key_activation(True), "enable a disabled key"),
        ("delete", _delete_key, "delete a key"),
    )
    for name, key_handler, text in key_commands:
        _command(keys, name, key_handler, text).add_argument("access_key_id", metavar="ACCESS_KEY_ID")

    policies = _group(commands, "policies", "RAM-style policies attached to users (docs/security.md)")
    put = _command(policies, "create", _create_policy, "create (or with --replace, replace) a policy")
    put.add_argument("account")
    put.add_argument("name")
    put.add_argument("file", metavar="FILE", help="the policy document (JSON); '-' reads standard input")
    put.add_argument("--description", default="")
    put.add_argument("--replace", action="store_true", help="replace the policy if it exists")
    _command(policies, "list", _list_policies, "list an account's policies").add_argument("account")
    for name, handler, text in (
        ("show", _show_policy, "print a policy's document"),
        ("delete", _delete_policy, "delete a policy (detach it first)"),
    ):
        cmd = _command(policies, name, handler, text)
        cmd.add_argument("account")
        cmd.add_argument("name")
    for name, handler, text in (
        ("attach", _attach, "attach a policy to a user"),
        ("detach", _detach, "detach a policy from a user"),
    ):
        cmd = _command(policies, name, handler, text)
        cmd.add_argument("account")
        cmd.add_argument("name")
        cmd.add_argument("user")


def _group(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], name: str, text: str
) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    parser = commands.add_parser(name, help=text, description=f"{text}. {_WHERE}")
    return parser.add_subparsers(dest=f"{name}_command", required=True)


def _command(
    group: argparse._SubParsersAction[argparse.ArgumentParser], name: str, handler: Handler, text: str
) -> argparse.ArgumentParser:
    parser = group.add_parser(name, help=text, description=text)
    parser.set_defaults(run=lambda settings, args: run(handler, settings, args))
    return parser


def run(handler: Handler, settings: Settings, args: argparse.Namespace) -> int:
    async def main() -> int:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = open_database(settings.database_url or database_url_for_dir(settings.data_dir))
        try:
            await create_schema(engine)
            return await handler(IamStore(engine), args, settings)
        finally:
            await engine.dispose()

    try:
        return asyncio.run(main())
    except (IamError, PolicyError, OSError) as exc:
        print(f"herald: {exc}", file=sys.stderr)
        return 1


# -- accounts and users ------------------------------------------------------------------------------


async def _create_account(store: IamStore, args: argparse.Namespace, settings: Settings) -> int:
    await store.create_account(args.account, SystemClock().now())
    print(f"created account {args.account}")
    return 0


async def _list_accounts(store: IamStore, args: argparse.Namespace, settings: Settings) -> int:
    for account in await store.accounts():
        print(account)
    return 0


async def _delete_account(store: IamStore, args: argparse.Namespace, settings: Settings) -> int:
    await store.delete_account(args.account)
    print(f"deleted account {args.account} with its users, keys and policies")
    return 0


async def _create_user(store: IamStore, args: argparse.Namespace, settings: Settings) -> int:
    await store.create_user(args.account, args.user, SystemClock().now())
    print(
        f"created user {args.user} in account {args.account} (it may do nothing until a policy is attached)"
    )
    return 0


async def _list_users(store: IamStore, args: argparse.Namespace, settings: Settings) -> int:
    for user in await store.users(args.account):
        attached = await store.attached(args.account, user)
        print(f"{user}\t{', '.join(attached) or '(no policies)'}")
    return 0


async def _delete_user(store: IamStore, args: argparse.Namespace, settings: Settings) -> int:
    await store.delete_user(args.account, args.user)
    print(f"deleted user {args.user} of account {args.account} with its keys")
    return 0


# -- keys --------------------------------------------------------------------------------------------


async def _create_key(store: IamStore, args: argparse.Namespace, settings: Settings) -> int:
    box = SecretBox(ensure_master_key(settings))
    key_id = KEY_ID_PREFIX + secrets.token_hex(10).upper()
    secret = secrets.token_urlsafe(30)
    await store.add_key(
        AccessKeyRecord(
            access_key_id=key_id,
            account_id=args.account,
            user_name=args.user,
            sealed_secret=box.seal(secret, bound_to=key_id),
            active=True,
            created_at=SystemClock().now(),
        )
    )
    owner = principal(args.account, args.user)
    if args.json:
        print(json.dumps({"AccessKeyId": key_id, "AccessKeySecret": secret, "Account": args.account,
                          "User": args.user}))  # fmt: skip
    else:
        print(f"AccessKeyId:     {key_id}\nAccessKeySecret: {secret}\nOwner:           {owner}")
        print("The secret is shown only now: keep it somewhere safe.", file=sys.stderr)
    return 0


async def _list_keys(store: IamStore, args: argparse.Namespace, settings: Settings) -> int:
    for key in await store.keys(args.account):
        owner = principal(key.account_id, key.user_name)
        status = "active" if key.active else "disabled"
        print(f"{key.access_key_id}\t{owner}\t{status}\t{key.created_at:%Y-%m-%dT%H:%M:%SZ}")
    return 0


def _key_activation(active: bool) -> Handler:
    async def handler(store: IamStore, args: argparse.Namespace, settings: Settings) -> int:
        await store.set_key_active(args.access_key_id, active)
        print(f"{'enabled' if active else 'disabled'} {args.access_key_id}")
        return 0

    return handler


async def _delete_key(store: IamStore, args: argparse.Namespace, settings: Settings) -> int:
    await store.delete_key(args.access_key_id)
    print(f"deleted {args.access_key_id}")
    return 0


# -- policies ----------------------------------------------------------------------------------------


async def _create_policy(store: IamStore, args: argparse.Namespace, settings: Settings) -> int:
    raw = sys.stdin.buffer.read(MAX_DOCUMENT_BYTES + 1) if args.file == "-" else _read_file(Path(args.file))
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise PolicyError(f"the policy document is over {MAX_DOCUMENT_BYTES // 1024} KiB")
    try:
        document = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PolicyError("the policy document must be UTF-8 JSON") from None
    parse_policy(document)  # refuse what the server could not use
    await store.put_policy(
        args.account, args.name, document, args.description, SystemClock().now(), replace=args.replace
    )
    print(f"{'saved' if args.replace else 'created'} policy {args.name} in account {args.account}")
    return 0


def _read_file(path: Path) -> bytes:
    with path.open("rb") as f:
        return f.read(MAX_DOCUMENT_BYTES + 1)


async def _list_policies(store: IamStore, args: argparse.Namespace, settings: Settings) -> int:
    for policy in await store.policies(args.account):
        print(f"{policy.policy_name}\t{policy.description}")
    return 0


async def _show_policy(store: IamStore, args: argparse.Namespace, settings: Settings) -> int:
    for policy in await store.policies(args.account):
        if policy.policy_name == args.name:
            print(policy.document)
            return 0
    raise IamError(f"the account {args.account!r} has no policy {args.name!r}")


async def _delete_policy(store: IamStore, args: argparse.Namespace, settings: Settings) -> int:
    await store.delete_policy(args.account, args.name)
    print(f"deleted policy {args.name} of account {args.account}")
    return 0


async def _attach(store: IamStore, args: argparse.Namespace, settings: Settings) -> int:
    await store.attach(args.account, args.name, args.user)
    print(f"attached {args.name} to {args.account}/{args.user}")
    return 0


async def _detach(store: IamStore, args: argparse.Namespace, settings: Settings) -> int:
    await store.detach(args.account, args.name, args.user)
    print(f"detached {args.name} from {args.account}/{args.user}")
    return 0
