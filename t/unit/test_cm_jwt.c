/*
 * Unit tests of cm_jwt: HS256 verification, minting and base64url.
 * TAP output.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "cm_json.h"
#include "cm_jwt.h"
#include "tap.h"


#define KEY      (const unsigned char *) "unit-test-secret-0123456789abcdef"
#define KEYLEN   (sizeof("unit-test-secret-0123456789abcdef") - 1)
#define NOW      1700000000

#define HS256    "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"

#define TOKEN_LEN  8192


static int verify(const char *tok, cm_jwt_claims_t *c, const char **reason);
static void rejected(const char *tok, const char *want, const char *desc);
static void forged(const char *header, const char *payload, const char *want,
    const char *desc);
static size_t raw_token(char *dst, const char *header, const char *payload,
    const char *sig);
static void test_base64url(void);
static void test_valid(void);
static void test_expiry(void);
static void test_header(void);
static void test_signature(void);
static void test_claims(void);
static void test_structure(void);
static void test_sign(void);
static void test_interop(void);
static void test_kid(void);


int
main(void)
{
    test_base64url();
    test_valid();
    test_expiry();
    test_header();
    test_signature();
    test_claims();
    test_structure();
    test_sign();
    test_interop();

    return tap_done();
}


static void
test_base64url(void)
{
    int            i;
    char           enc[64];
    size_t         n;
    unsigned char  dec[64];
    static const char  *plain[] = {
        "", "f", "fo", "foo", "foob", "fooba", "foobar"
    };
    static const char  *coded[] = {
        "", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"
    };

    /* RFC 4648 section 10, without padding */
    for (i = 0; i < 7; i++) {
        n = cm_base64url_encode(enc, sizeof(enc),
                                (const unsigned char *) plain[i],
                                strlen(plain[i]));
        ok(n == strlen(coded[i]) && memcmp(enc, coded[i], n) == 0,
           "base64url encode '%s'", plain[i]);

        ok(cm_base64url_decode(dec, sizeof(dec),
                               (const unsigned char *) coded[i],
                               strlen(coded[i]), &n) == 0
           && n == strlen(plain[i]) && memcmp(dec, plain[i], n) == 0,
           "base64url decode '%s'", coded[i]);
    }

    n = cm_base64url_encode(enc, sizeof(enc),
                            (const unsigned char *) "\xfb\xff\xbf", 3);
    ok(n == 4 && memcmp(enc, "-_-_", 4) == 0, "base64url uses - and _");

    ok(cm_base64url_decode(dec, sizeof(dec), (const unsigned char *) "+/+/",
                           4, &n) == -1, "base64url refuses + and /");
    ok(cm_base64url_decode(dec, sizeof(dec), (const unsigned char *) "Zg==",
                           4, &n) == -1, "base64url refuses padding");
    ok(cm_base64url_decode(dec, sizeof(dec), (const unsigned char *) "Zg=",
                           3, &n) == -1, "base64url refuses one '='");
    ok(cm_base64url_decode(dec, sizeof(dec), (const unsigned char *) "Zh",
                           2, &n) == -1, "base64url refuses unused bits");
    ok(cm_base64url_decode(dec, sizeof(dec), (const unsigned char *) "Zm9vY",
                           5, &n) == -1, "base64url refuses length 4n+1");
    ok(cm_base64url_decode(dec, sizeof(dec), (const unsigned char *) "Zm 9v",
                           5, &n) == -1, "base64url refuses spaces");
    ok(cm_base64url_decode(dec, 2, (const unsigned char *) "Zm9v", 4, &n)
       == -1, "base64url decode respects dstlen");
    ok(cm_base64url_encode(enc, 3, (const unsigned char *) "foo", 3) == 0,
       "base64url encode respects dstlen");
}


