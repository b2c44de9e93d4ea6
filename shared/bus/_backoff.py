"""Pure back-off arithmetic for the retry delay queues (no I/O)."""

from __future__ import annotations

from collections.abc import Sequence


def retry_step(
    attempt: int, delays: Sequence[float], retry_after: float | None = None
) -> int | None:
    """Which delay queue a message goes to after its ``attempt``-th try failed.

    Step ``n`` waits ``delays[n]`` seconds. The first failure waits ``delays[0]``,
    the second ``delays[1]`` and so on; after ``len(delays)`` failures the message
    is exhausted (``None``) and gets parked. A ``Retry-After`` hint moves it to the
    first step that waits at least that long (or the longest step) without using
    up more attempts than it really took.
    """
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    if attempt > len(delays):
        return None
    step = attempt - 1
    if retry_after is not None and retry_after > delays[step]:
        step = next((i for i, d in enumerate(delays) if d >= retry_after), len(delays) - 1)
    return step
