/*
 * Unit tests of cm_sig: Stripe-style callback signatures (t=...,v1=...)
 * and card-number masking.  TAP output.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "cm_sig.h"
#include "tap.h"


/* a string literal as (buf, len) */
#define S(lit)  (const unsigned char *) (lit), sizeof(lit) - 1

#define SECRET   "whsec_unit_test_secret"
#define SEC      (const unsigned char *) SECRET, sizeof(SECRET) - 1
#define OTHER    (const unsigned char *) "whsec_other", 11
#define PAYLOAD                                                               \
    "{\"transactionKey\":\"20261121:TR:9577c5\",\"status\":\"SUCCESS\"}"
#define PAY      (const unsigned char *) PAYLOAD, sizeof(PAYLOAD) - 1
#define NOW      1700000000
#define TOL      300

/* HMAC-SHA256(SECRET, "1700000000." PAYLOAD), from Python's hmac module */
#define MAC_NOW  \
    "37f608d2bd03cf0c150ebd3f6fd8a073758fcb00f3d1a4c85e4a12caa030154c"

/* HMAC-SHA256(SECRET, "0.") */
#define MAC_ZERO \
    "fb0429f5c7cb39ef0e08cfdbdfe3cc715772018c6d31f60bf2ac6738ba69f525"

#define ZEROS64  \
    "0000000000000000000000000000000000000000000000000000000000000000"


static int verify(const char *header, const unsigned char *payload,
    size_t plen, int64_t now, int64_t tol, const char **reason);
static void accepted(const char *header, const char *desc);
static void rejected(const char *header, const char *want, const char *desc);
static size_t hmac_hex(char *dst, const unsigned char *secret, size_t slen,
    const char *signed_payload);
static void mask_is(const char *src, const char *want, const char *desc);
static void test_make(void);
static void test_verify(void);
static void test_tolerance(void);
static void test_multiple(void);
static void test_tampered(void);
static void test_malformed(void);
static void test_mask(void);
static void test_mask_edges(void);


int
main(void)
{
    test_make();
    test_verify();
    test_tolerance();
    test_multiple();
    test_tampered();
    test_malformed();
    test_mask();
    test_mask_edges();

    return tap_done();
}


static int
verify(const char *header, const unsigned char *payload, size_t plen,
    int64_t now, int64_t tol, const char **reason)
{
    return cm_sig_verify((const unsigned char *) header, strlen(header), SEC,
                         payload, plen, now, tol, reason);
}


/* header checked against PAYLOAD at NOW with tolerance TOL */

static void
accepted(const char *header, const char *desc)
{
    const char  *reason;

    reason = "unset";
    ok(verify(header, PAY, NOW, TOL, &reason) == 0 && reason == NULL,
       "%s", desc);

    if (reason != NULL) {
        tap_diag("reason: %s", reason);
    }
}


static void
rejected(const char *header, const char *want, const char *desc)
{
    int          rc;
    const char  *reason;

    reason = NULL;
    rc = verify(header, PAY, NOW, TOL, &reason);

    ok(rc == -1 && reason != NULL && strcmp(reason, want) == 0,
       "%s: %s", desc, want);

    if (rc != -1 || reason == NULL || strcmp(reason, want) != 0) {
        tap_diag("rc %d, reason %s", rc, reason != NULL ? reason : "NULL");
    }
}


/* an independent HMAC: OpenSSL's one-shot HMAC() over a contiguous text */

static size_t
hmac_hex(char *dst, const unsigned char *secret, size_t slen,
    const char *signed_payload)
{
    unsigned int   i, n;
    unsigned char  mac[EVP_MAX_MD_SIZE];

    n = 0;
    HMAC(EVP_sha256(), secret, (int) slen,
         (const unsigned char *) signed_payload, strlen(signed_payload), mac,
         &n);

    for (i = 0; i < n; i++) {
        sprintf(dst + 2 * i, "%02x", mac[i]);
    }

    return 2 * n;
}


static void
mask_is(const char *src, const char *want, const char *desc)
{
    char    dst[512];
    size_t  n;

    memset(dst, 'X', sizeof(dst));
    n = cm_mask_card_numbers(dst, sizeof(dst), (const unsigned char *) src,
                             strlen(src));

    ok(n == strlen(src) && strcmp(dst, want) == 0, "mask %s: '%s'", desc,
       src);

    if (strcmp(dst, want) != 0) {
        tap_diag("     got: '%s'", dst);
        tap_diag("expected: '%s'", want);
    }
}


