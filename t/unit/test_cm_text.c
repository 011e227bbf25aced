/*
 * Unit tests of cm_text: base64 in both alphabets of RFC 4648, and the
 * UTF-8 decoder and character counter.  TAP output.
 */


#include <stdio.h>
#include <string.h>

#include "cm_text.h"
#include "tap.h"


static const char *name(cm_base64_e a);
static int b64_decodes(cm_base64_e a, const char *s);
static size_t utf8_encode(uint32_t cp, unsigned char *p);
static void test_b64_vectors(void);
static void test_b64_alphabets(void);
static void test_b64_strict(void);
static void test_b64_unused_bits(void);
static void test_b64_lengths(void);
static void test_b64_roundtrip(void);
static void test_utf8_boundaries(void);
static void test_utf8_invalid(void);
static void test_utf8_exhaustive(void);
static void test_utf8_korean(void);
static void test_utf8_count(void);
static void test_utf8_text(void);


static const cm_base64_e  alphabets[] = { CM_BASE64_STD, CM_BASE64_URL };


int
main(void)
{
    test_b64_vectors();
    test_b64_alphabets();
    test_b64_strict();
    test_b64_unused_bits();
    test_b64_lengths();
    test_b64_roundtrip();
    test_utf8_boundaries();
    test_utf8_invalid();
    test_utf8_exhaustive();
    test_utf8_korean();
    test_utf8_count();
    test_utf8_text();

    return tap_done();
}


static const char *
name(cm_base64_e a)
{
    return a == CM_BASE64_STD ? "base64" : "base64url";
}


/* 1 when s decodes in alphabet a */

static int
b64_decodes(cm_base64_e a, const char *s)
{
    size_t         n;
    unsigned char  dec[256];

    return cm_base64_decode(a, dec, sizeof(dec), (const unsigned char *) s,
                            strlen(s), &n)
           == 0;
}


/* the textbook UTF-8 of a code point (RFC 3629, section 3) */

static size_t
utf8_encode(uint32_t cp, unsigned char *p)
{
    if (cp < 0x80) {
        p[0] = (unsigned char) cp;
        return 1;
    }

    if (cp < 0x800) {
        p[0] = (unsigned char) (0xc0 | cp >> 6);
        p[1] = (unsigned char) (0x80 | (cp & 0x3f));
        return 2;
    }

    if (cp < 0x10000) {
        p[0] = (unsigned char) (0xe0 | cp >> 12);
        p[1] = (unsigned char) (0x80 | ((cp >> 6) & 0x3f));
        p[2] = (unsigned char) (0x80 | (cp & 0x3f));
        return 3;
    }

    p[0] = (unsigned char) (0xf0 | cp >> 18);
    p[1] = (unsigned char) (0x80 | ((cp >> 12) & 0x3f));
    p[2] = (unsigned char) (0x80 | ((cp >> 6) & 0x3f));
    p[3] = (unsigned char) (0x80 | (cp & 0x3f));
    return 4;
}


static void
test_b64_vectors(void)
{
    size_t         i, j, n;
    char           enc[64];
    unsigned char  dec[64];
    cm_base64_e    a;
    static const char  *plain[] = {
        "", "f", "fo", "foo", "foob", "fooba", "foobar"
    };
    static const char  *coded[] = {
        "", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"
    };

    /* RFC 4648 section 10, without the padding: alike in both alphabets */
    for (j = 0; j < 2; j++) {
        a = alphabets[j];

        for (i = 0; i < 7; i++) {
            memset(enc, '#', sizeof(enc));
            n = cm_base64_encode(a, enc, sizeof(enc),
                                 (const unsigned char *) plain[i],
                                 strlen(plain[i]));
            ok(n == strlen(coded[i]) && memcmp(enc, coded[i], n) == 0
               && enc[n] == '#',
               "%s encode '%s' -> '%s'", name(a), plain[i], coded[i]);

            n = 99;
            ok(cm_base64_decode(a, dec, sizeof(dec),
                                (const unsigned char *) coded[i],
                                strlen(coded[i]), &n) == 0
               && n == strlen(plain[i]) && memcmp(dec, plain[i], n) == 0,
               "%s decode '%s' -> '%s'", name(a), coded[i], plain[i]);
        }
    }
}


