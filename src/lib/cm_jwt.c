/*
 * cm_jwt: HS256 JSON Web Token verification and minting.  No nginx
 * headers: unit-tested and fuzzed as plain C.
 *
 * The header and the claims go through the same depth-bounded event
 * walker as request bodies (cm_json_walk), and the claims are parsed only
 * after the signature is known good.
 */


#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "cm_json.h"
#include "cm_jwt.h"
#include "cm_text.h"




#define CM_JWT_SIG_LEN       32        /* SHA-256 */
#define CM_JWT_SIG_B64_LEN   43        /* its unpadded base64url */

/* the decoded header or payload of a token of CM_JWT_LEN_MAX bytes */
#define CM_JWT_PART_MAX      (CM_JWT_LEN_MAX / 4 * 3)

#define CM_JWT_H_ALG         0x01
#define CM_JWT_H_TYP         0x02
#define CM_JWT_H_KID         0x04

#define CM_JWT_C_SUB         0x01
#define CM_JWT_C_EXP         0x02
#define CM_JWT_C_IAT         0x04
#define CM_JWT_C_NBF         0x08
#define CM_JWT_C_ROLE        0x10


typedef struct {
    const char        *reason;
    unsigned           field;
    unsigned           seen;
    uint32_t           kid;
} cm_jwt_header_parse_t;


typedef struct {
    const char        *reason;
    unsigned           field;
    unsigned           seen;
    cm_jwt_claims_t   *claims;
    int64_t            nbf;
} cm_jwt_claims_parse_t;


static int cm_jwt_header(uint32_t *kid, const unsigned char *p, size_t len,
    const char **reason);
static int cm_jwt_header_event(cm_json_walk_t *w, cm_json_event_e ev,
    const unsigned char *p, size_t len);
static int cm_jwt_claims(const unsigned char *p, size_t len,
    cm_jwt_claims_parse_t *cp);
static int cm_jwt_claims_event(cm_json_walk_t *w, cm_json_event_e ev,
    const unsigned char *p, size_t len);
static int cm_jwt_claims_value(cm_json_walk_t *w, cm_jwt_claims_parse_t *cp,
    cm_json_event_e ev, const unsigned char *p, size_t len);
static int cm_jwt_reject(cm_json_walk_t *w, const char **reason,
    const char *why);
static int cm_jwt_role_valid(const unsigned char *p, size_t len);
static int cm_jwt_hmac(const unsigned char *key, size_t keylen,
    const unsigned char *data, size_t len, unsigned char *mac);


