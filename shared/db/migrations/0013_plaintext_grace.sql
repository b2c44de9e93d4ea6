-- Sealing keeps the plain url and secret for a grace period (shared/endpoint_sealing.py):
-- during a rolling upgrade, dispatchers of the version before 0011 still read them,
-- and would otherwise fail (then disable) every endpoint sealed under their feet.
-- sealed_at says when a row's credentials were sealed; the dispatcher clears the
-- plain columns HERALD_PLAINTEXT_GRACE_SECONDS after it. Rows sealed before this
-- migration already had their plain columns cleared.
ALTER TABLE channel_endpoints ADD COLUMN sealed_at timestamptz;
UPDATE channel_endpoints SET sealed_at = now()
    WHERE url_sealed IS NOT NULL OR secret_sealed IS NOT NULL;

-- the periodic pass looks only at rows still holding plaintext: few, once sealed
CREATE INDEX channel_endpoints_plaintext ON channel_endpoints (sealed_at)
    WHERE url IS NOT NULL OR secret IS NOT NULL;
