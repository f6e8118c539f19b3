"""Run a Herald cluster for end-to-end tests: nodes sharing a PostgreSQL database and a Redis server.

    with Cluster(3) as cluster:                         # its own redis-server, database and 3 nodes
        node = cluster.random_node()
        call = cluster.sdk_client(node).generate_aiagent_call(...)
        cluster.owner_of(call.body.instance_id)         # "node-2": the Redis key naming the owner
        cluster.redis.kill(); cluster.redis.start()     # a Redis outage (it comes back empty)

Every node is a ``HeraldServer`` (``python -m herald serve``) started with the same access key, master key
and cluster name, ``HERALD_NODE_ID`` ``node-1`` … ``node-N`` and a PostgreSQL database of its own made for
the cluster. ``RedisServer`` runs a throw-away ``redis-server`` (no persistence) that a test may kill and
start again on the same port; ``PostgresDatabase`` makes and drops a fresh database. Either raises
``ServiceMissing`` when the service is not there (no ``redis-server`` binary, no PostgreSQL answering), so
a test suite can skip or fail as it chooses.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Coroutine, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Final, TypeVar

import httpx
import redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from herald.store.db import to_async_url
from herald.testing.server import HeraldServer, KeyPair

REDIS_BINARY: Final = os.environ.get("HERALD_TEST_REDIS_SERVER", "/usr/bin/redis-server")
POSTGRES_ADMIN_URL: Final = os.environ.get(
    "HERALD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)

T = TypeVar("T")


class ServiceMissing(RuntimeError):
    """A service the cluster needs (``redis-server``, PostgreSQL) is not available on this machine."""


# -- Redis -----------------------------------------------------------------------------------------------


class RedisServer:
    """A ``redis-server`` subprocess on 127.0.0.1 and a free port, without persistence.

    ``kill()`` is a crash (SIGKILL); ``start()`` again (or ``restart()``) comes back on the same port,
    empty, as a Redis without persistence does after a crash.
    """

    def __init__(
        self, port: int | None = None, *, binary: str = REDIS_BINARY, startup_timeout_s: float = 10.0
    ) -> None:
        if shutil.which(binary) is None:
            raise ServiceMissing(f"no redis-server at {binary} (apt-get install redis-server)")
        self.binary = binary
        self.port = port if port is not None else free_port()
        self.startup_timeout_s = startup_timeout_s
        self._dir = Path(tempfile.mkdtemp(prefix="herald-redis-"))
        self._log_path = self._dir / "redis.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """What ``HERALD_REDIS_URL`` takes."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def client(self, *, timeout_s: float = 2.0) -> redis.Redis:
        """A new client (answers decoded to ``str``); close it after use."""
        return redis.Redis(
            host="127.0.0.1",
            port=self.port,
            db=0,
            decode_responses=True,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
        )

    def start(self) -> RedisServer:
        """Start ``redis-server`` and wait until it answers ``PING``."""
        if self.running:
            raise RuntimeError("redis-server is already running")
        command = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        command += ["--appendonly", "no", "--dir", str(self._dir), "--daemonize", "no"]
        with self._log_path.open("ab") as log:
            self._process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + self.startup_timeout_s
        while True:
            if self._process.poll() is not None:
                code, self._process = self._process.returncode, None
                raise RuntimeError(f"redis-server exited with {code} while starting:\n{self.logs()}")
            if self.ping():
                return self
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"redis-server did not answer within {self.startup_timeout_s} s")
            time.sleep(0.05)

    def ping(self) -> bool:
        """Whether the server answers ``PING`` now."""
        with contextlib.closing(self.client(timeout_s=0.5)) as client:
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False

    def kill(self) -> None:
        """SIGKILL the server (a crash) and wait for it to be gone."""
        if self._process is not None:
            if self._process.poll() is None:
                self._process.send_signal(signal.SIGKILL)
            self._process.wait()
            self._process = None

    def restart(self) -> RedisServer:
        """Kill the server and start it again, on the same port and empty."""
        self.kill()
        return self.start()

    def logs(self) -> str:
        try:
            return self._log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def close(self) -> None:
        self.kill()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


# -- PostgreSQL ------------------------------------------------------------------------------------------


async def create_database(admin_url: str = POSTGRES_ADMIN_URL, *, prefix: str = "herald_test") -> str:
    """A fresh, empty PostgreSQL database; its URL in the form ``HERALD_DATABASE_URL`` takes.

    ``ServiceMissing`` if no server answers at ``admin_url``.
    """
    admin = create_async_engine(to_async_url(admin_url), isolation_level="AUTOCOMMIT")
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
    except (OSError, ConnectionError) as exc:
        raise ServiceMissing(f"no PostgreSQL server answers ({exc})") from exc
    finally:
        await admin.dispose()
    admin_parts = to_async_url(admin_url)
    plain = admin_parts.set(drivername="postgresql", database=name)
    return plain.render_as_string(hide_password=False)


