/*
 * cm_pwhash: password hashing and the password policy, without nginx.
 *
 * A stored hash is a PHC string that names its algorithm and carries its
 * parameters, so that the cost can be raised later while older hashes
 * still verify (and are flagged for rehashing at the next login):
 *
 *     $pbkdf2-sha256$i=600000$<salt>$<hash>
 *     $scrypt$ln=17,r=8,p=1$<salt>$<hash>          N = 2^ln
 *
 * <salt> and <hash> are unpadded standard base64 (PHC "B64": A-Z a-z 0-9
 * + /, canonical: no '=', zero unused bits).  cm_pwhash_make() writes a
 * 16-byte random salt and a 32-byte hash; cm_pwhash_verify() accepts salts
 * and hashes of 16 to 64 bytes, and derives as many bytes as the stored
 * hash has (a KDF's shorter output is a prefix of its longer one: store
 * the string in a text column, never a column that could cut it).  The
 * scrypt form is passlib's.
 *
 * The default is PBKDF2-HMAC-SHA256 at 600,000 iterations (OWASP, 2023):
 * it takes no memory, so the size of the thread pool bounds what a flood
 * of logins costs.  scrypt at N=2^17, r=8, p=1 resists GPUs better but
 * holds 128 MiB per hash in flight.  Both always verify, whichever is the
 * default.
 *
 * Cost bounds.  A stored hash is computed only if its parameters are
 * within the bounds of the caller's params (and those within the hard
 * limits below), so a hostile or corrupted row cannot make a thread spin
 * for minutes or allocate gigabytes: with the default bounds one verify
 * costs at most about 8 default hashes.  Tests lower iterations_min and
 * ln_min in their own params to run fast; nothing global changes.
 *
 * Everything here is reentrant: no static state, only OpenSSL calls that
 * are thread-safe.  The KDFs are slow on purpose (a few hundred
 * milliseconds at the default cost): call them on a thread pool, never on
 * the event loop.
 */


#ifndef _CM_PWHASH_H_INCLUDED_
#define _CM_PWHASH_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


/* a buffer for cm_pwhash_make(); verify() refuses longer strings */
#define CM_PWHASH_LEN               256

#define CM_PWHASH_SALT_LEN          16        /* make() */
#define CM_PWHASH_HASH_LEN          32        /* make() */
#define CM_PWHASH_SALT_MIN          16        /* verify() */
#define CM_PWHASH_SALT_MAX          64
#define CM_PWHASH_HASH_MIN          16
#define CM_PWHASH_HASH_MAX          64

/* passwords longer than this many bytes are neither hashed nor matched */
#define CM_PWHASH_PASSWORD_MAX      4096

/* hard limits: params bounds cannot exceed them */
#define CM_PWHASH_ITERATIONS_LIMIT  10000000
#define CM_PWHASH_LN_LIMIT          24
#define CM_PWHASH_R_LIMIT           32
#define CM_PWHASH_P_LIMIT           16
#define CM_PWHASH_MEM_LIMIT         (UINT64_C(1) << 30)

/* cm_password_policy(), in characters (UTF-8 code points) */
#define CM_PASSWORD_MIN             10
#define CM_PASSWORD_MAX             256

/* cm_pwhash_verify() */
#define CM_PWHASH_OK                0
#define CM_PWHASH_MISMATCH          -1   /* a wrong password */
#define CM_PWHASH_INVALID           -2   /* malformed, or out of bounds */
#define CM_PWHASH_ERROR             -3   /* bad params, OpenSSL failed */


typedef enum {
    CM_PWHASH_PBKDF2_SHA256 = 1,
    CM_PWHASH_SCRYPT
} cm_pwhash_alg_e;


/*
 * The current parameters: what cm_pwhash_make() writes, and the bounds
 * within which any hash is computed.  Start from cm_pwhash_params_default()
 * and check changes with cm_pwhash_params_check().
 */