int
cm_jwt_verify(const unsigned char *token, size_t len,
    const unsigned char *key, size_t keylen, int64_t now, int64_t leeway,
    cm_jwt_claims_t *claims, const char **reason)
{
    size_t                  hlen, plen, slen, n;
    const char             *why;
    const unsigned char    *dot1, *dot2, *payload, *sig;
    unsigned char           mac[CM_JWT_SIG_LEN], got[CM_JWT_SIG_LEN];
    unsigned char           buf[CM_JWT_PART_MAX];
    cm_jwt_claims_parse_t   cp;

    memset(claims, 0, sizeof(cm_jwt_claims_t));
    why = "malformed token";

    if (token == NULL || len == 0) {
        goto failed;
    }

    if (len > CM_JWT_LEN_MAX) {
        why = "token too long";
        goto failed;
    }

    dot1 = memchr(token, '.', len);
    if (dot1 == NULL) {
        goto failed;
    }

    payload = dot1 + 1;
    dot2 = memchr(payload, '.', (size_t) (token + len - payload));
    if (dot2 == NULL) {
        goto failed;
    }

    sig = dot2 + 1;
    hlen = (size_t) (dot1 - token);
    plen = (size_t) (dot2 - payload);
    slen = (size_t) (token + len - sig);

    /* a third dot falls into the signature and fails its decoding */
    if (hlen == 0 || plen == 0) {
        goto failed;
    }

    if (cm_base64_decode(CM_BASE64_URL, buf, sizeof(buf), token, hlen, &n)
        != 0)
    {
        goto failed;
    }

    /* the header first: "alg" decides how, or whether, to check at all */
    if (cm_jwt_header(NULL, buf, n, &why) != 0) {
        goto failed;
    }

    if (keylen == 0 || keylen > INT_MAX) {
        why = "no key";
        goto failed;
    }

    if (slen != CM_JWT_SIG_B64_LEN
        || cm_base64_decode(CM_BASE64_URL, got, sizeof(got), sig, slen, &n)
           != 0
        || n != CM_JWT_SIG_LEN)
    {
        why = "bad signature";
        goto failed;
    }

    if (cm_jwt_hmac(key, keylen, token, (size_t) (dot2 - token), mac) != 0) {
        why = "hmac failed";
        goto failed;
    }

    if (CRYPTO_memcmp(mac, got, CM_JWT_SIG_LEN) != 0) {
        why = "bad signature";
        goto failed;
    }

    if (cm_base64_decode(CM_BASE64_URL, buf, sizeof(buf), payload, plen, &n)
        != 0)
    {
        goto failed;
    }

    memset(&cp, 0, sizeof(cm_jwt_claims_parse_t));
    cp.claims = claims;

    if (cm_jwt_claims(buf, n, &cp) != 0) {
        why = cp.reason != NULL ? cp.reason : "malformed token";
        goto failed;
    }

    if (!(cp.seen & CM_JWT_C_EXP)) {
        why = "missing exp";
        goto failed;
    }

    if (!(cp.seen & CM_JWT_C_SUB)) {
        why = "missing sub";
        goto failed;
    }

    if (leeway < 0) {
        leeway = 0;
    }

    /*
     * Expired when exp <= now - leeway, not yet valid when nbf > now +
     * leeway; the guards keep both sums inside int64_t for any input.
     */
    if (now >= INT64_MIN + leeway && claims->exp <= now - leeway) {
        why = "expired";
        goto failed;
    }

    if ((cp.seen & CM_JWT_C_NBF)
        && now <= INT64_MAX - leeway
        && cp.nbf > now + leeway)
    {
        why = "not yet valid";
        goto failed;
    }

    if (!(cp.seen & CM_JWT_C_ROLE)) {
        memcpy(claims->role, "USER", sizeof("USER"));
    }

    if (reason != NULL) {
        *reason = NULL;
    }

    return 0;

failed:

    memset(claims, 0, sizeof(cm_jwt_claims_t));

    if (reason != NULL) {
        *reason = why;
    }

    return -1;
}


size_t
cm_jwt_sign(char *dst, size_t dstlen, const unsigned char *key,
    size_t keylen, int64_t user_id, const char *role, int64_t iat,
    int64_t exp)
{
    int     n, m;
    char    payload[256];
    static const char  header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";

    if (user_id < 1) {
        return 0;
    }

    /* refuse what cm_jwt_verify() would refuse: the role is not escaped */
    if (role != NULL
        && !cm_jwt_role_valid((const unsigned char *) role, strlen(role)))
    {
        return 0;
    }

    n = snprintf(payload, sizeof(payload), "{\"sub\":\"%" PRId64 "\"",
                 user_id);

    if (role != NULL) {
        m = snprintf(payload + n, sizeof(payload) - (size_t) n,
                     ",\"role\":\"%s\"", role);
        n += m;
    }

    if (iat != 0) {
        m = snprintf(payload + n, sizeof(payload) - (size_t) n,
                     ",\"iat\":%" PRId64, iat);
        n += m;
    }

    m = snprintf(payload + n, sizeof(payload) - (size_t) n,
                 ",\"exp\":%" PRId64 "}", exp);
    n += m;

    return cm_jwt_encode(dst, dstlen, key, keylen, header,
                         sizeof(header) - 1, payload, (size_t) n);
}


