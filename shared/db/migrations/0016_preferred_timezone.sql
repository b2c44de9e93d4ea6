-- The time zone the user chose through the gateway (/v1/me/preferences), kept apart
-- from users.timezone (the product's, from user.signed_up), so a repeated
-- user.signed_up no longer overwrites the user's choice. Readers take the user's
-- zone first: COALESCE(preferences.timezone, users.timezone). NULL: no choice made.
-- preferences is the gateway's alone from now on: the dispatcher no longer inserts
-- the default row at sign-up, and a missing row reads as the defaults.
ALTER TABLE preferences ADD COLUMN timezone text;

-- A zone the gateway wrote is still on the user where no user.signed_up came after:
-- the gateway wrote users and preferences in one transaction (equal now()), a
-- repeated sign-up moves users.updated_at alone, a first one sets both at
-- creation. A PATCH of another field rewrote the zone it found, so some of these
-- are the product's zone kept rather than chosen: the effective zone is the same
-- today either way, and the user can change it.
UPDATE preferences p
   SET timezone = u.timezone
  FROM users u
 WHERE u.user_id = p.user_id
   AND u.updated_at = p.updated_at
   AND u.updated_at > u.created_at;
