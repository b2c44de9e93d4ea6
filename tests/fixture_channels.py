"""Custom channels as a plugin would write them, for the channel registry tests."""

from __future__ import annotations

from typing import ClassVar

from services.dispatcher.channels import DeliveryResult, Notification
from services.dispatcher.channels.registry import ChannelContext
from shared.endpoints import Endpoint


class PagerChannel:
    """Built from the context: keeps the guarded client and a setting."""

    name: ClassVar[str] = "pager"

    def __init__(self, context: ChannelContext) -> None:
        self.context = context

    @classmethod
    def from_context(cls, context: ChannelContext) -> PagerChannel:
        return cls(context)

    async def send(self, notification: Notification, endpoint: Endpoint) -> DeliveryResult:
        return DeliveryResult.delivered(f"paged {notification.title}")


class EchoChannel:
    """Needs nothing: built with ``EchoChannel()``."""

    name: ClassVar[str] = "echo"

    async def send(self, notification: Notification, endpoint: Endpoint) -> DeliveryResult:
        return DeliveryResult.delivered(notification.body)


class NeedsArguments:
    name: ClassVar[str] = "needy"

    def __init__(self, token: str) -> None:
        self.token = token

    async def send(self, notification: Notification, endpoint: Endpoint) -> DeliveryResult:
        return DeliveryResult.delivered(self.token)


class SyncSend:
    name: ClassVar[str] = "sync"

    def send(self, notification: Notification, endpoint: Endpoint) -> DeliveryResult:
        return DeliveryResult.delivered()


class Nameless:
    async def send(self, notification: Notification, endpoint: Endpoint) -> DeliveryResult:
        return DeliveryResult.delivered()


async def send(notification: Notification, endpoint: Endpoint) -> DeliveryResult:
    """A function, not a class."""
    return DeliveryResult.delivered()
