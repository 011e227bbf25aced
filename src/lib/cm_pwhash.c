/*
 * cm_pwhash: PBKDF2-HMAC-SHA256 and scrypt password hashes in PHC
 * strings, and the password policy (see cm_pwhash.h).  No nginx headers:
 * unit-tested as plain C.  No static state: it runs on thread pools.
 */


#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "cm_pwhash.h"
#include "cm_text.h"


#define CM_PWHASH_ID_PBKDF2   "$pbkdf2-sha256$"
#define CM_PWHASH_ID_SCRYPT   "$scrypt$"

#define cm_pwhash_starts(p, end, s)                                           \
    ((size_t) ((end) - (p)) >= sizeof(s) - 1                                  \
     && memcmp(p, s, sizeof(s) - 1) == 0)

#define cm_pwhash_is_space(c)                                                 \
    ((c) == ' ' || (c) == '\t' || (c) == '\r' || (c) == '\n'                  \
     || (c) == '\v' || (c) == '\f')


/* what a hash was made with, parsed from its string */
typedef struct {
    cm_pwhash_alg_e   alg;
    uint32_t          iterations;
    uint32_t          ln;
    uint32_t          r;
    uint32_t          p;
    size_t            slen;
    size_t            hlen;
    unsigned char     salt[CM_PWHASH_SALT_MAX];
    unsigned char     hash[CM_PWHASH_HASH_MAX];
} cm_pwhash_parsed_t;


static int cm_pwhash_in_bounds(const cm_pwhash_params_t *b,
    cm_pwhash_alg_e alg, uint32_t iterations, uint32_t ln, uint32_t r,
    uint32_t p);
static uint64_t cm_pwhash_scrypt_mem(uint32_t ln, uint32_t r, uint32_t p);
static int cm_pwhash_kdf(const cm_pwhash_params_t *b, cm_pwhash_alg_e alg,
    uint32_t iterations, uint32_t ln, uint32_t r, uint32_t p,
    const char *password, size_t plen, const unsigned char *salt,
    size_t slen, unsigned char *out, size_t outlen);
static int cm_pwhash_parse(const char *s, size_t len, cm_pwhash_parsed_t *h);
static const char *cm_pwhash_param(const char *p, const char *end,
    const char *name, char stop, uint32_t *value);
static const char *cm_pwhash_b64_field(const char *p, const char *end,
    char stop, unsigned char *dst, size_t min, size_t max, size_t *outlen);


void
cm_pwhash_params_default(cm_pwhash_params_t *p)
{
    memset(p, 0, sizeof(cm_pwhash_params_t));

    p->alg = CM_PWHASH_PBKDF2_SHA256;
    p->iterations = 600000;
    p->ln = 17;
    p->r = 8;
    p->p = 1;

    p->iterations_min = 100000;
    p->iterations_max = 5000000;
    p->ln_min = 14;
    p->ln_max = 20;
    p->p_max = 4;
    p->mem_max = UINT64_C(256) * 1024 * 1024;
}


int
cm_pwhash_params_check(const cm_pwhash_params_t *p, const char **err)
{
    const char  *why;

    if (p->alg != CM_PWHASH_PBKDF2_SHA256 && p->alg != CM_PWHASH_SCRYPT) {
        why = "unknown algorithm";
        goto failed;
    }

    if (p->iterations_min < 1 || p->iterations_min > p->iterations_max
        || p->iterations_max > CM_PWHASH_ITERATIONS_LIMIT)
    {
        why = "iteration bounds must be 1 <= min <= max <= 10000000";
        goto failed;
    }

    if (p->ln_min < 1 || p->ln_min > p->ln_max
        || p->ln_max > CM_PWHASH_LN_LIMIT)
    {
        why = "scrypt ln bounds must be 1 <= min <= max <= 24";
        goto failed;
    }

    if (p->p_max < 1 || p->p_max > CM_PWHASH_P_LIMIT) {
        why = "scrypt p_max must be 1..16";
        goto failed;
    }

    if (p->mem_max < 1 || p->mem_max > CM_PWHASH_MEM_LIMIT) {
        why = "scrypt mem_max must be at most 1 GiB";
        goto failed;
    }

    if (p->alg == CM_PWHASH_PBKDF2_SHA256
        && (p->iterations < p->iterations_min
            || p->iterations > p->iterations_max))
    {
        why = "iterations out of bounds";
        goto failed;
    }

    if (p->alg == CM_PWHASH_SCRYPT
        && cm_pwhash_in_bounds(p, CM_PWHASH_SCRYPT, 0, p->ln, p->r, p->p)
           != 0)
    {
        why = "scrypt parameters out of bounds";
        goto failed;
    }

    if (err != NULL) {
        *err = NULL;
    }

    return 0;

failed:

    if (err != NULL) {
        *err = why;
    }

    return -1;
}


