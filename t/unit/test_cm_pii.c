/*
 * Unit tests of cm_pii: AES-256-GCM known answers, the v1 text format,
 * key rotation, associated data, tampering, malformed texts, the key-file
 * parser and the blind index.  TAP output.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_jwt.h"
#include "cm_pii.h"
#include "tap.h"


/* a string literal as (buf, len) */
#define S(lit)  (const unsigned char *) (lit), sizeof(lit) - 1

#define KEY1  "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define KEY2  "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
#define KEY3  "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f"

#define EMAIL      "alice@example.com"
#define AAD        "users.email:42"


static size_t unhex(unsigned char *dst, const char *hex);
static void gcm_kat(const char *key, const char *iv, const char *aad,
    const char *pt, const char *ct, const char *tag, const char *desc);
static void keyring(cm_keyring_t *kr, const char *text);
static void parse_fails(const char *text, const char *want, uint32_t line,
    const char *desc);
static int decrypt(const cm_keyring_t *kr, const char *aad,
    const char *text, unsigned char *out, size_t *outlen, int *stale,
    const char **reason);
static void rejected(const cm_keyring_t *kr, const char *text,
    const char *want, const char *desc);
static void test_gcm_kat(void);
static void test_keyring(void);
static void test_keyring_errors(void);
static void test_roundtrip(void);
static void test_format(void);
static void test_rotation(void);
static void test_aad(void);
static void test_tampered(void);
static void test_malformed(void);
static void test_limits(void);
static void test_blind_index(void);
static void test_helpers(void);