static void
test_b64_alphabets(void)
{
    int                   c, valid, bad;
    char                  s[5], enc[16], whole[65];
    size_t                n, j;
    unsigned char         dec[16];
    cm_base64_e           a;
    static const char    *set[] = {
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    };
    static const unsigned char  all[] = {
        0x00, 0x10, 0x83, 0x10, 0x51, 0x87, 0x20, 0x92, 0x8b, 0x30, 0xd3,
        0x8f, 0x41, 0x14, 0x93, 0x51, 0x55, 0x97, 0x61, 0x96, 0x9b, 0x71,
        0xd7, 0x9f, 0x82, 0x18, 0xa3, 0x92, 0x59, 0xa7, 0xa2, 0x9a, 0xab,
        0xb2, 0xdb, 0xaf, 0xc3, 0x1c, 0xb3, 0xd3, 0x5d, 0xb7, 0xe3, 0x9e,
        0xbb, 0xf3, 0xdf, 0xbf
    };

    /* bytes 62 and 63 of the alphabet: the only two that differ */
    n = cm_base64_encode(CM_BASE64_STD, enc, sizeof(enc),
                         (const unsigned char *) "\xfb\xff\xbf", 3);
    ok(n == 4 && memcmp(enc, "+/+/", 4) == 0, "base64 uses + and /");

    n = cm_base64_encode(CM_BASE64_URL, enc, sizeof(enc),
                         (const unsigned char *) "\xfb\xff\xbf", 3);
    ok(n == 4 && memcmp(enc, "-_-_", 4) == 0, "base64url uses - and _");

    ok(cm_base64_decode(CM_BASE64_STD, dec, sizeof(dec),
                        (const unsigned char *) "+/+/", 4, &n) == 0
       && n == 3 && memcmp(dec, "\xfb\xff\xbf", 3) == 0,
       "base64 decodes + and /");
    ok(cm_base64_decode(CM_BASE64_URL, dec, sizeof(dec),
                        (const unsigned char *) "-_-_", 4, &n) == 0
       && n == 3 && memcmp(dec, "\xfb\xff\xbf", 3) == 0,
       "base64url decodes - and _");

    ok(!b64_decodes(CM_BASE64_STD, "-_-_"), "base64 refuses - and _");
    ok(!b64_decodes(CM_BASE64_STD, "AAA-"), "base64 refuses a lone -");
    ok(!b64_decodes(CM_BASE64_STD, "AAA_"), "base64 refuses a lone _");
    ok(!b64_decodes(CM_BASE64_URL, "+/+/"), "base64url refuses + and /");
    ok(!b64_decodes(CM_BASE64_URL, "AAA+"), "base64url refuses a lone +");
    ok(!b64_decodes(CM_BASE64_URL, "AAA/"), "base64url refuses a lone /");

    /* 48 bytes that are the 64 values in order, in each alphabet */
    for (j = 0; j < 2; j++) {
        a = alphabets[j];
        n = cm_base64_encode(a, whole, sizeof(whole), all, sizeof(all));
        ok(n == 64 && memcmp(whole, set[j], 64) == 0,
           "%s: the 64 values encode to the alphabet in order", name(a));
    }

    /* every byte value in the last place of "AAA?": valid iff in the set */
    for (j = 0; j < 2; j++) {
        a = alphabets[j];
        bad = 0;

        for (c = 0; c < 256; c++) {
            s[0] = 'A';
            s[1] = 'A';
            s[2] = 'A';
            s[3] = (char) c;
            s[4] = '\0';

            valid = c != 0 && strchr(set[j], c) != NULL;

            if (cm_base64_decode(a, dec, sizeof(dec),
                                 (const unsigned char *) s, 4, &n)
                != (valid ? 0 : -1))
            {
                tap_diag("%s: byte 0x%02x in \"AAA?\"", name(a), c);
                bad++;
            }
        }

        is_int(bad, 0, "%s accepts exactly its 64 characters", name(a));
    }

    ok(cm_base64_encode((cm_base64_e) 2, enc, sizeof(enc),
                        (const unsigned char *) "f", 1) == 0,
       "an unknown alphabet encodes nothing");
    ok(cm_base64_decode((cm_base64_e) 2, dec, sizeof(dec),
                        (const unsigned char *) "Zg", 2, &n) == -1,
       "an unknown alphabet decodes nothing");
}


