-- Gateway: users' saved searches as they manage them through the API, and the
-- inbox's unread count. The matcher keeps its own copy of each saved search (from
-- alert.saved / alert.deleted); this one answers GET at once after a write and
-- keeps what only the API needs (a name, timestamps).

CREATE TABLE user_alerts (
    alert_id      uuid PRIMARY KEY,
    user_id       text NOT NULL,
    name          text NOT NULL DEFAULT '',
    keywords      text[] NOT NULL DEFAULT '{}',
    location      text,
    remote        boolean,
    salary_floor  numeric,
    job_types     text[] NOT NULL DEFAULT '{}',
    frequency     text NOT NULL CHECK (frequency IN ('daily', 'weekly')),
    created_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- strictly increasing per alert: it is the time of the alert.saved event, and
    -- the matcher keeps only the newest
    updated_at    timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX user_alerts_user ON user_alerts (user_id, created_at);

CREATE INDEX notifications_unread ON notifications (user_id)
    WHERE inbox_at IS NOT NULL AND deleted_at IS NULL AND read_at IS NULL;