static void
test_make(void)
{
    char    h[CM_SIG_HEADER_LEN], want[256], hex[65];
    size_t  n;

    n = cm_sig_make(h, sizeof(h), SEC, NOW, PAY);
    is_str(h, "t=1700000000,v1=" MAC_NOW, "make: known vector");
    is_int(n, strlen(h), "make: returns the length");

    snprintf(want, sizeof(want), "1700000000.%s", PAYLOAD);
    hmac_hex(hex, SEC, want);
    ok(strcmp(h + 16, hex) == 0, "make: equals the one-shot HMAC()");

    n = cm_sig_make(h, sizeof(h), SEC, 0, (const unsigned char *) "", 0);
    is_str(h, "t=0,v1=" MAC_ZERO, "make: t 0, empty payload");

    /* the longest header fits CM_SIG_HEADER_LEN exactly */
    n = cm_sig_make(h, sizeof(h), SEC, INT64_C(999999999999999999), PAY);
    ok(n == CM_SIG_HEADER_LEN - 1 && h[n] == '\0',
       "make: 18-digit t fills CM_SIG_HEADER_LEN");

    is_int(cm_sig_make(h, 16 + 64, SEC, NOW, PAY), 0,
           "make: no room for the NUL: 0");
    is_int(cm_sig_make(h, 16 + 64 + 1, SEC, NOW, PAY), 16 + 64,
           "make: exactly enough room");
    is_int(cm_sig_make(h, 0, SEC, NOW, PAY), 0, "make: dstlen 0");
    is_int(cm_sig_make(h, sizeof(h), (const unsigned char *) "", 0, NOW, PAY),
           0, "make: empty secret refused");
    is_int(cm_sig_make(h, sizeof(h), SEC, -1, PAY), 0,
           "make: negative t refused");
    is_int(cm_sig_make(h, sizeof(h), SEC, INT64_C(1000000000000000000), PAY),
           0, "make: 19-digit t refused");
    is_int(cm_sig_make(h, sizeof(h), SEC, INT64_MAX, PAY), 0,
           "make: t INT64_MAX refused");

    /* what make writes, verify accepts */
    cm_sig_make(h, sizeof(h), SEC, NOW - 10, PAY);
    accepted(h, "make then verify");

    {
        unsigned char  *big;
        size_t          i, len;
        const char     *reason;

        len = 1 << 20;
        big = malloc(len);
        if (big == NULL) {
            ok(0, "malloc");
            return;
        }

        for (i = 0; i < len; i++) {
            big[i] = (unsigned char) (i * 7);
        }

        cm_sig_make(h, sizeof(h), SEC, NOW, big, len);
        ok(cm_sig_verify((const unsigned char *) h, strlen(h), SEC, big, len,
                         NOW, TOL, &reason) == 0,
           "make then verify: 1 MB binary payload");

        big[len / 2] ^= 1;
        ok(cm_sig_verify((const unsigned char *) h, strlen(h), SEC, big, len,
                         NOW, TOL, &reason) == -1
           && strcmp(reason, "bad signature") == 0,
           "1 MB payload with one bit flipped: bad signature");

        free(big);
    }
}


static void
test_verify(void)
{
    char         h[256], hex[65], signed_payload[256];
    const char  *reason;

    accepted("t=1700000000,v1=" MAC_NOW, "verify: known vector");
    accepted("v1=" MAC_NOW ",t=1700000000", "verify: v1 before t");
    accepted("t=1700000000, v1=" MAC_NOW, "verify: a space after the comma");
    accepted(" t=1700000000 ,\tv1=" MAC_NOW "\t",
             "verify: spaces and tabs around entries");
    accepted("t=1700000000,v1=37F608D2BD03CF0C150EBD3F6FD8A073758FCB00F3D1A4C"
             "85E4A12CAA030154C", "verify: upper-case hex");

    ok(verify("t=1700000000,v1=" MAC_NOW, PAY, NOW, TOL, NULL) == 0,
       "verify: reason may be NULL");
    ok(verify("t=1700000000,v1=" ZEROS64, PAY, NOW, TOL, NULL) == -1,
       "verify: reason may be NULL on failure");

    /* t is signed as written, leading zeros and all */
    snprintf(signed_payload, sizeof(signed_payload), "0001700000000.%s",
             PAYLOAD);
    hmac_hex(hex, SEC, signed_payload);
    snprintf(h, sizeof(h), "t=0001700000000,v1=%s", hex);
    accepted(h, "verify: leading zeros in t, signed as written");

    snprintf(h, sizeof(h), "t=1700000000,v1=%s", hex);
    rejected(h, "bad signature", "verify: the same MAC for t without zeros");

    /* an empty payload */
    ok(cm_sig_verify(S("t=0,v1=" MAC_ZERO), SEC, (const unsigned char *) "",
                     0, 0, 0, &reason) == 0, "verify: empty payload");
    ok(cm_sig_verify(S("t=0,v1=" MAC_ZERO), SEC, NULL, 0, 0, 0, &reason)
       == 0, "verify: NULL empty payload");

    /* the secret */
    ok(cm_sig_verify(S("t=1700000000,v1=" MAC_NOW), OTHER, PAY, NOW, TOL,
                     &reason) == -1 && strcmp(reason, "bad signature") == 0,
       "verify: another secret: bad signature");
    ok(cm_sig_verify(S("t=1700000000,v1=" MAC_NOW),
                     (const unsigned char *) "", 0, PAY, NOW, TOL, &reason)
       == -1 && strcmp(reason, "bad signature") == 0,
       "verify: empty secret: bad signature");
}


