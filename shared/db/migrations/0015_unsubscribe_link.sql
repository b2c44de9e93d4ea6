-- The one-click unsubscribe link of a notification that goes out by e-mail, made
-- once when it is planned: the HTML footer and the List-Unsubscribe header carry
-- the same link, and the delivery stage reads it rather than signing another.
ALTER TABLE notifications ADD COLUMN unsubscribe_url text;
