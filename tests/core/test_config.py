"""Settings: environment over file over defaults; mistakes are reported before anything starts."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from herald.agents.registry import AgentDefinition
from herald.auth.keys import AccessKey
from herald.config import (
    ConfigError,
    Settings,
    ensure_dev_key,
    ensure_master_key,
    ensure_token_secret,
    load_settings,
)
from herald.runtime import _check_agents


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_defaults_with_an_empty_environment(tmp_path: Path) -> None:
    settings = load_settings({"HERALD_DATA_DIR": str(tmp_path)})
    assert (settings.host, settings.port) == ("127.0.0.1", 8080)
    assert settings.access_keys == ()
    assert settings.database_url is None
    assert settings.config_file is None


def test_the_file_defines_keys_agents_and_server_and_the_environment_wins(tmp_path: Path) -> None:
    config = write(
        tmp_path / "herald.toml",
        """
[server]
port = 9000
database_url = "sqlite:///from-file.db"

[[access_keys]]
id = "team"
secret = "s1"

[[access_keys]]
id = "old"
secret = "s2"
active = false

[agents.support.AgentConfig]
Greeting = "Hi"
[agents.support.AgentConfig.TtsConfig]
SpeechRate = 1.2
""",
    )
    env = {
        "HERALD_DATA_DIR": str(tmp_path),
        "HERALD_DATABASE_URL": "postgresql://db/herald",
        "HERALD_ACCESS_KEY_ID": "env-key",
        "HERALD_ACCESS_KEY_SECRET": "env-secret",
    }
    settings = load_settings(env)
    assert settings.config_file == config
    assert settings.port == 9000
    assert settings.database_url == "postgresql://db/herald"
    keys = {k.access_key_id: k for k in settings.access_keys}
    assert set(keys) == {"team", "old", "env-key"}
    assert not keys["old"].active
    assert settings.agents == (
        AgentDefinition("support", {"Greeting": "Hi", "TtsConfig": {"SpeechRate": 1.2}}),
    )


@pytest.mark.parametrize(
    ("env", "text", "message"),
    [
        ({"HERALD_ACCESS_KEY_ID": "only-id"}, None, "both"),
        ({}, "[[access_keys]]\nid = 'x'\n", "needs an id and a secret"),
        ({}, "this is not toml", "herald.toml"),
        ({"HERALD_CONFIG": "/nonexistent/herald.toml"}, None, "not a file"),
        ({}, "[[access_keys]]\nid = 'x'\nsecret = 's'\naccount = 'Bad Name'\n", "account name 'Bad Name'"),
        ({}, "[[access_keys]]\nid = 'x'\nsecret = 's'\nuser = 'a/b'\n", "user name 'a/b'"),
        ({}, "[[access_keys]]\nid = 'x'\nsecret = 's'\nacount = 'a'\n", "unknown keys \\['acount'\\]"),
    ],
)
def test_mistakes_are_named(tmp_path: Path, env: dict[str, str], text: str | None, message: str) -> None:
    if text is not None:
        write(tmp_path / "herald.toml", text)
    with pytest.raises(ConfigError, match=message):
        load_settings({"HERALD_DATA_DIR": str(tmp_path), **env})


def test_the_dev_key_is_created_once_privately_and_reused(tmp_path: Path) -> None:
    key, created = ensure_dev_key(tmp_path)
    again, created_again = ensure_dev_key(tmp_path)
    assert created
    assert not created_again
    assert again == key
    assert stat.S_IMODE((tmp_path / "dev-access-key.json").stat().st_mode) == 0o600


def test_the_token_secret_is_kept_or_taken_from_the_environment(tmp_path: Path) -> None:
    kept = ensure_token_secret(Settings(data_dir=tmp_path))
    assert ensure_token_secret(Settings(data_dir=tmp_path)) == kept
    assert len(kept) >= 32
    assert ensure_token_secret(Settings(data_dir=tmp_path, token_secret=b"x" * 40)) == b"x" * 40
    with pytest.raises(ConfigError, match="at least 32"):
        ensure_token_secret(Settings(data_dir=tmp_path, token_secret=b"short"))


def test_a_misconfigured_agent_stops_the_start_naming_the_agent_and_field(tmp_path: Path) -> None:
    bad = Settings(data_dir=tmp_path, agents=(AgentDefinition("support", {"TtsConfig": {"SpeechRate": 9}}),))
    with pytest.raises(ConfigError, match=r"'support'.*AgentConfig\.TtsConfig\.SpeechRate"):
        _check_agents(bad, ["en_US-joe-medium"])
    unknown_voice = Settings(
        data_dir=tmp_path, agents=(AgentDefinition("a", {"TtsConfig": {"VoiceId": "x"}}),)
    )
    with pytest.raises(ConfigError, match="unknown voice"):
        _check_agents(unknown_voice, ["en_US-joe-medium"])


def test_fetch_and_decode_limits_come_from_the_config_file(tmp_path: Path) -> None:
    from herald.media.decoder import DecodeLimits
    from herald.media.fetch import FetchLimits
    from herald.runtime import _limits

    write(
        tmp_path / "herald.toml",
        "[fetch]\nread_timeout_s = 1.5\nmax_bytes = 1000\n[decode]\nmax_duration_s = 30\n",
    )
    settings = load_settings({"HERALD_DATA_DIR": str(tmp_path)})
    fetch = _limits(FetchLimits, settings.fetch, "fetch")
    assert (fetch.read_timeout_s, fetch.max_bytes, fetch.total_timeout_s) == (1.5, 1000, 120.0)
    assert _limits(DecodeLimits, settings.decode, "decode").max_duration_s == 30.0
    with pytest.raises(ConfigError, match="unknown keys"):
        _limits(FetchLimits, {"read_timeout": 1}, "fetch")
    with pytest.raises(ConfigError, match=r"\[decode\]"):
        _limits(DecodeLimits, {"max_duration_s": "soon"}, "decode")


def test_webrtc_settings_come_from_the_config_file_and_bad_ones_are_named(tmp_path: Path) -> None:
    from herald.rtc.sessions import RtcSettings
    from herald.runtime import _limits

    write(
        tmp_path / "herald.toml",
        '[webrtc]\nice_servers = ["stun:stun.example.com:3478"]\nconnect_timeout_s = 10\n',
    )
    settings = load_settings({"HERALD_DATA_DIR": str(tmp_path)})
    rtc = _limits(RtcSettings, settings.webrtc, "webrtc")
    assert (rtc.ice_servers, rtc.connect_timeout_s, rtc.max_sessions) == (
        ("stun:stun.example.com:3478",),
        10.0,
        1000,
    )
    assert _limits(RtcSettings, {}, "webrtc").ice_servers == ()  # no public STUN server unless named
    with pytest.raises(ConfigError, match="ice_servers must be a list of strings"):
        _limits(RtcSettings, {"ice_servers": "stun:stun.example.com"}, "webrtc")
    with pytest.raises(ConfigError, match="not a stun"):
        _limits(RtcSettings, {"ice_servers": ["http://example.com"]}, "webrtc")
    with pytest.raises(ConfigError, match="connect_timeout_s must be positive"):
        _limits(RtcSettings, {"connect_timeout_s": 0}, "webrtc")


def test_keys_of_the_file_may_name_their_account_and_user(tmp_path: Path) -> None:
    write(
        tmp_path / "herald.toml",
        "[[access_keys]]\nid = 'a'\nsecret = 's'\n"
        "[[access_keys]]\nid = 'b'\nsecret = 's'\naccount = 'acme'\nuser = 'alice'\n",
    )
    keys = load_settings({"HERALD_DATA_DIR": str(tmp_path)}).access_keys
    assert keys == (AccessKey("a", "s"), AccessKey("b", "s", True, "acme", "alice"))
    assert (keys[0].account_id, keys[0].user_name) == ("default", None)


def test_the_master_key_is_kept_privately_or_taken_from_the_environment(tmp_path: Path) -> None:
    kept = ensure_master_key(Settings(data_dir=tmp_path))
    assert len(kept) == 32
    assert ensure_master_key(Settings(data_dir=tmp_path)) == kept
    assert stat.S_IMODE((tmp_path / "master-key").stat().st_mode) == 0o600
    given = "A" * 43  # 32 zero-ish bytes in URL-safe base64
    assert len(ensure_master_key(Settings(data_dir=tmp_path, master_key=given))) == 32
    with pytest.raises(ConfigError, match="HERALD_MASTER_KEY: the master key must be 32 bytes"):
        ensure_master_key(Settings(data_dir=tmp_path, master_key="too-short"))
    settings = load_settings({"HERALD_DATA_DIR": str(tmp_path), "HERALD_MASTER_KEY": given})
    assert settings.master_key == given