static void
test_valid(void)
{
    char             tok[TOKEN_LEN];
    size_t           n;
    const char      *reason;
    cm_jwt_claims_t  c;

    n = cm_jwt_sign(tok, sizeof(tok), KEY, KEYLEN, 42, NULL, NOW - 10,
                    NOW + 3600);
    ok(n > 0 && n == strlen(tok), "sign");

    reason = "unset";
    ok(verify(tok, &c, &reason) == 0 && reason == NULL, "valid token");
    is_int(c.user_id, 42, "user_id from sub");
    is_int(c.exp, NOW + 3600, "exp");
    is_int(c.iat, NOW - 10, "iat");
    is_str(c.role, "USER", "role defaults to USER");

    cm_jwt_sign(tok, sizeof(tok), KEY, KEYLEN, INT64_MAX, "ADMIN", 0,
                NOW + 1);
    ok(verify(tok, &c, &reason) == 0 && c.user_id == INT64_MAX
       && strcmp(c.role, "ADMIN") == 0 && c.iat == 0,
       "largest sub, role ADMIN, no iat");

    ok(cm_jwt_verify((const unsigned char *) tok, strlen(tok), KEY, KEYLEN,
                     NOW, 0, &c, NULL) == 0, "reason may be NULL");

    forged(HS256, "{\"sub\":\"7\",\"exp\":1800000000,\"name\":{\"a\":[1]},"
           "\"scope\":\"x y\"}", NULL, "unknown claims ignored");
    forged("{\"alg\":\"HS256\"}", "{\"sub\":\"7\",\"exp\":1800000000}", NULL,
           "typ may be absent");
    forged("{\"typ\":\"JWT\",\"kid\":\"12\",\"alg\":\"HS256\"}",
           "{\"sub\":\"7\",\"exp\":1800000000}", NULL,
           "a decimal kid, any key order");
    forged("{\"typ\":\"JWT\",\"kid\":\"k1\",\"alg\":\"HS256\"}",
           "{\"sub\":\"7\",\"exp\":1800000000}", "bad kid",
           "a kid that is none of ours");
    forged("{\"alg\":\"HS256\",\"kid\":\"065\"}",
           "{\"sub\":\"7\",\"exp\":1800000000}", "bad kid",
           "kid with a leading zero");
    forged("{\"alg\":\"HS256\",\"kid\":\"65536\"}",
           "{\"sub\":\"7\",\"exp\":1800000000}", "bad kid",
           "kid above 65535");
    forged("{\"alg\":\"HS256\",\"kid\":7}",
           "{\"sub\":\"7\",\"exp\":1800000000}", "bad kid",
           "kid as a number");
    test_kid();
    forged(" {\r\n\"alg\" : \"HS256\" } ",
           "\t{\"exp\":1800000000,\n\"sub\":7}\n", NULL,
           "whitespace in header and claims");
}