int
cm_pwhash_make(char *out, size_t outlen, const char *password, size_t plen,
    const cm_pwhash_params_t *p)
{
    int                 n;
    size_t              len, k;
    unsigned char       salt[CM_PWHASH_SALT_LEN], hash[CM_PWHASH_HASH_LEN];
    cm_pwhash_params_t  def;

    if (p == NULL) {
        cm_pwhash_params_default(&def);
        p = &def;
    }

    if (out == NULL || outlen == 0) {
        return CM_PWHASH_ERROR;
    }

    out[0] = '\0';

    if (cm_pwhash_params_check(p, NULL) != 0
        || plen > CM_PWHASH_PASSWORD_MAX
        || (password == NULL && plen != 0))
    {
        return CM_PWHASH_ERROR;
    }

    if (RAND_bytes(salt, sizeof(salt)) != 1) {
        return CM_PWHASH_ERROR;
    }

    if (cm_pwhash_kdf(p, p->alg, p->iterations, p->ln, p->r, p->p, password,
                      plen, salt, sizeof(salt), hash, sizeof(hash))
        != 0)
    {
        OPENSSL_cleanse(hash, sizeof(hash));
        return CM_PWHASH_ERROR;
    }

    if (p->alg == CM_PWHASH_PBKDF2_SHA256) {
        n = snprintf(out, outlen, CM_PWHASH_ID_PBKDF2 "i=%" PRIu32 "$",
                     p->iterations);

    } else {
        n = snprintf(out, outlen,
                     CM_PWHASH_ID_SCRYPT "ln=%" PRIu32 ",r=%" PRIu32
                     ",p=%" PRIu32 "$", p->ln, p->r, p->p);
    }

    if (n <= 0 || (size_t) n >= outlen) {
        goto failed;
    }

    len = (size_t) n;

    k = cm_base64_encode(CM_BASE64_STD, out + len, outlen - len, salt,
                         sizeof(salt));
    if (k == 0 || outlen - len - k < 2) {
        goto failed;
    }

    len += k;
    out[len++] = '$';

    k = cm_base64_encode(CM_BASE64_STD, out + len, outlen - len, hash,
                         sizeof(hash));
    if (k == 0 || outlen - len - k < 1) {
        goto failed;
    }

    len += k;
    out[len] = '\0';

    OPENSSL_cleanse(hash, sizeof(hash));

    return CM_PWHASH_OK;

failed:

    OPENSSL_cleanse(hash, sizeof(hash));
    out[0] = '\0';

    return CM_PWHASH_ERROR;
}