/*
 * Both callers (JWT, PII, refresh tokens in base64url; PHC password hashes
 * in standard base64) want the one canonical spelling: the same cases are
 * refused in both alphabets.
 */

static void
test_b64_strict(void)
{
    size_t         i, j, n;
    cm_base64_e    a;
    unsigned char  dec[8];
    static const char  *refused[] = {
        "Zg==", "Zg=", "Zm8=", "Zm9v====", "=", "==", "====", "Zg=a",
        "A", "AAAAA", "Zm9vY", "Zm9vYmFyZ",
        " Zm9v", "Zm9v ", "Zm 9v", "Zm9v\n", "Zm\r\n9v", "Zm9v\t",
        "Zm9v.", ".Zm9v", "Zm9v!", "Zm9v@", "Zm9v*", "Zm9v~",
        "Zh", "Zm9", "Zm9vYh", "Zm9vYmF"
    };

    for (j = 0; j < 2; j++) {
        a = alphabets[j];

        for (i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
            ok(!b64_decodes(a, refused[i]), "%s refuses '%s'", name(a),
               refused[i]);
        }

        ok(b64_decodes(a, "Zm8") && b64_decodes(a, "Zg")
           && b64_decodes(a, "Zm9vYmE"),
           "%s: the canonical neighbours decode", name(a));
    }

    ok(cm_base64_decode(CM_BASE64_URL, dec, sizeof(dec),
                        (const unsigned char *) "Zm9v\0", 5, &n) == -1,
       "a NUL inside the length is refused");
}


/*
 * The last character of 4n + 2 characters carries 4 unused bits, of 4n + 3
 * characters 2: of the 64 characters only 4, and 16, leave them zero.
 */

static void
test_b64_unused_bits(void)
{
    int            k, two, three;
    char           s[4];
    size_t         j, n;
    cm_base64_e    a;
    unsigned char  dec[8];
    static const char  *set[] = {
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    };

    for (j = 0; j < 2; j++) {
        a = alphabets[j];
        two = 0;
        three = 0;

        for (k = 0; k < 64; k++) {
            s[0] = 'Z';
            s[1] = set[j][k];

            if (cm_base64_decode(a, dec, sizeof(dec),
                                 (const unsigned char *) s, 2, &n) == 0)
            {
                two += (k % 16 == 0 && n == 1) ? 1 : 100;
            }

            s[1] = 'm';
            s[2] = set[j][k];

            if (cm_base64_decode(a, dec, sizeof(dec),
                                 (const unsigned char *) s, 3, &n) == 0)
            {
                three += (k % 4 == 0 && n == 2) ? 1 : 100;
            }
        }

        is_int(two, 4, "%s: 4 of 64 last characters after 1 (A Q g w)",
               name(a));
        is_int(three, 16, "%s: 16 of 64 last characters after 2", name(a));
    }
}


static void
test_b64_lengths(void)
{
    size_t         j, n;
    char           enc[8];
    cm_base64_e    a;
    unsigned char  dec[8];

    for (j = 0; j < 2; j++) {
        a = alphabets[j];

        ok(cm_base64_encode(a, enc, 4, (const unsigned char *) "foo", 3)
           == 4, "%s encode: 4 characters into 4 bytes", name(a));
        ok(cm_base64_encode(a, enc, 3, (const unsigned char *) "foo", 3)
           == 0, "%s encode: not into 3", name(a));
        ok(cm_base64_encode(a, enc, 3, (const unsigned char *) "fo", 2)
           == 3, "%s encode: 2 bytes into 3 characters", name(a));
        ok(cm_base64_encode(a, enc, 2, (const unsigned char *) "fo", 2)
           == 0, "%s encode: not into 2", name(a));
        ok(cm_base64_encode(a, enc, sizeof(enc), (const unsigned char *) "",
                            0) == 0, "%s encode: nothing is 0", name(a));

        ok(cm_base64_decode(a, dec, 3, (const unsigned char *) "Zm9v", 4, &n)
           == 0 && n == 3, "%s decode: 3 bytes into 3", name(a));
        ok(cm_base64_decode(a, dec, 2, (const unsigned char *) "Zm9v", 4, &n)
           == -1, "%s decode: not into 2", name(a));
        ok(cm_base64_decode(a, dec, 1, (const unsigned char *) "Zg", 2, &n)
           == 0 && n == 1, "%s decode: 1 byte into 1", name(a));
        ok(cm_base64_decode(a, dec, 0, (const unsigned char *) "Zg", 2, &n)
           == -1, "%s decode: not into 0", name(a));

        n = 99;
        ok(cm_base64_decode(a, NULL, 0, (const unsigned char *) "", 0, &n)
           == 0 && n == 0, "%s decode: nothing is 0 bytes", name(a));
    }
}