int
main(void)
{
    test_gcm_kat();
    test_keyring();
    test_keyring_errors();
    test_roundtrip();
    test_format();
    test_rotation();
    test_aad();
    test_tampered();
    test_malformed();
    test_limits();
    test_blind_index();
    test_helpers();

    return tap_done();
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
gcm_kat(const char *key, const char *iv, const char *aad, const char *pt,
    const char *ct, const char *tag, const char *desc)
{
    size_t         aadlen, ptlen, half;
    unsigned char  k[32], n[12], a[64], p[64], c[64], t[16], got[64];
    unsigned char  gott[16];

    unhex(k, key);
    unhex(n, iv);
    aadlen = unhex(a, aad);
    ptlen = unhex(p, pt);
    unhex(c, ct);
    unhex(t, tag);

    ok(cm_aes256gcm_seal(k, n, a, aadlen, NULL, 0, p, ptlen, got, gott) == 0
       && memcmp(got, c, ptlen) == 0 && memcmp(gott, t, 16) == 0,
       "seal: %s", desc);

    ok(cm_aes256gcm_open(k, n, a, aadlen, NULL, 0, c, ptlen, t, got) == 0
       && memcmp(got, p, ptlen) == 0, "open: %s", desc);

    /* the associated data in two parts is their concatenation */
    half = aadlen / 2;
    ok(cm_aes256gcm_open(k, n, a, half, a + half, aadlen - half, c, ptlen, t,
                         got) == 0, "open, aad in two parts: %s", desc);

    t[15] ^= 0x80;
    memset(got, 0xee, sizeof(got));
    ok(cm_aes256gcm_open(k, n, a, aadlen, NULL, 0, c, ptlen, t, got) == -1
       && (ptlen == 0 || got[0] == 0), "open, altered tag: %s", desc);
}


/* "Galois/Counter Mode of Operation", McGrew and Viega, appendix B; and
 * NIST CAVP gcmEncryptExtIV256 */

static void
test_gcm_kat(void)
{
    gcm_kat("0000000000000000000000000000000000000000000000000000000000000000",
            "000000000000000000000000", "", "", "",
            "530f8afbc74536b9a963b4f1c4cb738b", "test case 13 (empty)");

    gcm_kat("0000000000000000000000000000000000000000000000000000000000000000",
            "000000000000000000000000", "",
            "00000000000000000000000000000000",
            "cea7403d4d606b6e074ec5d3baf39d18",
            "d0d1c8a799996bf0265b98b5d48ab919", "test case 14");

    gcm_kat("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
            "cafebabefacedbaddecaf888", "",
            "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
            "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255",
            "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
            "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad",
            "b094dac5d93471bdec1a502270e3cc6c", "test case 15");

    gcm_kat("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
            "cafebabefacedbaddecaf888",
            "feedfacedeadbeeffeedfacedeadbeefabaddad2",
            "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
            "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
            "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
            "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
            "76fc6ece0f4e1768cddf8853bb2d551b", "test case 16 (with aad)");

    gcm_kat("83688deb4af8007f9b713b47cfa6c73e35ea7a3aa4ecdb414dded03bf7a0fd3a",
            "0b459724904e010a46901cf3",
            "794a14ccd178c8ebfd1379dc704c5e208f9d8424",
            "33d893a2114ce06fc15d55e454cf90c3",
            "cc66bee423e3fcd4c0865715e9586696",
            "0fb291bd3dba94a1dfd8b286cfb97ac5", "CAVP, 128-bit text, aad");
}


static void
keyring(cm_keyring_t *kr, const char *text)
{
    const char  *err;

    if (cm_keyring_parse(text, strlen(text), kr, &err) != 0) {
        tap_diag("key file does not parse: %s, line %u", err,
                 (unsigned) kr->line);
        abort();
    }
}


static void
test_keyring(void)
{
    const char      *err;
    unsigned char    k1[32], k2[32];
    cm_keyring_t     kr;
    const cm_key_t  *k;
    static const char  file[] =
        "# PII keys: kid, 64 hex digits, one current\r\n"
        "\r\n"
        "1 " KEY1 "\r\n"
        "   # retired soon\n"
        "\t7\t" KEY2 "   current   # since 2026-01\n"
        "65535 " KEY3;

    unhex(k1, KEY1);
    unhex(k2, KEY2);

    err = "unset";
    ok(cm_keyring_parse(file, sizeof(file) - 1, &kr, &err) == 0
       && err == NULL, "key file with comments, CRLF, tabs, no final newline");
    is_int(kr.nkeys, 3, "three keys");
    is_int(kr.current, 1, "the second is current");
    is_int(kr.line, 0, "line 0 after success");

    k = cm_keyring_current(&kr);
    ok(k != NULL && k->kid == 7 && memcmp(k->key, k2, 32) == 0,
       "current key: kid 7, its bytes");

    k = cm_keyring_find(&kr, 1);
    ok(k != NULL && memcmp(k->key, k1, 32) == 0, "find kid 1");
    ok(cm_keyring_find(&kr, 65535) != NULL, "find kid 65535");
    ok(cm_keyring_find(&kr, 2) == NULL, "no kid 2");

    keyring(&kr, "3 " "ABCDEF0123456789abcdef0123456789ABCDEF0123456789abcdef"
                 "0123456789 current\n");
    ok(kr.keys[0].key[0] == 0xab && kr.keys[0].key[31] == 0x89,
       "hex digits of either case");

    cm_keyring_wipe(&kr);
    ok(kr.nkeys == 0 && kr.keys[0].key[0] == 0 && kr.keys[0].kid == 0,
       "wipe zeroes the keyring");
    ok(cm_keyring_current(&kr) == NULL, "an empty keyring has no current");
}


static void
parse_fails(const char *text, const char *want, uint32_t line,
    const char *desc)
{
    size_t        i;
    int           rc, clean;
    const char   *err;
    cm_keyring_t  kr;

    err = NULL;
    rc = cm_keyring_parse(text, strlen(text), &kr, &err);

    clean = (kr.nkeys == 0);

    for (i = 0; i < sizeof(kr.keys); i++) {
        if (((unsigned char *) kr.keys)[i] != 0) {
            clean = 0;
        }
    }

    ok(rc == -1 && err != NULL && strcmp(err, want) == 0 && kr.line == line
       && clean, "%s: %s, line %u", desc, want, (unsigned) line);

    if (rc != -1 || err == NULL || strcmp(err, want) != 0 || kr.line != line) {
        tap_diag("rc %d, err %s, line %u", rc, err != NULL ? err : "NULL",
                 (unsigned) kr.line);
    }
}


static void
test_keyring_errors(void)
{
    int           i;
    char          big[CM_KEYRING_MAX * 80 + 200], *p;
    const char   *err;
    cm_keyring_t  kr;

    parse_fails("", "no keys", 0, "empty file");
    parse_fails("# nothing\n\n   \n", "no keys", 0, "only comments");
    parse_fails("1 " KEY1 "\n2 " KEY2 "\n", "no current key", 0,
                "no current key");
    parse_fails("1 " KEY1 " current\n2 " KEY2 " current\n",
                "more than one current key", 2, "two current keys");
    parse_fails("0 " KEY1 " current\n", "bad key id", 1, "kid 0");
    parse_fails("# c\n01 " KEY1 " current\n", "bad key id", 2,
                "kid with a leading zero");
    parse_fails("65536 " KEY1 " current\n", "bad key id", 1, "kid 65536");
    parse_fails("-1 " KEY1 " current\n", "bad key id", 1, "kid -1");
    parse_fails("k1 " KEY1 " current\n", "bad key id", 1, "kid k1");
    parse_fails("1\n", "bad key", 1, "no key");
    parse_fails("1 " KEY1 "0 current\n", "bad key", 1, "65 hex digits");
    parse_fails("1 000102030405060708090a0b0c0d0e0f"
                "101112131415161718191a1b1c1d1e1 current\n", "bad key", 1,
                "63 hex digits");
    parse_fails("1 000102030405060708090a0b0c0d0e0f"
                "101112131415161718191a1b1c1d1e1g current\n", "bad key", 1,
                "a non-hex digit");
    parse_fails("1 0x0102030405060708090a0b0c0d0e0f"
                "101112131415161718191a1b1c1d1e1f current\n", "bad key", 1,
                "a 0x prefix");
    parse_fails("1 " KEY1 " primary\n", "unexpected text after the key", 1,
                "a word other than current");
    parse_fails("1 " KEY1 " current yes\n", "unexpected text after the key", 1,
                "text after current");
    parse_fails("1 " KEY1 " CURRENT\n", "unexpected text after the key", 1,
                "CURRENT in capitals");
    parse_fails("1 " KEY1 " current\n1 " KEY2 "\n", "duplicate key id", 2,
                "duplicate kid");
    parse_fails("1 " KEY1 " current\n2 " KEY1 "\n", "same key under two ids",
                2, "the same key twice");
    parse_fails("1 0000000000000000000000000000000000000000000000000000000000"
                "000000 current\n", "all-zero key", 1, "an all-zero key");

    p = big;
    for (i = 1; i <= CM_KEYRING_MAX + 1; i++) {
        p += sprintf(p, "%d %02x%s%s\n", i, i, &KEY1[2],
                     i == 1 ? " current" : "");
    }

    parse_fails(big, "too many keys", CM_KEYRING_MAX + 1, "17 keys");

    ok(cm_keyring_parse("1 " KEY1 " current\n\0002 " KEY2 "\n", 2 + 64 + 9 + 1
                        + 2 + 64 + 1, &kr, &err) == -1
       && strcmp(err, "bad key file") == 0, "a NUL byte in the file");

    p = strstr(big, "\n17 ");
    *++p = '\0';
    ok(cm_keyring_parse(big, strlen(big), &kr, &err) == 0 && kr.nkeys == 16,
       "16 keys parse");
}


static int
decrypt(const cm_keyring_t *kr, const char *aad, const char *text,
    unsigned char *out, size_t *outlen, int *stale, const char **reason)
{
    return cm_pii_decrypt(out, 4096, outlen, kr, (const unsigned char *) aad,
                          strlen(aad), text, strlen(text), stale, reason);
}


static void
rejected(const cm_keyring_t *kr, const char *text, const char *want,
    const char *desc)
{
    int            rc;
    size_t         n;
    const char    *reason;
    unsigned char  out[4096];

    reason = NULL;
    n = 99;
    rc = decrypt(kr, AAD, text, out, &n, NULL, &reason);

    ok(rc == -1 && n == 0 && reason != NULL && strcmp(reason, want) == 0,
       "%s: %s", desc, want);

    if (rc != -1 || reason == NULL || strcmp(reason, want) != 0) {
        tap_diag("rc %d, reason %s, text '%s'", rc,
                 reason != NULL ? reason : "NULL", text);
    }
}


static void
test_roundtrip(void)
{
    int            stale;
    char           a[CM_PII_TEXT_LEN(64)], b[CM_PII_TEXT_LEN(64)];
    size_t         n, m;
    const char    *reason;
    cm_keyring_t   kr;
    unsigned char  out[4096];

    keyring(&kr, "1 " KEY1 "\n2 " KEY2 " current\n");

    n = cm_pii_encrypt(a, sizeof(a), &kr, S(AAD), S(EMAIL));
    ok(n > 0 && n == strlen(a), "encrypt an email: %s", a);
    ok(strncmp(a, "v1.2.", 5) == 0, "under the current key, kid 2");
    is_int(n, 5 + 16 + 1 + 44, "v1.2. + 16 nonce + . + 44 (17 + 16 bytes)");
    ok(strstr(a, EMAIL) == NULL && strstr(a, "alice") == NULL,
       "no plaintext in the text");

    stale = -1;
    reason = "unset";
    ok(decrypt(&kr, AAD, a, out, &m, &stale, &reason) == 0 && reason == NULL,
       "decrypts");
    ok(m == sizeof(EMAIL) - 1 && memcmp(out, EMAIL, m) == 0,
       "  to the email");
    is_int(stale, 0, "  under the current key: not stale");

    ok(cm_pii_encrypt(b, sizeof(b), &kr, S(AAD), S(EMAIL)) == n
       && strcmp(a, b) != 0 && memcmp(a, b, 5 + 16) != 0,
       "the same value again: another nonce, another text");

    n = cm_pii_encrypt(a, sizeof(a), &kr, S(AAD), NULL, 0);
    ok(n == 5 + 16 + 1 + 22, "encrypt the empty value: %s", a);
    ok(decrypt(&kr, AAD, a, out, &m, NULL, NULL) == 0 && m == 0,
       "  decrypts to empty");

    n = cm_pii_encrypt(a, sizeof(a), &kr, NULL, 0, S("+82-10-1234-5678"));
    ok(n > 0 && cm_pii_decrypt(out, sizeof(out), &m, &kr, NULL, 0, a, n,
                               NULL, NULL) == 0
       && m == 16 && memcmp(out, "+82-10-1234-5678", 16) == 0,
       "no aad at all round-trips");

    n = cm_pii_encrypt(a, sizeof(a), &kr, S(AAD), S("nul\0and\xff\xfe"));
    ok(n > 0 && decrypt(&kr, AAD, a, out, &m, NULL, NULL) == 0 && m == 9
       && memcmp(out, "nul\0and\xff\xfe", 9) == 0, "binary values round-trip");

    ok(cm_pii_decrypt(out, 9, &m, &kr, S(AAD), a, n, NULL, NULL) == 0
       && m == 9, "dst of exactly the plaintext's length");
}


/* the text format, built by hand from the raw cipher */

static void
test_format(void)
{
    char           text[200], *p;
    size_t         n, m;
    cm_keyring_t   kr;
    unsigned char  key[32], nonce[12], sealed[64], out[64];

    keyring(&kr, "9 " KEY3 " current\n");

    unhex(key, KEY3);
    memcpy(nonce, "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b", 12);

    ok(cm_aes256gcm_seal(key, nonce, S("v1.9."), S(AAD), S(EMAIL), sealed,
                         sealed + 17) == 0, "seal with aad \"v1.9.\" AAD");

    p = text;
    p += sprintf(p, "v1.9.");
    p += cm_base64url_encode(p, 32, nonce, 12);
    *p++ = '.';
    p += cm_base64url_encode(p, 64, sealed, 17 + 16);
    *p = '\0';

    ok(strncmp(text, "v1.9.AAECAwQFBgcICQoL.", 22) == 0,
       "nonce in base64url: %s", text);
    ok(decrypt(&kr, AAD, text, out, &m, NULL, NULL) == 0 && m == 17
       && memcmp(out, EMAIL, 17) == 0,
       "cm_pii_decrypt reads v1.<kid>.<nonce>.<ct+tag>, aad v1.<kid>.+aad");

    n = strlen(text);
    ok(cm_pii_decrypt(out, sizeof(out), &m, &kr, S(AAD), text, n, NULL,
                      NULL) == 0, "the text with its length");

    ok(cm_aes256gcm_seal(key, nonce, NULL, 0, S(AAD), S(EMAIL), sealed,
                         sealed + 17) == 0, "seal without the header in aad");

    p = text + 22;
    p += cm_base64url_encode(p, 64, sealed, 17 + 16);
    *p = '\0';

    rejected(&kr, text, "authentication failed",
             "the header is authenticated too");
}


static void
test_rotation(void)
{
    int            stale;
    char           old[CM_PII_TEXT_LEN(64)], cur[CM_PII_TEXT_LEN(64)];
    size_t         m;
    cm_keyring_t   kr1, kr2, kr3;
    unsigned char  out[4096];

    keyring(&kr1, "1 " KEY1 " current\n");
    keyring(&kr2, "1 " KEY1 "\n2 " KEY2 " current\n");
    keyring(&kr3, "2 " KEY2 " current\n");

    ok(cm_pii_encrypt(old, sizeof(old), &kr1, S(AAD), S(EMAIL)) > 0
       && strncmp(old, "v1.1.", 5) == 0, "encrypted under kid 1");

    stale = -1;
    ok(decrypt(&kr2, AAD, old, out, &m, &stale, NULL) == 0 && m == 17,
       "kid 2 became current: the kid 1 text still decrypts");
    is_int(stale, 1, "  and is stale: re-encrypt it");

    ok(cm_pii_encrypt(cur, sizeof(cur), &kr2, S(AAD), out, m) > 0
       && strncmp(cur, "v1.2.", 5) == 0, "re-encrypted under kid 2");
    ok(decrypt(&kr2, AAD, cur, out, &m, &stale, NULL) == 0 && stale == 0,
       "  not stale");

    rejected(&kr3, old, "unknown key", "kid 1 retired");
    ok(decrypt(&kr3, AAD, cur, out, &m, &stale, NULL) == 0,
       "the re-encrypted text survives the retirement");

    /* kid 1 with another key's bytes */
    keyring(&kr3, "1 " KEY2 " current\n");
    rejected(&kr3, old, "authentication failed", "kid 1 with the wrong key");
}


static void
test_aad(void)
{
    char           a[CM_PII_TEXT_LEN(64)];
    size_t         m;
    const char    *reason;
    cm_keyring_t   kr;
    unsigned char  out[4096];

    keyring(&kr, "1 " KEY1 " current\n");

    cm_pii_encrypt(a, sizeof(a), &kr, S(AAD), S(EMAIL));

    ok(decrypt(&kr, "users.email:43", a, out, &m, NULL, &reason) == -1
       && strcmp(reason, "authentication failed") == 0,
       "copied to another row: authentication failed");
    ok(decrypt(&kr, "users.phone:42", a, out, &m, NULL, &reason) == -1,
       "copied to another column: authentication failed");
    ok(decrypt(&kr, "", a, out, &m, NULL, &reason) == -1,
       "without the aad: authentication failed");
    ok(decrypt(&kr, "users.email:42 ", a, out, &m, NULL, &reason) == -1,
       "aad with one more byte: authentication failed");
}


static void
test_tampered(void)
{
    int            ok_count;
    char           a[CM_PII_TEXT_LEN(64)], b[CM_PII_TEXT_LEN(64)];
    size_t         i, j, n, m;
    cm_keyring_t   kr;
    unsigned char  out[4096];
    static const char  alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    keyring(&kr, "1 " KEY1 "\n2 " KEY2 " current\n");

    n = cm_pii_encrypt(a, sizeof(a), &kr, S(AAD), S(EMAIL));

    /* every character replaced by every other base64url character */
    ok_count = 0;

    for (i = 0; i < n; i++) {
        for (j = 0; j < sizeof(alphabet) - 1; j++) {
            if (alphabet[j] == a[i]) {
                continue;
            }

            memcpy(b, a, n + 1);
            b[i] = alphabet[j];

            if (decrypt(&kr, AAD, b, out, &m, NULL, NULL) == 0) {
                tap_diag("altered text decrypts: %s", b);
                ok_count++;
            }
        }
    }

    is_int(ok_count, 0, "no one-character change decrypts (%zu tried)",
           n * 63);

    memcpy(b, a, n + 1);
    b[3] = '1';
    rejected(&kr, b, "authentication failed", "kid changed to another key");

    memcpy(b, a, n + 1);
    b[n - 1] = '\0';
    ok(decrypt(&kr, AAD, b, out, &m, NULL, NULL) == -1, "truncated by one");

    memcpy(b, a, n + 1);
    memcpy(b + n, "AAAA", 5);
    rejected(&kr, b, "authentication failed", "three bytes appended");
}


static void
test_malformed(void)
{
    size_t        i;
    cm_keyring_t  kr;
    static const char  *cases[] = {
        "",
        "v1",
        "v1.",
        "v1.1",
        "v1.1.",
        "v1.1.AAECAwQFBgcICQoL",
        "v1.1.AAECAwQFBgcICQoL.",
        "v2.1.AAECAwQFBgcICQoL.AAAAAAAAAAAAAAAAAAAAAA",
        "V1.1.AAECAwQFBgcICQoL.AAAAAAAAAAAAAAAAAAAAAA",
        "v1..AAECAwQFBgcICQoL.AAAAAAAAAAAAAAAAAAAAAA",
        "v1.01.AAECAwQFBgcICQoL.AAAAAAAAAAAAAAAAAAAAAA",
        "v1.0.AAECAwQFBgcICQoL.AAAAAAAAAAAAAAAAAAAAAA",
        "v1.65536.AAECAwQFBgcICQoL.AAAAAAAAAAAAAAAAAAAAAA",
        "v1.+1.AAECAwQFBgcICQoL.AAAAAAAAAAAAAAAAAAAAAA",
        "v1.1 .AAECAwQFBgcICQoL.AAAAAAAAAAAAAAAAAAAAAA",
        "v1.1.AAECAwQFBgcICQo.AAAAAAAAAAAAAAAAAAAAAA",
        "v1.1.AAECAwQFBgcICQoLA.AAAAAAAAAAAAAAAAAAAAAA",
        "v1.1.AAECAwQFBgcICQo=.AAAAAAAAAAAAAAAAAAAAAA",
        "v1.1.AAECAwQFBgcICQo+.AAAAAAAAAAAAAAAAAAAAAA",
        "v1.1.AAECAwQFBgcICQoL.AAAAAAAAAAAAAAAAAAAA",
        "v1.1.AAECAwQFBgcICQoL.AAAAAAAAAAAAAAAAAAAAAB",
        "v1.1.AAECAwQFBgcICQoL.AAAAAAAAAAAAAAAAAAAAAA==",
        "v1.1.AAECAwQFBgcICQoL.AAAAAAAAAAAAAAAAAAAAAA.",
        "v1.1.AAECAwQFBgcICQoL.AAAAAAAAAAAAAAAAAAAA AA",
        "v1.1.AAECAwQFBgcICQoL.AAAAAAAAAAAAAAAAAAAAAA\n",
        " v1.1.AAECAwQFBgcICQoL.AAAAAAAAAAAAAAAAAAAAAA",
        "v1.1.AAECAwQFBgcICQoL.AAAAAAAAAAAAAAAAAAAAA",
    };

    keyring(&kr, "1 " KEY1 " current\n");

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        rejected(&kr, cases[i], "malformed", cases[i]);
    }

    rejected(&kr, "v1.1.AAECAwQFBgcICQoL.AAAAAAAAAAAAAAAAAAAAAA",
             "authentication failed", "their well-formed neighbour");
    rejected(&kr, "v1.3.AAECAwQFBgcICQoL.AAAAAAAAAAAAAAAAAAAAAA",
             "unknown key", "a kid not in the keyring");
}


