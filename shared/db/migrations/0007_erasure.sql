-- One row per erased user (user.deleted): an event about them published before the
-- erasure but handled after it (a retry, a redelivery, a lagging producer) must not
-- bring their data back. Only the id and the time are kept.
CREATE TABLE erased_users (
    user_id    text PRIMARY KEY,
    erased_at  timestamptz NOT NULL
);