/* lengths 0..100 of every byte pattern, both alphabets */

static void
test_b64_roundtrip(void)
{
    char           enc[2][160];
    size_t         len, i, j, n[2], m, bad;
    unsigned char  src[100], dec[100];

    bad = 0;

    for (len = 0; len <= sizeof(src); len++) {
        for (i = 0; i < len; i++) {
            src[i] = (unsigned char) (i * 181 + len * 7 + 0xf8);
        }

        for (j = 0; j < 2; j++) {
            n[j] = cm_base64_encode(alphabets[j], enc[j], sizeof(enc[j]),
                                    src, len);

            if (n[j] != len / 3 * 4 + (len % 3 ? len % 3 + 1 : 0)
                || cm_base64_decode(alphabets[j], dec, len,
                                    (unsigned char *) enc[j], n[j], &m) != 0
                || m != len || memcmp(dec, src, len) != 0)
            {
                tap_diag("round trip of %zu bytes in %s", len,
                         name(alphabets[j]));
                bad++;
            }
        }

        /* the two spellings differ by + -> - and / -> _ alone */
        for (i = 0; i < n[0]; i++) {
            if (enc[1][i] != (enc[0][i] == '+' ? '-'
                              : enc[0][i] == '/' ? '_' : enc[0][i]))
            {
                tap_diag("alphabets differ at %zu of %zu bytes", i, len);
                bad++;
                break;
            }
        }
    }

    is_int(bad, 0, "0..100 bytes encode, decode back, alike in both");
}


static void
test_utf8_boundaries(void)
{
    size_t    i, n;
    uint32_t  cp;
    static const struct {
        const char  *bytes;
        size_t       len;
        uint32_t     cp;
    } cases[] = {
        { "\x00",             1, 0x0000 },
        { "\x7f",             1, 0x007f },
        { "\xc2\x80",         2, 0x0080 },
        { "\xdf\xbf",         2, 0x07ff },
        { "\xe0\xa0\x80",     3, 0x0800 },
        { "\xed\x9f\xbf",     3, 0xd7ff },
        { "\xee\x80\x80",     3, 0xe000 },
        { "\xef\xbf\xbd",     3, 0xfffd },
        { "\xef\xbf\xbf",     3, 0xffff },
        { "\xf0\x90\x80\x80", 4, 0x10000 },
        { "\xf4\x8f\xbf\xbf", 4, 0x10ffff },
    };

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cp = 0xdeadbeef;
        n = cm_utf8_decode((const unsigned char *) cases[i].bytes,
                           cases[i].len, &cp);
        ok(n == cases[i].len && cp == cases[i].cp,
           "U+%04X: %zu bytes (got %zu, U+%04X)", (unsigned) cases[i].cp,
           cases[i].len, n, (unsigned) cp);

        /* one byte short is a cut sequence */
        if (cases[i].len > 1) {
            ok(cm_utf8_decode((const unsigned char *) cases[i].bytes,
                              cases[i].len - 1, &cp) == 0,
               "U+%04X cut to %zu bytes", (unsigned) cases[i].cp,
               cases[i].len - 1);
        }
    }

    /* only the first character is read */
    n = cm_utf8_decode((const unsigned char *) "a\xc3\xa9", 3, &cp);
    ok(n == 1 && cp == 'a', "the first character only");
    n = cm_utf8_decode((const unsigned char *) "\xc3\xa9" "a", 3, &cp);
    ok(n == 2 && cp == 0xe9, "e-acute, then more");
}