int
cm_jwt_kid(const unsigned char *token, size_t len, uint32_t *kid,
    const char **reason)
{
    size_t          n;
    const char     *why;
    unsigned char   buf[CM_JWT_PART_MAX];
    const unsigned char  *dot;

    why = "malformed token";
    *kid = 0;

    if (len > CM_JWT_LEN_MAX) {
        why = "token too long";
        goto failed;
    }

    dot = memchr(token, '.', len);
    if (dot == NULL || dot == token) {
        goto failed;
    }

    if (cm_base64_decode(CM_BASE64_URL, buf, sizeof(buf), token,
                         (size_t) (dot - token), &n)
        != 0)
    {
        goto failed;
    }

    if (cm_jwt_header(kid, buf, n, &why) != 0) {
        goto failed;
    }

    return 0;

failed:

    if (reason != NULL) {
        *reason = why;
    }

    return -1;
}


size_t
cm_jwt_sign_kid(char *dst, size_t dstlen, const unsigned char *key,
    size_t keylen, uint32_t kid, int64_t user_id, const char *role,
    const char *jti, int64_t iat, int64_t exp)
{
    int     n, hn;
    char    header[64], payload[320];
    size_t  i;

    if (user_id < 1 || kid < 1 || kid > 65535 || role == NULL
        || !cm_jwt_role_valid((const unsigned char *) role, strlen(role))
        || jti == NULL || strlen(jti) > 64)
    {
        return 0;
    }

    for (i = 0; jti[i] != '\0'; i++) {
        /* not escaped: hex digits only */
        if (!((jti[i] >= '0' && jti[i] <= '9')
              || (jti[i] >= 'a' && jti[i] <= 'f')))
        {
            return 0;
        }
    }

    hn = snprintf(header, sizeof(header),
                  "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"%u\"}",
                  (unsigned) kid);

    n = snprintf(payload, sizeof(payload),
                 "{\"sub\":\"%" PRId64 "\",\"role\":\"%s\",\"jti\":\"%s\","
                 "\"iat\":%" PRId64 ",\"exp\":%" PRId64 "}",
                 user_id, role, jti, iat, exp);

    if (hn < 0 || (size_t) hn >= sizeof(header)
        || n < 0 || (size_t) n >= sizeof(payload))
    {
        return 0;
    }

    return cm_jwt_encode(dst, dstlen, key, keylen, header, (size_t) hn,
                         payload, (size_t) n);
}


size_t
cm_jwt_encode(char *dst, size_t dstlen, const unsigned char *key,
    size_t keylen, const char *header, size_t hlen, const char *payload,
    size_t plen)
{
    size_t         n, m;
    unsigned char  mac[CM_JWT_SIG_LEN];

    if (keylen == 0 || keylen > INT_MAX || hlen == 0 || plen == 0) {
        return 0;
    }

    n = cm_base64_encode(CM_BASE64_URL, dst, dstlen,
                         (const unsigned char *) header, hlen);
    if (n == 0 || n == dstlen) {
        return 0;
    }

    dst[n++] = '.';

    m = cm_base64_encode(CM_BASE64_URL, dst + n, dstlen - n,
                         (const unsigned char *) payload, plen);
    if (m == 0) {
        return 0;
    }

    n += m;

    if (cm_jwt_hmac(key, keylen, (unsigned char *) dst, n, mac) != 0) {
        return 0;
    }

    /* the dot, the signature and a NUL */
    if (dstlen - n < 1 + CM_JWT_SIG_B64_LEN + 1) {
        return 0;
    }

    dst[n++] = '.';
    n += cm_base64_encode(CM_BASE64_URL, dst + n, dstlen - n, mac,
                          CM_JWT_SIG_LEN);
    dst[n] = '\0';

    return n;
}


/* the names the JWT API has always had; cm_text does the work */

size_t
cm_base64url_encode(char *dst, size_t dstlen, const unsigned char *src,
    size_t len)
{
    return cm_base64_encode(CM_BASE64_URL, dst, dstlen, src, len);
}


int
cm_base64url_decode(unsigned char *dst, size_t dstlen,
    const unsigned char *src, size_t len, size_t *outlen)
{
    return cm_base64_decode(CM_BASE64_URL, dst, dstlen, src, len, outlen);
}


