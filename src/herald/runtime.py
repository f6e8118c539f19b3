"""The composition root: builds every component from the settings, runs them, and shuts them down in order."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from herald.agents.manager import InstanceManager
from herald.agents.registry import AgentRegistry
from herald.agents.settings import validate_agent_config
from herald.api.authn import Authenticator
from herald.auth.keys import StaticKeyStore
from herald.auth.nonces import NonceCache
from herald.auth.tokens import CallTokens
from herald.clock import Clock, SystemClock
from herald.config import ConfigError, Settings, ensure_dev_key, ensure_token_secret
from herald.errors import InvalidParameter
from herald.media.ticker import Ticker
from herald.speech.tts import Synthesizer, TtsEngine
from herald.store.db import create_schema, database_url_for_dir, open_database
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
    keys: StaticKeyStore
    _ticker_task: asyncio.Task[None] | None = None

    @classmethod
    async def start(
        cls, settings: Settings, *, clock: Clock | None = None, tts: TtsEngine | None = None
    ) -> Runtime:
        clock = clock or SystemClock()
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        keys = list(settings.access_keys)
        if not keys:
            dev_key, created = ensure_dev_key(settings.data_dir)
            keys = [dev_key]
            _announce_dev_key(settings, dev_key.access_key_id, dev_key.secret, created)
        key_store = StaticKeyStore(keys)
        tokens = CallTokens(ensure_token_secret(settings))

        engine = open_database(settings.database_url or database_url_for_dir(settings.data_dir))
        await create_schema(engine)
        store = InstanceStore(engine)

        if tts is None:
            tts = await asyncio.to_thread(_load_piper)
        _check_agents(settings, tts.voice_ids)
        synthesizer = Synthesizer(tts, workers=settings.tts_workers)
        ticker = Ticker(clock)
        instances = InstanceManager(store, AgentRegistry(settings.agents), synthesizer, ticker, tokens, clock)
        await instances.recover()
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
        )
        runtime._ticker_task = asyncio.create_task(ticker.run(), name="ticker")
        return runtime

    async def close(self) -> None:
        await self.instances.stop_all()
        if self._ticker_task is not None:
            self._ticker_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker_task
        self.synthesizer.close()
        await self.engine.dispose()


def _check_agents(settings: Settings, voice_ids: Sequence[str]) -> None:
    """A mistake in an agent's configured AgentConfig stops the start, not the first call that uses it."""
    for agent in settings.agents:
        try:
            validate_agent_config(dict(agent.agent_config), voice_ids=voice_ids, parameter="AgentConfig")
        except InvalidParameter as exc:
            raise ConfigError(f"agent {agent.agent_id!r}: {exc.message}") from None


def _load_piper() -> TtsEngine:
    from herald.speech.piper_engine import PiperEngine

    engine = PiperEngine.load()
    engine.warm_up()
    return engine


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
