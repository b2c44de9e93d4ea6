"""``herald telegram set-webhook``: tell Telegram where the bot's updates go.

The bot's updates (users opening their link, ``/start <code>``) are posted to
``HERALD_PUBLIC_URL/v1/telegram/webhook`` with ``HERALD_TELEGRAM_WEBHOOK_SECRET`` in
``X-Telegram-Bot-Api-Secret-Token``; only messages are asked for. The bot token is
part of the request URL, so nothing reported here ever contains that URL.
"""

from __future__ import annotations

import httpx

from shared.settings import Settings

WEBHOOK_PATH = "/v1/telegram/webhook"


class TelegramSetupError(RuntimeError):
    pass


def webhook_url(settings: Settings) -> str:
    return settings.public_url.rstrip("/") + WEBHOOK_PATH


async def set_webhook(settings: Settings) -> str:
    """Register the webhook; the URL registered. ``TelegramSetupError`` with a
    reason that never names the bot token."""
    token, secret = settings.telegram_bot_token, settings.telegram_webhook_secret
    if token is None or secret is None:
        raise TelegramSetupError(
            "set HERALD_TELEGRAM_BOT_TOKEN and HERALD_TELEGRAM_WEBHOOK_SECRET first"
        )
    url = webhook_url(settings)
    endpoint = f"{settings.telegram_api_url.rstrip('/')}/bot{token.get_secret_value()}/setWebhook"
    try:
        async with httpx.AsyncClient(timeout=settings.http_timeout) as http:
            response = await http.post(
                endpoint,
                json={
                    "url": url,
                    "secret_token": secret.get_secret_value(),
                    "allowed_updates": ["message"],
                },
            )
    except httpx.HTTPError as exc:
        # httpx's messages may carry the request URL, and so the token: only its kind
        raise TelegramSetupError(f"Telegram could not be reached ({type(exc).__name__})") from None
    try:
        answer = response.json()
    except ValueError:
        answer = {}
    if response.status_code != 200 or not isinstance(answer, dict) or not answer.get("ok"):
        description = answer.get("description", "") if isinstance(answer, dict) else ""
        raise TelegramSetupError(f"Telegram refused: HTTP {response.status_code} {description}")
    return url
