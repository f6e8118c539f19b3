"""``GET /metrics``: Prometheus text format (docs/observability.md).

Each application has its own registry, made on first use and kept on ``app.state``, so several servers in
one test process keep separate counts. It holds the RPC request metrics (recorded by ``rpc.py``), the
runtime's state read at scrape time (nothing is counted twice, nothing costs on the audio path), the
process's CPU and memory, and the process-wide ``herald.observability.metrics.REGISTRY``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from herald.observability.metrics import REGISTRY as SHARED_REGISTRY
from herald.runtime import Runtime

_STATE_KEY: Final = "herald_metrics"

REQUEST_SECONDS_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10)


class ApiMetrics:
    """One application's registry and the request metrics ``rpc.py`` records."""

    def __init__(self, runtime: Callable[[], Runtime | None]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "herald_api_requests",
            "RPC API requests by action and result code (OK or the ICE error code).",
            ["action", "code"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "herald_api_request_seconds",
            "Time to answer an RPC API request, by action.",
            ["action"],
            buckets=REQUEST_SECONDS_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(RuntimeCollector(runtime))
        ProcessCollector(registry=self.registry)
        self.registry.register(_Shared())

    def record(self, action: str, code: str, seconds: float) -> None:
        self.requests.labels(action, code).inc()
        self.request_seconds.labels(action).observe(seconds)


def api_metrics(app: Starlette) -> ApiMetrics:
    """The application's metrics, made on first use."""
    state = app.state
    metrics: ApiMetrics | None = getattr(state, _STATE_KEY, None)
    if metrics is None:
        metrics = ApiMetrics(lambda: getattr(state, "runtime", None))
        setattr(state, _STATE_KEY, metrics)
    return metrics


async def metrics_endpoint(request: Request) -> Response:
    # Prometheus asks for OpenMetrics in Accept when it can take it; anything else gets the text format.
    encode, content_type = choose_encoder(request.headers.get("accept", ""))
    return Response(encode(api_metrics(request.app).registry), media_type=content_type)


class RuntimeCollector:
    """The runtime's state, read when scraped (nothing before the runtime has started)."""

    def __init__(self, runtime: Callable[[], Runtime | None]) -> None:
        self._runtime = runtime

    def collect(self) -> Iterable[Metric]:
        runtime = self._runtime()
        if runtime is None:
            return []
        lives = runtime.instances.live_instances()
        rtc_sessions = len(runtime.rtc)
        participants = sum(len(live.room.participants) for live in lives)
        by_transport = GaugeMetricFamily(
            "herald_participants", "People in calls, by transport (websocket, webrtc).", labels=["transport"]
        )
        # A WebRTC session is one participant; everyone else listens on the audio WebSocket.
        by_transport.add_metric(["websocket"], max(participants - rtc_sessions, 0))
        by_transport.add_metric(["webrtc"], rtc_sessions)
        ticker = runtime.ticker
        return [
            GaugeMetricFamily(
                "herald_instances_active", "Live agent instances (Created or Executing).", value=len(lives)
            ),
            by_transport,
            GaugeMetricFamily(
                "herald_speech_queue_depth",
                "Utterances queued behind the one playing, summed over live instances.",
                value=sum(live.scheduler.queued for live in lives),
            ),
            CounterMetricFamily(
                "herald_output_ticks",
                "Ticks of the audio pacer (each one frame, 20 ms, for every live instance).",
                value=ticker.ticks,
            ),
            CounterMetricFamily(
                "herald_output_late_frames",
                "Frames ticked late, after a stall of the event loop, and caught up.",
                value=ticker.late_ticks,
            ),
            CounterMetricFamily(
                "herald_output_skipped_frames",
                "Frames of time given up after a stall longer than the catch-up allowance (100 ms).",
                value=ticker.skipped_frames,
            ),
            GaugeMetricFamily("herald_rtc_sessions", "Open WebRTC sessions.", value=rtc_sessions),
        ]


class _Shared:
    """The process-wide registry's metrics, exposed in every application's registry."""

    def collect(self) -> Iterable[Metric]:
        return SHARED_REGISTRY.collect()
