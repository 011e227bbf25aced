/*
 * cm_token: opaque refresh tokens and JWT ids, without nginx.
 *
 * A refresh token is 32 random bytes (RAND_bytes) rendered as 43
 * characters of unpadded base64url.  The database keeps only its storage
 * hash, the lowercase hex SHA-256 of those 43 characters (what Postgres
 * computes as encode(sha256(convert_to(token, 'UTF8')), 'hex')): a leaked
 * table gives no usable token, and 256 random bits need no salt or slow
 * hash.  Look a presented token up by its hash.
 *
 * A jti is 16 random bytes in lowercase hex (32 characters): unique per
 * access token, for audit lines and a deny list.
 *
 * No static state: everything is reentrant.
 */


#ifndef _CM_TOKEN_H_INCLUDED_
#define _CM_TOKEN_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


#define CM_TOKEN_LEN         43        /* characters, without the NUL */
#define CM_TOKEN_HASH_LEN    64
#define CM_JTI_LEN           32


/*
 * A new token in out (43 characters and a NUL) and its storage hash in
 * hash_hex (64 hex digits and a NUL).  0, or -1 if RAND_bytes or SHA-256
 * failed (out and hash_hex are then "").
 */
int cm_token_new(char out[CM_TOKEN_LEN + 1],
    char hash_hex[CM_TOKEN_HASH_LEN + 1]);

/*
 * The storage hash of a presented token: 0, or -1 (hash_hex "") unless
 * the token has the shape cm_token_new() makes: exactly 43 base64url
 * characters that decode canonically to 32 bytes.  Check the shape before
 * any database work: a malformed token is a 401 at once.
 */
int cm_token_hash(const char *token, size_t len,
    char hash_hex[CM_TOKEN_HASH_LEN + 1]);

/* a new jti: 32 lowercase hex digits and a NUL; 0, or -1 ("") */
int cm_token_jti(char out[CM_JTI_LEN + 1]);


#endif /* _CM_TOKEN_H_INCLUDED_ */
