"""``IamStore``: accounts, their users, access keys and policies, and which policies are attached to whom.

Written by the ``herald accounts|users|keys|policies`` commands, read by the server as a whole snapshot
(``herald.auth.directory``). Names are checked here, so every writer gets the same rules; policy documents
are checked by the caller (``herald.auth.policy``), which knows the language.
"""

from __future__ import annotations

import builtins
import contextlib
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from herald.auth.keys import check_account_name, check_user_name
from herald.store.records import AccessKeyRecord, IamSnapshot, PolicyRecord
from herald.store.tables import AccessKeyRow, AccountRow, PolicyRow, UserPolicyRow, UserRow

MAX_POLICY_NAME = 128


class IamError(ValueError):
    """The change cannot be made; the message says why (for the CLI to print)."""


def check_policy_name(name: str) -> str:
    if not 1 <= len(name) <= MAX_POLICY_NAME or not all(c.isalnum() or c in "-_." for c in name):
        raise IamError(
            f"policy name {name[:80]!r} is invalid: use 1-{MAX_POLICY_NAME} letters, digits, '-', '_', '.'"
        )
    return name


def _key_record(row: AccessKeyRow) -> AccessKeyRecord:
    return AccessKeyRecord(
        row.access_key_id, row.account_id, row.user_name, row.sealed_secret, row.active, row.created_at
    )


def _policy_record(row: PolicyRow) -> PolicyRecord:
    return PolicyRecord(
        row.account_id, row.policy_name, row.document, row.description, row.created_at, row.modified_at
    )


class IamStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)

    # -- accounts and users --------------------------------------------------------------------------

    async def create_account(self, account_id: str, now: datetime) -> None:
        _checked(check_account_name, account_id)
        async with self._sessions.begin() as session:
            if await session.get(AccountRow, account_id) is not None:
                raise IamError(f"the account {account_id!r} already exists")
            session.add(AccountRow(account_id=account_id, created_at=now))

    async def ensure_account(self, account_id: str, now: datetime) -> None:
        """Create ``account_id`` unless it exists (the default account, at start-up)."""
        with contextlib.suppress(IamError, IntegrityError):
            await self.create_account(account_id, now)

    async def accounts(self) -> builtins.list[str]:
        async with self._sessions() as session:
            return list(await session.scalars(select(AccountRow.account_id).order_by(AccountRow.account_id)))

    async def delete_account(self, account_id: str) -> None:
        """Delete an account with its users, keys and policies (its instances' records stay)."""
        async with self._sessions.begin() as session:
            await _require_account(session, account_id)
            for table in (UserPolicyRow, PolicyRow, AccessKeyRow, UserRow):
                await session.execute(delete(table).where(table.account_id == account_id))
            await session.execute(delete(AccountRow).where(AccountRow.account_id == account_id))

    async def create_user(self, account_id: str, user_name: str, now: datetime) -> None:
        _checked(check_user_name, user_name)
        async with self._sessions.begin() as session:
            await _require_account(session, account_id)
            if await session.get(UserRow, (account_id, user_name)) is not None:
                raise IamError(f"the user {user_name!r} already exists in the account {account_id!r}")
            session.add(UserRow(account_id=account_id, user_name=user_name, created_at=now))

    async def users(self, account_id: str) -> builtins.list[str]:
        async with self._sessions() as session:
            await _require_account(session, account_id)
            stmt = (
                select(UserRow.user_name).where(UserRow.account_id == account_id).order_by(UserRow.user_name)
            )
            return list(await session.scalars(stmt))

    async def delete_user(self, account_id: str, user_name: str) -> None:
        """Delete a user with its keys and attachments."""
        async with self._sessions.begin() as session:
            await _require_user(session, account_id, user_name)
            for table in (UserPolicyRow, AccessKeyRow, UserRow):
                await session.execute(
                    delete(table).where(table.account_id == account_id, table.user_name == user_name)
                )

    # -- keys ----------------------------------------------------------------------------------------

    async def add_key(self, record: AccessKeyRecord) -> None:
        async with self._sessions.begin() as session:
            await _require_account(session, record.account_id)
            if record.user_name is not None:
                await _require_user(session, record.account_id, record.user_name)
            session.add(
                AccessKeyRow(
                    access_key_id=record.access_key_id,
                    account_id=record.account_id,
                    user_name=record.user_name,
                    sealed_secret=record.sealed_secret,
                    active=record.active,
                    created_at=record.created_at,
                )
            )

    async def keys(self, account_id: str | None = None) -> builtins.list[AccessKeyRecord]:
        stmt = select(AccessKeyRow).order_by(AccessKeyRow.account_id, AccessKeyRow.created_at)
        if account_id is not None:
            stmt = stmt.where(AccessKeyRow.account_id == account_id)
        async with self._sessions() as session:
            return [_key_record(row) for row in await session.scalars(stmt)]

    async def set_key_active(self, access_key_id: str, active: bool) -> None:
        async with self._sessions.begin() as session:
            row = await session.get(AccessKeyRow, access_key_id)
            if row is None:
                raise IamError(f"no access key {access_key_id!r} in the database")
            row.active = active

    async def delete_key(self, access_key_id: str) -> None:
        async with self._sessions.begin() as session:
            row = await session.get(AccessKeyRow, access_key_id)
            if row is None:
                raise IamError(f"no access key {access_key_id!r} in the database")
            await session.delete(row)

    # -- policies ------------------------------------------------------------------------------------

    async def put_policy(
        self, account_id: str, name: str, document: str, description: str, now: datetime, *, replace: bool
    ) -> None:
        check_policy_name(name)
        async with self._sessions.begin() as session:
            await _require_account(session, account_id)
            row = await session.get(PolicyRow, (account_id, name))
            if row is None:
                session.add(
                    PolicyRow(
                        account_id=account_id,
                        policy_name=name,
                        document=document,
                        description=description,
                        created_at=now,
                        modified_at=now,
                    )
                )
            elif not replace:
                raise IamError(f"the policy {name!r} already exists in the account {account_id!r}")
            else:
                row.document, row.description, row.modified_at = document, description, now

    async def policies(self, account_id: str) -> builtins.list[PolicyRecord]:
        stmt = select(PolicyRow).where(PolicyRow.account_id == account_id).order_by(PolicyRow.policy_name)
        async with self._sessions() as session:
            await _require_account(session, account_id)
            return [_policy_record(row) for row in await session.scalars(stmt)]

    async def delete_policy(self, account_id: str, name: str) -> None:
        async with self._sessions.begin() as session:
            await _require_policy(session, account_id, name)
            attached = await session.scalars(
                select(UserPolicyRow.user_name).where(
                    UserPolicyRow.account_id == account_id, UserPolicyRow.policy_name == name
                )
            )
            users = sorted(attached)
            if users:
                raise IamError(f"the policy {name!r} is attached to {', '.join(users)}: detach it first")
            await session.execute(
                delete(PolicyRow).where(PolicyRow.account_id == account_id, PolicyRow.policy_name == name)
            )

    async def attach(self, account_id: str, name: str, user_name: str) -> None:
        async with self._sessions.begin() as session:
            await _require_policy(session, account_id, name)
            await _require_user(session, account_id, user_name)
            if await session.get(UserPolicyRow, (account_id, user_name, name)) is None:
                session.add(UserPolicyRow(account_id=account_id, user_name=user_name, policy_name=name))

    async def detach(self, account_id: str, name: str, user_name: str) -> None:
        async with self._sessions.begin() as session:
            row = await session.get(UserPolicyRow, (account_id, user_name, name))
            if row is None:
                raise IamError(f"the policy {name!r} is not attached to {user_name!r} in {account_id!r}")
            await session.delete(row)

    async def attached(self, account_id: str, user_name: str) -> builtins.list[str]:
        stmt = (
            select(UserPolicyRow.policy_name)
            .where(UserPolicyRow.account_id == account_id, UserPolicyRow.user_name == user_name)
            .order_by(UserPolicyRow.policy_name)
        )
        async with self._sessions() as session:
            return list(await session.scalars(stmt))

    # -- for the server ------------------------------------------------------------------------------

    async def snapshot(self) -> IamSnapshot:
        async with self._sessions() as session:
            accounts = frozenset(await session.scalars(select(AccountRow.account_id)))
            keys = tuple(_key_record(row) for row in await session.scalars(select(AccessKeyRow)))
            policies = tuple(_policy_record(row) for row in await session.scalars(select(PolicyRow)))
            rows = (
                await session.execute(
                    select(UserPolicyRow.account_id, UserPolicyRow.user_name, UserPolicyRow.policy_name)
                )
            ).all()
            attachments = tuple((str(a), str(u), str(p)) for a, u, p in rows)
        return IamSnapshot(accounts, keys, policies, attachments)


def _checked(check: Callable[[str], str], value: str) -> None:
    try:
        check(value)
    except ValueError as exc:
        raise IamError(str(exc)) from None


async def _require_account(session: AsyncSession, account_id: str) -> None:
    if await session.get(AccountRow, account_id) is None:
        raise IamError(f"the account {account_id!r} does not exist (create it with `herald accounts create`)")


async def _require_user(session: AsyncSession, account_id: str, user_name: str) -> None:
    await _require_account(session, account_id)
    if await session.get(UserRow, (account_id, user_name)) is None:
        raise IamError(f"the account {account_id!r} has no user {user_name!r} (see `herald users create`)")


async def _require_policy(session: AsyncSession, account_id: str, name: str) -> None:
    await _require_account(session, account_id)
    if await session.get(PolicyRow, (account_id, name)) is None:
        raise IamError(f"the account {account_id!r} has no policy {name!r}")
