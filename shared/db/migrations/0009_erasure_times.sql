-- Erasure records stamped with a user.deleted's own time could lie in the future (a
-- producer's clock running ahead) and then held off a genuine sign-up for as long.
-- From now on a record is stamped no later than when Herald received the erasure;
-- the ones already written are brought back to now.
UPDATE erased_users SET erased_at = now() WHERE erased_at > now();
