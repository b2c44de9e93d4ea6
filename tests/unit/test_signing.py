"""Signed link tokens (shared/signing.py): what one key and purpose signed opens
only with that key and purpose, and nothing altered opens at all."""

from __future__ import annotations

import base64

import pytest
from pydantic import SecretStr

from shared.settings import Settings
from shared.signing import (
    BadToken,
    ExpiredToken,
    sign,
    unsign,
    unsubscribe_url,
    unsubscribing_user,
)

SECRET = "test-secret-key-0123456789abcdef"
PURPOSE = "unsubscribe"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@pytest.mark.parametrize(
    "value", ["u1", "user-42", "", "ünïcödé ✓", "a.b.c", "x" * 1000, "with/slash+plus=eq"]
)
def test_round_trip(value: str) -> None:
    assert unsign(SECRET, PURPOSE, sign(SECRET, PURPOSE, value)) == value


def test_tokens_are_url_safe_and_deterministic() -> None:
    token = sign(SECRET, PURPOSE, "ünïcödé/+=")
    assert token == sign(SECRET, PURPOSE, "ünïcödé/+=")
    assert token.count(".") == 1
    assert all(c.isalnum() or c in "-_." for c in token)


def test_a_different_value_gives_a_different_token() -> None:
    assert sign(SECRET, PURPOSE, "u1") != sign(SECRET, PURPOSE, "u2")


def test_a_tampered_payload_is_refused() -> None:
    token = sign(SECRET, PURPOSE, "u1")
    _, mac = token.split(".")
    forged = f"{_b64(b'u2')}.{mac}"
    with pytest.raises(BadToken):
        unsign(SECRET, PURPOSE, forged)


def test_another_users_mac_does_not_open_this_users_payload() -> None:
    payload, _ = sign(SECRET, PURPOSE, "victim").split(".")
    _, mac = sign(SECRET, PURPOSE, "attacker").split(".")
    with pytest.raises(BadToken):
        unsign(SECRET, PURPOSE, f"{payload}.{mac}")


@pytest.mark.parametrize("position", [0, 5, -1])
def test_a_tampered_mac_is_refused(position: int) -> None:
    payload, mac_text = sign(SECRET, PURPOSE, "u1").split(".")
    mac = bytearray(_unb64(mac_text))
    mac[position] ^= 0x01
    with pytest.raises(BadToken):
        unsign(SECRET, PURPOSE, f"{payload}.{_b64(bytes(mac))}")


def test_a_truncated_or_extended_mac_is_refused() -> None:
    payload, mac_text = sign(SECRET, PURPOSE, "u1").split(".")
    mac = _unb64(mac_text)
    for wrong in (mac[:-1], mac + b"\x00", b""):
        with pytest.raises(BadToken):
            unsign(SECRET, PURPOSE, f"{payload}.{_b64(wrong)}")


def test_a_token_for_another_purpose_is_refused() -> None:
    token = sign(SECRET, "verify-email", "u1")
    with pytest.raises(BadToken):
        unsign(SECRET, PURPOSE, token)


def test_purpose_and_payload_cannot_be_shifted_into_each_other() -> None:
    # the MAC separates purpose and payload: ("unsubscribe", "x") is not ("unsub", "scribex")
    token = sign(SECRET, "unsub", "scribex")
    payload = _b64(b"x")
    _, mac = token.split(".")
    with pytest.raises(BadToken):
        unsign(SECRET, "unsubscribe", f"{payload}.{mac}")


def test_a_token_signed_with_another_key_is_refused() -> None:
    token = sign("another-secret-key-0123456789abcd", PURPOSE, "u1")
    with pytest.raises(BadToken):
        unsign(SECRET, PURPOSE, token)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "no-dot-at-all",
        ".",
        "dTE.",  # payload without a MAC
        ".AAAA",  # MAC without a payload
        "dTE.!!!!",  # not base64
        "dTE.A",  # impossible base64 length
        "d.TE",
        "dTE.AAAA.BBBB",  # a second dot
        "\u00e9\u00e9.\u00e9\u00e9",  # not ASCII
    ],
)
def test_malformed_tokens_are_refused(token: str) -> None:
    with pytest.raises(BadToken):
        unsign(SECRET, PURPOSE, token)


def test_bad_token_is_a_value_error() -> None:
    # callers that map ValueError to a 400/404 keep working
    assert issubclass(BadToken, ValueError)


@pytest.mark.parametrize("mangle", ["append", "newline", "percent"])
def test_characters_outside_the_alphabet_are_refused(mangle: str) -> None:
    token = sign(SECRET, PURPOSE, "u1")
    payload, mac = token.split(".")
    mangled = {
        "append": f"{token}!!",
        "newline": f"{payload}.\n{mac}",
        "percent": f"{payload}.{mac[:-1]}%{mac[-1]}",
    }[mangle]
    with pytest.raises(BadToken):
        unsign(SECRET, PURPOSE, mangled)


def _settings(public_url: str = "https://herald.example.com/", key: str = SECRET) -> Settings:
    return Settings(secret_key=SecretStr(key), public_url=public_url)


@pytest.mark.parametrize(
    "public_url", ["https://herald.example.com", "https://herald.example.com/"]
)
def test_an_unsubscribe_link_names_its_user_and_opens_only_for_unsubscribing(
    public_url: str,
) -> None:
    settings = _settings(public_url)
    url = unsubscribe_url(settings, "user-42")
    prefix = "https://herald.example.com/v1/unsubscribe/"
    assert url.startswith(prefix)  # one slash, whatever public_url ends with
    token = url.removeprefix(prefix)
    assert "/" not in token
    assert unsubscribing_user(settings, token) == "user-42"
    # the same link every time: it can be printed in every e-mail
    assert unsubscribe_url(settings, "user-42") == url
    # made for unsubscribing, it opens nothing else
    with pytest.raises(BadToken):
        unsign(SECRET, "verify-email", token)


def test_an_unsubscribe_token_from_another_deployment_is_refused() -> None:
    token = unsubscribe_url(_settings(key="another-secret-key-0123456789abcd"), "u1").rsplit("/")[
        -1
    ]
    with pytest.raises(BadToken):
        unsubscribing_user(_settings(), token)


def test_a_token_signed_for_another_purpose_does_not_unsubscribe() -> None:
    with pytest.raises(BadToken):
        unsubscribing_user(_settings(), sign(SECRET, "verify-email", "u1"))


def test_an_unsubscribe_link_expires_after_its_validity() -> None:
    settings = _settings()
    made = 1_800_000_000.0
    token = unsubscribe_url(settings, "u1", now=made).rsplit("/", 1)[1]
    assert unsubscribing_user(settings, token, now=made + 89 * 86_400) == "u1"
    with pytest.raises(ExpiredToken):
        unsubscribing_user(settings, token, now=made + 92 * 86_400)


def test_links_made_the_same_day_are_the_same_link() -> None:
    settings = _settings()
    day_start = 1_800_000_000 - 1_800_000_000 % 86_400
    first = unsubscribe_url(settings, "u1", now=day_start + 10)
    assert unsubscribe_url(settings, "u1", now=day_start + 86_000) == first
    assert unsubscribe_url(settings, "u1", now=day_start + 86_400) != first


def test_a_token_without_an_expiry_is_refused() -> None:
    # the format before links expired: a bare user id, signed
    with pytest.raises(BadToken):
        unsubscribing_user(_settings(), sign(SECRET, PURPOSE, "u1"))
