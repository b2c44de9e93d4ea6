"""Erasure across dispatcher replicas that each write mail to an outbox of their own
(a Kubernetes pod's emptyDir): every replica clears its own."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg

from services.dispatcher.mail import owner_prefix
from shared.bus import Bus
from shared.events import UserDeleted
from tests.integration.conftest import Dispatcher, dispatcher, producer, publish, sign_up
from tests.support import eventually

__all__ = ["dispatcher", "producer"]


def mail_of(outbox: Path, user_id: str) -> list[Path]:
    return sorted(outbox.glob(f"{owner_prefix(user_id)}*.eml"))


async def test_every_replica_clears_its_own_outbox_of_an_erased_user(
    dispatcher: Callable[..., Awaitable[Dispatcher]],
    producer: Bus,
    pool: asyncpg.Pool,
    tmp_path: Path,
) -> None:
    replicas = [await dispatcher(data_dir=tmp_path / name) for name in ("pod-a", "pod-b")]
    outboxes = [d.settings.outbox_dir for d in replicas]
    erased = await sign_up(producer, pool)
    kept = await sign_up(producer, pool)
    # mail each pod wrote earlier, in a directory the other never sees
    for outbox in outboxes:
        outbox.mkdir(parents=True, exist_ok=True)
        for user_id in (erased, kept):
            (outbox / f"{owner_prefix(user_id)}.<{user_id}@herald>.eml").write_text(
                f"To: {user_id}@example.com\n\nhello\n"
            )

    # one replica handles the erasure; both hear of it
    await publish(producer, UserDeleted(user_id=erased))

    await eventually(
        lambda: not any(mail_of(outbox, erased) for outbox in outboxes),
        timeout=15,
        what="the erased user's mail gone from both pods' outboxes",
    )
    # the other user's mail stays (their welcome, too, in whichever pod sent it)
    assert all(
        (outbox / f"{owner_prefix(kept)}.<{kept}@herald>.eml").exists() for outbox in outboxes
    )