static void
test_expiry(void)
{
    char             tok[TOKEN_LEN];
    const char      *reason;
    cm_jwt_claims_t  c;

    cm_jwt_sign(tok, sizeof(tok), KEY, KEYLEN, 1, NULL, 0, NOW);

    reason = NULL;
    ok(verify(tok, &c, &reason) == -1 && reason != NULL
       && strcmp(reason, "expired") == 0 && c.user_id == 0,
       "exp == now is expired");

    ok(cm_jwt_verify((const unsigned char *) tok, strlen(tok), KEY, KEYLEN,
                     NOW - 1, 0, &c, &reason) == 0, "valid the second before");

    ok(cm_jwt_verify((const unsigned char *) tok, strlen(tok), KEY, KEYLEN,
                     NOW + 9, 10, &c, &reason) == 0, "within the leeway");

    ok(cm_jwt_verify((const unsigned char *) tok, strlen(tok), KEY, KEYLEN,
                     NOW + 10, 10, &c, &reason) == -1
       && strcmp(reason, "expired") == 0, "beyond the leeway");

    ok(cm_jwt_verify((const unsigned char *) tok, strlen(tok), KEY, KEYLEN,
                     NOW, -100, &c, &reason) == -1
       && strcmp(reason, "expired") == 0, "negative leeway counts as 0");

    /* extreme clocks and leeways: no overflow either way */
    ok(cm_jwt_verify((const unsigned char *) tok, strlen(tok), KEY, KEYLEN,
                     INT64_MAX, 0, &c, &reason) == -1
       && strcmp(reason, "expired") == 0, "now INT64_MAX");
    ok(cm_jwt_verify((const unsigned char *) tok, strlen(tok), KEY, KEYLEN,
                     INT64_MAX, INT64_MAX, &c, &reason) == 0,
       "now INT64_MAX, leeway INT64_MAX");
    ok(cm_jwt_verify((const unsigned char *) tok, strlen(tok), KEY, KEYLEN,
                     INT64_MIN, INT64_MAX, &c, &reason) == 0,
       "now INT64_MIN, leeway INT64_MAX");
    ok(cm_jwt_verify((const unsigned char *) tok, strlen(tok), KEY, KEYLEN,
                     INT64_MIN, 0, &c, &reason) == 0, "now INT64_MIN");

    forged(HS256, "{\"sub\":\"1\",\"exp\":-9223372036854775808}", "expired",
           "exp INT64_MIN");
    forged(HS256, "{\"sub\":\"1\",\"exp\":9223372036854775807}", NULL,
           "exp INT64_MAX");
    forged(HS256, "{\"sub\":\"1\"}", "missing exp", "exp missing");
    forged(HS256, "{\"sub\":\"1\",\"exp\":\"1800000000\"}", "bad exp",
           "exp a string");
    forged(HS256, "{\"sub\":\"1\",\"exp\":1800000000.5}", "bad exp",
           "exp with a fraction");
    forged(HS256, "{\"sub\":\"1\",\"exp\":1.8e9}", "bad exp",
           "exp with an exponent");
    forged(HS256, "{\"sub\":\"1\",\"exp\":null}", "bad exp", "exp null");
    forged(HS256, "{\"sub\":\"1\",\"exp\":99999999999999999999}", "bad exp",
           "exp overflows");
    forged(HS256, "{\"sub\":\"1\",\"exp\":1800000000,\"exp\":1800000000}",
           "duplicate claim", "exp twice");
    forged(HS256, "{\"sub\":\"1\",\"exp\":1800000000,\"nbf\":1800000000}",
           "not yet valid", "nbf in the future");
    forged(HS256, "{\"sub\":\"1\",\"exp\":1800000000,\"nbf\":1700000000}",
           NULL, "nbf now");
    forged(HS256, "{\"sub\":\"1\",\"exp\":1800000000,\"iat\":\"x\"}",
           "bad iat", "iat a string");
    forged(HS256, "{\"sub\":\"1\",\"exp\":1800000000,\"nbf\":1.5}",
           "bad nbf", "nbf with a fraction");
}


static void
test_header(void)
{
    char  tok[TOKEN_LEN];

    forged("{\"alg\":\"none\",\"typ\":\"JWT\"}",
           "{\"sub\":\"1\",\"exp\":1800000000}", "unsupported alg",
           "alg none, signed anyway");

    raw_token(tok, "{\"alg\":\"none\",\"typ\":\"JWT\"}",
              "{\"sub\":\"1\",\"exp\":1800000000}", "");
    rejected(tok, "unsupported alg", "alg none with an empty signature");

    raw_token(tok, "{\"alg\":\"none\"}", "{\"sub\":\"1\",\"exp\":1800000000}",
              NULL);
    rejected(tok, "malformed token", "alg none without the last dot");

    forged("{\"alg\":\"HS384\",\"typ\":\"JWT\"}",
           "{\"sub\":\"1\",\"exp\":1800000000}", "unsupported alg", "HS384");
    forged("{\"alg\":\"HS512\"}", "{\"sub\":\"1\",\"exp\":1800000000}",
           "unsupported alg", "HS512");
    forged("{\"alg\":\"RS256\",\"typ\":\"JWT\"}",
           "{\"sub\":\"1\",\"exp\":1800000000}", "unsupported alg", "RS256");
    forged("{\"alg\":\"hs256\"}", "{\"sub\":\"1\",\"exp\":1800000000}",
           "unsupported alg", "alg in lower case");
    forged("{\"alg\":\"HS256 \"}", "{\"sub\":\"1\",\"exp\":1800000000}",
           "unsupported alg", "alg with a space");
    forged("{\"alg\":\"HS256\\u0000\"}", "{\"sub\":\"1\",\"exp\":1800000000}",
           "unsupported alg", "alg with a NUL");
    forged("{\"alg\":[\"HS256\"]}", "{\"sub\":\"1\",\"exp\":1800000000}",
           "unsupported alg", "alg an array");
    forged("{\"alg\":null}", "{\"sub\":\"1\",\"exp\":1800000000}",
           "unsupported alg", "alg null");
    forged("{\"typ\":\"JWT\"}", "{\"sub\":\"1\",\"exp\":1800000000}",
           "unsupported alg", "alg missing");
    forged("{\"alg\":\"HS256\",\"alg\":\"HS256\"}",
           "{\"sub\":\"1\",\"exp\":1800000000}", "malformed token",
           "alg twice");
    forged("{\"alg\":\"HS256\",\"typ\":\"JWS\"}",
           "{\"sub\":\"1\",\"exp\":1800000000}", "unsupported typ",
           "typ JWS");
    forged("{\"alg\":\"HS256\",\"typ\":\"at+jwt\"}",
           "{\"sub\":\"1\",\"exp\":1800000000}", "unsupported typ",
           "typ at+jwt");
    forged("{\"alg\":\"HS256\",\"typ\":1}",
           "{\"sub\":\"1\",\"exp\":1800000000}", "unsupported typ",
           "typ a number");
    forged("{\"alg\":\"HS256\",\"crit\":[\"exp\"]}",
           "{\"sub\":\"1\",\"exp\":1800000000}", "unsupported header",
           "crit");
    forged("[\"HS256\"]", "{\"sub\":\"1\",\"exp\":1800000000}",
           "malformed token", "header an array");
    forged("\"HS256\"", "{\"sub\":\"1\",\"exp\":1800000000}",
           "malformed token", "header a string");
    forged("{\"alg\":\"HS256\"", "{\"sub\":\"1\",\"exp\":1800000000}",
           "malformed token", "header truncated");
    forged("{\"alg\":\"HS256\"}x", "{\"sub\":\"1\",\"exp\":1800000000}",
           "malformed token", "header with trailing garbage");
    forged("{\"alg\":\"HS256\",\"x\":[[[[[[[[1]]]]]]]]}",
           "{\"sub\":\"1\",\"exp\":1800000000}", "malformed token",
           "header nested 9 levels");
    forged("{\"alg\":\"HS256\",\"x\":[[[[[[[1]]]]]]]}",
           "{\"sub\":\"1\",\"exp\":1800000000}", NULL,
           "header nested 8 levels");
    forged("{\"alg\":\"HS256\",\"x\":\"\xff\"}",
           "{\"sub\":\"1\",\"exp\":1800000000}", "malformed token",
           "header with invalid UTF-8");
}