static void
test_utf8_invalid(void)
{
    size_t    i;
    uint32_t  cp;
    static const struct {
        const char  *bytes;
        size_t       len;
        const char  *why;
    } cases[] = {
        { "",                 0, "nothing" },
        { "\x80",             1, "a continuation byte" },
        { "\xbf",             1, "the last continuation byte" },
        { "\xc0\x80",         2, "overlong U+0000 (C0 80)" },
        { "\xc0\xaf",         2, "overlong '/' (C0 AF)" },
        { "\xc1\xbf",         2, "overlong U+007F (C1 BF)" },
        { "\xe0\x80\x80",     3, "overlong U+0000 in 3 bytes" },
        { "\xe0\x9f\xbf",     3, "overlong U+07FF in 3 bytes" },
        { "\xf0\x80\x80\x80", 4, "overlong U+0000 in 4 bytes" },
        { "\xf0\x8f\xbf\xbf", 4, "overlong U+FFFF in 4 bytes" },
        { "\xed\xa0\x80",     3, "surrogate U+D800" },
        { "\xed\xad\xbf",     3, "surrogate U+DB7F" },
        { "\xed\xb0\x80",     3, "surrogate U+DC00" },
        { "\xed\xbf\xbf",     3, "surrogate U+DFFF" },
        { "\xed\xa0\xbd\xed\xb8\x80", 6, "a CESU-8 surrogate pair" },
        { "\xf4\x90\x80\x80", 4, "U+110000" },
        { "\xf4\xbf\xbf\xbf", 4, "U+13FFFF" },
        { "\xf5\x80\x80\x80", 4, "lead F5" },
        { "\xf7\xbf\xbf\xbf", 4, "lead F7 (U+1FFFFF)" },
        { "\xf8\x88\x80\x80\x80", 5, "a 5-byte form" },
        { "\xfc\x84\x80\x80\x80\x80", 6, "a 6-byte form" },
        { "\xfe",             1, "FE" },
        { "\xff",             1, "FF" },
        { "\xc2",             1, "a cut 2-byte sequence" },
        { "\xe4\xb8",         2, "a cut 3-byte sequence" },
        { "\xf0\x9f\x98",     3, "a cut 4-byte sequence" },
        { "\xf0",             1, "a lone 4-byte lead" },
        { "\xc2\x41",         2, "ASCII after a 2-byte lead" },
        { "\xc2\xc2\x80",     3, "a lead after a lead" },
        { "\xe4\xb8\x41",     3, "ASCII as the third byte" },
        { "\xe4\x41\xb8",     3, "ASCII as the second byte" },
        { "\xf0\x9f\x98\x41", 4, "ASCII as the fourth byte" },
        { "\xf0\x9f\x98\xc0", 4, "C0 as the fourth byte" },
    };

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cp = 0x12345;
        ok(cm_utf8_decode((const unsigned char *) cases[i].bytes,
                          cases[i].len, &cp) == 0 && cp == 0x12345,
           "refused: %s", cases[i].why);
    }

    /* the bytes are there, the length says the sequence is cut */
    ok(cm_utf8_decode((const unsigned char *) "\xf0\x9f\x98\x80", 3, &cp)
       == 0, "U+1F600 with a length of 3");
    ok(cm_utf8_decode((const unsigned char *) "\xf0\x9f\x98\x80", 4, &cp)
       == 4 && cp == 0x1f600, "U+1F600 with a length of 4");
}


/*
 * Every code point: decoded from its textbook form.  Every 1-, 2- and
 * 3-byte input: accepted only as the shortest form of a scalar value.
 * The 4-byte leads with every second byte (the only one with a narrower
 * range), and third and fourth bytes at the edges of 80..BF.
 */

