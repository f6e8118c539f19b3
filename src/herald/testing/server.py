"""Run a real Herald server as a subprocess, for end-to-end tests.

    with HeraldServer() as server:
        client = server.sdk_client()          # the official ICE SDK, pointed at this server
        call = client.generate_aiagent_call(GenerateAIAgentCallRequest(aiagent_id="default"))

Each server gets a free port on 127.0.0.1, its own temporary data directory and a fresh access-key pair
(or, with ``access_key=None``, none: the server then generates its development key). ``stop()`` sends
SIGTERM and asserts a clean exit; ``restart()`` starts again on the same port and data directory.
``config`` is the text of a TOML config file (agents, more keys) the server is started with
(``HERALD_CONFIG``); ``env`` adds environment (``HERALD_FETCH_ALLOW``, say).
``signed_request()`` builds a V3-signed raw request for tests that need control over the bytes sent.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Literal

import httpx

# The ICE SDK ships no type information; its objects are typed as Any here.
from alibabacloud_ice20201109.client import Client  # type: ignore[import-untyped]
from alibabacloud_tea_openapi import utils_models  # type: ignore[import-untyped]
from alibabacloud_tea_openapi.utils import Utils  # type: ignore[import-untyped]
from darabonba.runtime import RuntimeOptions  # type: ignore[import-untyped]

from herald.testing.audio_client import audio_url

API_VERSION: Final = "2020-11-09"
EMPTY_SHA256: Final = hashlib.sha256(b"").hexdigest()
DEV_KEY_FILE: Final = "dev-access-key.json"

_AUTO: Final = "auto"


@dataclass(frozen=True, slots=True)
class KeyPair:
    access_key_id: str
    access_key_secret: str

    @classmethod
    def generate(cls) -> KeyPair:
        return cls("HERALDTEST" + secrets.token_hex(8).upper(), secrets.token_urlsafe(30))


class ServerError(RuntimeError):
    """The server failed to start or to stop cleanly; the message carries its logs."""


class _RawRequest:
    """The shape ``Utils.get_authorization`` reads: method, pathname, query, headers."""

    def __init__(self, method: str, query: dict[str, str], headers: dict[str, str]) -> None:
        self.method = method
        self.pathname = "/"
        self.query = query
        self.headers = headers


class HeraldServer:
    """A Herald server subprocess (``python -m herald serve``) on a free local port."""

    def __init__(
        self,
        *,
        access_key: KeyPair | Literal["auto"] | None = _AUTO,
        data_dir: Path | None = None,
        env: Mapping[str, str] | None = None,
        command: Sequence[str] | None = None,
        startup_timeout_s: float = 60.0,
        stop_timeout_s: float = 10.0,
        check_exit: bool = True,
        config: str | None = None,
    ) -> None:
        self._owns_data_dir = data_dir is None
        self.data_dir = Path(tempfile.mkdtemp(prefix="herald-e2e-")) if data_dir is None else data_dir
        self._key = KeyPair.generate() if access_key == _AUTO else access_key
        self._extra_env = dict(env or {})
        self.config_path: Path | None = None
        """The TOML config file written from ``config`` (``None`` without one)."""
        if config is not None:
            fd, name = tempfile.mkstemp(prefix="herald-e2e-", suffix=".toml")
            with os.fdopen(fd, "w") as f:
                f.write(config)
            self.config_path = Path(name)
            self._extra_env.setdefault("HERALD_CONFIG", name)
        self._command = list(command or [sys.executable, "-m", "herald"])
        self.startup_timeout_s = startup_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.check_exit = check_exit
        """Whether ``stop()`` (and so ``restart()`` and leaving the ``with`` block) asserts exit code 0."""
        self.port = _free_port()
        self._log_path = Path(tempfile.mkstemp(prefix="herald-e2e-", suffix=".log")[1])
        self._process: subprocess.Popen[bytes] | None = None
        self.returncodes: list[int] = []

    # -- addresses and credentials -------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def endpoint(self) -> str:
        """What the SDK's ``Config.endpoint`` takes: host and port."""
        return f"127.0.0.1:{self.port}"

    @property
    def key(self) -> KeyPair:
        """The accepted key pair: the one given to the server, or the development key it generated."""
        if self._key is not None:
            return self._key
        stored = json.loads((self.data_dir / DEV_KEY_FILE).read_text())
        return KeyPair(stored["AccessKeyId"], stored["AccessKeySecret"])

    @property
    def access_key_id(self) -> str:
        return self.key.access_key_id

    @property
    def access_key_secret(self) -> str:
        return self.key.access_key_secret

    def audio_url(self, channel_id: str, token: str, sample_rate_hz: int | None = None) -> str:
        return audio_url(self.ws_url, channel_id, token, sample_rate_hz)

    # -- lifecycle -----------------------------------------------------------------------------------

    def environment(self) -> dict[str, str]:
        """The environment the server and the CLI run with (no inherited ``HERALD_*`` settings)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("HERALD_")}
        env["PYTHONUNBUFFERED"] = "1"
        env["HERALD_DATA_DIR"] = str(self.data_dir)
        if self._key is not None:
            env["HERALD_ACCESS_KEY_ID"] = self._key.access_key_id
            env["HERALD_ACCESS_KEY_SECRET"] = self._key.access_key_secret
        env.update(self._extra_env)
        return env

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def pid(self) -> int:
        if self._process is None:
            raise ServerError("the server is not started")
        return self._process.pid

    def start(self) -> HeraldServer:
        """Start the server and wait until ``GET /health`` answers 200."""
        if self.running:
            raise ServerError("already running")
        with self._log_path.open("ab") as log:
            log.write(f"--- starting on port {self.port} ---\n".encode())
            log.flush()
            self._process = subprocess.Popen(
                [*self._command, "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                env=self.environment(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._wait_healthy()
        return self

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        with httpx.Client(trust_env=False, timeout=2.0) as http:
            while time.monotonic() < deadline:
                if self._process is not None and self._process.poll() is not None:
                    code = self._process.returncode
                    self.returncodes.append(code)
                    self._process = None
                    raise ServerError(f"the server exited with {code} while starting; logs:\n{self.logs()}")
                with contextlib.suppress(httpx.TransportError):
                    if http.get(f"{self.url}/health").status_code == 200:
                        return
                time.sleep(0.1)
        self._kill()
        raise ServerError(f"no healthy answer within {self.startup_timeout_s} s; logs:\n{self.logs()}")

    def stop(self, *, sig: signal.Signals = signal.SIGTERM, check: bool | None = None) -> int:
        """Signal the server and wait for it to exit within ``stop_timeout_s``; return its exit code.

        With ``check`` (default: ``check_exit``), raise ``ServerError`` unless the code is 0.
        """
        process = self._process
        if process is None:
            raise ServerError("the server is not running")
        if process.poll() is None:
            process.send_signal(sig)
        try:
            code = process.wait(timeout=self.stop_timeout_s)
        except subprocess.TimeoutExpired:
            self._kill()
            raise ServerError(
                f"the server did not exit within {self.stop_timeout_s} s of {sig.name}; logs:\n{self.logs()}"
            ) from None
        self._process = None
        self.returncodes.append(code)
        if (self.check_exit if check is None else check) and code != 0:
            raise ServerError(f"the server exited with {code} after {sig.name}; logs:\n{self.logs()}")
        return code

    def restart(self) -> HeraldServer:
        """Stop (cleanly) and start again with the same port, data directory and keys."""
        self.stop()
        return self.start()

    def _kill(self) -> None:
        if self._process is not None:
            self._process.kill()
            self.returncodes.append(self._process.wait())
            self._process = None

    def close(self) -> None:
        """Kill the server if it still runs and remove what this object created."""
        self._kill()
        if self._owns_data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        self._log_path.unlink(missing_ok=True)
        if self.config_path is not None:
            self.config_path.unlink(missing_ok=True)

    def __enter__(self) -> HeraldServer:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if self.running:
                # A failing test already reports; don't mask it with a stop failure.
                self.stop(check=self.check_exit and exc is None)
        finally:
            self.close()

    def logs(self) -> str:
        """Everything the server printed (stdout and stderr, all runs)."""
        try:
            return self._log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # -- the CLI -------------------------------------------------------------------------------------

    def cli(self, *args: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run ``python -m herald ARGS`` with this server's environment and data directory."""
        return subprocess.run(
            [*self._command, *args],
            env=self.environment(),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )

    def token(self, channel_id: str, user_id: str, *, expire_s: int | None = None) -> str:
        """A call token from ``herald token`` (the last line it prints)."""
        args = ["token", "--channel", channel_id, "--user", user_id]
        if expire_s is not None:
            args += ["--expire", str(expire_s)]
        done = self.cli(*args)
        if done.returncode != 0:
            raise ServerError(f"herald token exited {done.returncode}: {done.stderr}")
        lines = [line.strip() for line in done.stdout.splitlines() if line.strip()]
        if not lines:
            raise ServerError(f"herald token printed nothing; stderr: {done.stderr}")
        return lines[-1]

    # -- API clients ---------------------------------------------------------------------------------

    def sdk_config(
        self,
        *,
        access_key_id: str | None = None,
        access_key_secret: str | None = None,
        signature_algorithm: str | None = None,
    ) -> Any:
        return utils_models.Config(
            access_key_id=access_key_id if access_key_id is not None else self.access_key_id,
            access_key_secret=access_key_secret if access_key_secret is not None else self.access_key_secret,
            endpoint=self.endpoint,
            protocol="http",
            region_id="cn-shanghai",
            signature_algorithm=signature_algorithm,
            read_timeout=30_000,
            connect_timeout=5_000,
        )

    def sdk_client(
        self,
        *,
        access_key_id: str | None = None,
        access_key_secret: str | None = None,
        signature_algorithm: str | None = None,
    ) -> Client:
        """The official ICE SDK client for this server (``signature_algorithm="v2"``: HMAC-SHA1 RPC)."""
        return Client(
            self.sdk_config(
                access_key_id=access_key_id,
                access_key_secret=access_key_secret,
                signature_algorithm=signature_algorithm,
            )
        )

    def call(self, action: str, params: Mapping[str, str] | None = None, *, client: Any = None) -> Any:
        """Call any action through the SDK's generic ``call_api``; returns the parsed JSON body."""
        client = client or self.sdk_client()
        api_params = utils_models.Params(
            action=action,
            version=API_VERSION,
            protocol="HTTP",
            pathname="/",
            method="POST",
            auth_type="AK",
            style="RPC",
            req_body_type="formData",
            body_type="json",
        )
        request = utils_models.OpenApiRequest(query=dict(params or {}))
        return client.call_api(api_params, request, RuntimeOptions())["body"]

    def signed_request(
        self,
        action: str,
        params: Mapping[str, str] | None = None,
        *,
        nonce: str | None = None,
        access_key_id: str | None = None,
        access_key_secret: str | None = None,
        date: str | None = None,
    ) -> httpx.Request:
        """A V3-signed (``ACS3-HMAC-SHA256``) ``POST /`` with ``params`` in the query, as the SDK sends it.

        Send it with ``httpx.Client(trust_env=False).send(request)``; sending it twice replays the nonce.
        """
        query = {k: str(v) for k, v in (params or {}).items()}
        headers = {
            "host": self.endpoint,
            "x-acs-version": API_VERSION,
            "x-acs-action": action,
            "user-agent": "herald-e2e",
            "x-acs-date": date or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "x-acs-signature-nonce": nonce or secrets.token_hex(16),
            "accept": "application/json",
            "x-acs-content-sha256": EMPTY_SHA256,
        }
        headers["Authorization"] = Utils.get_authorization(
            _RawRequest("POST", query, headers),
            "ACS3-HMAC-SHA256",
            EMPTY_SHA256,
            access_key_id if access_key_id is not None else self.access_key_id,
            access_key_secret if access_key_secret is not None else self.access_key_secret,
        )
        return httpx.Request("POST", f"{self.url}/", params=query, headers=headers)

    def signed_get(
        self, path: str, *, access_key_id: str | None = None, access_key_secret: str | None = None
    ) -> dict[str, str]:
        """V3 (``ACS3-HMAC-SHA256``) headers for ``GET path`` (the event stream), as the SDK would sign it."""
        from herald.api.signing import SignedRequest, canonical_request_v3, sign_v3

        key_id = access_key_id if access_key_id is not None else self.access_key_id
        secret = access_key_secret if access_key_secret is not None else self.access_key_secret
        headers = {
            "host": self.endpoint,
            "x-acs-content-sha256": EMPTY_SHA256,
            "x-acs-date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "x-acs-signature-nonce": secrets.token_hex(16),
        }
        names = sorted(headers)
        request = SignedRequest("GET", path, [], [], list(headers.items()), b"")
        signature = sign_v3(canonical_request_v3(request, names, payload_hash=EMPTY_SHA256), secret)
        headers["authorization"] = (
            f"ACS3-HMAC-SHA256 Credential={key_id},SignedHeaders={';'.join(names)},Signature={signature}"
        )
        return headers


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