static int
cm_jwt_hmac(const unsigned char *key, size_t keylen,
    const unsigned char *data, size_t len, unsigned char *mac)
{
    unsigned int  maclen;

    maclen = 0;

    if (HMAC(EVP_sha256(), key, (int) keylen, data, len, mac, &maclen)
        == NULL
        || maclen != CM_JWT_SIG_LEN)
    {
        return -1;
    }

    return 0;
}


static int
cm_jwt_header(uint32_t *kid, const unsigned char *p, size_t len,
    const char **reason)
{
    char                   err[CM_JSON_ERR_LEN];
    cm_json_walk_t         w;
    cm_jwt_header_parse_t  hp;

    memset(&hp, 0, sizeof(cm_jwt_header_parse_t));

    memset(&w, 0, sizeof(cm_json_walk_t));
    w.handler = cm_jwt_header_event;
    w.data = &hp;
    w.err = err;
    w.errlen = sizeof(err);

    if (cm_json_walk(&w, p, len) != 0) {
        *reason = hp.reason != NULL ? hp.reason : "malformed token";
        return -1;
    }

    if (!(hp.seen & CM_JWT_H_ALG)) {
        *reason = "unsupported alg";
        return -1;
    }

    if (kid != NULL) {
        *kid = (hp.seen & CM_JWT_H_KID) ? hp.kid : 0;
    }

    return 0;
}


static int
cm_jwt_header_event(cm_json_walk_t *w, cm_json_event_e ev,
    const unsigned char *p, size_t len)
{
    unsigned                f;
    cm_jwt_header_parse_t  *hp;

    hp = w->data;

    if (w->depth == 1) {
        switch (ev) {

        case CM_JSON_MAP_START:
        case CM_JSON_MAP_END:
            return CM_JSON_OK;

        case CM_JSON_KEY:
            if (cm_json_str_is(p, len, "alg")) {
                f = CM_JWT_H_ALG;

            } else if (cm_json_str_is(p, len, "typ")) {
                f = CM_JWT_H_TYP;

            } else if (cm_json_str_is(p, len, "kid")) {
                f = CM_JWT_H_KID;

            } else if (cm_json_str_is(p, len, "crit")) {
                /* RFC 7515: extensions we do not know must be refused */
                return cm_jwt_reject(w, &hp->reason, "unsupported header");

            } else {
                return CM_JSON_SKIP;
            }

            if (hp->seen & f) {
                return cm_jwt_reject(w, &hp->reason, "malformed token");
            }

            hp->seen |= f;
            hp->field = f;
            return CM_JSON_OK;

        default:
            break;
        }
    }

    /* the value of "alg", "typ" or "kid": a scalar, or a container */

    if (hp->field == CM_JWT_H_KID) {
        /* our key ids: "1" .. "65535", decimal without a leading zero */
        if (ev == CM_JSON_STRING && len >= 1 && len <= 5 && p[0] != '0') {
            uint32_t  v;
            size_t    i;

            v = 0;
            for (i = 0; i < len; i++) {
                if (p[i] < '0' || p[i] > '9') {
                    return cm_jwt_reject(w, &hp->reason, "bad kid");
                }

                v = v * 10 + (uint32_t) (p[i] - '0');
            }

            if (v <= 65535) {
                hp->kid = v;
                return CM_JSON_OK;
            }
        }

        return cm_jwt_reject(w, &hp->reason, "bad kid");
    }

    if (hp->field == CM_JWT_H_ALG) {
        if (ev == CM_JSON_STRING && cm_json_str_is(p, len, "HS256")) {
            return CM_JSON_OK;
        }

        return cm_jwt_reject(w, &hp->reason, "unsupported alg");
    }

    if (ev == CM_JSON_STRING && cm_json_str_is(p, len, "JWT")) {
        return CM_JSON_OK;
    }

    return cm_jwt_reject(w, &hp->reason, "unsupported typ");
}


static int
cm_jwt_claims(const unsigned char *p, size_t len, cm_jwt_claims_parse_t *cp)
{
    char            err[CM_JSON_ERR_LEN];
    cm_json_walk_t  w;

    memset(&w, 0, sizeof(cm_json_walk_t));
    w.handler = cm_jwt_claims_event;
    w.data = cp;
    w.err = err;
    w.errlen = sizeof(err);

    return cm_json_walk(&w, p, len);
}


