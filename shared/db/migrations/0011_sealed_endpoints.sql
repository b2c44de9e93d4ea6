-- Channel endpoints' credentials sealed at rest (shared/sealing.py): webhook and chat
-- webhook URLs and webhook signing secrets move to *_sealed columns, Fernet tokens
-- under HERALD_ENCRYPTION_KEYS. SQL cannot encrypt with the application's key, so
-- this only adds the columns: the gateway and the dispatcher (and `herald migrate`)
-- seal whatever plaintext is left at start-up and clear url and secret
-- (shared/endpoint_sealing.py). url_shown is what listings show of the URL
-- (scheme://host/…), so they never need to open it.
ALTER TABLE channel_endpoints
    ADD COLUMN url_sealed text,
    ADD COLUMN secret_sealed text,
    ADD COLUMN url_shown text;

-- an edited or resealed credential is a change of the recipient (0008)
DROP TRIGGER channel_endpoints_announce_edit ON channel_endpoints;
CREATE TRIGGER channel_endpoints_announce_edit AFTER UPDATE ON channel_endpoints
    FOR EACH ROW
    WHEN ((OLD.user_id, OLD.type, OLD.url, OLD.chat_id, OLD.secret, OLD.address, OLD.enabled,
           OLD.created_at, OLD.url_sealed, OLD.secret_sealed)
          IS DISTINCT FROM
          (NEW.user_id, NEW.type, NEW.url, NEW.chat_id, NEW.secret, NEW.address, NEW.enabled,
           NEW.created_at, NEW.url_sealed, NEW.secret_sealed))
    EXECUTE FUNCTION herald_recipient_changed();