typedef struct {
    cm_pwhash_alg_e  alg;             /* make(): PBKDF2_SHA256 by default */
    uint32_t         iterations;      /* make(), PBKDF2: 600000 */
    uint32_t         ln;              /* make(), scrypt: log2(N), 17 */
    uint32_t         r;               /* make(), scrypt: 8 */
    uint32_t         p;               /* make(), scrypt: 1 */

    uint32_t         iterations_min;  /* PBKDF2: 100000 */
    uint32_t         iterations_max;  /* PBKDF2: 5000000 */
    uint32_t         ln_min;          /* scrypt: 14 */
    uint32_t         ln_max;          /* scrypt: 20 */
    uint32_t         p_max;           /* scrypt: 4 (r: 1..32 always) */
    uint64_t         mem_max;         /* scrypt, bytes: 256 MiB */
} cm_pwhash_params_t;


void cm_pwhash_params_default(cm_pwhash_params_t *p);

/*
 * 0 if p is usable: a known alg, each min <= max within the hard limits,
 * and the make() parameters within the bounds (scrypt's memory, about
 * 128 * r * N bytes, within mem_max).  Else -1 with *err a static string
 * such as "iterations out of bounds".
 */
int cm_pwhash_params_check(const cm_pwhash_params_t *p, const char **err);

/*
 * Hashes the password with a fresh random salt under p (NULL: the
 * defaults) and writes the PHC string with a NUL to out, which should be
 * CM_PWHASH_LEN bytes.  Returns CM_PWHASH_OK, or CM_PWHASH_ERROR (bad
 * params, outlen too small, a password over CM_PWHASH_PASSWORD_MAX bytes,
 * RAND_bytes or the KDF failed).  It does not apply the policy.
 */
int cm_pwhash_make(char *out, size_t outlen, const char *password,
    size_t plen, const cm_pwhash_params_t *p);

/*
 * Checks password against a stored PHC string (NUL-terminated):
 *
 *   CM_PWHASH_OK        it matches; *needs_rehash is 1 when the hash was
 *                       made with another algorithm or cost than current's
 *                       make() parameters, or another hash length: store
 *                       a new cm_pwhash_make() of the same password
 *   CM_PWHASH_MISMATCH  it does not (also: password over
 *                       CM_PWHASH_PASSWORD_MAX bytes)
 *   CM_PWHASH_INVALID   not a string of ours, or parameters outside
 *                       current's bounds: nothing was computed
 *   CM_PWHASH_ERROR     current is not usable, or the KDF failed
 *
 * The comparison is constant-time (CRYPTO_memcmp).  encoded NULL (no
 * such user) hashes the password under current's make() parameters all
 * the same and returns CM_PWHASH_MISMATCH, so that an unknown account
 * takes as long as a wrong password.  current NULL means the defaults;
 * needs_rehash may be NULL and is 0 unless CM_PWHASH_OK.
 */
int cm_pwhash_verify(const char *encoded, const char *password, size_t plen,
    int *needs_rehash, const cm_pwhash_params_t *current);

/*
 * The raw KDF under p's make() parameters (and within its bounds), for
 * known-answer tests: PBKDF2-HMAC-SHA256(password, salt, p->iterations)
 * or scrypt(password, salt, 2^p->ln, p->r, p->p), outlen bytes (1..64).
 * Any salt length.  0, or -1.
 */
int cm_pwhash_derive(const cm_pwhash_params_t *p, const char *password,
    size_t plen, const unsigned char *salt, size_t slen, unsigned char *out,
    size_t outlen);

/*
 * The password policy, on the password as the user typed it: 0 if
 * acceptable, else -1 with *reason one of these static strings, checked
 * in this order:
 *
 *   "password must be valid UTF-8"
 *   "password must be at least 10 characters"
 *   "password must be at most 256 characters"
 *   "password must not be the same character repeated"
 *   "password must not be the email address"
 *
 * Characters are code points.  The email comparison ignores ASCII case
 * and spaces around the email; email may be NULL (elen 0).
 */
int cm_password_policy(const char *password, size_t plen, const char *email,
    size_t elen, const char **reason);


#endif /* _CM_PWHASH_H_INCLUDED_ */