async def drop_database(url: str, admin_url: str = POSTGRES_ADMIN_URL) -> None:
    """Drop the database at ``url``, whoever is still connected to it."""
    admin = create_async_engine(to_async_url(admin_url), isolation_level="AUTOCOMMIT")
    name = to_async_url(url).database
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        await admin.dispose()


class PostgresDatabase:
    """A fresh PostgreSQL database for the time of a ``with`` block (``create()``/``drop()`` otherwise).

    Synchronous, and usable from inside a running event loop (the work runs in a thread of its own).
    """

    def __init__(self, admin_url: str = POSTGRES_ADMIN_URL, *, prefix: str = "herald_test") -> None:
        self.admin_url = admin_url
        self.prefix = prefix
        self._url: str | None = None

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("the database is not created")
        return self._url

    def create(self) -> PostgresDatabase:
        self._url = run_sync(lambda: create_database(self.admin_url, prefix=self.prefix))
        return self

    def drop(self) -> None:
        url, self._url = self._url, None
        if url is not None:
            run_sync(lambda: drop_database(url, self.admin_url))

    def __enter__(self) -> PostgresDatabase:
        return self.create()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.drop()


def run_sync(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to its end in an event loop of its own thread (callers may be inside a loop)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


# -- the cluster ------------------------------------------------------------------------------------------


class Cluster:
    """``size`` Herald nodes in cluster mode, sharing a Redis server and a PostgreSQL database.

    Without ``redis`` or ``database_url`` the cluster makes its own and removes them on ``close()``.
    ``config`` (TOML text, a ``[cluster]`` table say) and ``env`` go to every node.
    """

    def __init__(
        self,
        size: int = 3,
        *,
        name: str | None = None,
        redis_server: RedisServer | None = None,
        database_url: str | None = None,
        config: str | None = None,
        env: Mapping[str, str] | None = None,
        access_key: KeyPair | None = None,
        startup_timeout_s: float = 120.0,
        stop_timeout_s: float = 20.0,
    ) -> None:
        if size < 1:
            raise ValueError("a cluster has at least one node")
        self.size = size
        self.name = name or f"herald-test-{secrets.token_hex(4)}"
        self.key = access_key or KeyPair.generate()
        self.master_key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
        self.config = config
        self.env = dict(env or {})
        self.startup_timeout_s = startup_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self._owns_redis = redis_server is None
        self._redis = redis_server
        self._owns_database = database_url is None
        self._database_url = database_url
        self.nodes: list[HeraldServer] = []
        """Every node, running or not, in order: ``nodes[i]`` is ``node-{i + 1}``."""
        self._ids: dict[int, str] = {}

    # -- services --------------------------------------------------------------------------------

    @property
    def redis(self) -> RedisServer:
        if self._redis is None:
            raise RuntimeError("the cluster is not started")
        return self._redis

    @property
    def database_url(self) -> str:
        if self._database_url is None:
            raise RuntimeError("the cluster is not started")
        return self._database_url

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> Cluster:
        """Start Redis and make the database if the cluster owns them, then every node at once."""
        try:
            if self._redis is None:
                self._redis = RedisServer()
            if not self._redis.running:
                self._redis.start()
            if self._database_url is None:
                self._database_url = run_sync(lambda: create_database(prefix="herald_cluster"))
            self.nodes = [self._make_node(i) for i in range(self.size)]
            # Each node loads a TTS model and migrates the database (in turns): start them side by side.
            with concurrent.futures.ThreadPoolExecutor(self.size) as pool:
                for started in [pool.submit(node.start) for node in self.nodes]:
                    started.result()
            self.wait_registered()
        except BaseException:
            self.close()
            raise
        return self

    def _make_node(self, index: int) -> HeraldServer:
        node_id = f"node-{index + 1}"
        env = {
            "HERALD_DATABASE_URL": self.database_url,
            "HERALD_REDIS_URL": self.redis.url,
            "HERALD_CLUSTER": self.name,
            "HERALD_NODE_ID": node_id,
            "HERALD_MASTER_KEY": self.master_key,
            **self.env,
        }
        node = HeraldServer(
            access_key=self.key,
            env=env,
            config=self.config,
            check_exit=False,
            startup_timeout_s=self.startup_timeout_s,
            stop_timeout_s=self.stop_timeout_s,
        )
        self._ids[node.port] = node_id
        return node

    def wait_registered(self, *, timeout_s: float = 15.0) -> None:
        """Wait until every running node has its record in Redis (``<name>:node:<id>``)."""
        wanted = [self.node_id(node) for node in self.live_nodes]
        eventually(
            lambda: all(self.node_record(node_id) for node_id in wanted),
            timeout_s=timeout_s,
            what=f"records of {', '.join(wanted)} in Redis",
        )

    def close(self) -> None:
        """Kill every node, then remove the database and the Redis server if the cluster made them."""
        for node in self.nodes:
            node.close()
        if self._owns_database and self._database_url is not None:
            url, self._database_url = self._database_url, None
            with contextlib.suppress(ServiceMissing, OSError):
                run_sync(lambda: drop_database(url))
        if self._owns_redis and self._redis is not None:
            self._redis.close()
            self._redis = None

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- nodes -----------------------------------------------------------------------------------

    def node(self, index: int) -> HeraldServer:
        return self.nodes[index]

    def node_id(self, node: HeraldServer) -> str:
        """The node's ``HERALD_NODE_ID``."""
        return self._ids[node.port]

    def node_by_id(self, node_id: str) -> HeraldServer:
        for node in self.nodes:
            if self._ids[node.port] == node_id:
                return node
        raise KeyError(f"no node {node_id!r} in the cluster (nodes: {', '.join(self._ids.values())})")

    @property
    def live_nodes(self) -> list[HeraldServer]:
        """The nodes whose process runs."""
        return [node for node in self.nodes if node.running]

    def random_node(self, *, exclude: Iterable[HeraldServer] = ()) -> HeraldServer:
        """A running node, chosen at random, other than those in ``exclude``."""
        excluded = {node.port for node in exclude}
        choices = [node for node in self.live_nodes if node.port not in excluded]
        if not choices:
            raise RuntimeError("no running node to choose from")
        return random.choice(choices)

    def sdk_client(self, node: HeraldServer | None = None) -> Any:
        """The official ICE SDK client for ``node`` (default: a random running node)."""
        return (node or self.random_node()).sdk_client()

    def health(self, node: HeraldServer) -> dict[str, Any]:
        """``GET /health`` of one node, parsed."""
        with httpx.Client(trust_env=False, timeout=5.0) as http:
            response = http.get(f"{node.url}/health")
        response.raise_for_status()
        answer: dict[str, Any] = response.json()
        return answer

    # -- what Redis says -------------------------------------------------------------------------

    def owner_of(self, instance_id: str) -> str | None:
        """The id of the node that owns the instance (``<name>:instance:<id>``); ``None`` if none does."""
        with contextlib.closing(self.redis.client()) as client:
            value = client.get(f"{self.name}:instance:{instance_id}")
        return None if value is None else str(value)

    def owner_node(self, instance_id: str) -> HeraldServer:
        """The node that owns the instance; ``LookupError`` if Redis names none."""
        owner = self.owner_of(instance_id)
        if owner is None:
            raise LookupError(f"no owner of {instance_id} in Redis")
        return self.node_by_id(owner)

    def node_record(self, node_id: str) -> dict[str, str]:
        """The node's hash in Redis (``url``, ``instances``, ``speaking``, ``draining``); empty if none."""
        with contextlib.closing(self.redis.client()) as client:
            record = client.hgetall(f"{self.name}:node:{node_id}")
        return {str(k): str(v) for k, v in dict(record).items()}

    # -- diagnostics -----------------------------------------------------------------------------

    def logs(self, *, last_lines: int = 60) -> str:
        """The end of every node's log, for assertion messages."""
        parts = []
        for node in self.nodes:
            lines = node.logs().splitlines()[-last_lines:]
            parts.append(f"===== {self.node_id(node)} ({node.url}) =====\n" + "\n".join(lines))
        return "\n".join(parts)


def eventually(
    predicate: Callable[[], bool], *, timeout_s: float, what: str = "condition", interval_s: float = 0.1
) -> float:
    """Poll ``predicate`` until it holds; return the seconds it took. ``TimeoutError`` if not in time.

    Errors raised by ``predicate`` count as "not yet" until the deadline, then propagate.
    """
    started = time.monotonic()
    while True:
        try:
            if predicate():
                return time.monotonic() - started
        except Exception:
            if time.monotonic() - started > timeout_s:
                raise
        if time.monotonic() - started > timeout_s:
            raise TimeoutError(f"no {what} within {timeout_s} s")
        time.sleep(interval_s)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


__all__ = [
    "POSTGRES_ADMIN_URL",
    "Cluster",
    "PostgresDatabase",
    "RedisServer",
    "ServiceMissing",
    "create_database",
    "drop_database",
    "eventually",
    "free_port",
    "run_sync",
]
