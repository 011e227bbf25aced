/*
 * Unit tests of cm_pwhash: PBKDF2-HMAC-SHA256 and scrypt known answers,
 * PHC strings made and verified, rehash flags, cost bounds against
 * hostile strings, malformed strings, the password policy, and use from
 * several threads at once.  TAP output.
 *
 * Tests run at low costs through their own params (iterations_min 1,
 * ln_min 1); one hash at each default cost checks the defaults and
 * reports how long it takes.
 */


#define _POSIX_C_SOURCE  200809L

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cm_pwhash.h"
#include "tap.h"


#define THREADS   4
#define ROUNDS    5


typedef struct {
    const cm_pwhash_params_t  *params;
    int                        failures;
    int                        index;
} worker_t;


static void fast_params(cm_pwhash_params_t *p, cm_pwhash_alg_e alg);
static size_t unhex(unsigned char *dst, const char *hex);
static void kat(const cm_pwhash_params_t *p, const char *pw, size_t plen,
    const char *salt, size_t slen, const char *want, const char *desc);
static int verify_str(const char *encoded, const char *pw, int *rehash,
    const cm_pwhash_params_t *p);
static double seconds(void);
static void *worker(void *data);
static void test_params(void);
static void test_kat_pbkdf2(void);
static void test_kat_scrypt(void);
static void test_interop(void);
static void test_roundtrip(void);
static void test_rehash(void);
static void test_bounds(void);
static void test_malformed(void);
static void test_unknown_user(void);
static void test_long_password(void);
static void policy_is(const char *pw, size_t plen, const char *email,
    const char *want, const char *desc);
static void test_policy(void);
static void test_threads(void);
static void test_defaults(void);


int
main(void)
{
    test_params();
    test_kat_pbkdf2();
    test_kat_scrypt();
    test_interop();
    test_roundtrip();
    test_rehash();
    test_bounds();
    test_malformed();
    test_unknown_user();
    test_long_password();
    test_policy();
    test_threads();
    test_defaults();

    return tap_done();
}


/* the defaults, with costs low enough for tests */

static void
fast_params(cm_pwhash_params_t *p, cm_pwhash_alg_e alg)
{
    cm_pwhash_params_default(p);

    p->alg = alg;
    p->iterations_min = 1;
    p->iterations = 1000;
    p->ln_min = 1;
    p->ln = 10;
    p->p_max = 16;
}


static size_t
unhex(unsigned char *dst, const char *hex)
{
    size_t        i, n;
    unsigned int  b;

    n = strlen(hex) / 2;

    for (i = 0; i < n; i++) {
        if (sscanf(hex + 2 * i, "%2x", &b) != 1) {
            abort();
        }

        dst[i] = (unsigned char) b;
    }

    return n;
}


static void
kat(const cm_pwhash_params_t *p, const char *pw, size_t plen,
    const char *salt, size_t slen, const char *want, const char *desc)
{
    size_t         n;
    unsigned char  got[64], exp[64];

    n = unhex(exp, want);

    ok(cm_pwhash_derive(p, pw, plen, (const unsigned char *) salt, slen, got,
                        n)
       == 0 && memcmp(got, exp, n) == 0, "%s", desc);
}


static int
verify_str(const char *encoded, const char *pw, int *rehash,
    const cm_pwhash_params_t *p)
{
    return cm_pwhash_verify(encoded, pw, strlen(pw), rehash, p);
}


static double
seconds(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}


