/*
 * cm_jwt: HS256 JSON Web Tokens (RFC 7519, compact JWS), without nginx.
 */


#ifndef _CM_JWT_H_INCLUDED_
#define _CM_JWT_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


#define CM_JWT_LEN_MAX    4096
#define CM_JWT_ROLE_LEN   32


typedef struct {
    int64_t  user_id;     /* "sub": decimal string or integer, >= 1 */
    int64_t  exp;         /* required */
    int64_t  iat;         /* 0 if absent */
    char     role[CM_JWT_ROLE_LEN]; /* "USER" if absent; [A-Z_] only */
} cm_jwt_claims_t;


/*
 * Verifies an HS256 compact JWS: 0 when valid and not expired at now
 * (exp + leeway > now; an "nbf" claim, if any, must be <= now + leeway),
 * else -1 with *reason set to a static string such as "malformed token",
 * "unsupported alg", "bad signature", "expired", "missing exp", "bad sub".
 * The signature is checked before the claims are parsed.
 */
int cm_jwt_verify(const unsigned char *token, size_t len,
    const unsigned char *key, size_t keylen, int64_t now, int64_t leeway,
    cm_jwt_claims_t *claims, const char **reason);

/*
 * Mints {"alg":"HS256","typ":"JWT"} . {"sub":"<user_id>","role":..,
 * "iat":..,"exp":..}; role NULL and iat 0 leave those claims out.
 * Returns the length written (a NUL follows it), or 0 if dst is too small
 * or an argument is invalid.
 */
size_t cm_jwt_sign(char *dst, size_t dstlen, const unsigned char *key,
    size_t keylen, int64_t user_id, const char *role, int64_t iat,
    int64_t exp);

/*
 * The "kid" of a token's header (our key ids: "1".."65535") without
 * checking anything else: 0 with *kid set (0 when the header has none),
 * or -1 with *reason for a malformed or unsupported header.  Pick the key
 * by it, then cm_jwt_verify() with that key.
 */
int cm_jwt_kid(const unsigned char *token, size_t len, uint32_t *kid,
    const char **reason);

/*
 * Mints {"alg":"HS256","typ":"JWT","kid":"<kid>"} .
 * {"sub":"<user_id>","role":..,"jti":..,"iat":..,"exp":..}: jti lowercase
 * hex (cm_token_jti()), role as cm_jwt_verify() accepts.  Same return as
 * cm_jwt_sign().
 */
size_t cm_jwt_sign_kid(char *dst, size_t dstlen, const unsigned char *key,
    size_t keylen, uint32_t kid, int64_t user_id, const char *role,
    const char *jti, int64_t iat, int64_t exp);

/*
 * Signs any header and payload JSON text as they are: tests use it to
 * forge tokens that cm_jwt_sign() would refuse to make.  Same return.
 */
size_t cm_jwt_encode(char *dst, size_t dstlen, const unsigned char *key,
    size_t keylen, const char *header, size_t hlen, const char *payload,
    size_t plen);

/*
 * Unpadded base64url: cm_base64_encode() and cm_base64_decode() of
 * cm_text.h with CM_BASE64_URL, under the names this API has always had
 * (tests forge tokens with them).  Encode returns the length written (no
 * NUL) or 0 if dst is too small.  Decode accepts only the canonical form
 * (alphabet A-Z a-z 0-9 - _, no '=', zero unused bits) and returns 0 with
 * *outlen set, or -1.
 */
size_t cm_base64url_encode(char *dst, size_t dstlen, const unsigned char *src,
    size_t len);
int cm_base64url_decode(unsigned char *dst, size_t dstlen,
    const unsigned char *src, size_t len, size_t *outlen);


#endif /* _CM_JWT_H_INCLUDED_ */
