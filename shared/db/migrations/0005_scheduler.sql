-- Scheduler: leadership, tick cursors, reminders, meetings' states, digest schedules,
-- and cancelled delayed notifications.

-- One row per namespace: the replica whose lease has not run out is the leader. A
-- row (not a session advisory lock) outlives a database restart and a broken
-- connection; term grows at every change of holder and fences the old one out.
CREATE TABLE scheduler_leases (
    namespace   text PRIMARY KEY,
    holder      text NOT NULL,
    term        bigint NOT NULL,
    expires_at  timestamptz NOT NULL
);

-- The last slot each schedule has dealt with (published or skipped). Moved forward
-- by compare-and-set in the transaction that publishes, so no slot goes out twice.
CREATE TABLE scheduler_cursors (
    namespace   text NOT NULL,
    schedule    text NOT NULL,
    last_slot   timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (namespace, schedule)
);

-- Meetings as the scheduler follows them: scheduled -> active -> completed, or
-- cancelled. No foreign key to users: meeting.scheduled may arrive before the
-- dispatcher has recorded the user; user.deleted erases these rows.
CREATE TABLE scheduler_meetings (
    meeting_id  text PRIMARY KEY,
    user_id     text NOT NULL,
    title       text NOT NULL,
    starts_at   timestamptz NOT NULL,
    ends_at     timestamptz NOT NULL,
    join_url    text,
    state       text NOT NULL
                CHECK (state IN ('scheduled', 'active', 'completed', 'cancelled')),
    as_of       timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX scheduler_meetings_user ON scheduler_meetings (user_id);
CREATE INDEX scheduler_meetings_to_start ON scheduler_meetings (starts_at)
    WHERE state = 'scheduled';
CREATE INDEX scheduler_meetings_to_end ON scheduler_meetings (ends_at)
    WHERE state = 'active';

-- The last status change of each application the scheduler heard of: an older event
-- never replaces a newer one's reminders.
CREATE TABLE scheduler_applications (
    application_id  text PRIMARY KEY,
    user_id         text NOT NULL,
    status          text NOT NULL,
    as_of           timestamptz NOT NULL
);
CREATE INDEX scheduler_applications_user ON scheduler_applications (user_id);

-- Every reminder.due the scheduler owes: sent once (status moves from pending in the
-- transaction that publishes it), replaced when its subject moves, dropped when it
-- is cancelled or pointless (its meeting began: not_after).
CREATE TABLE scheduled_reminders (
    reminder_id  text PRIMARY KEY,
    user_id      text NOT NULL,
    kind         text NOT NULL,
    -- 'meeting' or 'application': the two id spaces may overlap
    subject_type text NOT NULL,
    subject_id   text NOT NULL,
    due_at       timestamptz NOT NULL,
    not_after    timestamptz,
    status       text NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'sent', 'cancelled', 'skipped')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    settled_at   timestamptz
);
CREATE INDEX scheduled_reminders_due ON scheduled_reminders (due_at) WHERE status = 'pending';
CREATE INDEX scheduled_reminders_subject ON scheduled_reminders (subject_type, subject_id);
CREATE INDEX scheduled_reminders_user ON scheduled_reminders (user_id);

-- A user's local hour for digests; NULL: HERALD_DIGEST_HOUR.
ALTER TABLE preferences
    ADD COLUMN digest_hour smallint CHECK (digest_hour BETWEEN 0 AND 23);

-- When each user's next digest is due and where its window starts (the end of the
-- last one). Kept in step with users and preferences by the scheduler.
CREATE TABLE digest_schedules (
    user_id       text PRIMARY KEY REFERENCES users (user_id) ON DELETE CASCADE,
    frequency     text NOT NULL CHECK (frequency IN ('daily', 'weekly')),
    timezone      text NOT NULL,
    hour          smallint NOT NULL,
    weekday       smallint NOT NULL,
    next_at       timestamptz NOT NULL,
    window_start  timestamptz NOT NULL
);
CREATE INDEX digest_schedules_next ON digest_schedules (next_at);

-- notification.requested ids cancelled before their deliver_at: the dispatcher
-- drops their held deliveries, including any recorded after the cancel arrived.
CREATE TABLE cancelled_requests (
    request_id    text PRIMARY KEY,
    user_id       text NOT NULL,
    cancelled_at  timestamptz NOT NULL DEFAULT now()
);