static void
test_limits(void)
{
    char           *big, *text;
    size_t          n, m;
    const char     *reason;
    cm_keyring_t    kr, empty;
    unsigned char   out[CM_PII_PLAINTEXT_MAX];

    keyring(&kr, "1 " KEY1 " current\n");
    memset(&empty, 0, sizeof(empty));

    big = malloc(CM_PII_PLAINTEXT_MAX + 1);
    text = malloc(CM_PII_TEXT_LEN(CM_PII_PLAINTEXT_MAX + 1) + 8);
    if (big == NULL || text == NULL) {
        abort();
    }

    memset(big, 'p', CM_PII_PLAINTEXT_MAX + 1);

    n = cm_pii_encrypt(text, CM_PII_TEXT_LEN(CM_PII_PLAINTEXT_MAX), &kr,
                       S(AAD), (unsigned char *) big, CM_PII_PLAINTEXT_MAX);
    ok(n > 0 && n < CM_PII_TEXT_LEN(CM_PII_PLAINTEXT_MAX),
       "encrypt CM_PII_PLAINTEXT_MAX bytes into CM_PII_TEXT_LEN");
    ok(cm_pii_decrypt(out, sizeof(out), &m, &kr, S(AAD), text, n, NULL,
                      NULL) == 0 && m == CM_PII_PLAINTEXT_MAX
       && memcmp(out, big, m) == 0, "  and back");

    ok(cm_pii_decrypt(out, m - 1, &m, &kr, S(AAD), text, n, NULL, &reason)
       == -1 && strcmp(reason, "buffer too small") == 0,
       "decrypt into a buffer one byte short: buffer too small");

    /* one more base64url group than any encryption makes */
    memcpy(text + n, "AAAA", 5);
    ok(cm_pii_decrypt(out, sizeof(out), &m, &kr, S(AAD), text, n + 4, NULL,
                      &reason) == -1 && strcmp(reason, "malformed") == 0,
       "a text longer than any encryption: malformed");

    ok(cm_pii_encrypt(text, CM_PII_TEXT_LEN(CM_PII_PLAINTEXT_MAX + 1) + 8,
                      &kr, S(AAD), (unsigned char *) big,
                      CM_PII_PLAINTEXT_MAX + 1) == 0 && text[0] == '\0',
       "encrypt refuses CM_PII_PLAINTEXT_MAX + 1 bytes");

    ok(cm_pii_encrypt(text, CM_PII_TEXT_LEN(17) - 1, &kr, S(AAD), S(EMAIL))
       == 0, "encrypt refuses dst under CM_PII_TEXT_LEN");
    ok(cm_pii_encrypt(text, 200, &empty, S(AAD), S(EMAIL)) == 0,
       "encrypt with an empty keyring fails");

    free(big);
    free(text);
}


