"""The bus on aio-pika: topology, confirmed publishing, and the one consumer wrapper
that acks, retries with back-off and parks (DESIGN §2)."""

from . import catalog
from ._backoff import retry_step
from ._bus import Bus, Handler, Listener
from ._headers import (
    ATTEMPT,
    LAST_ERROR,
    ORIGIN_QUEUE,
    ORIGIN_ROUTING_KEY,
    PARKED_AT,
    PARKED_REASON,
    REPLAYED,
)
from ._outgoing import MAX_PRIORITY, PRIORITY_LEVELS
from ._parking import (
    ParkedMessage,
    QueueStats,
    WorkQueueState,
    delete_parked,
    list_parked,
    purge_parked,
    queue_stats,
    replay_parked,
    work_queue_states,
)
from ._supervision import broker_connection
from ._sweep import about_user, sweep
from ._topology import QueueNames, exchange_name, topic_matches
from ._versions import UntestedLibrary, check_versions

__all__ = [
    "ATTEMPT",
    "LAST_ERROR",
    "MAX_PRIORITY",
    "ORIGIN_QUEUE",
    "ORIGIN_ROUTING_KEY",
    "PARKED_AT",
    "PARKED_REASON",
    "PRIORITY_LEVELS",
    "REPLAYED",
    "Bus",
    "Handler",
    "Listener",
    "ParkedMessage",
    "QueueNames",
    "QueueStats",
    "UntestedLibrary",
    "WorkQueueState",
    "about_user",
    "broker_connection",
    "catalog",
    "check_versions",
    "delete_parked",
    "exchange_name",
    "list_parked",
    "purge_parked",
    "queue_stats",
    "replay_parked",
    "retry_step",
    "sweep",
    "topic_matches",
    "work_queue_states",
]