static void
test_tolerance(void)
{
    const char  *reason;
    const char  *h = "t=1700000000,v1=" MAC_NOW;

    ok(verify(h, PAY, NOW + TOL, TOL, &reason) == 0,
       "tolerance: t + tolerance accepted");
    ok(verify(h, PAY, NOW + TOL + 1, TOL, &reason) == -1
       && strcmp(reason, "timestamp outside tolerance") == 0,
       "tolerance: t + tolerance + 1 rejected (replay)");
    ok(verify(h, PAY, NOW - TOL, TOL, &reason) == 0,
       "tolerance: t - tolerance accepted (sender clock ahead)");
    ok(verify(h, PAY, NOW - TOL - 1, TOL, &reason) == -1
       && strcmp(reason, "timestamp outside tolerance") == 0,
       "tolerance: t - tolerance - 1 rejected (from the future)");

    ok(verify(h, PAY, NOW, 0, &reason) == 0, "tolerance 0: exact t accepted");
    ok(verify(h, PAY, NOW + 1, 0, &reason) == -1, "tolerance 0: t + 1");
    ok(verify(h, PAY, NOW - 1, 0, &reason) == -1, "tolerance 0: t - 1");
    ok(verify(h, PAY, NOW + 1, -100, &reason) == -1
       && strcmp(reason, "timestamp outside tolerance") == 0,
       "tolerance negative acts as 0");
    ok(verify(h, PAY, NOW, -100, &reason) == 0,
       "tolerance negative: exact t accepted");

    /* extremes: no overflow (UBSan watches) */
    ok(verify(h, PAY, INT64_MAX, TOL, &reason) == -1
       && strcmp(reason, "timestamp outside tolerance") == 0,
       "tolerance: now INT64_MAX");
    ok(verify(h, PAY, INT64_MIN, TOL, &reason) == -1
       && strcmp(reason, "timestamp outside tolerance") == 0,
       "tolerance: now INT64_MIN");
    ok(verify(h, PAY, INT64_MIN, INT64_MAX, &reason) == -1
       && strcmp(reason, "timestamp outside tolerance") == 0,
       "tolerance INT64_MAX, now INT64_MIN: more than 2^63 apart");
    ok(verify(h, PAY, INT64_MIN + NOW + 1, INT64_MAX, &reason) == 0,
       "tolerance INT64_MAX, now INT64_MIN + t: exactly 2^63 - 1 apart");
    ok(verify(h, PAY, 0, INT64_MAX, &reason) == 0,
       "tolerance INT64_MAX, now 0");

    /* the signature is checked first: a forged old header is forged */
    ok(verify("t=1600000000,v1=" MAC_NOW, PAY, NOW, TOL, &reason) == -1
       && strcmp(reason, "bad signature") == 0,
       "an old t with a signature not for it: bad signature");
}


static void
test_multiple(void)
{
    char  h[512], a[CM_SIG_HEADER_LEN], b[CM_SIG_HEADER_LEN];

    accepted("t=1700000000,v1=" ZEROS64 ",v1=" MAC_NOW,
             "multiple: the second v1 matches");
    accepted("t=1700000000,v1=" MAC_NOW ",v1=" ZEROS64,
             "multiple: the first v1 matches");
    accepted("t=1700000000,v1=" ZEROS64 ",v1=abc,v1=" MAC_NOW ",v1=zz",
             "multiple: malformed v1 entries beside a good one");
    accepted("t=1700000000,v0=" ZEROS64 ",v1=" MAC_NOW,
             "multiple: a v0 entry is ignored");
    accepted("t=1700000000,v1=" MAC_NOW ",foo=bar,v2=x",
             "multiple: unknown keys ignored");
    rejected("t=1700000000,v0=" MAC_NOW, "malformed",
             "multiple: the right MAC under v0 only");
    rejected("t=1700000000,v1=" ZEROS64 ",v1=" ZEROS64, "bad signature",
             "multiple: no v1 matches");

    /* a sender rolling its secret signs with both */
    cm_sig_make(a, sizeof(a), SEC, NOW, PAY);
    cm_sig_make(b, sizeof(b), OTHER, NOW, PAY);
    snprintf(h, sizeof(h), "%s,%s", b, strchr(a, ',') + 1);
    accepted(h, "multiple: old and new secret, verified with the new");
    ok(cm_sig_verify((const unsigned char *) h, strlen(h), OTHER, PAY, NOW,
                     TOL, NULL) == 0,
       "multiple: old and new secret, verified with the old");
}


