"""The instance state machine allows exactly Created → Executing → Finished (and Created → Finished)."""

from __future__ import annotations

import itertools

import pytest

from herald.agents.state import IllegalInstanceTransition, InstanceStatus, check_transition
from herald.errors import IncorrectInstanceStatus

ALLOWED = {
    (InstanceStatus.CREATED, InstanceStatus.EXECUTING),
    (InstanceStatus.CREATED, InstanceStatus.FINISHED),
    (InstanceStatus.EXECUTING, InstanceStatus.FINISHED),
}


@pytest.mark.parametrize(("source", "target"), list(itertools.product(InstanceStatus, repeat=2)))
def test_transitions(source: InstanceStatus, target: InstanceStatus) -> None:
    if (source, target) in ALLOWED:
        check_transition("i", source, target)
    else:
        with pytest.raises(IllegalInstanceTransition) as caught:
            check_transition("i", source, target)
        # An illegal move reaches the caller as ICE's IncorrectInstanceStatus.
        assert isinstance(caught.value, IncorrectInstanceStatus)
