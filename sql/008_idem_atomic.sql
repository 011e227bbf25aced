-- 008: an Idempotency-Key answer that can never be lost, and a request
-- whose outcome the module does not know.
--
-- The balance operations with a key (charge, create+pay, pay) run as one
-- statement that first locks the key's claim (cm_idem_hold), then does the
-- work, then stores the answer (cm_idem_done), all in the operation's own
-- transaction:
--
--   SELECT cm_idem_done(h.held, $user, $key, $status, cm_balance_charge(...))
--     FROM cm_idem_hold($user, $key) AS h(held)
--
-- (the function in FROM runs before the target list).  So the key is DONE
-- with its answer exactly when the work is committed.
--
-- When the connection breaks while such a statement runs (the server went
-- away, or the module gave up on it after statement_timeout + 1 s), the
-- module cannot tell whether it committed.  cm_idem_abandon settles it
-- before the key is freed: it waits for the claim's lock (held by the
-- statement until its transaction ends), ends the backend that ran it (so
-- nothing of it can start later: a statement queued behind another in a
-- pipeline), and only then looks: DONE means the work was committed and its
-- answer is returned for the module to send; still IN_FLIGHT means nothing
-- was committed and the key is freed so the client may retry.

-- The claim of (user, key), locked for the caller's transaction.  -> 1
-- A claim that is not IN_FLIGHT any more (freed by cm_idem_abandon) is
-- refused: the work must not run.
CREATE OR REPLACE FUNCTION cm_idem_hold(p_user bigint, p_key text) RETURNS int
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1
       FROM idempotency_keys
      WHERE user_id = p_user AND idem_key = p_key AND state = 'IN_FLIGHT'
        FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'Idempotency-Key "%" is not claimed', p_key
            USING ERRCODE = '55000';    -- object_not_in_prerequisite_state
    END IF;
    RETURN 1;
END
$$;

-- Store the answer of the work just done under the held claim; returns the
-- answer unchanged (the module sends it as it is).
CREATE OR REPLACE FUNCTION cm_idem_done(p_held int, p_user bigint, p_key text, p_status int, p_body text)
RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    IF p_held IS DISTINCT FROM 1 THEN
        RAISE EXCEPTION 'cm_idem_done without cm_idem_hold' USING ERRCODE = '55000';
    END IF;
    IF p_status IS NULL OR p_status NOT BETWEEN 200 AND 299 OR p_body IS NULL THEN
        PERFORM cm__invalid('a stored answer is a 2xx status and a body');
    END IF;
    UPDATE idempotency_keys
       SET state = 'DONE', http_status = p_status, response_body = p_body, updated_at = now()
     WHERE user_id = p_user AND idem_key = p_key AND state = 'IN_FLIGHT';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'Idempotency-Key "%" is not claimed', p_key USING ERRCODE = '55000';
    END IF;
    RETURN p_body;
END
$$;

-- The connection broke while a held statement for (user, key) ran on
-- backend p_pid: wait for its transaction, end the backend, then
--   {"state":"done","status":N,"body":"..."}  it was committed: its answer
--   {"state":"freed"}                         nothing was committed; freed
--   {"state":"held"}                          the backend would not end in
--                                             p_wait_ms: the key stays claimed
--   {"state":"none"}                          no claim (nothing to settle)
CREATE OR REPLACE FUNCTION cm_idem_abandon(p_user bigint, p_key text, p_pid int, p_wait_ms int DEFAULT 5000)
RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    IF p_wait_ms IS NULL OR p_wait_ms NOT BETWEEN 1 AND 60000 THEN
        PERFORM cm__invalid('wait must be 1..60000 ms');
    END IF;

    -- the statement, if it holds the claim, ends first (commit or not)
    EXECUTE format('SET LOCAL lock_timeout = %s', p_wait_ms);
    BEGIN
        SELECT k.state, k.http_status, k.response_body INTO r
          FROM idempotency_keys k
         WHERE k.user_id = p_user AND k.idem_key = p_key
           FOR UPDATE;
    EXCEPTION WHEN lock_not_available THEN
        RETURN '{"state":"held"}';
    END;

    IF NOT FOUND THEN
        RETURN '{"state":"none"}';
    END IF;
    IF r.state = 'DONE' THEN
        RETURN '{"state":"done","status":' || r.http_status
            || ',"body":' || to_json(r.response_body)::text || '}';
    END IF;

    -- still IN_FLIGHT, and locked by us: a statement that did not start yet
    -- would wait for us; end its backend so that it never does
    IF p_pid IS NOT NULL AND p_pid <> pg_backend_pid()
       AND EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = p_pid)
    THEN
        IF NOT pg_terminate_backend(p_pid, p_wait_ms) THEN
            RETURN '{"state":"held"}';
        END IF;
    END IF;

    DELETE FROM idempotency_keys
     WHERE user_id = p_user AND idem_key = p_key AND state = 'IN_FLIGHT';
    RETURN '{"state":"freed"}';
END
$$;