int
cm_pwhash_verify(const char *encoded, const char *password, size_t plen,
    int *needs_rehash, const cm_pwhash_params_t *current)
{
    int                  rc;
    size_t               len;
    unsigned char        got[CM_PWHASH_HASH_MAX];
    unsigned char        zero_salt[CM_PWHASH_SALT_LEN];
    cm_pwhash_params_t   def;
    cm_pwhash_parsed_t   h;

    if (needs_rehash != NULL) {
        *needs_rehash = 0;
    }

    if (current == NULL) {
        cm_pwhash_params_default(&def);
        current = &def;
    }

    if (cm_pwhash_params_check(current, NULL) != 0
        || (password == NULL && plen != 0))
    {
        return CM_PWHASH_ERROR;
    }

    if (encoded == NULL) {
        /* no such account: spend the time a real verify would */

        if (plen <= CM_PWHASH_PASSWORD_MAX) {
            memset(zero_salt, 0, sizeof(zero_salt));

            (void) cm_pwhash_kdf(current, current->alg, current->iterations,
                                 current->ln, current->r, current->p,
                                 password, plen, zero_salt, sizeof(zero_salt),
                                 got, CM_PWHASH_HASH_LEN);

            OPENSSL_cleanse(got, sizeof(got));
        }

        return CM_PWHASH_MISMATCH;
    }

    for (len = 0; len < CM_PWHASH_LEN && encoded[len] != '\0'; len++) {
        /* void */
    }

    if (len == CM_PWHASH_LEN || cm_pwhash_parse(encoded, len, &h) != 0) {
        return CM_PWHASH_INVALID;
    }

    if (cm_pwhash_in_bounds(current, h.alg, h.iterations, h.ln, h.r, h.p)
        != 0)
    {
        return CM_PWHASH_INVALID;
    }

    if (plen > CM_PWHASH_PASSWORD_MAX) {
        return CM_PWHASH_MISMATCH;
    }

    if (cm_pwhash_kdf(current, h.alg, h.iterations, h.ln, h.r, h.p, password,
                      plen, h.salt, h.slen, got, h.hlen)
        != 0)
    {
        OPENSSL_cleanse(got, sizeof(got));
        return CM_PWHASH_ERROR;
    }

    rc = (CRYPTO_memcmp(got, h.hash, h.hlen) == 0) ? CM_PWHASH_OK
                                                    : CM_PWHASH_MISMATCH;

    OPENSSL_cleanse(got, sizeof(got));

    if (rc == CM_PWHASH_OK && needs_rehash != NULL) {
        if (h.alg != current->alg || h.hlen != CM_PWHASH_HASH_LEN) {
            *needs_rehash = 1;

        } else if (h.alg == CM_PWHASH_PBKDF2_SHA256) {
            *needs_rehash = (h.iterations != current->iterations);

        } else {
            *needs_rehash = (h.ln != current->ln || h.r != current->r
                             || h.p != current->p);
        }
    }

    return rc;
}


int
cm_pwhash_derive(const cm_pwhash_params_t *p, const char *password,
    size_t plen, const unsigned char *salt, size_t slen, unsigned char *out,
    size_t outlen)
{
    if (p == NULL || out == NULL || outlen < 1
        || outlen > CM_PWHASH_HASH_MAX
        || plen > CM_PWHASH_PASSWORD_MAX
        || (password == NULL && plen != 0)
        || (salt == NULL && slen != 0)
        || slen > CM_PWHASH_PASSWORD_MAX
        || cm_pwhash_params_check(p, NULL) != 0)
    {
        return -1;
    }

    return cm_pwhash_kdf(p, p->alg, p->iterations, p->ln, p->r, p->p,
                         password, plen, salt, slen, out, outlen);
}


