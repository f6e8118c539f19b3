"""The instance state machine.

    Created ──► Executing ──► Finished
       └───────────────────────▲

``Created``: the agent is in its channel, no user has joined yet. ``Executing``: a user joined.
``Finished``: stopped (by the API, a client, the system or a restart). Nothing leaves ``Finished``.
"""

from __future__ import annotations

import enum

from herald.errors import IncorrectInstanceStatus


class InstanceStatus(enum.StrEnum):
    CREATED = "Created"
    EXECUTING = "Executing"
    FINISHED = "Finished"


TRANSITIONS: dict[InstanceStatus, frozenset[InstanceStatus]] = {
    InstanceStatus.CREATED: frozenset({InstanceStatus.EXECUTING, InstanceStatus.FINISHED}),
    InstanceStatus.EXECUTING: frozenset({InstanceStatus.FINISHED}),
    InstanceStatus.FINISHED: frozenset(),
}


class IllegalInstanceTransition(IncorrectInstanceStatus):
    def __init__(self, instance_id: str, source: InstanceStatus, target: InstanceStatus) -> None:
        super().__init__(f"Instance {instance_id} is {source.value} and cannot become {target.value}.")


def check_transition(instance_id: str, source: InstanceStatus, target: InstanceStatus) -> None:
    if target not in TRANSITIONS[source]:
        raise IllegalInstanceTransition(instance_id, source, target)


class HangupRole(enum.IntEnum):
    AGENT = 0
    USER = 1
    SYSTEM = 2
