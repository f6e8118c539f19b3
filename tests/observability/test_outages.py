"""Outages of PostgreSQL or Redis are told from bugs, and a retrying loop logs one as an outage: a line when
it starts, a reminder while it lasts, a line when it ends; never a traceback per retry."""

from __future__ import annotations

import logging

import pytest
import redis.exceptions
import sqlalchemy.exc

from herald.api.outage import as_unavailable
from herald.observability.outages import OutageLog, service_away
from herald.testing.clock import VirtualClock

_S = 1_000_000_000


def _caused_by(cause: BaseException) -> RuntimeError:
    try:
        try:
            raise cause
        except BaseException as inner:
            raise RuntimeError("while writing a row") from inner
    except RuntimeError as outer:
        return outer


def test_outages_are_named_through_their_causes() -> None:
    refused = sqlalchemy.exc.OperationalError("SELECT 1", {}, ConnectionRefusedError("refused"))
    assert service_away(refused) == "database"
    assert service_away(_caused_by(redis.exceptions.ConnectionError("gone"))) == "redis"
    assert service_away(_caused_by(TimeoutError())) == "network"
    assert service_away(ValueError("a bug")) is None
    assert service_away(_caused_by(KeyError("a bug"))) is None
    # The API's 503 says the same.
    unavailable = as_unavailable(refused)
    assert unavailable is not None
    assert "database" in unavailable.message
    assert as_unavailable(ValueError("a bug")) is None


async def test_an_outage_is_logged_once_reminded_and_ended(caplog: pytest.LogCaptureFixture) -> None:
    clock = VirtualClock()
    log = OutageLog(logging.getLogger("test.outage"), "writing dialogue rows", clock, remind_s=60)
    refused = sqlalchemy.exc.OperationalError("INSERT", {}, ConnectionRefusedError("connection refused"))
    with caplog.at_level(logging.INFO, logger="test.outage"):
        for _ in range(30):  # a retry a second for 30 s: one line
            log.failed(refused, "retrying every second")
            await clock.advance(_S)
        assert log.in_outage
        assert len(caplog.records) == 1
        first = caplog.records[0]
        assert first.levelno == logging.WARNING
        assert first.exc_info is None
        assert "writing dialogue rows failed: the database is unreachable" in first.getMessage()
        assert "retrying every second" in first.getMessage()

        for _ in range(40):  # past a minute: one reminder
            log.failed(refused, "retrying every second")
            await clock.advance(_S)
        assert len(caplog.records) == 2
        assert "still failing" in caplog.records[1].getMessage()

        log.succeeded()
        log.succeeded()  # only the first success after an outage is news
        assert not log.in_outage
        assert len(caplog.records) == 3
        assert "works again after 70.0 s (70 failures)" in caplog.records[2].getMessage()


def test_a_failure_that_is_not_an_outage_keeps_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    log = OutageLog(logging.getLogger("test.bug"), "callback delivery")
    with caplog.at_level(logging.INFO, logger="test.bug"):
        for _ in range(2):
            log.failed(ValueError("bad row"), "retrying every second")
    assert [r.levelno for r in caplog.records] == [logging.ERROR, logging.ERROR]
    assert all(r.exc_info is not None for r in caplog.records)
    assert not log.in_outage