static void
test_signature(void)
{
    char             tok[TOKEN_LEN], other[TOKEN_LEN], forge[TOKEN_LEN];
    char            *dot, *sig;
    unsigned char    mac[32];
    size_t           n;
    cm_jwt_claims_t  c;
    const char      *reason;

    cm_jwt_sign(tok, sizeof(tok), KEY, KEYLEN, 1, NULL, 0, NOW + 60);
    cm_jwt_sign(other, sizeof(other), KEY, KEYLEN, 2, "ADMIN", 0, NOW + 60);

    ok(verify(tok, &c, &reason) == 0, "signature: the genuine token");

    /* the claims of one token under the signature of another */
    dot = strchr(tok, '.');
    sig = strrchr(tok, '.');
    n = (size_t) (strrchr(other, '.') - other);
    memcpy(forge, other, n);
    strcpy(forge + n, sig);
    rejected(forge, "bad signature", "tampered payload");

    /* one character of the payload changed */
    strcpy(forge, tok);
    forge[dot - tok + 3] ^= 0x01;
    rejected(forge, "bad signature", "payload with a flipped bit");

    strcpy(forge, tok);
    n = strlen(forge);
    forge[n - 5] = forge[n - 5] == 'A' ? 'B' : 'A';
    rejected(forge, "bad signature", "tampered signature");

    /* the last character carries 4 bits and 2 unused ones */
    strcpy(forge, tok);
    forge[n - 1] = (char) (forge[n - 1] == 'A' ? 'B'
                           : (forge[n - 1] == 'z' ? 'y' : forge[n - 1] + 1));
    rejected(forge, "bad signature", "signature with unused bits set");

    strcpy(forge, tok);
    forge[n - 1] = '\0';
    rejected(forge, "bad signature", "signature one character short");

    strcpy(forge, tok);
    strcat(forge, "A");
    rejected(forge, "bad signature", "signature one character long");

    strcpy(forge, tok);
    strcat(forge, "=");
    rejected(forge, "bad signature", "signature with '=' padding");

    strcpy(forge, tok);
    forge[n - 5] = '+';
    rejected(forge, "bad signature", "signature with '+'");

    n = (size_t) (sig - tok) + 1;
    memcpy(forge, tok, n);
    forge[n] = '\0';
    rejected(forge, "bad signature", "signature empty");

    ok(cm_jwt_verify((const unsigned char *) tok, strlen(tok),
                     (const unsigned char *) "another-key", 11, NOW, 0, &c,
                     &reason) == -1 && strcmp(reason, "bad signature") == 0,
       "wrong key");

    ok(cm_jwt_verify((const unsigned char *) tok, strlen(tok), KEY,
                     KEYLEN - 1, NOW, 0, &c, &reason) == -1
       && strcmp(reason, "bad signature") == 0, "key one byte short");

    ok(cm_jwt_verify((const unsigned char *) tok, strlen(tok), KEY, 0, NOW,
                     0, &c, &reason) == -1 && strcmp(reason, "no key") == 0,
       "empty key");

    /* the signature covers the exact bytes: padding the payload breaks it */
    cm_jwt_sign(forge, sizeof(forge), KEY, KEYLEN, 1, "AB", 0, NOW + 60);
    dot = strrchr(forge, '.');
    ok((dot - strchr(forge, '.') - 1) % 4 != 0, "payload length not 4n");
    memmove(dot + 1, dot, strlen(dot) + 1);
    *dot = '=';
    rejected(forge, "bad signature", "payload with '=' padding");

    /* ... and when the signer signed it that way, the decoding refuses it */
    strcpy(forge, "eyJhbGciOiJIUzI1NiJ9"
                  ".eyJzdWIiOiIxIiwiZXhwIjoxODAwMDAwMDAwfQ=");
    n = strlen(forge);
    forge[n++] = '.';
    HMAC(EVP_sha256(), KEY, (int) KEYLEN, (unsigned char *) forge, n - 1,
         mac, NULL);
    n += cm_base64url_encode(forge + n, sizeof(forge) - n, mac, sizeof(mac));
    forge[n] = '\0';
    rejected(forge, "malformed token", "signed payload with '=' padding");
}


