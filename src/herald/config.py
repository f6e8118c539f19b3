"""Settings: from the environment, an optional TOML file, and embedded defaults — in that order of precedence.

Environment names that always work: ``HERALD_ACCESS_KEY_ID``, ``HERALD_ACCESS_KEY_SECRET``,
``HERALD_DATA_DIR``, ``HERALD_DATABASE_URL``, plus ``HERALD_CONFIG`` (the TOML file; default
``<data dir>/herald.toml`` when it exists), ``HERALD_TOKEN_SECRET`` and ``HERALD_MASTER_KEY``; in cluster
mode ``HERALD_REDIS_URL``, ``HERALD_CLUSTER``, ``HERALD_NODE_ID``, ``HERALD_ADVERTISE_URL``. See
``docs/configuration.md`` and ``docs/cluster.md``.
"""

from __future__ import annotations

import json
import os
import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from herald.agents.registry import AgentDefinition
from herald.auth.keys import DEFAULT_ACCOUNT, AccessKey, check_account_name, check_user_name
from herald.auth.sealing import new_master_key, parse_master_key

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DEV_KEY_FILE = "dev-access-key.json"
TOKEN_SECRET_FILE = "token-secret"
MASTER_KEY_FILE = "master-key"


_CLUSTER_IDENTITY_KEYS = frozenset({"redis_url", "name", "node_id", "advertise_url"})
"""``[cluster]`` keys that the environment may also set; the rest are ``ClusterSettings``' tunables."""


class ConfigError(Exception):
    """The configuration cannot be used; the message says what to fix."""


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    database_url: str | None = None
    access_keys: tuple[AccessKey, ...] = ()
    agents: tuple[AgentDefinition, ...] = ()
    token_secret: bytes | None = None
    tts_workers: int = 2
    tts_cache_mb: int = 64
    fetch: Mapping[str, Any] = field(default_factory=dict)
    """``[fetch]`` of the config file: limits of audio-URL downloads (see ``FetchLimits``)."""
    decode: Mapping[str, Any] = field(default_factory=dict)
    """``[decode]`` of the config file: limits of audio decoding (see ``DecodeLimits``)."""
    webrtc: Mapping[str, Any] = field(default_factory=dict)
    """``[webrtc]`` of the config file: ICE servers, timeouts (see ``RtcSettings``)."""
    callbacks: Mapping[str, Any] = field(default_factory=dict)
    """``[callbacks]`` of the config file: retries and timeouts of event callbacks (``DeliverySettings``)."""
    auth: Mapping[str, Any] = field(default_factory=dict)
    """``[auth]`` of the config file: the region in resource names, how often keys are reloaded."""
    throttling: Mapping[str, Any] = field(default_factory=dict)
    """``[throttling]`` of the config file: per-account request rates (``ThrottleSettings``)."""
    master_key: str | None = None
    """``HERALD_MASTER_KEY``: seals access-key secrets in the database (else a file in the data dir)."""
    redis_url: str | None = None
    """``HERALD_REDIS_URL``: set, the node runs in cluster mode (``docs/cluster.md``)."""
    cluster_name: str = "herald"
    """``HERALD_CLUSTER``: the cluster's name, the prefix of its Redis keys (clusters may share a Redis)."""
    node_id: str | None = None
    """``HERALD_NODE_ID``: this node's name in the cluster (default: host name and port)."""
    advertise_url: str | None = None
    """``HERALD_ADVERTISE_URL``: where the other nodes reach this one (default: ``http://<host>:<port>``)."""
    cluster: Mapping[str, Any] = field(default_factory=dict)
    """``[cluster]`` of the config file: leases, heartbeats, drain (``ClusterSettings``)."""
    llm: Mapping[str, Any] = field(default_factory=dict)
    """``[llm]`` (and ``HERALD_LLM_URL``/``_MODEL``/``_API_KEY``): the LLM of agents that name none."""
    asr: Mapping[str, Any] = field(default_factory=dict)
    """``[asr]`` (and ``HERALD_ASR_ENGINE``/``_URL``/``_MODEL``/``_API_KEY``): the speech recogniser."""

    fetch_allow: str = ""
    """``HERALD_FETCH_ALLOW``: hosts, addresses and networks audio URLs may reach although private."""
    config_file: Path | None = None


