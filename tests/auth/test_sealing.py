"""``SecretBox``: access-key secrets sealed with AES-256-GCM under the master key, bound to their key id."""

from __future__ import annotations

import pytest

from herald.auth.sealing import SealError, SecretBox, new_master_key, parse_master_key


def box() -> SecretBox:
    return SecretBox(parse_master_key(new_master_key()))


def test_a_sealed_secret_opens_with_the_same_key_and_id_only() -> None:
    sealer = box()
    sealed = sealer.seal("s3cr3t-ü", bound_to="HRLD1")
    assert "s3cr3t" not in sealed
    assert sealer.open(sealed, bound_to="HRLD1") == "s3cr3t-ü"
    with pytest.raises(SealError):
        sealer.open(sealed, bound_to="HRLD2")  # copied onto another key's row
    with pytest.raises(SealError):
        box().open(sealed, bound_to="HRLD1")  # another master key


def test_sealing_twice_gives_different_text() -> None:
    sealer = box()
    assert sealer.seal("x", bound_to="k") != sealer.seal("x", bound_to="k")


@pytest.mark.parametrize("damaged", ["", "v0:abc", "v1:", "v1:!!!!", "v1:" + "A" * 40])
def test_a_damaged_value_is_a_seal_error(damaged: str) -> None:
    with pytest.raises(SealError):
        box().open(damaged, bound_to="k")


@pytest.mark.parametrize("text", ["", "short", "A" * 44, "not base64 at all!!"])
def test_a_bad_master_key_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        parse_master_key(text)