static void
test_claims(void)
{
    int              i;
    char             role[64], payload[128];
    cm_jwt_claims_t  c;
    const char      *reason;
    char             tok[TOKEN_LEN];

    forged(HS256, "{\"sub\":\"42\",\"exp\":1800000000}", NULL,
           "sub a decimal string");
    forged(HS256, "{\"sub\":42,\"exp\":1800000000}", NULL, "sub an integer");
    forged(HS256, "{\"sub\":-1,\"exp\":1800000000}", "bad sub",
           "sub negative");
    forged(HS256, "{\"sub\":\"-1\",\"exp\":1800000000}", "bad sub",
           "sub a negative string");
    forged(HS256, "{\"sub\":0,\"exp\":1800000000}", "bad sub", "sub 0");
    forged(HS256, "{\"sub\":\"0\",\"exp\":1800000000}", "bad sub",
           "sub \"0\"");
    forged(HS256, "{\"sub\":\"abc\",\"exp\":1800000000}", "bad sub",
           "sub not numeric");
    forged(HS256, "{\"sub\":\"42abc\",\"exp\":1800000000}", "bad sub",
           "sub with trailing letters");
    forged(HS256, "{\"sub\":\" 42\",\"exp\":1800000000}", "bad sub",
           "sub with a space");
    forged(HS256, "{\"sub\":\"\",\"exp\":1800000000}", "bad sub",
           "sub empty");
    forged(HS256, "{\"sub\":42.0,\"exp\":1800000000}", "bad sub",
           "sub 42.0");
    forged(HS256, "{\"sub\":\"9223372036854775808\",\"exp\":1800000000}",
           "bad sub", "sub overflows as a string");
    forged(HS256, "{\"sub\":9223372036854775808,\"exp\":1800000000}",
           "bad sub", "sub overflows as an integer");
    forged(HS256, "{\"sub\":null,\"exp\":1800000000}", "bad sub",
           "sub null");
    forged(HS256, "{\"sub\":{\"id\":1},\"exp\":1800000000}", "bad sub",
           "sub an object");
    forged(HS256, "{\"exp\":1800000000}", "missing sub", "sub missing");
    forged(HS256, "{\"sub\":\"1\",\"sub\":\"2\",\"exp\":1800000000}",
           "duplicate claim", "sub twice");

    forged(HS256, "{\"sub\":\"1\",\"exp\":1800000000,\"role\":\"ADMIN\"}",
           NULL, "role ADMIN");
    forged(HS256, "{\"sub\":\"1\",\"exp\":1800000000,\"role\":\"SUPER_USER\"}",
           NULL, "role with an underscore");
    forged(HS256, "{\"sub\":\"1\",\"exp\":1800000000,\"role\":\"admin\"}",
           "bad role", "role in lower case");
    forged(HS256, "{\"sub\":\"1\",\"exp\":1800000000,\"role\":\"\"}",
           "bad role", "role empty");
    forged(HS256, "{\"sub\":\"1\",\"exp\":1800000000,\"role\":\"ADMIN1\"}",
           "bad role", "role with a digit");
    forged(HS256, "{\"sub\":\"1\",\"exp\":1800000000,"
           "\"role\":\"ADMIN\\\"}\"}", "bad role", "role with a quote");
    forged(HS256, "{\"sub\":\"1\",\"exp\":1800000000,\"role\":5}",
           "bad role", "role a number");
    forged(HS256, "{\"sub\":\"1\",\"exp\":1800000000,\"role\":[\"ADMIN\"]}",
           "bad role", "role an array");
    forged(HS256, "{\"sub\":\"1\",\"exp\":1800000000,\"role\":null}",
           "bad role", "role null");

    for (i = 0; i < 32; i++) {
        role[i] = 'A';
    }

    role[31] = '\0';
    snprintf(payload, sizeof(payload),
             "{\"sub\":\"1\",\"exp\":1800000000,\"role\":\"%s\"}", role);
    cm_jwt_encode(tok, sizeof(tok), KEY, KEYLEN, HS256, strlen(HS256),
                  payload, strlen(payload));
    ok(verify(tok, &c, &reason) == 0 && strcmp(c.role, role) == 0,
       "role of 31 characters");

    role[31] = 'A';
    role[32] = '\0';
    snprintf(payload, sizeof(payload),
             "{\"sub\":\"1\",\"exp\":1800000000,\"role\":\"%s\"}", role);
    forged(HS256, payload, "bad role", "role of 32 characters");

    forged(HS256, "[{\"sub\":\"1\",\"exp\":1800000000}]", "malformed token",
           "claims an array");
    forged(HS256, "\"claims\"", "malformed token", "claims a string");
    forged(HS256, "{\"sub\":\"1\",\"exp\":1800000000", "malformed token",
           "claims truncated");
    forged(HS256, "{\"sub\":\"1\",\"exp\":1800000000}{}", "malformed token",
           "claims with trailing data");
    forged(HS256, "{\"sub\":\"1\",\"exp\":1800000000,\"x\":\"\xff\"}",
           "malformed token", "claims with invalid UTF-8");
    forged(HS256, "{\"sub\":\"1\",\"exp\":1800000000,"
           "\"x\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{}}}}}}}}}",
           "malformed token", "claims nested 9 levels");
}