static void
test_params(void)
{
    const char          *err;
    cm_pwhash_params_t   p, d;

    cm_pwhash_params_default(&d);

    err = "unset";
    ok(cm_pwhash_params_check(&d, &err) == 0 && err == NULL,
       "defaults are usable");
    ok(d.alg == CM_PWHASH_PBKDF2_SHA256 && d.iterations == 600000,
       "default: PBKDF2-HMAC-SHA256, 600000 iterations");
    ok(d.ln == 17 && d.r == 8 && d.p == 1, "default scrypt: N=2^17 r=8 p=1");

    p = d;
    p.alg = CM_PWHASH_SCRYPT;
    ok(cm_pwhash_params_check(&p, NULL) == 0,
       "default scrypt parameters fit the default bounds");

    p = d;
    p.alg = (cm_pwhash_alg_e) 0;
    ok(cm_pwhash_params_check(&p, &err) == -1
       && strcmp(err, "unknown algorithm") == 0, "alg 0 refused");

    p = d;
    p.iterations = 99999;
    ok(cm_pwhash_params_check(&p, &err) == -1
       && strcmp(err, "iterations out of bounds") == 0,
       "iterations below iterations_min refused");

    p = d;
    p.iterations = 5000001;
    ok(cm_pwhash_params_check(&p, &err) == -1,
       "iterations above iterations_max refused");

    p = d;
    p.iterations_min = 0;
    ok(cm_pwhash_params_check(&p, &err) == -1, "iterations_min 0 refused");

    p = d;
    p.iterations_max = CM_PWHASH_ITERATIONS_LIMIT + 1;
    ok(cm_pwhash_params_check(&p, &err) == -1,
       "iterations_max beyond the hard limit refused");

    p = d;
    p.iterations_min = 700000;
    ok(cm_pwhash_params_check(&p, &err) == -1, "min above make() refused");

    p = d;
    p.ln_max = CM_PWHASH_LN_LIMIT + 1;
    ok(cm_pwhash_params_check(&p, &err) == -1,
       "ln_max beyond the hard limit refused");

    p = d;
    p.ln_min = 21;
    ok(cm_pwhash_params_check(&p, &err) == -1, "ln_min > ln_max refused");

    p = d;
    p.p_max = 0;
    ok(cm_pwhash_params_check(&p, &err) == -1, "p_max 0 refused");

    p = d;
    p.mem_max = CM_PWHASH_MEM_LIMIT + 1;
    ok(cm_pwhash_params_check(&p, &err) == -1,
       "mem_max beyond 1 GiB refused");

    p = d;
    p.alg = CM_PWHASH_SCRYPT;
    p.ln = 20;
    ok(cm_pwhash_params_check(&p, &err) == -1
       && strcmp(err, "scrypt parameters out of bounds") == 0,
       "scrypt make() needing 1 GiB refused under mem_max 256 MiB");

    p = d;
    p.alg = CM_PWHASH_SCRYPT;
    p.r = 0;
    ok(cm_pwhash_params_check(&p, &err) == -1, "scrypt r 0 refused");

    p = d;
    p.alg = CM_PWHASH_SCRYPT;
    p.p = 5;
    ok(cm_pwhash_params_check(&p, &err) == -1, "scrypt p above p_max refused");

    fast_params(&p, CM_PWHASH_PBKDF2_SHA256);
    ok(cm_pwhash_params_check(&p, NULL) == 0, "test params are usable");
}


/*
 * RFC 7914 section 11 and the PBKDF2-HMAC-SHA256 vectors in the style of
 * RFC 6070 (stackoverflow.com/a/5136918).
 */

static void
test_kat_pbkdf2(void)
{
    cm_pwhash_params_t  p;

    fast_params(&p, CM_PWHASH_PBKDF2_SHA256);

    p.iterations = 1;
    kat(&p, "passwd", 6, "salt", 4,
        "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
        "49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783",
        "RFC 7914: passwd, salt, c=1, 64 bytes");

    p.iterations = 80000;
    kat(&p, "Password", 8, "NaCl", 4,
        "4ddcd8f60b98be21830cee5ef22701f9641a4418d04c0414aeff08876b34ab56"
        "a1d425a1225833549adb841b51c9b3176a272bdebba1d078478f62b397f33c8d",
        "RFC 7914: Password, NaCl, c=80000, 64 bytes");

    p.iterations = 1;
    kat(&p, "password", 8, "salt", 4,
        "120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b",
        "password, salt, c=1");

    p.iterations = 2;
    kat(&p, "password", 8, "salt", 4,
        "ae4d0c95af6b46d32d0adff928f06dd02a303f8ef3c251dfd6e2d85a95474c43",
        "password, salt, c=2");

    p.iterations = 4096;
    kat(&p, "password", 8, "salt", 4,
        "c5e478d59288c841aa530db6845c4c8d962893a001ce4e11a4963873aa98134a",
        "password, salt, c=4096");

    kat(&p, "passwordPASSWORDpassword", 24,
        "saltSALTsaltSALTsaltSALTsaltSALTsalt", 36,
        "348c89dbcbd32b2f32d814b8116e84cf2b17347ebc1800181c4e2a1fb8dd53e1"
        "c635518c7dac47e9", "long password and salt, c=4096, 40 bytes");

    kat(&p, "pass\0word", 9, "sa\0lt", 5,
        "89b69d0516f829893c696226650a8687", "NUL bytes inside, c=4096");

    p.iterations = 1024;
    kat(&p, "", 0, "salt", 4,
        "9e83f279c040f2a11aa4a02b24c418f2d3cb39560c9627fa4f47e3bcc2897c3d",
        "empty password, c=1024");

    p.iterations = 0;
    ok(cm_pwhash_derive(&p, "x", 1, (const unsigned char *) "salt", 4,
                        (unsigned char[32]) { 0 }, 32) == -1,
       "derive refuses 0 iterations");
}


/* RFC 7914 section 12 */

static void
test_kat_scrypt(void)
{
    cm_pwhash_params_t  p;

    fast_params(&p, CM_PWHASH_SCRYPT);

    p.ln = 4;
    p.r = 1;
    p.p = 1;
    kat(&p, "", 0, "", 0,
        "77d6576238657b203b19ca42c18a0497f16b4844e3074ae8dfdffa3fede21442"
        "fcd0069ded0948f8326a753a0fc81f17e8d3e0fb2e0d3628cf35e20c38d18906",
        "RFC 7914: empty, N=16, r=1, p=1");

    p.ln = 10;
    p.r = 8;
    p.p = 16;
    kat(&p, "password", 8, "NaCl", 4,
        "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b373162"
        "2eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640",
        "RFC 7914: password, NaCl, N=1024, r=8, p=16");

    p.ln = 14;
    p.p = 1;
    kat(&p, "pleaseletmein", 13, "SodiumChloride", 14,
        "7023bdcb3afd7348461c06cd81fd38ebfda8fbba904f8e3ea9b543f6545da1f2"
        "d5432955613f0fcf62d49705242a9af9e61e85dc0d651e40dfcf017b45575887",
        "RFC 7914: pleaseletmein, SodiumChloride, N=16384, r=8, p=1");
}