static void
test_tampered(void)
{
    char         payload[] = PAYLOAD;
    const char  *reason;
    const char  *h = "t=1700000000,v1=" MAC_NOW;

    payload[sizeof(payload) - 4] = 'X';
    ok(verify(h, (unsigned char *) payload, sizeof(payload) - 1, NOW, TOL,
              &reason) == -1 && strcmp(reason, "bad signature") == 0,
       "tampered: one byte of the payload changed");

    ok(verify(h, PAY, NOW, TOL, &reason) == 0, "tampered: the original ok");

    ok(verify(h, (const unsigned char *) PAYLOAD, sizeof(PAYLOAD) - 2, NOW,
              TOL, &reason) == -1 && strcmp(reason, "bad signature") == 0,
       "tampered: payload truncated by one byte");

    ok(verify(h, S(PAYLOAD " "), NOW, TOL, &reason) == -1
       && strcmp(reason, "bad signature") == 0,
       "tampered: a byte appended");

    rejected("t=1700000001,v1=" MAC_NOW, "bad signature",
             "tampered: t changed");
    rejected("t=1700000000,v1=" ZEROS64, "bad signature",
             "tampered: another MAC");
    rejected("t=1700000000,v1="
             "37f608d2bd03cf0c150ebd3f6fd8a073758fcb00f3d1a4c85e4a12caa030154d",
             "bad signature", "tampered: last hex digit changed");
    rejected("t=1700000000,v1="
             "37f608d2bd03cf0c150ebd3f6fd8a073758fcb00f3d1a4c85e4a12caa03015",
             "bad signature", "tampered: MAC one byte short");
    rejected("t=1700000000,v1=" MAC_NOW "00", "bad signature",
             "tampered: MAC one byte long");
    rejected("t=1700000000,v1="
             "37f608d2bd03cf0c150ebd3f6fd8a073758fcb00f3d1a4c85e4a12caa030154g",
             "bad signature", "tampered: a non-hex digit");
    rejected("t=1700000000,v1=", "bad signature", "tampered: empty v1");
}


static void
test_malformed(void)
{
    const char  *reason;

    rejected("", "malformed", "malformed: empty");
    rejected("garbage", "malformed", "malformed: no '='");
    rejected("v1=" MAC_NOW, "malformed", "malformed: no t");
    rejected("t=1700000000", "malformed", "malformed: no v1");
    rejected("t=1700000000,t=1700000000,v1=" MAC_NOW, "malformed",
             "malformed: t twice");
    rejected("t=,v1=" MAC_NOW, "malformed", "malformed: empty t");
    rejected("t=-1700000000,v1=" MAC_NOW, "malformed", "malformed: signed t");
    rejected("t=+1700000000,v1=" MAC_NOW, "malformed", "malformed: plus t");
    rejected("t=1700000000.5,v1=" MAC_NOW, "malformed",
             "malformed: fractional t");
    rejected("t=0x65,v1=" MAC_NOW, "malformed", "malformed: hex t");
    rejected("t=1234567890123456789,v1=" MAC_NOW, "malformed",
             "malformed: 19-digit t");
    rejected("t= 1700000000,v1=" MAC_NOW, "malformed",
             "malformed: a space inside t's value");
    rejected("t=1700000000,v1=" MAC_NOW ",", "malformed",
             "malformed: trailing comma");
    rejected(",t=1700000000,v1=" MAC_NOW, "malformed",
             "malformed: leading comma");
    rejected("t=1700000000,,v1=" MAC_NOW, "malformed",
             "malformed: empty entry");
    rejected("t=1700000000,=x,v1=" MAC_NOW, "malformed",
             "malformed: empty key");
    rejected("t=1700000000;v1=" MAC_NOW, "malformed",
             "malformed: ';' is no separator");
    rejected("T=1700000000,v1=" MAC_NOW, "malformed",
             "malformed: keys are case-sensitive");

    ok(cm_sig_verify(NULL, 0, SEC, PAY, NOW, TOL, &reason) == -1
       && strcmp(reason, "malformed") == 0, "malformed: NULL header");

    /* NUL bytes inside the header */
    ok(cm_sig_verify(S("t=1700000000\0,v1=" MAC_NOW), SEC, PAY, NOW, TOL,
                     &reason) == -1 && strcmp(reason, "malformed") == 0,
       "malformed: a NUL in t");
}


