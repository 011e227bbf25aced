-- 007: a password hash made with other parameters than the current ones
-- (commerce_password_iterations raised) is replaced at the next successful
-- login, by the module, with a hash of the same password at the current
-- cost.  Only if it is still the hash the login checked: a password changed
-- meanwhile, or a withdrawal, is never overwritten.
-- -> {"rehashed":bool}
CREATE OR REPLACE FUNCTION cm_password_rehash(p_user bigint, p_old_hash text, p_new_hash text)
RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    IF p_new_hash IS NULL OR p_new_hash !~ '^\$[a-z0-9-]+\$' OR length(p_new_hash) > 1024 THEN
        PERFORM cm__invalid('the new hash must be a PHC string');
    END IF;
    UPDATE users
       SET password_hash = p_new_hash
     WHERE id = p_user AND status = 'ACTIVE' AND password_hash = p_old_hash;
    RETURN '{"rehashed":' || FOUND || '}';
END
$$;
