"""Header names Herald puts on messages it retries or parks."""

ATTEMPT = "x-herald-attempt"
LAST_ERROR = "x-herald-error"
PARKED_REASON = "x-herald-parked-reason"
PARKED_AT = "x-herald-parked-at"
ORIGIN_QUEUE = "x-herald-queue"
ORIGIN_ROUTING_KEY = "x-herald-routing-key"
REPLAYED = "x-herald-replayed"

# A reason header must stay readable and fit comfortably in an AMQP frame.
MAX_ERROR_LENGTH = 2000


def clip(text: str) -> str:
    return text if len(text) <= MAX_ERROR_LENGTH else text[: MAX_ERROR_LENGTH - 1] + "…"