static void
test_structure(void)
{
    char             tok[TOKEN_LEN], *big;
    size_t           n, plen;
    cm_jwt_claims_t  c;
    const char      *reason;

    rejected("", "malformed token", "empty token");
    rejected(".", "malformed token", "one dot");
    rejected("..", "malformed token", "two dots");
    rejected("...", "malformed token", "three dots");
    rejected("abc", "malformed token", "no dot");
    rejected("abc.def", "malformed token", "one dot only");
    rejected("eyJhbGciOiJIUzI1NiJ9..abc", "malformed token",
             "empty payload");
    rejected(".eyJzdWIiOiIxIn0.abc", "malformed token", "empty header");
    rejected("e30.e30.", "unsupported alg", "header {}");
    rejected("Bearer eyJhbGciOiJIUzI1NiJ9.e30.x", "malformed token",
             "with the Bearer prefix");
    rejected("eyJhbGciOiJIUzI1NiJ9=.e30.x", "malformed token",
             "header with '='");
    rejected("eyJhbGciOiJIUzI1NiJ9+.e30.x", "malformed token",
             "header with '+'");
    rejected("eyJhbGciOiJIUzI1NiJ9.e30.e30.e30", "bad signature",
             "four parts");

    ok(cm_jwt_verify(NULL, 0, KEY, KEYLEN, NOW, 0, &c, &reason) == -1
       && strcmp(reason, "malformed token") == 0, "NULL token");

    /* the largest token accepted, then one byte more */
    big = malloc(CM_JWT_LEN_MAX + 64);
    if (big == NULL) {
        ok(0, "malloc");
        return;
    }

    /*
     * 36 characters of header, 2 dots and 43 of signature leave 4015 for
     * the payload: 3011 bytes of claims.
     */
    for (plen = 3010; plen <= 3012; plen++) {
        n = (size_t) snprintf(big, CM_JWT_LEN_MAX,
                              "{\"sub\":\"1\",\"exp\":1800000000,\"pad\":\"");
        memset(big + n, 'x', plen - n - 2);
        memcpy(big + plen - 2, "\"}", 3);

        n = cm_jwt_encode(tok, sizeof(tok), KEY, KEYLEN, HS256, strlen(HS256),
                          big, plen);

        if (n <= CM_JWT_LEN_MAX) {
            ok(verify(tok, &c, &reason) == 0, "token of %zu bytes", n);

        } else {
            ok(verify(tok, &c, &reason) == -1
               && strcmp(reason, "token too long") == 0,
               "token of %zu bytes", n);
        }
    }

    ok(n == CM_JWT_LEN_MAX + 1, "the last one was 4097 bytes");

    memset(big, 'A', CM_JWT_LEN_MAX + 64);
    ok(cm_jwt_verify((unsigned char *) big, CM_JWT_LEN_MAX + 64, KEY, KEYLEN,
                     NOW, 0, &c, &reason) == -1
       && strcmp(reason, "token too long") == 0, "huge token");

    free(big);
}


