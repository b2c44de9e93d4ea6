-- The dispatcher records, reserves and settles deliveries in batches: one statement
-- for many notifications, rate-limit slots or attempt outcomes.

-- The repeat window travels with the mark, so one INSERT ... ON CONFLICT can judge
-- many marks, each by its own rule.
ALTER TABLE dedup_marks ADD COLUMN repeat_after interval;

-- A delivery claimed by a dispatcher that then died: found by the sweeper as soon as
-- its lease runs out.
CREATE INDEX deliveries_claimed ON deliveries (claimed_until)
    WHERE status = 'pending' AND claimed_until IS NOT NULL;

-- Rate-limit slots for many requests in one round trip, in the order given (the
-- caller sorts by key, so concurrent batches lock rows in the same order). Each
-- request is the generic cell rate algorithm of ratelimit.reserve: it takes the
-- key's next slot if that comes within max_wait seconds, and otherwise takes nothing
-- and says how long to wait.
CREATE FUNCTION herald_reserve(
    keys text[], intervals float8[], tolerances float8[], max_waits float8[]
) RETURNS TABLE (n integer, granted boolean, wait float8)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    at   timestamptz;
    slot timestamptz;
BEGIN
    FOR i IN 1 .. COALESCE(array_length(keys, 1), 0) LOOP
        at := clock_timestamp();
        INSERT INTO rate_limits AS r (key, tat)
        VALUES (keys[i], at + make_interval(secs => intervals[i]))
        ON CONFLICT (key) DO UPDATE
            SET tat = GREATEST(r.tat, at) + make_interval(secs => intervals[i])
            WHERE GREATEST(r.tat, at) + make_interval(secs => intervals[i])
                  <= at + make_interval(secs => tolerances[i] + max_waits[i])
        RETURNING r.tat INTO slot;
        n := i;
        IF FOUND THEN
            granted := true;
            wait := GREATEST(0, EXTRACT(EPOCH FROM slot - at)::float8 - tolerances[i]);
        ELSE
            SELECT GREATEST(r.tat, at) INTO slot FROM rate_limits r WHERE r.key = keys[i];
            granted := false;
            wait := GREATEST(0, EXTRACT(EPOCH FROM COALESCE(slot, at) - at)::float8
                                + intervals[i] - tolerances[i]);
        END IF;
        RETURN NEXT;
    END LOOP;
END
$$;
