"""Which key and which server the CLI uses: the settings the server reads."""

from __future__ import annotations

import json

import pytest

from herald.auth.keys import AccessKey
from herald.client.credentials import configured_key, default_endpoint, http_url
from herald.client.errors import ClientError
from herald.config import Settings


def dev_key(data_dir, key_id="HRLDDEV", secret="dev-secret"):
    (data_dir / "dev-access-key.json").write_text(
        json.dumps({"AccessKeyId": key_id, "AccessKeySecret": secret})
    )


def test_the_environment_key_comes_first(tmp_path):
    dev_key(tmp_path)
    settings = Settings(data_dir=tmp_path, access_keys=(AccessKey("from-file", "x"),))
    env = {"HERALD_ACCESS_KEY_ID": "from-env", "HERALD_ACCESS_KEY_SECRET": "env-secret"}
    assert configured_key(settings, env) == AccessKey("from-env", "env-secret")


def test_then_the_first_active_key_of_the_config_file(tmp_path):
    dev_key(tmp_path)
    keys = (AccessKey("retired", "x", active=False), AccessKey("team", "y"))
    assert configured_key(Settings(data_dir=tmp_path, access_keys=keys), {}).access_key_id == "team"


def test_then_the_development_key_in_the_data_dir(tmp_path):
    dev_key(tmp_path)
    assert configured_key(Settings(data_dir=tmp_path), {}) == AccessKey("HRLDDEV", "dev-secret")


def test_no_key_anywhere_says_how_to_get_one_and_creates_nothing(tmp_path):
    with pytest.raises(ClientError, match="HERALD_ACCESS_KEY_ID") as caught:
        configured_key(Settings(data_dir=tmp_path), {})
    assert "herald serve" in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_an_unreadable_development_key_is_named(tmp_path):
    (tmp_path / "dev-access-key.json").write_text("{not json")
    with pytest.raises(ClientError, match=r"dev-access-key\.json"):
        configured_key(Settings(data_dir=tmp_path), {})


@pytest.mark.parametrize(
    ("host", "port", "url"),
    [
        ("127.0.0.1", 8080, "http://127.0.0.1:8080"),
        ("0.0.0.0", 9000, "http://127.0.0.1:9000"),
        ("::", 9000, "http://127.0.0.1:9000"),
        ("::1", 8080, "http://[::1]:8080"),
        ("herald.lan", 80, "http://herald.lan:80"),
    ],
)
def test_the_address_to_reach_a_listening_server(host, port, url):
    assert http_url(host, port) == url


def test_the_default_endpoint_is_the_configured_server(tmp_path):
    assert default_endpoint(Settings(data_dir=tmp_path, host="0.0.0.0", port=8181)) == "http://127.0.0.1:8181"
