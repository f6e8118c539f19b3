"""Which key signs the CLI's API calls, and which server they go to: the settings the server reads."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

from herald.auth.keys import AccessKey
from herald.client.errors import ClientError
from herald.config import DEV_KEY_FILE, Settings

_ANY_ADDRESS = {"", "0.0.0.0", "::", "[::]"}


def configured_key(settings: Settings, env: Mapping[str, str] | None = None) -> AccessKey:
    """``HERALD_ACCESS_KEY_ID``/``_SECRET``, else the config file's first active key, else the dev key.

    The development key is only read, never created (the server creates it on its first start).
    """
    env = os.environ if env is None else env
    key_id, secret = env.get("HERALD_ACCESS_KEY_ID"), env.get("HERALD_ACCESS_KEY_SECRET")
    if key_id and secret:
        return AccessKey(key_id, secret)
    for key in settings.access_keys:
        if key.active:
            return key
    path = settings.data_dir / DEV_KEY_FILE
    try:
        doc = json.loads(path.read_text())
        return AccessKey(str(doc["AccessKeyId"]), str(doc["AccessKeySecret"]))
    except FileNotFoundError:
        raise ClientError(
            "no access key: set HERALD_ACCESS_KEY_ID and HERALD_ACCESS_KEY_SECRET, "
            f"or start `herald serve` once so that it creates the development key in {settings.data_dir}"
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ClientError(f"cannot read the development key {path}: {exc}") from None


def default_endpoint(settings: Settings) -> str:
    """``http://HOST:PORT`` of the configured server (a wildcard listen address means this host)."""
    return http_url(settings.host, settings.port)


def http_url(host: str, port: int) -> str:
    """The URL to reach a server listening on ``host``:``port`` from this machine."""
    if host in _ANY_ADDRESS:
        host = "127.0.0.1"
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 address
    return f"http://{host}:{port}"
