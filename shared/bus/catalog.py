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


# Intake: everything that may become a notification (a priority queue).
DISPATCHER_NOTIFICATIONS = WorkQueue(
    "dispatcher",
    "notifications",
    (
        "notification.requested",
        "match.found",
        "application.status_changed",
        "reminder.due",
        "digest.due",
        "notification.cancel_requested",
    ),
)
# Who the users are, and the facts about them that reminders are worded from.
DISPATCHER_USERS = WorkQueue(
    "dispatcher",
    "users",
    ("user.signed_up", "user.deleted", "meeting.scheduled", "meeting.cancelled"),
)
# The jobs the dispatcher words and judges, kept in its own copy (``dispatcher_jobs``).
DISPATCHER_JOBS = WorkQueue(
    "dispatcher", "jobs", ("job.posted", "job.updated", "job.closed", "job.expired")
)
# The clock: the dispatcher's own retention runs daily.
DISPATCHER_TICKS = WorkQueue("dispatcher", "ticks", ("tick.daily",))
# One message per delivery (a priority queue with the delivery retry schedule).
DISPATCHER_DELIVERIES = WorkQueue("dispatcher", "deliveries", ("delivery.due",))
# Urgent deliveries, consumed apart: slow sends elsewhere never hold them up.
DISPATCHER_URGENT = WorkQueue("dispatcher", "urgent", ("delivery.urgent",))
# The waits a rate-limited delivery can be set aside for without spending an attempt:
# the deliveries and urgent queues have a delay queue for each, beside their retries.
DELIVERY_DEFER_STEPS = (1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 300.0, 1800.0)
MATCHER_JOBS = WorkQueue("matcher", "jobs", ("job.posted", "job.updated", "job.closed"))
# Who is looking: résumés, saved searches, and erasure.
MATCHER_SEEKERS = WorkQueue(
    "matcher",
    "seekers",
    ("resume.upserted", "resume.deleted", "alert.saved", "alert.deleted", "user.deleted"),
)
# The clock: alerts re-run daily or weekly, expired jobs leave the index hourly.
MATCHER_TICKS = WorkQueue("matcher", "ticks", ("tick.hourly", "tick.daily", "tick.weekly"))

# The gateway's own rows about a user (saved searches) go with user.deleted.
GATEWAY_USERS = WorkQueue("gateway", "users", ("user.deleted",))
# What the scheduler's reminders follow: meetings and their moves, application status
# changes (follow-ups, interviews), and erasure.
SCHEDULER_SUBJECTS = WorkQueue(
    "scheduler",
    "subjects",
    (
        "meeting.scheduled",
        "meeting.cancelled",
        "application.status_changed",
        "user.deleted",
    ),
)

ALL_QUEUES: tuple[WorkQueue, ...] = (
    DISPATCHER_NOTIFICATIONS,
    DISPATCHER_USERS,
    DISPATCHER_DELIVERIES,
    DISPATCHER_URGENT,
    DISPATCHER_JOBS,
    DISPATCHER_TICKS,
    MATCHER_JOBS,
    MATCHER_SEEKERS,
    MATCHER_TICKS,
    GATEWAY_USERS,
    SCHEDULER_SUBJECTS,
)
