"""The composition root: builds every component from the settings, runs them, and shuts them down in order."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine

from herald.agents.client_messages import ClientMessages
from herald.agents.live import SpeechServices
from herald.agents.manager import InstanceManager
from herald.agents.registry import AgentRegistry
from herald.agents.settings import validate_agent_config
from herald.api.authn import Authenticator
from herald.api.context import InstanceActions
from herald.api.idempotency import Idempotency
from herald.auth.authorize import Authorizer
from herald.auth.directory import DirectorySettings, KeyDirectory
from herald.auth.nonces import NonceCache
from herald.auth.sealing import SecretBox
from herald.auth.throttle import RateLimiter, ThrottleSettings
from herald.auth.tokens import CallTokens
from herald.clock import Clock, SystemClock
from herald.cluster.node import ClusterNode
from herald.cluster.settings import ClusterSettings, NodeIdentity, derive_token_secret, node_identity
from herald.config import ConfigError, Settings, ensure_dev_key, ensure_master_key, ensure_token_secret
from herald.conversation.loop import ListeningServices
from herald.conversation.services import open_listening
from herald.errors import InvalidParameter
from herald.events.bus import EventBus
from herald.events.delivery import CallbackDelivery, DeliverySettings
from herald.media.decoder import DecodeLimits, DecoderPool
from herald.media.fetch import FetchLimits, SafeFetcher
from herald.media.netguard import AddressPolicy
from herald.media.ticker import Ticker
from herald.rtc.sessions import RtcSessions, RtcSettings
from herald.speech.cache import SynthesisCache
from herald.speech.tts import Synthesizer, TtsEngine
from herald.store.db import create_schema, database_url_for_dir, open_database
from herald.store.dialogues import DialogueStore
from herald.store.events import EventStore
from herald.store.iam import IamStore
from herald.store.idempotency import IdempotencyStore
from herald.store.instances import InstanceStore

_log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    clock: Clock
    engine: AsyncEngine
    synthesizer: Synthesizer
    ticker: Ticker
    instances: InstanceManager
    authenticator: Authenticator
    tokens: CallTokens
    keys: KeyDirectory
    authorizer: Authorizer
    limiter: RateLimiter
    idempotency: Idempotency
    fetch_policy: AddressPolicy
    fetcher: SafeFetcher
    decoder: DecoderPool
    client_messages: ClientMessages
    rtc: RtcSessions
    events: EventBus
    actions: InstanceActions
    """The instance actions as the API runs them: ``instances`` itself, or routed across the cluster."""
    cluster: ClusterNode | None = None
    """This node's part in a cluster (``None``: embedded mode)."""
    listening: ListeningServices | None = None
    """What agents listen and think with (without a recogniser when ``[asr] engine = "off"``)."""
    model_fetcher: SafeFetcher | None = None
    """Reaches the operator's own LLM and speech-recognition endpoints."""
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    async def start(
        cls, settings: Settings, *, clock: Clock | None = None, tts: TtsEngine | None = None
    ) -> Runtime:
        clock = clock or SystemClock()
        try:
            fetch_policy = AddressPolicy.from_setting(settings.fetch_allow)
        except ValueError as exc:
            raise ConfigError(f"HERALD_FETCH_ALLOW: {exc}") from None
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        keys = list(settings.access_keys)
        if not keys:
            dev_key, created = ensure_dev_key(settings.data_dir)
            keys = [dev_key]
            _announce_dev_key(settings, dev_key.access_key_id, dev_key.secret, created)
        cluster_config = _cluster_config(settings) if settings.redis_url else None
        master_key = ensure_master_key(settings)
        if settings.redis_url and settings.token_secret is None:
            # Every node verifies every node's tokens: derived from the key they must share anyway.
            settings = replace(settings, token_secret=derive_token_secret(master_key))
        tokens = CallTokens(ensure_token_secret(settings))
        box = SecretBox(master_key)
        try:
            directory_settings = DirectorySettings(**settings.auth)
            throttle_settings = ThrottleSettings.from_table(settings.throttling)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"[auth] or [throttling]: {exc}") from None

        engine = open_database(settings.database_url or database_url_for_dir(settings.data_dir))
        await create_schema(engine)
        key_store = KeyDirectory(keys, IamStore(engine), box, clock, directory_settings)
        await key_store.start()
        store = InstanceStore(engine)
        cluster: ClusterNode | None = None
        if settings.redis_url:
            assert cluster_config is not None
            identity, cluster_settings = cluster_config
            cluster = ClusterNode.open(identity, cluster_settings, settings.redis_url, store, clock)

        if tts is None:
            tts = await asyncio.to_thread(_load_voices)
        _check_agents(settings, tts.voice_ids)
        cache = SynthesisCache(settings.tts_cache_mb * 1024 * 1024) if settings.tts_cache_mb else None
        synthesizer = Synthesizer(tts, workers=settings.tts_workers, cache=cache, clock=clock)
        ticker = Ticker(clock)
        fetcher = SafeFetcher(fetch_policy, _limits(FetchLimits, settings.fetch, "fetch"))
        # httpcore imports its network backend on the first connection: do it now, not on a listener's time.
        importlib.import_module("httpcore._backends.anyio")
        decoder = DecoderPool(_limits(DecodeLimits, settings.decode, "decode"))
        await decoder.start()
        speech = SpeechServices(synthesizer, fetcher, decoder)
        events = EventBus(EventStore(engine), clock)
        delivery = CallbackDelivery(
            events.store, fetcher, clock, _limits(DeliverySettings, settings.callbacks, "callbacks")
        )
        events.set_callback_listener(delivery.wake)
        # Endpoints the operator configured may be anywhere; those an API caller names obey the policy.
        trusted = SafeFetcher(AddressPolicy.from_entries(["0.0.0.0/0", "::/0"]), MODEL_LIMITS)
        listening = await open_listening(
            settings.asr, settings.llm, synthesizer, trusted=trusted, guarded=fetcher
        )
        instances = InstanceManager(
            store,
            DialogueStore(engine),
            AgentRegistry(settings.agents),
            speech,
            ticker,
            tokens,
            clock,
            events=events,
            ownership=cluster.ownership if cluster is not None else None,
            listening=listening,
        )
        actions: InstanceActions = instances
        if cluster is not None:
            actions = cluster.attach(instances, store, events)
            await cluster.start()
        await instances.recover()
        client_messages = ClientMessages(instances)
        rtc = RtcSessions(instances, client_messages.handle, _limits(RtcSettings, settings.webrtc, "webrtc"))
        runtime = cls(
            settings=settings,
            clock=clock,
            engine=engine,
            synthesizer=synthesizer,
            ticker=ticker,
            instances=instances,
            authenticator=Authenticator(key_store, NonceCache(clock), clock),
            tokens=tokens,
            keys=key_store,
            authorizer=Authorizer(key_store, clock),
            limiter=RateLimiter(throttle_settings, clock),
            idempotency=Idempotency(
                IdempotencyStore(engine), clock, shared_lock=cluster.shared_lock if cluster else None
            ),
            fetch_policy=fetch_policy,
            fetcher=fetcher,
            decoder=decoder,
            client_messages=client_messages,
            rtc=rtc,
            events=events,
            actions=actions,
            cluster=cluster,
            model_fetcher=trusted,
            listening=listening,
        )
        # Everything made so far lives as long as the process: keep it out of the cyclic collector's scans,
        # whose full passes otherwise pause the pacer for tens of milliseconds.
        gc.collect()
        gc.freeze()
        runtime._tasks = [
            asyncio.create_task(ticker.run(), name="ticker"),
            asyncio.create_task(instances.watch(), name="instance-watch"),
            asyncio.create_task(delivery.run(), name="callback-delivery"),
            asyncio.create_task(key_store.run(), name="key-reload"),
        ]
        return runtime

    async def drain(self) -> None:
        """SIGTERM in a cluster: take no new instances, let current speech end (bounded); then ``close``."""
        if self.cluster is not None:
            await self.cluster.drain()

    async def close(self) -> None:
        if self.cluster is not None:
            await self.cluster.stop_tasks()
        await self.instances.stop_all()
        if self.cluster is not None:
            await self.cluster.close()
        await self.rtc.close_all()
        await self.events.close()  # every event is in the outbox; undelivered callbacks resume next start
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.synthesizer.close()
        await self.decoder.close()
        await self.fetcher.aclose()
        if self.model_fetcher is not None:
            await self.model_fetcher.aclose()
        if self.listening is not None:
            await self.listening.aclose()
        await self.engine.dispose()


