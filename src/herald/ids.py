"""Identifiers in the shapes ICE uses."""

from __future__ import annotations

import uuid


def request_id() -> str:
    return str(uuid.uuid4()).upper()


def instance_id() -> str:
    return uuid.uuid4().hex


def channel_id() -> str:
    return uuid.uuid4().hex


def user_id() -> str:
    return "user-" + uuid.uuid4().hex[:16]


def agent_user_id() -> str:
    return "agent-" + uuid.uuid4().hex[:16]


def session_id() -> str:
    return uuid.uuid4().hex
