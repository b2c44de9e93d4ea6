"""Which work queues exist: (service, concern) pairs with the event types they bind.

The services subscribe their handlers to these; the CLI (``herald parked``) and the
docs read them to know where parked messages can be without asking the broker.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._topology import QueueNames


@dataclass(frozen=True)
class WorkQueue:
    service: str
    concern: str
    bindings: tuple[str, ...]

    def names(self, namespace: str) -> QueueNames:
        return QueueNames.of(namespace, self.service, self.concern)


DISPATCHER_NOTIFICATIONS = WorkQueue("dispatcher", "notifications", ("notification.requested",))
DISPATCHER_USERS = WorkQueue("dispatcher", "users", ("user.signed_up", "user.deleted"))
MATCHER_JOBS = WorkQueue("matcher", "jobs", ("job.posted", "job.updated", "job.closed"))

ALL_QUEUES: tuple[WorkQueue, ...] = (DISPATCHER_NOTIFICATIONS, DISPATCHER_USERS, MATCHER_JOBS)