static void
test_mask(void)
{
    mask_is("1234-5678-9012-3456", "****-****-****-3456", "dashes");
    mask_is("1234 5678 9012 3456", "**** **** **** 3456", "spaces");
    mask_is("4111111111111111", "************1111", "16 digits");
    mask_is("3782-822463-10005", "****-******-*0005", "amex 15 digits");
    mask_is("123456789012", "********9012", "12 digits");
    mask_is("12345678901", "12345678901", "11 digits: kept");
    mask_is("1234567890123456789", "***************6789", "19 digits");
    mask_is("12345678901234567890", "12345678901234567890",
            "20 digits: kept");
    mask_is("1234-5678-901", "1234-5678-901", "11 digits with dashes: kept");

    mask_is("{\"orderId\":\"1351039135\",\"cardType\":\"SAMSUNG\","
            "\"cardNo\":\"1234-5678-9814-1451\",\"amount\":5000,"
            "\"callbackUrl\":\"http://localhost:8080/api/v1/payments/cb\"}",
            "{\"orderId\":\"1351039135\",\"cardType\":\"SAMSUNG\","
            "\"cardNo\":\"****-****-****-1451\",\"amount\":5000,"
            "\"callbackUrl\":\"http://localhost:8080/api/v1/payments/cb\"}",
            "a PG request body");
    mask_is("{\"transactionKey\":\"20261121:TR:9577c5\","
            "\"cardNo\":\"1234-5678-9814-1451\",\"status\":\"SUCCESS\"}",
            "{\"transactionKey\":\"20261121:TR:9577c5\","
            "\"cardNo\":\"****-****-****-1451\",\"status\":\"SUCCESS\"}",
            "a PG response body: the transaction key kept");
    mask_is("a 4111111111111111 b 5500-0000-0000-0004 c",
            "a ************1111 b ****-****-****-0004 c", "two cards");
    mask_is("x4111111111111111y", "x************1111y",
            "digits between letters");
}


static void
test_mask_edges(void)
{
    char    buf[64], small[8];
    size_t  n;

    mask_is("1234--5678-9012-3456", "1234--****-****-3456",
            "two separators end a run");
    mask_is("1234-5678-9012-3456-", "****-****-****-3456-",
            "a trailing separator is kept");
    mask_is("-1234-5678-9012-3456", "-****-****-****-3456",
            "a leading separator is kept");
    mask_is("1234.5678.9012.3456", "1234.5678.9012.3456",
            "dots do not join digits");
    mask_is("1234-5678 9012-3456", "****-**** ****-3456",
            "dashes and spaces mixed");
    mask_is("12-34-56-78-90-12-34", "**-**-**-**-**-12-34",
            "any grouping");
    mask_is("1700000000000", "*********0000",
            "a 13-digit millisecond time is masked too");
    mask_is("", "", "empty");
    mask_is("no digits here", "no digits here", "no digits");

    /* dst too small: 0 and "" */
    memset(small, 'X', sizeof(small));
    n = cm_mask_card_numbers(small, sizeof(small),
                             (const unsigned char *) "12345678", 8);
    ok(n == 0 && small[0] == '\0', "mask: dstlen == len: 0 and empty dst");

    n = cm_mask_card_numbers(small, sizeof(small),
                             (const unsigned char *) "1234567", 7);
    ok(n == 7 && strcmp(small, "1234567") == 0, "mask: dstlen == len + 1");

    n = cm_mask_card_numbers(small, 0, (const unsigned char *) "1", 1);
    is_int(n, 0, "mask: dstlen 0");

    /* in place */
    strcpy(buf, "card 1234-5678-9012-3456 ok");
    n = cm_mask_card_numbers(buf, sizeof(buf), (unsigned char *) buf,
                             strlen(buf));
    ok(n == 27 && strcmp(buf, "card ****-****-****-3456 ok") == 0,
       "mask: in place");

    /* NUL bytes are data */
    n = cm_mask_card_numbers(buf, sizeof(buf),
                             S("4111111111111111\0" "4111111111111111"));
    ok(n == 33 && memcmp(buf, "************1111\0************1111", 34) == 0,
       "mask: a NUL between two cards");
}
