"""Credentials sealed at rest (shared/sealing.py): keys from HERALD_ENCRYPTION_KEYS,
rotated without losing a row, and a sealed value that opens only where it was put."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from shared.cli import main
from shared.endpoints import Endpoint, Unreadable, opened, url_place
from shared.sealing import CannotUnseal, Sealer, derived_key, generate_key
from shared.settings import Settings

PLACE = "0b7c1f0e-0000-4000-8000-000000000001/url"
URL = "https://discord.com/api/webhooks/123/very-secret-token"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in list(os.environ):
        if key.startswith("HERALD_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("HERALD_DATA_DIR", str(tmp_path / "var"))


def _settings(*keys: str, secret_key: str | None = "from-the-vault-" + "0" * 32) -> Settings:
    return Settings(
        secret_key=SecretStr(secret_key) if secret_key else None,
        encryption_keys=[SecretStr(k) for k in keys],
    )


def test_a_sealed_value_is_not_the_value_and_opens_back() -> None:
    sealer = Sealer.from_settings(_settings(generate_key()))
    token = sealer.seal(URL, bound_to=PLACE)
    assert "very-secret-token" not in token
    assert sealer.unseal(token, bound_to=PLACE) == URL


def test_an_old_key_still_opens_after_a_new_one_is_put_first_and_resealing_retires_it() -> None:
    old, new = generate_key(), generate_key()
    token = Sealer.from_settings(_settings(old)).seal(URL, bound_to=PLACE)

    both = Sealer.from_settings(_settings(new, old))
    assert both.unseal(token, bound_to=PLACE) == URL
    with pytest.raises(CannotUnseal):
        Sealer.from_settings(_settings(new)).unseal(token, bound_to=PLACE)

    resealed = both.reseal(token)
    assert Sealer.from_settings(_settings(new)).unseal(resealed, bound_to=PLACE) == URL
    with pytest.raises(CannotUnseal):
        Sealer.from_settings(_settings(old)).unseal(resealed, bound_to=PLACE)


def test_a_sealed_value_moved_to_another_endpoint_or_column_does_not_open() -> None:
    sealer = Sealer.from_settings(_settings(generate_key()))
    token = sealer.seal(URL, bound_to=PLACE)
    with pytest.raises(CannotUnseal, match="moved"):
        sealer.unseal(token, bound_to="0b7c1f0e-0000-4000-8000-000000000002/url")
    with pytest.raises(CannotUnseal, match="moved"):
        sealer.unseal(token, bound_to=PLACE.replace("/url", "/secret"))


def test_without_keys_one_is_derived_from_the_secret_key_and_derived_names_it() -> None:
    derived = Sealer.from_settings(_settings())
    assert derived.derived
    token = derived.seal(URL, bound_to=PLACE)
    # the same secret key derives the same key: another replica opens it
    assert Sealer.from_settings(_settings()).unseal(token, bound_to=PLACE) == URL
    # another secret key derives another key
    with pytest.raises(CannotUnseal):
        Sealer.from_settings(_settings(secret_key="another-" + "1" * 32)).unseal(
            token, bound_to=PLACE
        )
    # moving to keys of one's own: the new key first, "derived" after it
    moving = Sealer.from_settings(_settings(generate_key(), "derived"))
    assert not moving.derived
    assert moving.unseal(token, bound_to=PLACE) == URL
    assert derived_key("from-the-vault") != derived_key("another")


def test_keys_are_read_comma_separated_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    new, old = generate_key(), generate_key()
    monkeypatch.setenv("HERALD_ENCRYPTION_KEYS", f"{new}, {old}")
    settings = Settings()
    assert [k.get_secret_value() for k in settings.encryption_keys] == [new, old]
    assert new not in repr(settings)


@pytest.mark.parametrize("bad", ["not-a-key", "c2hvcnQ=", generate_key()[:-4] + "!!!="])
def test_a_key_that_is_not_a_fernet_key_is_refused_without_repeating_it(
    monkeypatch: pytest.MonkeyPatch, bad: str
) -> None:
    monkeypatch.setenv("HERALD_ENCRYPTION_KEYS", f"{generate_key()},{bad}")
    with pytest.raises(ValidationError, match="encryption key 2 is not a Fernet key") as caught:
        Settings()
    assert bad not in str(caught.value)


def test_an_endpoint_no_key_opens_is_unreadable_with_a_reason_that_holds_no_value() -> None:
    sealer, stranger = Sealer([generate_key().encode()]), Sealer([generate_key().encode()])
    endpoint_id = uuid.uuid4()
    url = "https://hooks.example.com/private-token"
    found = opened(
        sealer,
        id=endpoint_id,
        user_id="u1",
        type="webhook",
        url_sealed=stranger.seal(url, bound_to=url_place(endpoint_id)),
        secret_sealed=None,
    )
    assert isinstance(found, Unreadable)
    assert "HERALD_ENCRYPTION_KEYS" in found.reason
    assert "private-token" not in found.reason


def test_a_plain_copy_kept_for_the_grace_stands_in_for_a_sealed_one_that_does_not_open() -> None:
    sealer, stranger = Sealer([generate_key().encode()]), Sealer([generate_key().encode()])
    endpoint_id = uuid.uuid4()
    url = "https://hooks.example.com/r"
    found = opened(
        sealer,
        id=endpoint_id,
        user_id="u1",
        type="webhook",
        url_sealed=stranger.seal(url, bound_to=url_place(endpoint_id)),
        secret_sealed=None,
        url=url,
    )
    assert isinstance(found, Endpoint)
    assert found.url == url


def test_the_rotation_help_adds_the_new_key_last_before_it_goes_first(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["keys", "rotate", "--help"])
    shown = capsys.readouterr().out
    assert shown.index("OLD,NEW") < shown.index("NEW,OLD") < shown.index("3. herald keys rotate")