/* strings made by other implementations verify here */

static void
test_interop(void)
{
    int                 rehash;
    cm_pwhash_params_t  p;

    fast_params(&p, CM_PWHASH_PBKDF2_SHA256);

    /* passlib's scrypt, salt "randomsaltishard" (zitadel/passwap) */
    rehash = -1;
    is_int(verify_str("$scrypt$ln=16,r=8,p=1$cmFuZG9tc2FsdGlzaGFyZA$"
                      "Rh+NnJNo1I6nRwaNqbDm6kmADswD1+7FTKZ7Ln9D8nQ",
                      "password", &rehash, &p),
           CM_PWHASH_OK, "passlib scrypt string verifies");
    is_int(rehash, 1, "  and needs a rehash (the current alg is PBKDF2)");

    is_int(verify_str("$scrypt$ln=16,r=8,p=1$cmFuZG9tc2FsdGlzaGFyZA$"
                      "Rh+NnJNo1I6nRwaNqbDm6kmADswD1+7FTKZ7Ln9D8nQ",
                      "Password", &rehash, &p),
           CM_PWHASH_MISMATCH, "passlib scrypt string, wrong password");
    is_int(rehash, 0, "  needs_rehash 0 on a mismatch");

    /* the 4096-iteration vector above as a PHC string: 36-byte salt,
     * 40-byte hash */
    is_int(verify_str("$pbkdf2-sha256$i=4096$"
                      "c2FsdFNBTFRzYWx0U0FMVHNhbHRTQUxUc2FsdFNBTFRzYWx0$"
                      "NIyJ28vTKy8y2BS4EW6EzysXNH68GAAYHE4qH7jdU+HGNVGMfaxH6Q",
                      "passwordPASSWORDpassword", &rehash, &p),
           CM_PWHASH_OK, "PBKDF2 vector as a PHC string verifies");
    is_int(rehash, 1, "  and needs a rehash (cost and hash length)");
}


static void
test_roundtrip(void)
{
    int                 rehash;
    char                a[CM_PWHASH_LEN], b[CM_PWHASH_LEN];
    cm_pwhash_params_t  p;

    fast_params(&p, CM_PWHASH_PBKDF2_SHA256);

    is_int(cm_pwhash_make(a, sizeof(a), "correct horse", 13, &p),
           CM_PWHASH_OK, "make pbkdf2");
    ok(strncmp(a, "$pbkdf2-sha256$i=1000$", 22) == 0,
       "pbkdf2 string names alg and iterations: %s", a);
    is_int(strlen(a), 22 + 22 + 1 + 43, "16-byte salt, 32-byte hash");
    ok(strchr(a, '=') == a + 16 && strchr(a + 17, '=') == NULL,
       "no base64 padding");

    rehash = -1;
    is_int(verify_str(a, "correct horse", &rehash, &p), CM_PWHASH_OK,
           "the password verifies");
    is_int(rehash, 0, "  no rehash under the same params");
    is_int(verify_str(a, "correct horsf", &rehash, &p), CM_PWHASH_MISMATCH,
           "another password does not");
    is_int(verify_str(a, "correct hors", &rehash, &p), CM_PWHASH_MISMATCH,
           "a prefix does not");
    is_int(verify_str(a, "", &rehash, &p), CM_PWHASH_MISMATCH,
           "the empty password does not");
    is_int(cm_pwhash_verify(a, "correct horse", 13, NULL, &p), CM_PWHASH_OK,
           "needs_rehash may be NULL");

    is_int(cm_pwhash_make(b, sizeof(b), "correct horse", 13, &p),
           CM_PWHASH_OK, "make the same password again");
    ok(strcmp(a, b) != 0, "a fresh salt each time");

    is_int(cm_pwhash_make(a, sizeof(a), "nul\0inside", 10, &p), CM_PWHASH_OK,
           "make a password with a NUL");
    is_int(cm_pwhash_verify(a, "nul\0inside", 10, NULL, &p), CM_PWHASH_OK,
           "  it verifies with its length");
    is_int(cm_pwhash_verify(a, "nul", 3, NULL, &p), CM_PWHASH_MISMATCH,
           "  not cut at the NUL");

    is_int(cm_pwhash_make(a, sizeof(a), "", 0, &p), CM_PWHASH_OK,
           "make the empty password (the policy is separate)");
    is_int(cm_pwhash_verify(a, "", 0, NULL, &p), CM_PWHASH_OK,
           "  it verifies");
    is_int(cm_pwhash_verify(a, NULL, 0, NULL, &p), CM_PWHASH_OK,
           "  NULL with length 0 is the empty password");

    fast_params(&p, CM_PWHASH_SCRYPT);

    is_int(cm_pwhash_make(a, sizeof(a), "correct horse", 13, &p),
           CM_PWHASH_OK, "make scrypt");
    ok(strncmp(a, "$scrypt$ln=10,r=8,p=1$", 22) == 0,
       "scrypt string names its parameters: %s", a);
    is_int(verify_str(a, "correct horse", &rehash, &p), CM_PWHASH_OK,
           "scrypt verifies");
    is_int(rehash, 0, "  no rehash");
    is_int(verify_str(a, "Correct horse", &rehash, &p), CM_PWHASH_MISMATCH,
           "scrypt, another password");

    /* make() failures */
    is_int(cm_pwhash_make(a, 60, "x", 1, &p), CM_PWHASH_ERROR,
           "make into a buffer too small");
    is_str(a, "", "  leaves \"\"");
    is_int(cm_pwhash_make(a, 0, "x", 1, &p), CM_PWHASH_ERROR, "outlen 0");

    p.iterations_min = 0;
    is_int(cm_pwhash_make(a, sizeof(a), "x", 1, &p), CM_PWHASH_ERROR,
           "make with unusable params");
    is_int(cm_pwhash_verify("$pbkdf2-sha256$i=1000$AAAAAAAAAAAAAAAAAAAAAA$"
                            "AAAAAAAAAAAAAAAAAAAAAA", "x", 1, NULL, &p),
           CM_PWHASH_ERROR, "verify with unusable params");
    is_int(cm_pwhash_make(a, sizeof(a), NULL, 3, NULL), CM_PWHASH_ERROR,
           "make NULL password with a length");
}