static void
test_blind_index(void)
{
    char           hex[CM_PII_INDEX_LEN], hex2[CM_PII_INDEX_LEN];
    unsigned char  key[32];
    char           big[CM_PII_INDEX_VALUE_MAX + 2];

    /* RFC 4231 test case 2 */
    ok(cm_pii_blind_index(hex, S("Jefe"), "what do ya want for nothing?", 28)
       == 0, "HMAC-SHA256, RFC 4231 case 2");
    is_str(hex,
           "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
           "  known answer");

    ok(cm_pii_blind_index(hex2, S("Jefe"),
                          " \tWHAT do ya WANT for nothing?\r\n", 32) == 0
       && strcmp(hex, hex2) == 0,
       "trimmed and lowercased first");

    unhex(key, KEY1);

    /* Python: hmac.new(bytes(range(32)), b"alice@example.com", sha256) */
    cm_pii_blind_index(hex, key, 32, EMAIL, 17);
    is_str(hex,
           "a59fc578d4cb46faab1d6eb348e7c74b33b85122d6459fdb7bf5654b333acab4",
           "index of an email, independent HMAC");

    cm_pii_blind_index(hex2, key, 32, "  Alice@Example.COM ", 20);
    is_str(hex2, hex, "the same email typed differently, same index");

    cm_pii_blind_index(hex2, key, 32, "alice@example.co", 16);
    ok(strcmp(hex, hex2) != 0, "another email, another index");

    unhex(key, KEY2);
    cm_pii_blind_index(hex2, key, 32, EMAIL, 17);
    ok(strcmp(hex, hex2) != 0, "another key, another index");

    cm_pii_blind_index(hex, key, 32, "\xc3\x89mile@x.org", 12);
    cm_pii_blind_index(hex2, key, 32, "\xc3\xa9mile@x.org", 12);
    ok(strcmp(hex, hex2) != 0, "only ASCII is lowercased");

    ok(cm_pii_blind_index(hex, key, 32, "   ", 3) == 0
       && cm_pii_blind_index(hex2, key, 32, "", 0) == 0
       && strcmp(hex, hex2) == 0, "blank and empty: the same index");

    ok(cm_pii_blind_index(hex, key, 0, EMAIL, 17) == -1 && hex[0] == '\0',
       "an empty key is refused");

    memset(big, 'a', sizeof(big));
    ok(cm_pii_blind_index(hex, key, 32, big, CM_PII_INDEX_VALUE_MAX) == 0,
       "a value of CM_PII_INDEX_VALUE_MAX bytes");
    ok(cm_pii_blind_index(hex, key, 32, big, CM_PII_INDEX_VALUE_MAX + 1)
       == -1, "one byte more is refused");
}


