-- A Telegram chat is bound to an endpoint only when its owner proves they hold it:
-- POST /v1/me/channels {"type": "telegram"} makes a pending endpoint (no chat id,
-- switched off, so nothing is delivered to it) and a single-use link code, kept here
-- as its SHA-256; the bot's webhook binds the chat that sends "/start <code>".
-- Telegram endpoints made before this keep their chat: their owners chose them, and
-- marking them pending would silently stop their notifications.
CREATE TABLE telegram_links (
    code_hash    bytea PRIMARY KEY,
    endpoint_id  uuid NOT NULL REFERENCES channel_endpoints (id) ON DELETE CASCADE,
    expires_at   timestamptz NOT NULL
);
CREATE INDEX telegram_links_endpoint ON telegram_links (endpoint_id);