static void
test_rehash(void)
{
    int                 rehash;
    char                a[CM_PWHASH_LEN];
    cm_pwhash_params_t  p, q;

    fast_params(&p, CM_PWHASH_PBKDF2_SHA256);
    cm_pwhash_make(a, sizeof(a), "rotate me please", 16, &p);

    q = p;
    q.iterations = 2000;
    rehash = -1;
    is_int(verify_str(a, "rotate me please", &rehash, &q), CM_PWHASH_OK,
           "an older cost still verifies");
    is_int(rehash, 1, "  and needs a rehash");

    q = p;
    q.iterations = 500;
    verify_str(a, "rotate me please", &rehash, &q);
    is_int(rehash, 1, "a different cost, even lower, needs a rehash");

    q = p;
    q.alg = CM_PWHASH_SCRYPT;
    is_int(verify_str(a, "rotate me please", &rehash, &q), CM_PWHASH_OK,
           "PBKDF2 verifies with scrypt current");
    is_int(rehash, 1, "  and needs a rehash");

    q = p;
    q.ln = 12;
    verify_str(a, "rotate me please", &rehash, &q);
    is_int(rehash, 0, "scrypt params do not matter to a PBKDF2 hash");

    fast_params(&p, CM_PWHASH_SCRYPT);
    cm_pwhash_make(a, sizeof(a), "rotate me please", 16, &p);

    q = p;
    q.ln = 11;
    verify_str(a, "rotate me please", &rehash, &q);
    is_int(rehash, 1, "scrypt ln raised: rehash");

    q = p;
    q.r = 4;
    verify_str(a, "rotate me please", &rehash, &q);
    is_int(rehash, 1, "scrypt r changed: rehash");

    q = p;
    q.p = 2;
    verify_str(a, "rotate me please", &rehash, &q);
    is_int(rehash, 1, "scrypt p changed: rehash");

    q = p;
    q.iterations = 1234;
    verify_str(a, "rotate me please", &rehash, &q);
    is_int(rehash, 0, "PBKDF2 iterations do not matter to a scrypt hash");
}


/* hostile costs are refused before anything is computed */