static void
test_helpers(void)
{
    char  buf[64];

    ok(cm_pii_normalize(buf, sizeof(buf), " \t Alice@Example.COM\r\n", 22)
       == 17 && strcmp(buf, EMAIL) == 0, "normalize: trim, lowercase");
    ok(cm_pii_normalize(buf, sizeof(buf), "   ", 3) == 0 && buf[0] == '\0',
       "normalize blanks to empty");
    ok(cm_pii_normalize(buf, 17, " Alice@Example.COM", 18) == (size_t) -1,
       "normalize: no room for the NUL");
    ok(cm_pii_normalize(buf, 18, " Alice@Example.COM", 18) == 17,
       "normalize: exactly enough room");

    ok(cm_pii_aad(buf, sizeof(buf), "users.email", 42) == 14
       && strcmp(buf, AAD) == 0, "aad users.email:42");
    ok(cm_pii_aad(buf, sizeof(buf), "users.phone", -9223372036854775807LL - 1)
       > 0 && strcmp(buf, "users.phone:-9223372036854775808") == 0,
       "aad with the smallest id");
    ok(cm_pii_aad(buf, 14, "users.email", 42) == 0 && buf[0] == '\0',
       "aad: no room for the NUL");
    ok(cm_pii_aad(buf, sizeof(buf), "", 42) == 0, "aad: empty field refused");
}