int
cm_password_policy(const char *password, size_t plen, const char *email,
    size_t elen, const char **reason)
{
    int                   same;
    size_t                i, n, chars;
    uint32_t              cp, first;
    const char           *why;
    const unsigned char  *pw;

    pw = (const unsigned char *) password;

    if (password == NULL && plen != 0) {
        why = "password must be valid UTF-8";
        goto failed;
    }

    /* count the characters, and see whether they are all the first one */

    chars = 0;
    first = 0;
    same = 1;

    for (i = 0; i < plen; i += n) {
        n = cm_utf8_decode(pw + i, plen - i, &cp);
        if (n == 0) {
            why = "password must be valid UTF-8";
            goto failed;
        }

        if (chars == 0) {
            first = cp;

        } else if (cp != first) {
            same = 0;
        }

        chars++;
    }

    if (chars < CM_PASSWORD_MIN) {
        why = "password must be at least 10 characters";
        goto failed;
    }

    if (chars > CM_PASSWORD_MAX) {
        why = "password must be at most 256 characters";
        goto failed;
    }

    if (same) {
        why = "password must not be the same character repeated";
        goto failed;
    }

    if (email != NULL) {
        while (elen > 0 && cm_pwhash_is_space(email[0])) {
            email++;
            elen--;
        }

        while (elen > 0 && cm_pwhash_is_space(email[elen - 1])) {
            elen--;
        }

        if (elen == plen) {
            for (i = 0; i < plen; i++) {
                if (((pw[i] >= 'A' && pw[i] <= 'Z') ? pw[i] | 0x20 : pw[i])
                    != (((unsigned char) email[i] >= 'A'
                         && (unsigned char) email[i] <= 'Z')
                        ? (unsigned char) email[i] | 0x20
                        : (unsigned char) email[i]))
                {
                    break;
                }
            }

            if (i == plen) {
                why = "password must not be the email address";
                goto failed;
            }
        }
    }

    if (reason != NULL) {
        *reason = NULL;
    }

    return 0;

failed:

    if (reason != NULL) {
        *reason = why;
    }

    return -1;
}


/* 0 if a hash with these parameters may be computed under b's bounds */

static int
cm_pwhash_in_bounds(const cm_pwhash_params_t *b, cm_pwhash_alg_e alg,
    uint32_t iterations, uint32_t ln, uint32_t r, uint32_t p)
{
    if (alg == CM_PWHASH_PBKDF2_SHA256) {
        return (iterations >= b->iterations_min
                && iterations <= b->iterations_max) ? 0 : -1;
    }

    if (alg != CM_PWHASH_SCRYPT) {
        return -1;
    }

    if (ln < b->ln_min || ln > b->ln_max || ln > CM_PWHASH_LN_LIMIT
        || r < 1 || r > CM_PWHASH_R_LIMIT
        || p < 1 || p > b->p_max || p > CM_PWHASH_P_LIMIT)
    {
        return -1;
    }

    /* scrypt also needs N < 2^(16 r) */
    if (ln >= 16 * r) {
        return -1;
    }

    if (cm_pwhash_scrypt_mem(ln, r, p) > b->mem_max) {
        return -1;
    }

    return 0;
}


/*
 * What OpenSSL's scrypt allocates: 128 r p bytes for B and 128 r (N + 2)
 * for V; with ln <= 24, r <= 32, p <= 16 it cannot overflow.
 */

static uint64_t
cm_pwhash_scrypt_mem(uint32_t ln, uint32_t r, uint32_t p)
{
    return UINT64_C(128) * r * p
           + UINT64_C(128) * r * ((UINT64_C(1) << ln) + 2);
}


static int
cm_pwhash_kdf(const cm_pwhash_params_t *b, cm_pwhash_alg_e alg,
    uint32_t iterations, uint32_t ln, uint32_t r, uint32_t p,
    const char *password, size_t plen, const unsigned char *salt,
    size_t slen, unsigned char *out, size_t outlen)
{
    if (cm_pwhash_in_bounds(b, alg, iterations, ln, r, p) != 0) {
        return -1;
    }

    if (password == NULL) {
        password = "";
    }

    if (salt == NULL) {
        salt = (const unsigned char *) "";
    }

    if (alg == CM_PWHASH_PBKDF2_SHA256) {
        return PKCS5_PBKDF2_HMAC(password, (int) plen, salt, (int) slen,
                                 (int) iterations, EVP_sha256(), (int) outlen,
                                 out)
               == 1 ? 0 : -1;
    }

    return EVP_PBE_scrypt(password, plen, salt, slen, UINT64_C(1) << ln, r,
                          p, cm_pwhash_scrypt_mem(ln, r, p), out, outlen)
           == 1 ? 0 : -1;
}