static void
test_bounds(void)
{
    int                 round;
    size_t              i;
    double              t0, t, best;
    cm_pwhash_params_t  d, p;
    static const char  *hostile[] = {
        "$pbkdf2-sha256$i=5000001$AAAAAAAAAAAAAAAAAAAAAA$"
        "AAAAAAAAAAAAAAAAAAAAAA",
        "$pbkdf2-sha256$i=4294967295$AAAAAAAAAAAAAAAAAAAAAA$"
        "AAAAAAAAAAAAAAAAAAAAAA",
        "$pbkdf2-sha256$i=99999$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA",
        "$pbkdf2-sha256$i=0$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA",
        "$scrypt$ln=21,r=1,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA",
        "$scrypt$ln=20,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA",
        "$scrypt$ln=17,r=8,p=5$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA",
        "$scrypt$ln=17,r=33,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA",
        "$scrypt$ln=17,r=0,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA",
        "$scrypt$ln=17,r=8,p=0$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA",
        "$scrypt$ln=13,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA",
        "$scrypt$ln=0,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA",
        "$scrypt$ln=4294967295,r=8,p=1$AAAAAAAAAAAAAAAAAAAAAA$"
        "AAAAAAAAAAAAAAAAAAAAAA",
    };

    cm_pwhash_params_default(&d);

    for (i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
        is_int(verify_str(hostile[i], "password", NULL, &d),
               CM_PWHASH_INVALID, "out of the default bounds: %.40s",
               hostile[i]);
    }

    /* the fastest of three passes: a descheduled pass is only slower */
    best = 1e9;

    for (round = 0; round < 3; round++) {
        t0 = seconds();

        for (i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
            (void) verify_str(hostile[i], "password", NULL, &d);
        }

        t = seconds() - t0;
        best = t < best ? t : best;
    }

    ok(best < 0.5, "refused without computing (%.3f s)", best);

    is_int(verify_str(hostile[2], "password", NULL, NULL), CM_PWHASH_INVALID,
           "current NULL means the default bounds");

    /* tests lower the bounds in their params, nothing global */
    fast_params(&p, CM_PWHASH_PBKDF2_SHA256);
    is_int(verify_str("$scrypt$ln=16,r=1,p=1$AAAAAAAAAAAAAAAAAAAAAA$"
                      "AAAAAAAAAAAAAAAAAAAAAA", "x", NULL, &p),
           CM_PWHASH_INVALID, "scrypt N must be < 2^(16 r)");
    is_int(verify_str("$pbkdf2-sha256$i=1$AAAAAAAAAAAAAAAAAAAAAA$"
                      "AAAAAAAAAAAAAAAAAAAAAA", "x", NULL, &p),
           CM_PWHASH_MISMATCH, "1 iteration is computed under test bounds");
    is_int(verify_str("$pbkdf2-sha256$i=1$AAAAAAAAAAAAAAAAAAAAAA$"
                      "AAAAAAAAAAAAAAAAAAAAAA", "x", NULL, &d),
           CM_PWHASH_INVALID, "  and refused under the defaults again");
}