static void
test_sign(void)
{
    char  tok[TOKEN_LEN];

    ok(cm_jwt_sign(tok, sizeof(tok), KEY, KEYLEN, 0, NULL, 0, NOW) == 0,
       "sign refuses user 0");
    ok(cm_jwt_sign(tok, sizeof(tok), KEY, KEYLEN, 1, "admin", 0, NOW) == 0,
       "sign refuses a bad role");
    ok(cm_jwt_sign(tok, sizeof(tok), KEY, 0, 1, NULL, 0, NOW) == 0,
       "sign refuses an empty key");
    ok(cm_jwt_sign(tok, 100, KEY, KEYLEN, 1, NULL, 0, NOW) == 0,
       "sign refuses a short buffer");

    ok(cm_jwt_sign(tok, sizeof(tok), KEY, KEYLEN, 1, NULL, 0, NOW) > 0
       && strncmp(tok, "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.", 37) == 0,
       "header is {\"alg\":\"HS256\",\"typ\":\"JWT\"}");
}


static void
test_interop(void)
{
    cm_jwt_claims_t  c;
    const char      *reason;
    unsigned char    key[64];
    size_t           keylen;
    static const char  jwtio[] =
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
        ".eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2Mj"
        "M5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
    static const char  rfc7515[] =
        "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9"
        ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcG"
        "xlLmNvbS9pc19yb290Ijp0cnVlfQ"
        ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    static const char  rfc7515_key[] =
        "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4h"
        "cgUuTwjAzZr1Z9CAow";

    /* the signature checks out, so the claims are read and found wanting */
    ok(cm_jwt_verify((const unsigned char *) jwtio, sizeof(jwtio) - 1,
                     (const unsigned char *) "your-256-bit-secret", 19, NOW,
                     0, &c, &reason) == -1
       && strcmp(reason, "missing exp") == 0, "jwt.io example: signature ok");

    ok(cm_jwt_verify((const unsigned char *) jwtio, sizeof(jwtio) - 1,
                     (const unsigned char *) "your-256-bit-secreT", 19, NOW,
                     0, &c, &reason) == -1
       && strcmp(reason, "bad signature") == 0, "jwt.io example: wrong key");

    ok(cm_base64url_decode(key, sizeof(key),
                           (const unsigned char *) rfc7515_key,
                           sizeof(rfc7515_key) - 1, &keylen) == 0
       && keylen == 64, "RFC 7515 A.1 key");

    ok(cm_jwt_verify((const unsigned char *) rfc7515, sizeof(rfc7515) - 1,
                     key, keylen, 1300819379, 0, &c, &reason) == -1
       && strcmp(reason, "missing sub") == 0,
       "RFC 7515 A.1 example: signature ok");
}