static void
test_utf8_exhaustive(void)
{
    size_t          n, k, bad, count[5];
    uint32_t        cp, c, b;
    unsigned char   p[4], q[4];
    static const unsigned char  edge[] = { 0x00, 0x7f, 0x80, 0xbf, 0xc0,
                                           0xff };

    bad = 0;

    for (c = 0; c <= 0x10ffff; c++) {
        if (c >= 0xd800 && c <= 0xdfff) {
            continue;
        }

        k = utf8_encode(c, p);
        n = cm_utf8_decode(p, k, &cp);

        if (n != k || cp != c) {
            if (bad++ < 5) {
                tap_diag("U+%04X: %zu bytes, U+%04X", (unsigned) c, n,
                         (unsigned) cp);
            }
        }
    }

    is_int(bad, 0, "every scalar value decodes from its textbook form");

    bad = 0;
    memset(count, 0, sizeof(count));

    for (b = 0; b < 0x1000000; b++) {
        p[0] = (unsigned char) (b >> 16);
        p[1] = (unsigned char) (b >> 8);
        p[2] = (unsigned char) b;

        n = cm_utf8_decode(p, 3, &cp);
        count[n]++;

        if (n != 0
            && (utf8_encode(cp, q) != n || memcmp(p, q, n) != 0
                || (cp >= 0xd800 && cp <= 0xdfff)))
        {
            bad++;
        }
    }

    is_int(bad, 0, "3 bytes: what is accepted is a shortest form");
    is_int(count[1], 128 << 16, "3 bytes: 128 x 65536 start with ASCII");
    is_int(count[2], (0x800 - 0x80) << 8, "3 bytes: 1920 x 256 with U+0080"
           "..U+07FF first");
    is_int(count[3], 0x10000 - 0x800 - 0x800, "3 bytes: U+0800..U+FFFF "
           "less the surrogates");
    is_int(count[4], 0, "3 bytes: never 4");

    bad = 0;
    memset(count, 0, sizeof(count));

    for (b = 0; b < 0x10000; b++) {
        p[0] = (unsigned char) (b >> 8);
        p[1] = (unsigned char) b;

        n = cm_utf8_decode(p, 2, &cp);
        count[n]++;

        if (n != 0 && (utf8_encode(cp, q) != n || memcmp(p, q, n) != 0)) {
            bad++;
        }

        /* a length of 1 accepts ASCII alone */
        if ((cm_utf8_decode(p, 1, &cp) == 1) != (p[0] < 0x80)) {
            bad++;
        }
    }

    is_int(bad, 0, "1 and 2 bytes: what is accepted is a shortest form");
    is_int(count[2], 0x800 - 0x80, "2 bytes: U+0080..U+07FF");

    bad = 0;
    k = 0;

    for (c = 0xf0; c <= 0xff; c++) {
        for (b = 0; b < 256 * 36; b++) {
            p[0] = (unsigned char) c;
            p[1] = (unsigned char) (b / 36);
            p[2] = edge[b / 6 % 6];
            p[3] = edge[b % 6];

            n = cm_utf8_decode(p, 4, &cp);

            if (n == 4) {
                k++;

                if (utf8_encode(cp, q) != 4 || memcmp(p, q, 4) != 0
                    || cp < 0x10000 || cp > 0x10ffff)
                {
                    bad++;
                }

            } else if (n != 0) {
                bad++;
            }
        }
    }

    is_int(bad, 0, "4 bytes: what is accepted is a shortest form");
    /* second bytes: F0 90..BF (48), F1..F3 80..BF (3 x 64), F4 80..8F (16) */
    is_int(k, (48 + 3 * 64 + 16) * 4, "4 bytes: 256 leads and second bytes, "
           "4 edges of the last two each");
}


static void
test_utf8_korean(void)
{
    size_t                i, n, k;
    uint32_t              cp, got[8];
    const unsigned char  *s;
    static const uint32_t  want[] = { 0xd55c, 0xad6d, 0xc5b4 };

    /* "한국어" (Korean): three syllables of 3 bytes each */
    s = (const unsigned char *) "\xed\x95\x9c\xea\xb5\xad\xec\x96\xb4";
    k = 0;

    for (i = 0; i < 9 && k < 8; i += n) {
        n = cm_utf8_decode(s + i, 9 - i, &cp);
        if (n == 0) {
            break;
        }

        got[k++] = cp;
    }

    ok(i == 9 && k == 3 && memcmp(got, want, sizeof(want)) == 0,
       "Korean: U+D55C U+AD6D U+C5B4");

    /* the lead ED of the Hangul syllables is the lead of the surrogates */
    ok(cm_utf8_decode((const unsigned char *) "\xed\x9e\xa3", 3, &cp) == 3
       && cp == 0xd7a3, "U+D7A3, the last Hangul syllable (ED 9E A3)");
    ok(cm_utf8_decode((const unsigned char *) "\xea\xb0\x80", 3, &cp) == 3
       && cp == 0xac00, "U+AC00, the first Hangul syllable (EA B0 80)");
    ok(cm_utf8_decode((const unsigned char *) "\xe3\x84\xb1", 3, &cp) == 3
       && cp == 0x3131, "U+3131, a Hangul compatibility jamo");

    /* a syllable cut in the middle */
    ok(cm_utf8_decode(s, 2, &cp) == 0, "a cut syllable");
}


