-- Matcher: résumés, saved searches, and every (job, user) match it announced.
-- Vectors live in the vector index; these rows hold what filtering, scoring and
-- idempotency need. No foreign key to users: the matcher hears user.deleted itself
-- and may see a résumé before the dispatcher has recorded its user.

ALTER TABLE jobs
    -- skills found in the text, merged with the event's explicit ones
    ADD COLUMN skill_set text[] NOT NULL DEFAULT '{}',
    -- a repost: the same job seen before under another id (nobody hears twice)
    ADD COLUMN repost_of text,
    ADD COLUMN indexed_at timestamptz;
CREATE INDEX jobs_company_open ON jobs (lower(company), posted_at DESC) WHERE closed_at IS NULL;

CREATE TABLE resumes (
    user_id         text PRIMARY KEY,
    title           text,
    text            text NOT NULL,
    skills          text[] NOT NULL DEFAULT '{}',
    location        text,
    remote_ok       boolean,
    desired_salary  numeric,
    as_of           timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- One row per (user, job) ever announced; the match id is derived from both, so a
-- re-match keeps its id. best_score is what was last announced.
CREATE TABLE matches (
    match_id     text PRIMARY KEY,
    user_id      text NOT NULL,
    job_id       text NOT NULL,
    score        real NOT NULL,
    best_score   real NOT NULL,
    reason       text NOT NULL,
    -- when a rise of the score was last announced
    improved_at  timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, job_id)
);
CREATE INDEX matches_job ON matches (job_id);

CREATE TABLE alerts (
    alert_id      text PRIMARY KEY,
    user_id       text NOT NULL,
    keywords      text[] NOT NULL DEFAULT '{}',
    location      text,
    remote        boolean,
    salary_floor  numeric,
    job_types     text[] NOT NULL DEFAULT '{}',
    frequency     text NOT NULL CHECK (frequency IN ('daily', 'weekly')),
    as_of         timestamptz NOT NULL,
    last_run_at   timestamptz
);
CREATE INDEX alerts_user ON alerts (user_id);

-- A job an alert has announced: never again for that alert.
CREATE TABLE alert_hits (
    alert_id  text NOT NULL REFERENCES alerts (alert_id) ON DELETE CASCADE,
    job_id    text NOT NULL,
    hit_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (alert_id, job_id)
);