static void
test_malformed(void)
{
    int                 rc;
    size_t              i;
    char                good[CM_PWHASH_LEN], bad[CM_PWHASH_LEN * 2];
    cm_pwhash_params_t  p;
    static const char  *cases[] = {
        "",
        "$",
        "$$",
        "pbkdf2-sha256$i=1000$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA",
        "$pbkdf2-sha256$",
        "$pbkdf2-sha256$i=1000",
        "$pbkdf2-sha256$i=1000$",
        "$pbkdf2-sha256$i=1000$AAAAAAAAAAAAAAAAAAAAAA",
        "$pbkdf2-sha256$i=1000$AAAAAAAAAAAAAAAAAAAAAA$",
        "$pbkdf2-sha256$i=1000$$AAAAAAAAAAAAAAAAAAAAAA",
        "$pbkdf2-sha256$i=01000$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA",
        "$pbkdf2-sha256$i=$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA",
        "$pbkdf2-sha256$i=+1000$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA",
        "$pbkdf2-sha256$i=-1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA",
        "$pbkdf2-sha256$i=1000x$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA",
        "$pbkdf2-sha256$i=99999999999$AAAAAAAAAAAAAAAAAAAAAA$"
        "AAAAAAAAAAAAAAAAAAAAAA",
        "$pbkdf2-sha256$i=4294967296$AAAAAAAAAAAAAAAAAAAAAA$"
        "AAAAAAAAAAAAAAAAAAAAAA",
        "$pbkdf2-sha256$I=1000$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA",
        "$pbkdf2-sha256$i=1000,l=16$AAAAAAAAAAAAAAAAAAAAAA$"
        "AAAAAAAAAAAAAAAAAAAAAA",
        "$pbkdf2-sha256$v=1$i=1000$AAAAAAAAAAAAAAAAAAAAAA$"
        "AAAAAAAAAAAAAAAAAAAAAA",
        "$PBKDF2-SHA256$i=1000$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA",
        "$pbkdf2-sha512$i=1000$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA",
        "$pbkdf2$i=1000$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA",
        "$argon2id$v=19$m=65536,t=3,p=4$AAAAAAAAAAAAAAAAAAAAAA$"
        "AAAAAAAAAAAAAAAAAAAAAA",
        "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",
        "$scrypt$ln=10,r=8$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA",
        "$scrypt$r=8,ln=10,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA",
        "$scrypt$ln=10,r=8,p=1,x=1$AAAAAAAAAAAAAAAAAAAAAA$"
        "AAAAAAAAAAAAAAAAAAAAAA",
        "$scrypt$ln=10;r=8;p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA",
        "$scrypt$ln=10, r=8, p=1$AAAAAAAAAAAAAAAAAAAAAA$"
        "AAAAAAAAAAAAAAAAAAAAAA",
        /* salt: 15 bytes, 65 bytes, padding, base64url characters */
        "$pbkdf2-sha256$i=1000$AAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA",
        "$pbkdf2-sha256$i=1000$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA",
        "$pbkdf2-sha256$i=1000$AAAAAAAAAAAAAAAAAAAAAA==$"
        "AAAAAAAAAAAAAAAAAAAAAA",
        "$pbkdf2-sha256$i=1000$AAAAAAAAAAAAAAAAAAAA-_$AAAAAAAAAAAAAAAAAAAAAA",
        /* unused bits set: AB decodes like AA */
        "$pbkdf2-sha256$i=1000$AAAAAAAAAAAAAAAAAAAAAB$AAAAAAAAAAAAAAAAAAAAAA",
        /* hash: 15 bytes, 65 bytes, 4n+1 characters, padding */
        "$pbkdf2-sha256$i=1000$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAA",
        "$pbkdf2-sha256$i=1000$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAA"
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "$pbkdf2-sha256$i=1000$AAAAAAAAAAAAAAAAAAAAAA$"
        "AAAAAAAAAAAAAAAAAAAAAAAAA",
        "$pbkdf2-sha256$i=1000$AAAAAAAAAAAAAAAAAAAAAA$"
        "AAAAAAAAAAAAAAAAAAAAAA==",
        /* extra fields and whitespace */
        "$pbkdf2-sha256$i=1000$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA$",
        "$pbkdf2-sha256$i=1000$AAAAAAAAAAAAAAAAAAAAAA$"
        "AAAAAAAAAAAAAAAAAAAAAA$AA",
        " $pbkdf2-sha256$i=1000$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA",
        "$pbkdf2-sha256$i=1000$AAAAAAAAAAAAAAAAAAAAAA$"
        "AAAAAAAAAAAAAAAAAAAAAA\n",
        "$pbkdf2-sha256$i=1000$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAA AAAAAAAAAA",
    };

    fast_params(&p, CM_PWHASH_PBKDF2_SHA256);

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        rc = verify_str(cases[i], "password", NULL, &p);
        is_int(rc, CM_PWHASH_INVALID, "malformed %zu: '%s'", i, cases[i]);
    }

    /* the well-formed neighbours of those cases are computed */
    is_int(verify_str("$pbkdf2-sha256$i=1000$AAAAAAAAAAAAAAAAAAAAAA$"
                      "AAAAAAAAAAAAAAAAAAAAAA", "password", NULL, &p),
           CM_PWHASH_MISMATCH, "16-byte salt and hash: well-formed");
    is_int(verify_str("$pbkdf2-sha256$i=1000$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
                      "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA$"
                      "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
                      "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "password", NULL,
                      &p),
           CM_PWHASH_MISMATCH, "64-byte salt and hash: well-formed");

    /* a real string, then altered one byte at a time */
    cm_pwhash_make(good, sizeof(good), "password", 8, &p);
    is_int(verify_str(good, "password", NULL, &p), CM_PWHASH_OK,
           "the unaltered string verifies");

    rc = 0;

    for (i = 0; good[i] != '\0'; i++) {
        memcpy(bad, good, sizeof(good));
        bad[i] ^= 0x01;

        if (verify_str(bad, "password", NULL, &p) == CM_PWHASH_OK) {
            tap_diag("altered byte %zu still verifies: %s", i, bad);
            rc++;
        }
    }

    is_int(rc, 0, "no single-bit alteration of any byte verifies");

    /*
     * Cut by 2 characters the hash is 41 characters long (4n + 1): not
     * base64.  (Cut by 1 it may be a canonical 31 bytes, and then a valid
     * shorter hash: a shorter PBKDF2 output is a prefix of a longer one.)
     */
    memcpy(bad, good, sizeof(good));
    bad[strlen(bad) - 2] = '\0';
    is_int(verify_str(bad, "password", NULL, &p), CM_PWHASH_INVALID,
           "truncated by two characters");

    memset(bad, 'A', sizeof(bad) - 1);
    bad[sizeof(bad) - 1] = '\0';
    memcpy(bad, "$pbkdf2-sha256$i=1000$", 22);
    is_int(verify_str(bad, "password", NULL, &p), CM_PWHASH_INVALID,
           "a string of %zu characters", strlen(bad));
}


static void
test_unknown_user(void)
{
    int                 i, unknown_ok, wrong_ok;
    double              t0, t, t_unknown, t_wrong;
    char                a[CM_PWHASH_LEN];
    cm_pwhash_params_t  p;

    fast_params(&p, CM_PWHASH_PBKDF2_SHA256);
    p.iterations = 50000;

    cm_pwhash_make(a, sizeof(a), "the real password", 17, &p);

    /*
     * The fastest of several alternating runs of each: being descheduled
     * (the suite runs tests side by side) only ever makes a run slower.
     */
    t_unknown = t_wrong = 1e9;
    unknown_ok = wrong_ok = 1;

    for (i = 0; i < 7; i++) {
        t0 = seconds();
        unknown_ok &= cm_pwhash_verify(NULL, "guess", 5, NULL, &p)
                      == CM_PWHASH_MISMATCH;
        t = seconds() - t0;
        t_unknown = t < t_unknown ? t : t_unknown;

        t0 = seconds();
        wrong_ok &= cm_pwhash_verify(a, "guess", 5, NULL, &p)
                    == CM_PWHASH_MISMATCH;
        t = seconds() - t0;
        t_wrong = t < t_wrong ? t : t_wrong;
    }

    ok(unknown_ok, "no stored hash: MISMATCH");
    ok(wrong_ok, "wrong password: MISMATCH");

    tap_diag("fastest of 7: unknown user %.1f ms, wrong password %.1f ms",
             t_unknown * 1e3, t_wrong * 1e3);

    ok(t_unknown > t_wrong / 4,
       "an unknown user costs a hash as a wrong password does");
}


