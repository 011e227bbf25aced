-- idem: Idempotency-Key (IETF draft) per user, table idempotency_keys
-- (003_card_payments.sql).  Repeatable file: see 00_common.sql.
--
-- Any route with a key: cm_idem_begin before the operation, cm_idem_finish
-- after it (stores the answer, or frees the key after a 5xx).
--
-- The balance operations with a key (charge, create+pay, pay) store their
-- answer in their own transaction instead: one statement first locks the
-- key's claim (cm_idem_hold), then does the work, then stores the answer
-- (cm_idem_done):
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

-- ---------------------------------------------------------------------------
-- Begin and finish

-- Before the operation.  -> {"state","status","body"}:
--   "new"       key recorded IN_FLIGHT: run the operation, then cm_idem_finish
--   "replay"    done before with the same route and body hash: answer
--               "status"/"body" again (the module says so in a header)
--   "mismatch"  the key was used with another route or body (422)
--   "in_flight" the first request with this key is still running (409)
-- status/body are null except for replay.  Concurrent begins with one key:
-- INSERT .. ON CONFLICT DO NOTHING lets exactly one insert (the others wait
-- for it to commit, insert nothing, then read its row).  A key older than
-- 24 h is taken over as new (one taker: conditional UPDATE).  An IN_FLIGHT
-- key is never taken over before that: its request may have done its work.
CREATE OR REPLACE FUNCTION cm_idem_begin(p_user bigint, p_key text, p_route text, p_hash text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    i int;
BEGIN
    IF p_user IS NULL OR (p_key ~ '^[ -~]{1,255}$') IS NOT TRUE THEN
        PERFORM cm__invalid('Idempotency-Key must be 1 to 255 printable ASCII characters');
    END IF;
    IF p_route IS NULL OR length(p_route) NOT BETWEEN 1 AND 200 OR (p_hash ~ '^[0-9a-f]{64}$') IS NOT TRUE THEN
        PERFORM cm__invalid('route and request hash (64 hex digits) are required');
    END IF;

    FOR i IN 1 .. 3 LOOP
        INSERT INTO idempotency_keys (user_id, idem_key, route, request_hash, state)
        VALUES (p_user, p_key, p_route, p_hash, 'IN_FLIGHT')
        ON CONFLICT DO NOTHING;
        IF FOUND THEN
            RETURN '{"state":"new","status":null,"body":null}';
        END IF;

        SELECT k.route, k.request_hash, k.state, k.http_status, k.response_body, k.created_at INTO r
          FROM idempotency_keys k
         WHERE k.user_id = p_user AND k.idem_key = p_key;
        IF FOUND THEN
            IF r.created_at < now() - interval '24 hours' THEN
                UPDATE idempotency_keys
                   SET route = p_route, request_hash = p_hash, state = 'IN_FLIGHT', http_status = NULL,
                       response_body = NULL, created_at = now(), updated_at = now()
                 WHERE user_id = p_user AND idem_key = p_key
                   AND created_at < now() - interval '24 hours';
                IF FOUND THEN
                    RETURN '{"state":"new","status":null,"body":null}';
                END IF;
                CONTINUE;       -- another request took it over: read again
            END IF;
            IF r.route <> p_route OR r.request_hash <> p_hash THEN
                RETURN '{"state":"mismatch","status":null,"body":null}';
            END IF;
            IF r.state = 'IN_FLIGHT' THEN
                RETURN '{"state":"in_flight","status":null,"body":null}';
            END IF;
            RETURN '{"state":"replay","status":' || r.http_status
                || ',"body":' || coalesce(to_json(r.response_body)::text, 'null') || '}';
        END IF;
        -- The row went away between the INSERT and the SELECT (its request
        -- finished with a 5xx, or it was purged): try again.
    END LOOP;
    RETURN '{"state":"in_flight","status":null,"body":null}';
END
$$;

-- After the operation: store the response (DONE) for replays, or drop the
-- key for a 5xx so the client may retry.  Only an IN_FLIGHT key changes.
-- -> {"state":"done"|"deleted"|"none"}
CREATE OR REPLACE FUNCTION cm_idem_finish(p_user bigint, p_key text, p_status int, p_body text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    IF p_status IS NULL OR p_status NOT BETWEEN 100 AND 599 THEN
        PERFORM cm__invalid('status must be an HTTP status');
    END IF;
    IF p_status >= 500 THEN
        DELETE FROM idempotency_keys
         WHERE user_id = p_user AND idem_key = p_key AND state = 'IN_FLIGHT';
        IF FOUND THEN
            RETURN '{"state":"deleted"}';
        END IF;
    ELSE
        UPDATE idempotency_keys
           SET state = 'DONE', http_status = p_status, response_body = p_body, updated_at = now()
         WHERE user_id = p_user AND idem_key = p_key AND state = 'IN_FLIGHT';
        IF FOUND THEN
            RETURN '{"state":"done"}';
        END IF;
    END IF;
    RETURN '{"state":"none"}';
END
$$;

-- Drop up to p_limit keys first used more than 24 h ago (oldest first; SKIP
-- LOCKED, so it never waits on a begin/finish).  -> number deleted (int).
CREATE OR REPLACE FUNCTION cm_idem_purge(p_limit int DEFAULT 10000) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    v_n int;
BEGIN
    -- ctid list of the rows locked by the sub-select: a TID scan, whatever
    -- the planner guesses about the number of rows.
    DELETE FROM idempotency_keys k
     WHERE k.ctid = ANY (ARRAY(SELECT x.ctid
                                 FROM idempotency_keys x
                                WHERE x.created_at < now() - interval '24 hours'
                                ORDER BY x.created_at
                                LIMIT greatest(coalesce(p_limit, 10000), 1)
                                  FOR UPDATE SKIP LOCKED));
    GET DIAGNOSTICS v_n = ROW_COUNT;
    RETURN v_n;
END
$$;

-- ---------------------------------------------------------------------------
-- The answer in the work's own transaction

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