static int
cm_jwt_claims_event(cm_json_walk_t *w, cm_json_event_e ev,
    const unsigned char *p, size_t len)
{
    unsigned                f;
    cm_jwt_claims_parse_t  *cp;

    cp = w->data;

    if (w->depth == 1) {
        switch (ev) {

        case CM_JSON_MAP_START:
        case CM_JSON_MAP_END:
            return CM_JSON_OK;

        case CM_JSON_KEY:
            if (cm_json_str_is(p, len, "sub")) {
                f = CM_JWT_C_SUB;

            } else if (cm_json_str_is(p, len, "exp")) {
                f = CM_JWT_C_EXP;

            } else if (cm_json_str_is(p, len, "iat")) {
                f = CM_JWT_C_IAT;

            } else if (cm_json_str_is(p, len, "nbf")) {
                f = CM_JWT_C_NBF;

            } else if (cm_json_str_is(p, len, "role")) {
                f = CM_JWT_C_ROLE;

            } else {
                return CM_JSON_SKIP;
            }

            if (cp->seen & f) {
                return cm_jwt_reject(w, &cp->reason, "duplicate claim");
            }

            cp->seen |= f;
            cp->field = f;
            return CM_JSON_OK;

        default:
            break;
        }
    }

    return cm_jwt_claims_value(w, cp, ev, p, len);
}


static int
cm_jwt_claims_value(cm_json_walk_t *w, cm_jwt_claims_parse_t *cp,
    cm_json_event_e ev, const unsigned char *p, size_t len)
{
    int64_t           v;
    cm_jwt_claims_t  *c;

    c = cp->claims;

    switch (cp->field) {

    case CM_JWT_C_SUB:
        if (ev == CM_JSON_STRING
            && cm_parse_int64(p, len, 1, INT64_MAX, &c->user_id) == 0)
        {
            return CM_JSON_OK;
        }

        if (ev == CM_JSON_NUMBER
            && cm_json_number(p, len, &v) == CM_JSON_OK
            && v >= 1)
        {
            c->user_id = v;
            return CM_JSON_OK;
        }

        return cm_jwt_reject(w, &cp->reason, "bad sub");

    case CM_JWT_C_EXP:
        if (ev == CM_JSON_NUMBER
            && cm_json_number(p, len, &c->exp) == CM_JSON_OK)
        {
            return CM_JSON_OK;
        }

        return cm_jwt_reject(w, &cp->reason, "bad exp");

    case CM_JWT_C_IAT:
        if (ev == CM_JSON_NUMBER
            && cm_json_number(p, len, &c->iat) == CM_JSON_OK)
        {
            return CM_JSON_OK;
        }

        return cm_jwt_reject(w, &cp->reason, "bad iat");

    case CM_JWT_C_NBF:
        if (ev == CM_JSON_NUMBER
            && cm_json_number(p, len, &cp->nbf) == CM_JSON_OK)
        {
            return CM_JSON_OK;
        }

        return cm_jwt_reject(w, &cp->reason, "bad nbf");

    default: /* CM_JWT_C_ROLE */
        if (ev == CM_JSON_STRING && cm_jwt_role_valid(p, len)) {
            memcpy(c->role, p, len);
            c->role[len] = '\0';
            return CM_JSON_OK;
        }

        return cm_jwt_reject(w, &cp->reason, "bad role");
    }
}


static int
cm_jwt_reject(cm_json_walk_t *w, const char **reason, const char *why)
{
    *reason = why;

    return cm_json_fail(w, "%s", why);
}


static int
cm_jwt_role_valid(const unsigned char *p, size_t len)
{
    size_t  i;

    if (len == 0 || len >= CM_JWT_ROLE_LEN) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        if ((p[i] < 'A' || p[i] > 'Z') && p[i] != '_') {
            return 0;
        }
    }

    return 1;
}
