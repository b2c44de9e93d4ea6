"""Which hosts a Discord, Slack or Teams endpoint may name: the vendors' by default,
what the operator lists otherwise, https unless an entry allows plain http."""

from __future__ import annotations

import argparse
import asyncio

import pytest
from pydantic import ValidationError

from shared import cli
from shared.settings import Settings
from shared.webhook_hosts import WebhookHosts, webhook_hosts

DEFAULTS = webhook_hosts(Settings())


@pytest.mark.parametrize(
    ("kind", "url"),
    [
        ("discord", "https://discord.com/api/webhooks/1234/tok"),
        ("discord", "https://canary.discord.com/api/webhooks/1234/tok"),
        ("discord", "https://discordapp.com/api/webhooks/1234/tok"),
        ("slack", "https://hooks.slack.com/services/T000/B000/XXXX"),
        ("teams", "https://acme.webhook.office.com/webhookb2/a@b/IncomingWebhook/c/d"),
        (
            "teams",
            "https://prod-23.westeurope.logic.azure.com:443/workflows/abc/triggers/manual"
            "/paths/invoke?api-version=2016-06-01&sp=%2Ftriggers&sv=1.0&sig=tok",
        ),
        (
            "teams",
            "https://default0123abcd.56.environment.api.powerplatform.com:443/powerautomate"
            "/automations/direct/workflows/abc/triggers/manual/paths/invoke?sig=tok",
        ),
        ("slack", "https://HOOKS.Slack.com./services/T/B/X"),  # case and a final dot
    ],
)
def test_the_vendors_own_webhook_urls_are_allowed_by_default(kind: str, url: str) -> None:
    assert DEFAULTS[kind].refusal(url) is None


@pytest.mark.parametrize(
    ("kind", "url", "reason"),
    [
        ("discord", "https://evil.example/api/webhooks/1/tok", "evil.example is not a discord"),
        ("discord", "https://discord.com.evil.example/api/webhooks/1/tok", "is not a discord"),
        ("discord", "https://evildiscord.com/api/webhooks/1/tok", "is not a discord"),
        ("discord", "https://93.184.215.14/api/webhooks/1/tok", "is not a discord"),
        ("discord", "http://discord.com/api/webhooks/1/tok", "must use https"),
        ("slack", "https://hooks.slack.com@evil.example/services/T/B/X", "user info"),
        ("slack", "https://evil.example\\@hooks.slack.com/services/T/B/X", "backslashes"),
        ("slack", "https://hooks.slack.com\t.evil.example/", "spaces"),
        ("slack", "ftp://hooks.slack.com/services/T/B/X", "https URL with a host"),
        ("slack", "https://[::1/services", "https URL with a host"),
        ("slack", "https://hooks.slack.com%2eevil.example/", "is not a slack"),
        ("teams", "https://webhook.office.com/webhookb2/x", "is not a teams"),  # the domain
        ("teams", "https://discord.com/api/webhooks/1/tok", "is not a teams"),
    ],
)
def test_other_hosts_and_plain_http_are_refused(kind: str, url: str, reason: str) -> None:
    refused = DEFAULTS[kind].refusal(url)
    assert refused is not None
    assert reason in refused
    # the path, where the secret is, is never quoted
    assert "tok" not in refused
    assert "/services" not in refused


def test_an_operator_adds_a_slack_compatible_server() -> None:
    hosts = webhook_hosts(
        Settings(slack_webhook_hosts="hooks.slack.com, *.Chat.Example.org, http://mm.internal")
    )["slack"]
    assert hosts.refusal("https://hooks.slack.com/services/T/B/X") is None
    assert hosts.refusal("https://rocket.chat.example.org/hooks/abc/tok") is None
    assert hosts.refusal("https://a.b.chat.example.org/hooks/abc") is None
    assert hosts.refusal("https://chat.example.org/hooks/abc") is not None  # not below it
    assert hosts.refusal("http://rocket.chat.example.org/hooks/abc") is not None  # https only
    assert hosts.refusal("http://mm.internal:8065/hooks/abc") is None  # the entry allows http
    assert hosts.refusal("https://mm.internal/hooks/abc") is None


def test_an_empty_list_allows_no_host() -> None:
    hosts = webhook_hosts(Settings(teams_webhook_hosts=""))["teams"]
    refused = hosts.refusal("https://acme.webhook.office.com/webhookb2/x")
    assert refused is not None
    assert "allowed: none" in refused


@pytest.mark.parametrize(
    "entry",
    [
        "hooks.slack.com/services",
        "hooks.slack.com:443",
        "*",
        "*.",
        "ftp://x.example",
        "a..b",
        "https://*.example.com/",
        "user@host.example",
        "sp ace.example",
    ],
)
def test_entries_that_are_no_host_are_refused_at_start(entry: str) -> None:
    with pytest.raises(ValidationError, match="is not a host name"):
        Settings(slack_webhook_hosts=entry)


def test_entries_are_kept_in_one_spelling() -> None:
    settings = Settings(discord_webhook_hosts=" Discord.COM. ,HTTPS://ptb.discord.com")
    assert settings.discord_webhook_hosts == ["discord.com", "ptb.discord.com"]


def test_the_list_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HERALD_SLACK_WEBHOOK_HOSTS", "hooks.slack.com,http://127.0.0.1")
    assert Settings().slack_webhook_hosts == ["hooks.slack.com", "http://127.0.0.1"]


def test_a_list_describes_itself_for_the_reason_given() -> None:
    hosts = WebhookHosts.parse("teams", ["*.webhook.office.com", "http://127.0.0.1"])
    assert hosts.described() == "*.webhook.office.com, http://127.0.0.1"


def test_the_cli_refuses_a_chat_endpoint_off_the_list_before_any_connection(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # the database URL leads nowhere: the refusal comes first
    settings = Settings(database_url="postgresql://127.0.0.1:1/nowhere")  # type: ignore[arg-type]
    args = argparse.Namespace(
        user="ada", type="slack", url="https://evil.example/services/T/B/tok", chat_id=None
    )
    assert asyncio.run(cli._endpoint(settings, args)) == 2
    assert "evil.example is not a slack webhook host" in capsys.readouterr().err
