"""Taking the messages about one user out of the queues that hold messages back.

A message waiting out a retry (``Q.retry.<n>``) or parked for an operator
(``Q.parked``) carries its whole event: a sign-up's e-mail and name, a résumé's text,
a notification's body. Erasure must not leave those behind for the length of a delay
or of the parking retention.

The sweep takes every message a queue holds, unacked, one by one; it acks those about
the user (they are gone) and closes the channel, which gives the others back to the
broker. A classic queue puts a message given back in its old place, with its headers
and its original expiry: a retry still comes due when it would have, parking order is
kept, and nothing is republished, so nothing can be lost or doubled by a crash halfway.

The hole: a message that someone else holds unacked while the sweep passes (an
operator listing parked messages, another sweep) is not seen. Sweeps are serialised
by the caller (``shared.erasure.forget_in_queues``); a listing holds its messages for
a moment only.

A message is about the user when it is a JSON object whose ``data.user_id`` is the
user's id, valid event or not: every payload about a person names them there. The
CloudEvents ``subject`` is not looked at: it is a job's, a meeting's or a schedule's id
as often as a user's, and erasing user "42" must not take job 42's events. A body
that is not JSON cannot be told apart and is kept.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Sequence

from aio_pika.abc import AbstractConnection

from ._parking import held_messages

About = Callable[[bytes], bool]


def about_user(user_id: str) -> About:
    """Whether a message body is about ``user_id`` (see the module's docstring)."""

    def about(body: bytes) -> bool:
        try:
            raw = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return False
        if not isinstance(raw, dict):
            return False
        data = raw.get("data")
        return isinstance(data, dict) and data.get("user_id") == user_id

    return about


async def sweep(connection: AbstractConnection, queues: Sequence[str], about: About) -> int:
    """Drop every message of ``queues`` whose body is ``about``; how many were dropped.
    Only what the queues held when the sweep reached them is looked at."""
    dropped = 0
    async with contextlib.aclosing(held_messages(connection, queues)) as held:
        async for _, message in held:
            if about(message.body):
                await message.ack()
                dropped += 1
    return dropped