def default_data_dir(env: Mapping[str, str]) -> Path:
    base = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "herald"


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    data_dir = Path(env.get("HERALD_DATA_DIR") or default_data_dir(env)).expanduser()
    config_path = env.get("HERALD_CONFIG")
    config_file = Path(config_path).expanduser() if config_path else data_dir / "herald.toml"
    if config_path and not config_file.is_file():
        raise ConfigError(f"HERALD_CONFIG names {config_file}, which is not a file.")
    doc = _read_toml(config_file) if config_file.is_file() else {}

    server = _table(doc, "server")
    cluster = _table(doc, "cluster")
    keys = [_access_key(entry, i) for i, entry in enumerate(_list(doc, "access_keys"))]
    key_id, key_secret = env.get("HERALD_ACCESS_KEY_ID"), env.get("HERALD_ACCESS_KEY_SECRET")
    if bool(key_id) != bool(key_secret):
        raise ConfigError("Set both HERALD_ACCESS_KEY_ID and HERALD_ACCESS_KEY_SECRET, or neither.")
    if key_id and key_secret:
        keys = [k for k in keys if k.access_key_id != key_id] + [AccessKey(key_id, key_secret)]

    agents = tuple(
        AgentDefinition(agent_id, dict(_table(body, "AgentConfig")))
        for agent_id, body in _table(doc, "agents").items()
        if isinstance(body, dict)
    )
    secret_hex = env.get("HERALD_TOKEN_SECRET")
    tts = _table(doc, "tts")
    return Settings(
        data_dir=data_dir,
        host=str(server.get("host", DEFAULT_HOST)),
        port=int(server.get("port", DEFAULT_PORT)),
        database_url=env.get("HERALD_DATABASE_URL") or server.get("database_url"),
        access_keys=tuple(keys),
        agents=agents,
        token_secret=secret_hex.encode() if secret_hex else None,
        tts_workers=int(tts.get("workers", 2)),
        tts_cache_mb=int(tts.get("cache_mb", 64)),
        fetch=dict(_table(doc, "fetch")),
        decode=dict(_table(doc, "decode")),
        webrtc=dict(_table(doc, "webrtc")),
        callbacks=dict(_table(doc, "callbacks")),
        auth=dict(_table(doc, "auth")),
        throttling=dict(_table(doc, "throttling")),
        master_key=env.get("HERALD_MASTER_KEY") or None,
        redis_url=env.get("HERALD_REDIS_URL") or _optional_str(cluster, "redis_url"),
        cluster_name=env.get("HERALD_CLUSTER") or str(cluster.get("name", "herald")),
        node_id=env.get("HERALD_NODE_ID") or _optional_str(cluster, "node_id"),
        advertise_url=env.get("HERALD_ADVERTISE_URL") or _optional_str(cluster, "advertise_url"),
        cluster={k: v for k, v in cluster.items() if k not in _CLUSTER_IDENTITY_KEYS},
        llm=_with_env(_table(doc, "llm"), env, "HERALD_LLM_", ("url", "model", "api_key")),
        asr=_with_env(_table(doc, "asr"), env, "HERALD_ASR_", ("engine", "url", "model", "api_key")),
        fetch_allow=env.get("HERALD_FETCH_ALLOW", ""),
        config_file=config_file if config_file.is_file() else None,
    )


def _with_env(
    table: Mapping[str, Any], env: Mapping[str, str], prefix: str, keys: tuple[str, ...]
) -> dict[str, Any]:
    """A config table with ``<prefix><KEY>`` environment variables over its keys."""
    merged = dict(table)
    for key in keys:
        value = env.get(prefix + key.upper())
        if value:
            merged[key] = value
    return merged


def ensure_dev_key(data_dir: Path) -> tuple[AccessKey, bool]:
    """The development key pair kept in the data dir, created on first use; also whether it is new."""
    path = data_dir / DEV_KEY_FILE
    if path.is_file():
        doc = json.loads(path.read_text())
        return AccessKey(doc["AccessKeyId"], doc["AccessKeySecret"]), False
    key = AccessKey("HRLD" + secrets.token_hex(8).upper(), secrets.token_urlsafe(30))
    _write_private(
        path, json.dumps({"AccessKeyId": key.access_key_id, "AccessKeySecret": key.secret}, indent=2)
    )
    return key, True


def ensure_token_secret(settings: Settings) -> bytes:
    """The secret that signs call tokens: ``HERALD_TOKEN_SECRET``, else one kept in the data dir."""
    if settings.token_secret is not None:
        if len(settings.token_secret) < 32:
            raise ConfigError("HERALD_TOKEN_SECRET must be at least 32 characters.")
        return settings.token_secret
    path = settings.data_dir / TOKEN_SECRET_FILE
    if not path.is_file():
        _write_private(path, secrets.token_hex(32))
    return path.read_text().strip().encode()


def ensure_master_key(settings: Settings) -> bytes:
    """The key that seals secrets in the database: ``HERALD_MASTER_KEY``, else one kept in the data dir.

    Every process using one database (the server, ``herald keys``, the nodes of a cluster) needs the same.
    """
    if settings.master_key is not None:
        try:
            return parse_master_key(settings.master_key)
        except ValueError as exc:
            raise ConfigError(f"HERALD_MASTER_KEY: {exc}.") from None
    path = settings.data_dir / MASTER_KEY_FILE
    if not path.is_file():
        _write_private(path, new_master_key())
    try:
        return parse_master_key(path.read_text())
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}.") from None


def _optional_str(table: Mapping[str, Any], key: str) -> str | None:
    value = table.get(key)
    return None if value is None or value == "" else str(value)


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _table(doc: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = doc.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"[{name}] must be a table.")
    return value


def _list(doc: Mapping[str, Any], name: str) -> list[Any]:
    value = doc.get(name, [])
    if not isinstance(value, list):
        raise ConfigError(f"{name} must be an array of tables ([[{name}]]).")
    return value


def _access_key(entry: Any, index: int) -> AccessKey:
    if not isinstance(entry, dict) or not entry.get("id") or not entry.get("secret"):
        raise ConfigError(f"access_keys[{index}] needs an id and a secret.")
    unknown = sorted(set(entry) - {"id", "secret", "active", "account", "user"})
    if unknown:
        raise ConfigError(f"access_keys[{index}] has unknown keys {unknown}.")
    try:
        account = check_account_name(str(entry.get("account", DEFAULT_ACCOUNT)))
        user = check_user_name(str(entry["user"])) if entry.get("user") is not None else None
    except ValueError as exc:
        raise ConfigError(f"access_keys[{index}]: {exc}.") from None
    return AccessKey(str(entry["id"]), str(entry["secret"]), bool(entry.get("active", True)), account, user)
