"""Process-wide metrics that code anywhere in Herald records, in the registry ``GET /metrics`` exposes.

Most of Herald's metrics live in a registry per application (``herald.api.metrics``), so several servers
in one test process keep separate counts. These few are recorded deep in layers that hold no reference to
the application (the speech scheduler, the event bus, callback delivery), so they are module-level objects
in one process-wide ``REGISTRY``; every application's ``/metrics`` exposes it as well. In tests, compare a
value before and after rather than assuming it starts at zero.
"""

from __future__ import annotations

from typing import Final

from prometheus_client import CollectorRegistry, Counter, Histogram

REGISTRY: Final = CollectorRegistry(auto_describe=True)
"""Process-wide; never the ``prometheus_client`` default registry, which libraries may also write to."""

FIRST_AUDIO_SECONDS: Final = Histogram(
    "herald_speech_first_audio_seconds",
    "Time from an accepted speech to its first audio frame sent.",
    buckets=(0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0),
    registry=REGISTRY,
)

INTERRUPT_OLD_AUDIO_SECONDS: Final = Histogram(
    "herald_interrupt_old_audio_seconds",
    "Old audio that still played after an interrupt was accepted.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.08, 0.1),
    registry=REGISTRY,
)

CALLBACK_DELIVERIES: Final = Counter(
    "herald_callback_deliveries",
    "Callback delivery attempts by outcome: delivered, retried (a failed attempt that will be retried), "
    "failed (given up).",
    ["outcome"],
    registry=REGISTRY,
)

EVENTS_PUBLISHED: Final = Counter(
    "herald_events",
    "Instance events published, by event name.",
    ["event"],
    registry=REGISTRY,
)

CALLBACK_OUTCOMES: Final = ("delivered", "retried", "failed")

# Every outcome is exposed from the start (at 0), so rate() and alerts work before the first failure.
for _outcome in CALLBACK_OUTCOMES:
    CALLBACK_DELIVERIES.labels(outcome=_outcome)