static void
test_long_password(void)
{
    char                a[CM_PWHASH_LEN];
    char               *big;
    cm_pwhash_params_t  p;

    fast_params(&p, CM_PWHASH_PBKDF2_SHA256);

    big = malloc(CM_PWHASH_PASSWORD_MAX + 1);
    if (big == NULL) {
        abort();
    }

    memset(big, 'x', CM_PWHASH_PASSWORD_MAX + 1);

    is_int(cm_pwhash_make(a, sizeof(a), big, CM_PWHASH_PASSWORD_MAX, &p),
           CM_PWHASH_OK, "make a password of CM_PWHASH_PASSWORD_MAX bytes");
    is_int(cm_pwhash_verify(a, big, CM_PWHASH_PASSWORD_MAX, NULL, &p),
           CM_PWHASH_OK, "  it verifies");
    is_int(cm_pwhash_verify(a, big, CM_PWHASH_PASSWORD_MAX + 1, NULL, &p),
           CM_PWHASH_MISMATCH, "verify: one byte more does not match");
    is_int(cm_pwhash_make(a, sizeof(a), big, CM_PWHASH_PASSWORD_MAX + 1, &p),
           CM_PWHASH_ERROR, "make refuses one byte more");
    is_int(cm_pwhash_verify(NULL, big, CM_PWHASH_PASSWORD_MAX + 1, NULL, &p),
           CM_PWHASH_MISMATCH, "  nor for an unknown user");

    free(big);
}


/* a string literal as (buf, len) */
#define S(lit)  lit, sizeof(lit) - 1


static void
policy_is(const char *pw, size_t plen, const char *email, const char *want,
    const char *desc)
{
    int          rc;
    const char  *r;

    r = "unset";
    rc = cm_password_policy(pw, plen, email,
                            email != NULL ? strlen(email) : 0, &r);

    if (want == NULL) {
        ok(rc == 0 && r == NULL, "policy accepts %s", desc);

    } else {
        ok(rc == -1 && r != NULL && strcmp(r, want) == 0,
           "policy refuses %s: %s", desc, want);
    }

    if ((rc == 0) != (want == NULL)) {
        tap_diag("rc %d, reason %s", rc, r != NULL ? r : "NULL");
    }
}


#define SHORT     "password must be at least 10 characters"
#define LONG      "password must be at most 256 characters"
#define SAME      "password must not be the same character repeated"
#define EMAIL     "password must not be the email address"
#define UTF8      "password must be valid UTF-8"

#define CHARS_64                                                              \
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/"


static void
test_policy(void)
{
    char         buf[300];
    const char  *reason;

    policy_is(S("abcdefghij"), NULL, NULL, "10 characters");
    policy_is(S("abcdefghi"), NULL, SHORT, "9 characters");
    policy_is(S(""), NULL, SHORT, "the empty password");
    policy_is(S(CHARS_64 CHARS_64 CHARS_64 CHARS_64), NULL, NULL,
              "256 characters");
    policy_is(S(CHARS_64 CHARS_64 CHARS_64 CHARS_64 "x"), NULL, LONG,
              "257 characters");
    policy_is(S("aaaaaaaaaaaa"), NULL, SAME, "one character repeated");
    policy_is(S("aaaaaaaaaaab"), NULL, NULL, "all but one the same");
    policy_is(S("baaaaaaaaaaa"), NULL, NULL, "all but the first the same");

    /* characters, not bytes */
    policy_is(S("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"), NULL, SHORT,
              "5 characters in 10 bytes");
    policy_is(S("\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe3\x81\xae\xe3\x83\x91"
              "\xe3\x82\xb9\xe3\x83\xaf\xe3\x83\xbc\xe3\x83\x89\xe3\x81\xa7"),
              NULL, NULL, "10 Japanese characters");
    policy_is(S("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
                "\xc3\xa9\xc3\xa9\xc3\xa9"), NULL, SAME,
              "one accented letter repeated");
    policy_is(S("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
                "\xc3\xa9\xc3\xa9\xc3\xa8"), NULL, NULL,
              "two accented letters");
    policy_is(S("\xf0\x9f\x94\x91\xf0\x9f\x94\x91\xf0\x9f\x94\x91\xf0\x9f\x94"
              "\x91\xf0\x9f\x94\x91\xf0\x9f\x94\x91\xf0\x9f\x94\x91\xf0\x9f"
              "\x94\x91\xf0\x9f\x94\x91\xf0\x9f\x94\x92"), NULL, NULL,
              "10 emoji");

    policy_is(S("abcdefghij\xff"), NULL, UTF8, "a 0xff byte");
    policy_is(S("abcdefghij\xc0\x80"), NULL, UTF8, "an overlong NUL");
    policy_is(S("abcdefghij\xe0\x80\xaf"), NULL, UTF8, "an overlong '/'");
    policy_is(S("abcdefghij\xed\xa0\x80"), NULL, UTF8, "a surrogate");
    policy_is(S("abcdefghij\xf4\x90\x80\x80"), NULL, UTF8, "beyond U+10FFFF");
    policy_is(S("abcdefghij\xe6\x97"), NULL, UTF8, "a truncated sequence");
    policy_is(S("abcdefghij\x80"), NULL, UTF8, "a stray continuation byte");
    policy_is(S("\xff"), NULL, UTF8, "invalid UTF-8 before the length");

    policy_is(S("alice@example.com"), "alice@example.com", EMAIL,
              "the email itself");
    policy_is(S("Alice@Example.COM"), "alice@example.com", EMAIL,
              "the email in other case");
    policy_is(S("alice@example.com"), "  ALICE@example.com\t", EMAIL,
              "the email, spaces around it ignored");
    policy_is(S("alice@example.com1"), "alice@example.com", NULL,
              "the email with one more character");
    policy_is(S("alice@example.co"), "alice@example.com", NULL,
              "the email less one character");
    policy_is(S("alice@example.com"), NULL, NULL,
              "an email-like password, no email");
    policy_is(S("aaaaaaaaaa"), "aaaaaaaaaa", SAME,
              "repetition is reported before the email");

    ok(cm_password_policy("abcdefghij", 10, "x@y.z", 5, NULL) == 0,
       "reason may be NULL");

    /* bytes as given: a NUL inside is one more character */
    memcpy(buf, "abcd\0efghi", 10);
    ok(cm_password_policy(buf, 10, NULL, 0, &reason) == 0,
       "a NUL counts as a character");

    ok(cm_password_policy(NULL, 3, NULL, 0, &reason) == -1,
       "NULL password with a length is refused");
}


