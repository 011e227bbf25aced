/*
 * Unit tests of cm_token: refresh tokens, their storage hash, and JWT
 * ids.  TAP output.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_jwt.h"
#include "cm_token.h"
#include "tap.h"


#define COUNT  1000

#define A43    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"


static int all_in(const char *s, const char *set);
static int cmp(const void *a, const void *b);
static void hash_refused(const char *token, size_t len, const char *desc);
static void test_new(void);
static void test_hash(void);
static void test_shapes(void);
static void test_unique(void);
static void test_jti(void);


int
main(void)
{
    test_new();
    test_hash();
    test_shapes();
    test_unique();
    test_jti();

    return tap_done();
}


static int
all_in(const char *s, const char *set)
{
    for ( /* void */ ; *s != '\0'; s++) {
        if (strchr(set, *s) == NULL) {
            return 0;
        }
    }

    return 1;
}


static int
cmp(const void *a, const void *b)
{
    return strcmp(a, b);
}


static void
test_new(void)
{
    char           tok[CM_TOKEN_LEN + 1], hash[CM_TOKEN_HASH_LEN + 1];
    char           again[CM_TOKEN_HASH_LEN + 1];
    size_t         n;
    unsigned char  raw[64];

    ok(cm_token_new(tok, hash) == 0, "new token");
    is_int(strlen(tok), 43, "43 characters: %s", tok);
    ok(all_in(tok, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                   "0123456789-_"), "  base64url, no padding");
    ok(cm_base64url_decode(raw, sizeof(raw), (unsigned char *) tok, 43, &n)
       == 0 && n == 32, "  decodes canonically to 32 bytes");

    is_int(strlen(hash), 64, "storage hash: 64 characters: %s", hash);
    ok(all_in(hash, "0123456789abcdef"), "  lowercase hex");

    ok(cm_token_hash(tok, 43, again) == 0 && strcmp(hash, again) == 0,
       "cm_token_hash of the token is the hash cm_token_new gave");
    ok(strstr(hash, tok) == NULL && strcmp(hash, tok) != 0,
       "the hash is not the token");
}


static void
test_hash(void)
{
    char  t[64], hash[CM_TOKEN_HASH_LEN + 1];

    /* Python: hashlib.sha256(b"A" * 43).hexdigest() */
    ok(cm_token_hash(A43, 43, hash) == 0, "hash of 43 'A' (32 zero bytes)");
    is_str(hash,
           "0f007385b6f9d4b7eeb2748605afe1a984a0a3bfa3f014d09e2a784ce9e5cd1a",
           "  SHA-256 of the token text, known answer");

    /* 42 '_' (all ones) and 'w' (110000: the 2 unused bits zero) */
    memset(t, '_', 42);
    t[42] = 'w';
    t[43] = '\0';
    ok(cm_token_hash(t, 43, hash) == 0, "the largest canonical token");
}


static void
hash_refused(const char *token, size_t len, const char *desc)
{
    char  hash[CM_TOKEN_HASH_LEN + 1];

    memcpy(hash, "unset", 6);

    ok(cm_token_hash(token, len, hash) == -1 && hash[0] == '\0',
       "refused: %s", desc);
}


static void
test_shapes(void)
{
    char  t[64];

    hash_refused(A43, 42, "42 characters");
    hash_refused(A43 "A", 44, "44 characters");
    hash_refused("", 0, "empty");
    hash_refused(NULL, 43, "NULL");
    hash_refused(A43 "=", 44, "with padding");

    memcpy(t, A43, 44);
    t[42] = 'B';
    hash_refused(t, 43, "last character with unused bits set");

    memcpy(t, A43, 44);
    t[10] = '+';
    hash_refused(t, 43, "'+' (standard base64)");

    memcpy(t, A43, 44);
    t[10] = '/';
    hash_refused(t, 43, "'/' (standard base64)");

    memcpy(t, A43, 44);
    t[0] = ' ';
    hash_refused(t, 43, "a space");

    memcpy(t, A43, 44);
    t[20] = '\0';
    hash_refused(t, 43, "a NUL inside");

    memcpy(t, A43, 44);
    t[42] = '.';
    hash_refused(t, 43, "a dot (a JWT is not a refresh token)");
}


static void
test_unique(void)
{
    int    i, dup, bad;
    char  (*toks)[CM_TOKEN_LEN + 1];
    char   hash[CM_TOKEN_HASH_LEN + 1];

    toks = malloc(COUNT * sizeof(*toks));
    if (toks == NULL) {
        abort();
    }

    bad = 0;

    for (i = 0; i < COUNT; i++) {
        if (cm_token_new(toks[i], hash) != 0) {
            bad++;
        }
    }

    qsort(toks, COUNT, sizeof(*toks), cmp);

    dup = 0;

    for (i = 1; i < COUNT; i++) {
        if (strcmp(toks[i - 1], toks[i]) == 0) {
            dup++;
        }
    }

    is_int(bad, 0, "%d tokens made", COUNT);
    is_int(dup, 0, "  all different");

    free(toks);
}


static void
test_jti(void)
{
    int    i, dup;
    char   jti[CM_JTI_LEN + 1];
    char  (*all)[CM_JTI_LEN + 1];

    ok(cm_token_jti(jti) == 0, "new jti");
    is_int(strlen(jti), 32, "32 characters: %s", jti);
    ok(all_in(jti, "0123456789abcdef"), "  lowercase hex");

    all = malloc(COUNT * sizeof(*all));
    if (all == NULL) {
        abort();
    }

    for (i = 0; i < COUNT; i++) {
        cm_token_jti(all[i]);
    }

    qsort(all, COUNT, sizeof(*all), cmp);

    dup = 0;

    for (i = 1; i < COUNT; i++) {
        if (strcmp(all[i - 1], all[i]) == 0) {
            dup++;
        }
    }

    is_int(dup, 0, "%d jti all different", COUNT);

    free(all);
}
