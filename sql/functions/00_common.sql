-- common: the conventions every function file follows, and the helpers
-- they share.
--
-- sql/functions/ holds the current text of every function, once.  These
-- files are repeatable: sql/migrate applies a file again whenever its
-- content changed (sql/README.md), after the versioned migrations, in
-- file-name order, all changed files in one transaction.  So a file holds
-- only idempotent statements (CREATE OR REPLACE, DROP .. IF EXISTS), no
-- table DDL, no BEGIN/COMMIT, no session SET.  This file comes first: the
-- LANGUAGE sql helpers of the others call its functions, and a LANGUAGE sql
-- body is checked when it is created (a plpgsql body only when it runs).
--
-- The API: one SQL function per request (one round trip each).  The nginx
-- module prepares `SELECT cm_xxx($1, ...)` once per connection and sends
-- only those statements (src/ngx_commerce_sql.h).  Every function returns
-- the response body as `text` holding JSON; business errors are raised as
--     RAISE EXCEPTION USING ERRCODE = 'CM001', MESSAGE = '<CODE>', DETAIL = '<text>'
-- and the module maps MESSAGE to the HTTP status and DETAIL to "message".
-- A RAISE aborts the whole statement, so nothing a failing call wrote survives.
--
-- Design notes
-- * JSON is assembled by concatenation with to_json() for every string that
--   comes from data (names) so escaping is PostgreSQL's.  This gives compact
--   output (`{"id":1,"name":"x"}`), keys in the documented order, and is
--   cheaper than json_build_object (whose output is `{"id" : 1, ...}`).
--   The tiny cm__*_json helpers are LANGUAGE sql, single-expression, so the
--   planner inlines them into the calling queries.  They are STABLE, not
--   IMMUTABLE, on purpose: to_json() and `anynonarray || text` are STABLE,
--   and an IMMUTABLE wrapper around them is never inlined.
-- * Everything that runs a query is plpgsql: its plans are cached per session
--   (a non-inlinable LANGUAGE sql function would be re-planned on every call).
-- * Isolation is READ COMMITTED.  Invariants are held by row locks and
--   conditional UPDATEs (`... WHERE balance >= $total`), never by
--   check-then-write.  Each domain file states its lock order; together
--   they have no cycle, so no deadlock between the functions (see
--   sql/README.md).  Row locks are FOR NO KEY UPDATE, which does not
--   conflict with the FOR KEY SHARE locks taken by foreign-key checks.
-- * No `SET search_path` on the functions: it would add a GUC save/restore
--   to every call and block inlining; none is SECURITY DEFINER.

-- ---------------------------------------------------------------------------
-- JSON fragments (inlined)

-- RFC 3339, UTC, milliseconds: 2026-11-21T10:00:00.123Z
CREATE OR REPLACE FUNCTION cm__ts(p_ts timestamptz) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT to_char(p_ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
$$;

-- A text as a JSON string, or null.
CREATE OR REPLACE FUNCTION cm__json_or_null(p_text text) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(to_json(p_text)::text, 'null')
$$;

-- ---------------------------------------------------------------------------
-- Errors

-- INVALID_REQUEST with p_detail as the message.
CREATE OR REPLACE FUNCTION cm__invalid(p_detail text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'CM001', MESSAGE = 'INVALID_REQUEST', DETAIL = p_detail;
END
$$;
