-- Every change to what the dispatcher knows of a recipient (the user, their
-- preferences, their endpoints) is announced on herald_recipients with the user id,
-- whoever makes it: dispatchers keep recipients in memory and drop them on it.
-- NOTIFY is sent at commit and collapses repeats within a transaction, so a bulk
-- change costs one message per user.
CREATE FUNCTION herald_recipient_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM pg_notify('herald_recipients', OLD.user_id);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM pg_notify('herald_recipients', NEW.user_id);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER users_announce AFTER INSERT OR UPDATE OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION herald_recipient_changed();
CREATE TRIGGER preferences_announce AFTER INSERT OR UPDATE OR DELETE ON preferences
    FOR EACH ROW EXECUTE FUNCTION herald_recipient_changed();
CREATE TRIGGER channel_endpoints_announce AFTER INSERT OR DELETE ON channel_endpoints
    FOR EACH ROW EXECUTE FUNCTION herald_recipient_changed();
-- counting failures (every failed or first-good delivery) changes nothing a
-- recipient is made of; enabling, disabling and editing do
CREATE TRIGGER channel_endpoints_announce_edit AFTER UPDATE ON channel_endpoints
    FOR EACH ROW
    WHEN ((OLD.user_id, OLD.type, OLD.url, OLD.chat_id, OLD.secret, OLD.address, OLD.enabled,
           OLD.created_at)
          IS DISTINCT FROM
          (NEW.user_id, NEW.type, NEW.url, NEW.chat_id, NEW.secret, NEW.address, NEW.enabled,
           NEW.created_at))
    EXECUTE FUNCTION herald_recipient_changed();