static void
test_utf8_count(void)
{
    size_t  n;

    n = 99;
    ok(cm_utf8_count((const unsigned char *) "", 0, &n) == 0 && n == 0,
       "count: nothing");
    ok(cm_utf8_count((const unsigned char *) "Kim", 3, &n) == 0 && n == 3,
       "count: ASCII");
    ok(cm_utf8_count((const unsigned char *) "\xea\xb9\x80\xec\xb2\xa0"
                     "\xec\x88\x98", 9, &n) == 0 && n == 3,
       "count: 3 Korean syllables in 9 bytes");
    ok(cm_utf8_count((const unsigned char *) "Kim \xea\xb9\x80 \xc3\xa9 "
                     "\xf0\x9f\x98\x80", 15, &n) == 0 && n == 9,
       "count: 1-, 2-, 3- and 4-byte characters");
    ok(cm_utf8_count((const unsigned char *) "a\0b", 3, &n) == 0 && n == 3,
       "count: NUL is a character");

    n = 99;
    ok(cm_utf8_count((const unsigned char *) "abc\x80", 4, &n) == -1
       && n == 99, "count: a stray continuation byte at the end");
    ok(cm_utf8_count((const unsigned char *) "\xea\xb9\x80\xec\xb2", 5, &n)
       == -1, "count: a cut last character");
    ok(cm_utf8_count((const unsigned char *) "a\xc0\x80" "b", 4, &n) == -1,
       "count: an overlong NUL inside");
    ok(cm_utf8_count((const unsigned char *) "\xed\xa0\x80", 3, &n) == -1,
       "count: a surrogate");
    ok(cm_utf8_count((const unsigned char *) "\xf4\x90\x80\x80", 4, &n) == -1,
       "count: beyond U+10FFFF");
}


/* names and texts of people: characters, not bytes; no controls */
static void
test_utf8_text(void)
{
    size_t          i;
    unsigned char   buf[512];

#define TXT(s, min, max, ml)                                                  \
    cm_utf8_text((const unsigned char *) (s), sizeof(s) - 1, min, max, ml)

    ok(TXT("T-shirt", 1, 100, 0) == 0, "a name");
    ok(TXT("", 1, 100, 0) == -1, "empty, min 1");
    ok(TXT("", 0, 100, 1) == 0, "empty, min 0");
    ok(TXT("   ", 1, 100, 0) == -1, "blank");
    ok(TXT("   ", 0, 100, 0) == 0, "blank, min 0 (a description)");
    ok(TXT("a\tb", 1, 100, 0) == -1, "a tab in a name");
    ok(TXT("a\tb\r\nc", 1, 100, 1) == 0, "tab, CR, LF in a text");
    ok(TXT("a\x01", 1, 100, 1) == -1, "C0 even in a text");
    ok(TXT("a\x7f", 1, 100, 1) == -1, "DEL");
    ok(TXT("a\xc2\x85", 1, 100, 1) == -1, "C1 (NEL)");
    ok(TXT("\xc2\xa0x", 1, 100, 0) == 0, "U+00A0 is not a control");
    ok(TXT("\xff", 0, 100, 1) == -1, "invalid UTF-8");
    ok(TXT("\xea\xb0\x80\xea\xb0\x80", 2, 2, 0) == 0,
       "two Hangul syllables are 2 characters (6 bytes)");
    ok(TXT("\xea\xb0\x80\xea\xb0\x80", 1, 1, 0) == -1, "... not 1");

    for (i = 0; i < 101; i++) {
        memcpy(buf + i * 3, "\xea\xb0\x80", 3);
    }

    ok(cm_utf8_text(buf, 300, 1, 100, 0) == 0, "100 Korean characters: ok");
    ok(cm_utf8_text(buf, 303, 1, 100, 0) == -1, "101: refused");

#undef TXT
}
