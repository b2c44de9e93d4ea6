-- API keys get a life cycle: an optional expiry, an optional allow-list of the event
-- types they may publish, and a link to the key that replaced them on rotation.
-- Existing keys keep working as they did: no expiry, every event type allowed
-- (event_types NULL), except user.deleted, which now needs the users:erase scope
-- (or admin): erasure is granted explicitly, not carried by events:write.
ALTER TABLE api_keys
    -- NULL: every type the gateway takes; otherwise AMQP topic patterns ("job.*")
    ADD COLUMN event_types  text[],
    -- NULL: never expires
    ADD COLUMN expires_at   timestamptz,
    -- how long a key made in its place on rotation lives (NULL: forever)
    ADD COLUMN lifetime     interval,
    ADD COLUMN replaced_by  uuid REFERENCES api_keys (id) ON DELETE SET NULL;

-- keys made with the scope's first name are stored under the current one
UPDATE api_keys
    SET scopes = ARRAY(SELECT DISTINCT s FROM unnest(
        array_replace(scopes, 'events:publish', 'events:write')) AS s ORDER BY s)
    WHERE 'events:publish' = ANY (scopes);
