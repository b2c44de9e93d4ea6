-- Foundation schema: identities, endpoints, notification history, jobs, idempotency.

CREATE TABLE users (
    user_id     text PRIMARY KEY,
    email       text NOT NULL,
    name        text NOT NULL DEFAULT '',
    timezone    text NOT NULL DEFAULT 'UTC',
    locale      text NOT NULL DEFAULT 'en',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE channel_endpoints (
    id                    uuid PRIMARY KEY,
    user_id               text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    type                  text NOT NULL,
    url                   text,
    chat_id               text,
    secret                text,
    enabled               boolean NOT NULL DEFAULT true,
    consecutive_failures  integer NOT NULL DEFAULT 0,
    disabled_reason       text,
    created_at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX channel_endpoints_user ON channel_endpoints (user_id) WHERE enabled;

CREATE TABLE notifications (
    id               uuid PRIMARY KEY,
    user_id          text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    type             text NOT NULL,
    title            text NOT NULL,
    body             text NOT NULL,
    data             jsonb NOT NULL DEFAULT '{}',
    priority         text NOT NULL DEFAULT 'normal',
    source_event_id  text NOT NULL,
    correlation_id   text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    read_at          timestamptz,
    deleted_at       timestamptz
);
CREATE INDEX notifications_user_created ON notifications (user_id, created_at DESC);

CREATE TABLE deliveries (
    id               uuid PRIMARY KEY,
    notification_id  uuid NOT NULL REFERENCES notifications (id) ON DELETE CASCADE,
    endpoint_id      uuid REFERENCES channel_endpoints (id) ON DELETE SET NULL,
    channel          text NOT NULL,
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'delivered', 'failed', 'skipped')),
    attempts         integer NOT NULL DEFAULT 0,
    last_error       text,
    response_status  integer,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz,
    UNIQUE (notification_id, endpoint_id)
);

CREATE TABLE jobs (
    job_id       text PRIMARY KEY,
    title        text NOT NULL,
    company      text NOT NULL,
    description  text NOT NULL,
    location     text,
    remote       boolean NOT NULL,
    salary_min   numeric,
    salary_max   numeric,
    currency     text,
    job_type     text NOT NULL,
    url          text NOT NULL,
    skills       text[] NOT NULL DEFAULT '{}',
    posted_at    timestamptz NOT NULL,
    expires_at   timestamptz,
    closed_at    timestamptz,
    -- time of the event that last wrote the row: an older event never overwrites a newer one
    as_of        timestamptz NOT NULL
);

CREATE TABLE processed_events (
    consumer      text NOT NULL,
    event_id      text NOT NULL,
    processed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);

CREATE TABLE api_keys (
    id            uuid PRIMARY KEY,
    name          text NOT NULL,
    prefix        text NOT NULL,
    key_hash      bytea NOT NULL UNIQUE,
    scopes        text[] NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    revoked_at    timestamptz
);
