-- Dispatcher: preferences, implicit endpoints, held and rate-limited deliveries,
-- de-duplication marks, digest items, and the dispatcher's copies of meetings and
-- applications it needs to word (and to stop) reminders.

ALTER TABLE channel_endpoints ADD COLUMN address text;
-- Every user has one e-mail endpoint (their address) and one in-app endpoint.
CREATE UNIQUE INDEX channel_endpoints_implicit
    ON channel_endpoints (user_id, type) WHERE type IN ('email', 'inapp');

CREATE TABLE preferences (
    user_id                     text PRIMARY KEY REFERENCES users (user_id) ON DELETE CASCADE,
    email_enabled               boolean NOT NULL DEFAULT true,
    digest_frequency            text NOT NULL DEFAULT 'instant'
                                CHECK (digest_frequency IN ('instant', 'daily', 'weekly', 'off')),
    notify_new_matches          boolean NOT NULL DEFAULT true,
    notify_application_updates  boolean NOT NULL DEFAULT true,
    notify_reminders            boolean NOT NULL DEFAULT true,
    notify_digests              boolean NOT NULL DEFAULT true,
    min_match_score             double precision NOT NULL DEFAULT 0
                                CHECK (min_match_score BETWEEN 0 AND 1),
    quiet_hours_start           time,
    quiet_hours_end             time,
    -- per channel type on/off, e.g. {"slack": false}; a missing type is on
    channels                    jsonb NOT NULL DEFAULT '{}',
    -- score routing rules: [{"min_score": 0.9, "channels": ["telegram"], "digest": false}, ...]
    score_routes                jsonb,
    updated_at                  timestamptz NOT NULL DEFAULT now()
);

ALTER TABLE notifications
    ADD COLUMN kind          text NOT NULL DEFAULT 'generic',
    ADD COLUMN subject       text,
    ADD COLUMN job_id        text,
    ADD COLUMN score         double precision,
    ADD COLUMN html          text,
    ADD COLUMN link          text,
    -- set when the in-app channel delivered it: from then on it is in the inbox
    ADD COLUMN inbox_at      timestamptz;
CREATE INDEX notifications_inbox ON notifications (user_id, inbox_at DESC)
    WHERE inbox_at IS NOT NULL AND deleted_at IS NULL;

ALTER TABLE deliveries
    DROP CONSTRAINT deliveries_status_check,
    ADD CONSTRAINT deliveries_status_check
        CHECK (status IN ('held', 'pending', 'delivered', 'failed', 'skipped', 'dropped')),
    ADD COLUMN priority     text NOT NULL DEFAULT 'normal',
    -- not before this time: quiet hours, deliver_at, or a rate-limit reservation
    ADD COLUMN not_before   timestamptz,
    ADD COLUMN provider_id  text,
    -- a dispatcher working on it: a duplicate delivery.due waits instead of sending twice
    ADD COLUMN claimed_until timestamptz,
    -- when the bus should bring it back (a retry or a rate-limit wait); the sweeper
    -- republishes a pending delivery whose message was lost once this has long passed
    ADD COLUMN retry_at     timestamptz,
    ADD COLUMN first_attempt_at timestamptz,
    ADD COLUMN last_attempt_at  timestamptz;
CREATE INDEX deliveries_held ON deliveries (not_before) WHERE status = 'held';
CREATE INDEX deliveries_pending ON deliveries (COALESCE(retry_at, updated_at))
    WHERE status = 'pending';

-- One row per thing a user was told about: identical content is never sent twice.
CREATE TABLE dedup_marks (
    user_id       text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    type          text NOT NULL,
    subject       text NOT NULL,
    content_hash  text NOT NULL,
    sent_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, type, subject, content_hash)
);

-- Generic cell rate algorithm: the theoretical arrival time of the next message per key.
CREATE TABLE rate_limits (
    key  text PRIMARY KEY,
    tat  timestamptz NOT NULL
);

-- Matches held for the user's digest instead of being sent one by one.
CREATE TABLE digest_items (
    user_id      text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    job_id       text NOT NULL,
    match_id     text NOT NULL,
    score        double precision NOT NULL,
    data         jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    digested_at  timestamptz,
    PRIMARY KEY (user_id, job_id)
);
CREATE INDEX digest_items_pending ON digest_items (user_id, created_at) WHERE digested_at IS NULL;

CREATE TABLE meetings (
    meeting_id  text PRIMARY KEY,
    user_id     text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    title       text NOT NULL,
    starts_at   timestamptz NOT NULL,
    ends_at     timestamptz NOT NULL,
    join_url    text,
    cancelled   boolean NOT NULL DEFAULT false,
    sequence    integer NOT NULL DEFAULT 0,
    as_of       timestamptz NOT NULL
);

CREATE TABLE applications (
    application_id  text PRIMARY KEY,
    user_id         text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    job_id          text NOT NULL,
    status          text NOT NULL,
    as_of           timestamptz NOT NULL
);

-- Files sent with a notification (a meeting's invite.ics), kept for its retries.
CREATE TABLE notification_attachments (
    notification_id  uuid NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    filename         text NOT NULL,
    content_type     text NOT NULL,
    content          bytea NOT NULL,
    PRIMARY KEY (notification_id, filename)
);