static int
verify(const char *tok, cm_jwt_claims_t *c, const char **reason)
{
    return cm_jwt_verify((const unsigned char *) tok, strlen(tok), KEY,
                         KEYLEN, NOW, 0, c, reason);
}


static void
rejected(const char *tok, const char *want, const char *desc)
{
    int              rc;
    const char      *reason;
    cm_jwt_claims_t  c;

    reason = NULL;
    rc = verify(tok, &c, &reason);

    if (!ok(rc == -1 && reason != NULL && strcmp(reason, want) == 0
            && c.user_id == 0, "rejected: %s", desc))
    {
        tap_diag("  rc %d reason '%s' want '%s'", rc,
                 reason != NULL ? reason : "(null)", want);
    }
}


/* signs header and payload with the right key; want NULL: valid */

static void
forged(const char *header, const char *payload, const char *want,
    const char *desc)
{
    char             tok[TOKEN_LEN];
    size_t           n;
    const char      *reason;
    cm_jwt_claims_t  c;

    n = cm_jwt_encode(tok, sizeof(tok), KEY, KEYLEN, header, strlen(header),
                      payload, strlen(payload));
    if (n == 0) {
        ok(0, "encode: %s", desc);
        return;
    }

    if (want == NULL) {
        reason = NULL;

        if (!ok(verify(tok, &c, &reason) == 0, "accepted: %s", desc)) {
            tap_diag("  reason '%s'", reason);
        }

        return;
    }

    rejected(tok, want, desc);
}


/* header.payload.sig with any signature text; sig NULL: no second dot */

static size_t
raw_token(char *dst, const char *header, const char *payload,
    const char *sig)
{
    size_t  n;

    n = cm_base64url_encode(dst, TOKEN_LEN, (const unsigned char *) header,
                            strlen(header));
    dst[n++] = '.';
    n += cm_base64url_encode(dst + n, TOKEN_LEN - n,
                             (const unsigned char *) payload,
                             strlen(payload));

    if (sig != NULL) {
        n += (size_t) snprintf(dst + n, TOKEN_LEN - n, ".%s", sig);
    }

    dst[n] = '\0';

    return n;
}


static void
test_kid(void)
{
    char             tok[TOKEN_LEN];
    size_t           n;
    uint32_t         kid;
    const char      *reason;
    cm_jwt_claims_t  c;

    n = cm_jwt_sign_kid(tok, sizeof(tok), KEY, KEYLEN, 3, 42, "SELLER",
                        "0123456789abcdef0123456789abcdef", NOW - 1,
                        NOW + 300);
    ok(n > 0 && n == strlen(tok), "sign with kid and jti");
    ok(cm_jwt_kid((const unsigned char *) tok, n, &kid, &reason) == 0
       && kid == 3, "kid 3 read back");
    ok(verify(tok, &c, &reason) == 0 && c.user_id == 42
       && strcmp(c.role, "SELLER") == 0 && c.exp == NOW + 300,
       "verifies: sub, role, exp");

    ok(cm_jwt_sign_kid(tok, sizeof(tok), KEY, KEYLEN, 0, 42, "SELLER",
                       "00", NOW, NOW + 1) == 0, "kid 0 refused");
    ok(cm_jwt_sign_kid(tok, sizeof(tok), KEY, KEYLEN, 1, 42, "SELLER",
                       "0\"x", NOW, NOW + 1) == 0, "a jti to escape refused");
    ok(cm_jwt_sign_kid(tok, sizeof(tok), KEY, KEYLEN, 1, 42, "bad role",
                       "00", NOW, NOW + 1) == 0, "a bad role refused");

    n = cm_jwt_sign(tok, sizeof(tok), KEY, KEYLEN, 42, NULL, 0, NOW + 60);
    ok(cm_jwt_kid((const unsigned char *) tok, n, &kid, &reason) == 0
       && kid == 0, "no kid: 0");
    ok(cm_jwt_kid((const unsigned char *) "e30", 3, &kid, &reason) == -1,
       "no dot: malformed");
    n = raw_token(tok, "{\"alg\":\"none\",\"kid\":\"1\"}", "{}", "");
    ok(cm_jwt_kid((const unsigned char *) tok, n, &kid, &reason) == -1
       && strcmp(reason, "unsupported alg") == 0, "alg none: refused");
}
