-- The dispatcher's own copy of the jobs it words and judges (services/dispatcher/
-- intake/jobs_data.py), written by the dispatcher alone: from job.posted,
-- job.updated, job.closed and job.expired on its queue, and from the job each
-- match.found carries. It never reads the matcher's jobs table.
CREATE TABLE dispatcher_jobs (
    job_id      text PRIMARY KEY,
    -- null only while the job is known by its closing alone (job.closed first)
    title       text,
    company     text,
    location    text,
    remote      boolean NOT NULL DEFAULT false,
    salary_min  numeric,
    salary_max  numeric,
    currency    text,
    url         text,
    posted_at   timestamptz,
    expires_at  timestamptz,
    -- closed for good: no later event reopens it
    closed_at   timestamptz,
    -- the time of the job event that last wrote the details; null while they come
    -- from a match (any job event then overwrites them)
    as_of       timestamptz,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
-- digests count the jobs posted in their window
CREATE INDEX dispatcher_jobs_posted ON dispatcher_jobs (posted_at);
-- retention looks for jobs closed long ago
CREATE INDEX dispatcher_jobs_closed ON dispatcher_jobs (closed_at) WHERE closed_at IS NOT NULL;

-- A deployment upgrading to this version starts with the jobs it already words
-- (held matches, digest items): a one-time copy, not a read the dispatcher makes.
INSERT INTO dispatcher_jobs (job_id, title, company, location, remote, salary_min,
                             salary_max, currency, url, posted_at, expires_at, closed_at,
                             as_of)
SELECT job_id, title, company, location, remote, salary_min, salary_max, currency, url,
       posted_at, expires_at, closed_at, as_of
FROM jobs;


-- retention keeps a job while a notification still refers to it; only job
-- notifications carry a job_id, so the hot path's rows never enter this index
CREATE INDEX notifications_job ON notifications (job_id) WHERE job_id IS NOT NULL;