L = TypeVar("L", FetchLimits, DecodeLimits, RtcSettings, DeliverySettings, ClusterSettings)


MODEL_LIMITS = FetchLimits(max_bytes=5_000_000, read_timeout_s=30.0, total_timeout_s=300.0)
"""Exchanges with an LLM or a speech recogniser: a slow model may think for a while before its first word."""


def _limits(kind: type[L], table: Mapping[str, Any], name: str) -> L:
    """A limits dataclass from a config table; an unknown key or a bad value is a ``ConfigError``."""
    known = {f.name for f in fields(kind)}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(f"[{name}] has unknown keys {unknown}; known: {sorted(known)}.")
    defaults: dict[str, Any] = {f.name: f.default for f in fields(kind)}
    for key, value in table.items():
        if isinstance(defaults[key], tuple) and not (
            isinstance(value, list) and all(isinstance(item, str) for item in value)
        ):
            raise ConfigError(f"[{name}] {key} must be a list of strings.")
    try:
        values: dict[str, Any] = {k: type(defaults[k])(v) for k, v in table.items()}
        return kind(**values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"[{name}]: {exc}") from None


def _cluster_config(settings: Settings) -> tuple[NodeIdentity, ClusterSettings]:
    """The node's identity and ``[cluster]``, checked before anything is opened. Cluster mode needs what
    every node must share: a PostgreSQL database and one master key."""
    url = settings.database_url or ""
    if not url.startswith(("postgresql", "postgres")):
        raise ConfigError(
            "HERALD_REDIS_URL is set (cluster mode), so HERALD_DATABASE_URL must name a PostgreSQL database "
            "that every node shares (postgresql://user:password@host/db); SQLite is one machine's."
        )
    if settings.master_key is None:
        raise ConfigError(
            "Cluster mode needs HERALD_MASTER_KEY, the same on every node: it seals access-key secrets and "
            "signs call tokens (docs/cluster.md)."
        )
    try:
        identity = node_identity(
            settings.cluster_name, settings.node_id, settings.advertise_url, settings.host, settings.port
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return identity, _limits(ClusterSettings, settings.cluster, "cluster")


def _check_agents(settings: Settings, voice_ids: Sequence[str]) -> None:
    """A mistake in an agent's configured AgentConfig stops the start, not the first call that uses it."""
    for agent in settings.agents:
        try:
            validate_agent_config(dict(agent.agent_config), voice_ids=voice_ids, parameter="AgentConfig")
        except InvalidParameter as exc:
            raise ConfigError(f"agent {agent.agent_id!r}: {exc.message}") from None


def _load_voices() -> TtsEngine:
    """Piper (the default voice) and, when Debian's espeak-ng is installed, its many languages."""
    from herald.speech.espeak_engine import EspeakEngine
    from herald.speech.piper_engine import PiperEngine
    from herald.speech.voices import VoiceRouter

    piper = PiperEngine.load()
    piper.warm_up()
    engines: dict[str, TtsEngine] = {"piper": piper}
    try:
        engines["espeak-ng"] = EspeakEngine.load()
    except RuntimeError as exc:  # a missing optional engine costs its voices, not the server
        _log.warning("espeak-ng voices are not available: %s", exc)
    return VoiceRouter(engines)


def _announce_dev_key(settings: Settings, key_id: str, secret: str, created: bool) -> None:
    where = settings.data_dir / "dev-access-key.json"
    verb = "Created" if created else "Using"
    # Printed, not logged: it is for the developer at the terminal, and logs must never carry secrets.
    print(
        f"{verb} the development access key (kept in {where}):\n"
        f"  AccessKeyId:     {key_id}\n"
        f"  AccessKeySecret: {secret}\n"
        "Set HERALD_ACCESS_KEY_ID and HERALD_ACCESS_KEY_SECRET to use your own.",
        flush=True,
    )