static void *
worker(void *data)
{
    int        i, rehash;
    char       pw[32], a[CM_PWHASH_LEN];
    worker_t  *w;

    w = data;

    for (i = 0; i < ROUNDS; i++) {
        snprintf(pw, sizeof(pw), "thread %d round %d", w->index, i);

        if (cm_pwhash_make(a, sizeof(a), pw, strlen(pw), w->params)
            != CM_PWHASH_OK
            || cm_pwhash_verify(a, pw, strlen(pw), &rehash, w->params)
               != CM_PWHASH_OK
            || rehash != 0
            || cm_pwhash_verify(a, "nope", 4, &rehash, w->params)
               != CM_PWHASH_MISMATCH)
        {
            w->failures++;
        }
    }

    return NULL;
}


static void
test_threads(void)
{
    int                 i, failures, started;
    pthread_t           tid[THREADS];
    worker_t            w[THREADS];
    cm_pwhash_params_t  pb, sc;

    fast_params(&pb, CM_PWHASH_PBKDF2_SHA256);
    fast_params(&sc, CM_PWHASH_SCRYPT);

    started = 0;

    for (i = 0; i < THREADS; i++) {
        w[i].params = (i % 2) ? &sc : &pb;
        w[i].failures = 0;
        w[i].index = i;

        if (pthread_create(&tid[i], NULL, worker, &w[i]) != 0) {
            break;
        }

        started++;
    }

    failures = 0;

    for (i = 0; i < started; i++) {
        pthread_join(tid[i], NULL);
        failures += w[i].failures;
    }

    is_int(started, THREADS, "%d threads started", THREADS);
    is_int(failures, 0, "make and verify from %d threads at once", THREADS);
}


static void
test_defaults(void)
{
    int                 rehash;
    double              t0, t;
    char                a[CM_PWHASH_LEN];
    cm_pwhash_params_t  d;

    cm_pwhash_params_default(&d);

    t0 = seconds();
    is_int(cm_pwhash_make(a, sizeof(a), "correct horse battery", 21, NULL),
           CM_PWHASH_OK, "make at the default cost (params NULL)");
    t = seconds() - t0;
    ok(strncmp(a, "$pbkdf2-sha256$i=600000$", 24) == 0,
       "the default string: %s", a);
    tap_diag("PBKDF2-HMAC-SHA256, 600000 iterations: %.0f ms", t * 1e3);

    rehash = -1;
    is_int(verify_str(a, "correct horse battery", &rehash, NULL),
           CM_PWHASH_OK, "verify at the default cost");
    is_int(rehash, 0, "  no rehash");

    d.alg = CM_PWHASH_SCRYPT;

    t0 = seconds();
    is_int(cm_pwhash_make(a, sizeof(a), "correct horse battery", 21, &d),
           CM_PWHASH_OK, "make with default scrypt");
    t = seconds() - t0;
    ok(strncmp(a, "$scrypt$ln=17,r=8,p=1$", 22) == 0,
       "the default scrypt string: %s", a);
    tap_diag("scrypt N=2^17 r=8 p=1 (128 MiB): %.0f ms", t * 1e3);

    is_int(verify_str(a, "correct horse battery", &rehash, NULL),
           CM_PWHASH_OK, "default scrypt verifies under default PBKDF2");
    is_int(rehash, 1, "  and needs a rehash");
}