/*
 * $pbkdf2-sha256$i=N$salt$hash or $scrypt$ln=N,r=N,p=N$salt$hash, exactly
 * as cm_pwhash_make() writes them, with any salt and hash length within
 * the limits.
 */

static int
cm_pwhash_parse(const char *s, size_t len, cm_pwhash_parsed_t *h)
{
    const char  *p, *end;

    memset(h, 0, sizeof(cm_pwhash_parsed_t));

    p = s;
    end = s + len;

    if (cm_pwhash_starts(p, end, CM_PWHASH_ID_PBKDF2)) {
        h->alg = CM_PWHASH_PBKDF2_SHA256;
        p += sizeof(CM_PWHASH_ID_PBKDF2) - 1;

        p = cm_pwhash_param(p, end, "i=", '$', &h->iterations);
        if (p == NULL) {
            return -1;
        }

    } else if (cm_pwhash_starts(p, end, CM_PWHASH_ID_SCRYPT)) {
        h->alg = CM_PWHASH_SCRYPT;
        p += sizeof(CM_PWHASH_ID_SCRYPT) - 1;

        p = cm_pwhash_param(p, end, "ln=", ',', &h->ln);
        if (p == NULL) {
            return -1;
        }

        p = cm_pwhash_param(p, end, "r=", ',', &h->r);
        if (p == NULL) {
            return -1;
        }

        p = cm_pwhash_param(p, end, "p=", '$', &h->p);
        if (p == NULL) {
            return -1;
        }

    } else {
        return -1;
    }

    p = cm_pwhash_b64_field(p, end, '$', h->salt, CM_PWHASH_SALT_MIN,
                            CM_PWHASH_SALT_MAX, &h->slen);
    if (p == NULL) {
        return -1;
    }

    p = cm_pwhash_b64_field(p, end, '\0', h->hash, CM_PWHASH_HASH_MIN,
                            CM_PWHASH_HASH_MAX, &h->hlen);
    if (p == NULL || p != end) {
        return -1;
    }

    return 0;
}


/*
 * "<name><decimal><stop>": 1 to 10 digits without a leading zero, at most
 * UINT32_MAX.  Returns the position after stop, or NULL.
 */

static const char *
cm_pwhash_param(const char *p, const char *end, const char *name, char stop,
    uint32_t *value)
{
    size_t       nlen, digits;
    uint64_t     v;
    const char  *start;

    nlen = strlen(name);

    if ((size_t) (end - p) < nlen || memcmp(p, name, nlen) != 0) {
        return NULL;
    }

    p += nlen;
    start = p;
    v = 0;

    for (digits = 0; p < end && *p >= '0' && *p <= '9'; p++, digits++) {
        if (digits == 10) {
            return NULL;
        }

        v = v * 10 + (uint64_t) (*p - '0');
    }

    if (digits == 0 || (digits > 1 && *start == '0')
        || v > UINT32_MAX || p == end || *p != stop)
    {
        return NULL;
    }

    *value = (uint32_t) v;

    return p + 1;
}


/*
 * Base64 up to stop (or to end when stop is NUL), decoding to min..max
 * bytes.  Returns the position after stop (end for NUL), or NULL.
 */

static const char *
cm_pwhash_b64_field(const char *p, const char *end, char stop,
    unsigned char *dst, size_t min, size_t max, size_t *outlen)
{
    const char  *q;

    if (stop == '\0') {
        q = end;

    } else {
        q = memchr(p, stop, (size_t) (end - p));
        if (q == NULL) {
            return NULL;
        }
    }

    /* canonical only (cm_text.h): a stored hash has exactly one spelling */
    if (cm_base64_decode(CM_BASE64_STD, dst, max, (const unsigned char *) p,
                         (size_t) (q - p), outlen)
        != 0
        || *outlen < min)
    {
        return NULL;
    }

    return (stop == '\0') ? end : q + 1;
}
