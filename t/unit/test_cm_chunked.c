/*
 * Unit tests of cm_chunked: the HTTP/1.1 chunked transfer coding, fed in
 * slices of every size.  TAP output.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_chunked.h"
#include "tap.h"


#define OUT_MAX  65536


/* what decoding one input gave */
typedef struct {
    cm_chunked_rc_e   rc;
    size_t            total;
    size_t            rest;      /* bytes after the body (DONE) */
    size_t            fed;       /* bytes given when it stopped */
    const char       *error;
    unsigned char     out[OUT_MAX];
} result_t;


static void decode(const char *in, size_t len, size_t slice, size_t max,
    result_t *res);
static int same_every_slice(const char *in, size_t max, cm_chunked_rc_e rc,
    const char *body, size_t rest, const char *error);
static void test_normal(void);
static void test_byte_by_byte(void);
static void test_extensions(void);
static void test_trailers(void);
static void test_zero_length(void);
static void test_hex(void);
static void test_bad_hex(void);
static void test_missing_crlf(void);
static void test_overflow(void);
static void test_maximum(void);
static void test_after_end(void);
static void test_sticky_error(void);
static void test_in_place(void);
static void test_bounds(void);
static void test_large(void);


static result_t  res, res1;


int
main(void)
{
    tap_diag("sizeof(cm_chunked_t) = %u", (unsigned) sizeof(cm_chunked_t));

    test_normal();
    test_byte_by_byte();
    test_extensions();
    test_trailers();
    test_zero_length();
    test_hex();
    test_bad_hex();
    test_missing_crlf();
    test_overflow();
    test_maximum();
    test_after_end();
    test_sticky_error();
    test_in_place();
    test_bounds();
    test_large();

    return tap_done();
}


/*
 * Feeds in[0 .. len) in slices of slice bytes (0: all at once) until the
 * decoder stops asking for more.
 */

static void
decode(const char *in, size_t len, size_t slice, size_t max, result_t *r)
{
    size_t        pos, n, used;
    cm_chunked_t  ck;

    cm_chunked_init(&ck, max);

    memset(r->out, 0, sizeof(r->out));
    r->rc = CM_CHUNKED_AGAIN;
    r->rest = 0;
    pos = 0;

    while (pos < len) {
        n = (slice == 0 || len - pos < slice) ? len - pos : slice;

        r->rc = cm_chunked_feed(&ck, (const unsigned char *) in + pos, n,
                                &used, r->out);

        if (r->rc == CM_CHUNKED_AGAIN && used != n) {
            tap_diag("AGAIN used %u of %u", (unsigned) used, (unsigned) n);
            r->rc = CM_CHUNKED_ERROR;
            break;
        }

        if (r->rc == CM_CHUNKED_DONE) {
            r->rest = len - pos - used;
            break;
        }

        if (r->rc == CM_CHUNKED_ERROR) {
            break;
        }

        pos += n;
    }

    r->fed = pos;
    r->total = ck.total;
    r->error = ck.error;
}


/* the same outcome whatever the slices, from 1 byte to all at once */

static int
same_every_slice(const char *in, size_t max, cm_chunked_rc_e rc,
    const char *body, size_t rest, const char *error)
{
    size_t  len, slice, blen;

    len = strlen(in);
    blen = (body != NULL) ? strlen(body) : 0;

    for (slice = 0; slice <= len; slice++) {
        decode(in, len, slice, max, &res);

        if (res.rc != rc
            || (body != NULL
                && (res.total != blen || memcmp(res.out, body, blen) != 0))
            || (rc == CM_CHUNKED_DONE && res.rest != rest)
            || (error == NULL) != (res.error == NULL)
            || (error != NULL && strcmp(error, res.error) != 0))
        {
            tap_diag("slice %u: rc %d total %u rest %u error '%s'",
                     (unsigned) slice, (int) res.rc, (unsigned) res.total,
                     (unsigned) res.rest,
                     res.error != NULL ? res.error : "(none)");
            return 0;
        }
    }

    return 1;
}


static void
test_normal(void)
{
    const char  *in = "7\r\nMozilla\r\n11\r\nDeveloper Network\r\n"
                      "0\r\n\r\n";

    decode(in, strlen(in), 0, OUT_MAX, &res);
    is_int(res.rc, CM_CHUNKED_DONE, "normal: done");
    is_int(res.total, 24, "normal: 24 bytes decoded");
    ok(memcmp(res.out, "MozillaDeveloper Network", 24) == 0,
       "normal: the body");
    is_int(res.rest, 0, "normal: nothing after it");
    is_str(res.error, NULL, "normal: no error");

    in = "1\r\n{\r\n3\r\n\"a\"\r\n2\r\n:1\r\n1\r\n}\r\n0\r\n\r\n";
    ok(same_every_slice(in, OUT_MAX, CM_CHUNKED_DONE, "{\"a\":1}", 0, NULL),
       "small chunks: {\"a\":1}");

    in = "5\r\nhello\r\n";
    decode(in, strlen(in), 0, OUT_MAX, &res);
    is_int(res.rc, CM_CHUNKED_AGAIN, "no last-chunk yet: again");
    is_int(res.total, 5, "the first chunk already written");

    in = "5\r\nhello\r\n0\r\n";
    decode(in, strlen(in), 0, OUT_MAX, &res);
    is_int(res.rc, CM_CHUNKED_AGAIN, "last-chunk without the final CRLF: "
           "again");

    decode("", 0, 0, OUT_MAX, &res);
    is_int(res.rc, CM_CHUNKED_AGAIN, "nothing fed: again");
}


static void
test_byte_by_byte(void)
{
    size_t        i, used;
    cm_chunked_t  ck;
    const char   *in = "7\r\nMozilla\r\n11\r\nDeveloper Network\r\n"
                       "0\r\n\r\n";

    ok(same_every_slice(in, OUT_MAX, CM_CHUNKED_DONE,
                        "MozillaDeveloper Network", 0, NULL),
       "every slice size, 1 byte to all: the same body");

    /* one byte at a time: AGAIN on every byte but the last */

    cm_chunked_init(&ck, OUT_MAX);

    for (i = 0; i + 1 < strlen(in); i++) {
        if (cm_chunked_feed(&ck, (const unsigned char *) in + i, 1, &used,
                            res.out)
            != CM_CHUNKED_AGAIN || used != 1)
        {
            break;
        }
    }

    is_int(i, strlen(in) - 1, "byte by byte: again up to the last byte");
    is_int(cm_chunked_feed(&ck, (const unsigned char *) in + i, 1, &used,
                           res.out),
           CM_CHUNKED_DONE, "byte by byte: the last LF ends it");
    is_int(used, 1, "byte by byte: that byte used");
    is_int(ck.total, 24, "byte by byte: 24 bytes");

    /* the split inside a CRLF, a size and an extension, in slices of 2 */

    ok(same_every_slice("a;x=yy\r\n0123456789\r\n10\r\n"
                        "abcdefghijklmnop\r\n0\r\n\r\n", OUT_MAX,
                        CM_CHUNKED_DONE, "0123456789abcdefghijklmnop", 0,
                        NULL),
       "sizes, extension and CRLFs split anywhere");
}


static void
test_extensions(void)
{
    ok(same_every_slice("4;name=value\r\nWiki\r\n"
                        "5 ; a=\"q;x\" ;b\r\npedia\r\n"
                        "0;last=1\r\n\r\n", OUT_MAX, CM_CHUNKED_DONE,
                        "Wikipedia", 0, NULL),
       "chunk extensions ignored (with BWS, quoted values, on last-chunk)");

    ok(same_every_slice("3;\r\nabc\r\n0\r\n\r\n", OUT_MAX, CM_CHUNKED_DONE,
                        "abc", 0, NULL),
       "an empty extension");

    ok(same_every_slice("3\t\r\nabc\r\n0 \r\n\r\n", OUT_MAX,
                        CM_CHUNKED_DONE, "abc", 0, NULL),
       "whitespace after the size");

    ok(same_every_slice("3;a\nb\r\nabc\r\n0\r\n\r\n", OUT_MAX,
                        CM_CHUNKED_ERROR, NULL, 0,
                        "chunk header not ended by CRLF"),
       "a bare LF inside an extension: error");
}


static void
test_trailers(void)
{
    ok(same_every_slice("5\r\nhello\r\n0\r\nExpires: never\r\n"
                        "X-Sum: 5d41402a\r\n\r\n", OUT_MAX,
                        CM_CHUNKED_DONE, "hello", 0, NULL),
       "trailer fields skipped");

    ok(same_every_slice("5\r\nhello\r\n0\r\nX: 1\r\n\r\nnext", OUT_MAX,
                        CM_CHUNKED_DONE, "hello", 4, NULL),
       "after the trailers: the rest is not used");

    ok(same_every_slice("0\r\nX: 1\r\n", OUT_MAX, CM_CHUNKED_AGAIN, "", 0,
                        NULL),
       "a trailer without the final CRLF: again");

    ok(same_every_slice("0\r\nX: 1\n\r\n", OUT_MAX, CM_CHUNKED_ERROR, NULL,
                        0, "trailer field not ended by CRLF"),
       "a trailer field ended by a bare LF: error");

    ok(same_every_slice("0\r\nX: 1\r\r\n", OUT_MAX, CM_CHUNKED_ERROR, NULL,
                        0, "trailer field not ended by CRLF"),
       "a trailer field ended by CR CR: error");
}


static void
test_zero_length(void)
{
    ok(same_every_slice("0\r\n\r\n", OUT_MAX, CM_CHUNKED_DONE, "", 0, NULL),
       "zero-length body");
    ok(same_every_slice("000\r\n\r\n", OUT_MAX, CM_CHUNKED_DONE, "", 0,
                        NULL),
       "zero-length body, last-chunk 000");

    decode("0\r\n\r\n", 5, 0, 0, &res);
    is_int(res.rc, CM_CHUNKED_DONE, "zero-length body with a maximum of 0");
    is_int(res.total, 0, "nothing written");
}


static void
test_hex(void)
{
    char  in[256], want[64];

    memset(want, 'x', 26);
    want[26] = '\0';

    snprintf(in, sizeof(in), "1A\r\n%s\r\n0\r\n\r\n", want);
    ok(same_every_slice(in, OUT_MAX, CM_CHUNKED_DONE, want, 0, NULL),
       "uppercase hex 1A: 26 bytes");

    snprintf(in, sizeof(in), "1a\r\n%s\r\n0\r\n\r\n", want);
    ok(same_every_slice(in, OUT_MAX, CM_CHUNKED_DONE, want, 0, NULL),
       "lowercase hex 1a");

    snprintf(in, sizeof(in), "001A\r\n%s\r\n0\r\n\r\n", want);
    ok(same_every_slice(in, OUT_MAX, CM_CHUNKED_DONE, want, 0, NULL),
       "leading zeros 001A");

    ok(same_every_slice("F\r\n0123456789abcde\r\n0\r\n\r\n", OUT_MAX,
                        CM_CHUNKED_DONE, "0123456789abcde", 0, NULL),
       "uppercase hex F");
}


static void
test_bad_hex(void)
{
    static const char  *bad[] = {
        "g\r\nabc\r\n0\r\n\r\n",
        "\r\n",
        "-1\r\nabc\r\n",
        "+3\r\nabc\r\n",
        "0x3\r\nabc\r\n",
        " 3\r\nabc\r\n",
        "3 4\r\nabc\r\n",
        "3z\r\nabc\r\n",
        "5\r\nhello\r\nzz\r\n",
        ";ext\r\n",
        "\xef\xbc\x93\r\nabc\r\n",
        NULL
    };

    const char  **p;

    for (p = bad; *p != NULL; p++) {
        ok(same_every_slice(*p, OUT_MAX, CM_CHUNKED_ERROR, NULL, 0,
                            "invalid chunk size"),
           "bad chunk-size '%.*s': error 'invalid chunk size'",
           (int) strcspn(*p, "\r\n"), *p);
    }
}


static void
test_missing_crlf(void)
{
    ok(same_every_slice("5\nhello\r\n0\r\n\r\n", OUT_MAX, CM_CHUNKED_ERROR,
                        NULL, 0, "chunk header not ended by CRLF"),
       "a chunk header ended by a bare LF");
    ok(same_every_slice("5\rhello\r\n0\r\n\r\n", OUT_MAX, CM_CHUNKED_ERROR,
                        NULL, 0, "chunk header not ended by CRLF"),
       "a chunk header ended by a bare CR");
    ok(same_every_slice("5\r\nhelloX\r\n0\r\n\r\n", OUT_MAX,
                        CM_CHUNKED_ERROR, NULL, 0,
                        "chunk data not followed by CRLF"),
       "chunk data longer than its size");
    ok(same_every_slice("5\r\nhello\n0\r\n\r\n", OUT_MAX, CM_CHUNKED_ERROR,
                        NULL, 0, "chunk data not followed by CRLF"),
       "chunk data followed by a bare LF");
    ok(same_every_slice("5\r\nhello\r0\r\n\r\n", OUT_MAX, CM_CHUNKED_ERROR,
                        NULL, 0, "chunk data not followed by CRLF"),
       "chunk data followed by a bare CR");
    ok(same_every_slice("5\r\nhello0\r\n\r\n", OUT_MAX, CM_CHUNKED_ERROR,
                        NULL, 0, "chunk data not followed by CRLF"),
       "chunk data followed by the next size");
    ok(same_every_slice("5\r\nhello\r\n0\r\n\n", OUT_MAX, CM_CHUNKED_ERROR,
                        NULL, 0, "trailer field not ended by CRLF"),
       "a final bare LF");
    ok(same_every_slice("5\r\nhello\r\n0\r\n\rX", OUT_MAX, CM_CHUNKED_ERROR,
                        NULL, 0, "chunked body not ended by CRLF"),
       "a final CR not followed by LF");

    decode("5\r\nhel", 6, 0, OUT_MAX, &res);
    is_int(res.rc, CM_CHUNKED_AGAIN, "truncated chunk data: again");
    is_int(res.total, 3, "its first 3 bytes written");
}


static void
test_overflow(void)
{
    ok(same_every_slice("10000000000000000\r\n", (size_t) -1,
                        CM_CHUNKED_ERROR, NULL, 0, "chunk size overflows"),
       "2^64 (17 hex digits): 'chunk size overflows'");
    ok(same_every_slice("fffffffffffffffff\r\n", (size_t) -1,
                        CM_CHUNKED_ERROR, NULL, 0, "chunk size overflows"),
       "17 f: 'chunk size overflows'");
    ok(same_every_slice("ffffffffffffffffffffffffffffffffffffffff\r\n",
                        (size_t) -1, CM_CHUNKED_ERROR, NULL, 0,
                        "chunk size overflows"),
       "40 f: 'chunk size overflows'");

    /* 2^64 - 1 fits: only the maximum refuses it */
    ok(same_every_slice("ffffffffffffffff\r\n", OUT_MAX, CM_CHUNKED_ERROR,
                        NULL, 0, "chunked body larger than the maximum"),
       "2^64 - 1 against a maximum of 64 KB: refused by the maximum");
    ok(same_every_slice("0000000000000000000000000000000003\r\nabc\r\n"
                        "0\r\n\r\n", OUT_MAX, CM_CHUNKED_DONE, "abc", 0,
                        NULL),
       "34 digits that are mostly leading zeros: not an overflow");
}


static void
test_maximum(void)
{
    const char  *in = "5\r\nhello\r\n6\r\nworld!\r\n0\r\n\r\n";

    ok(same_every_slice(in, 11, CM_CHUNKED_DONE, "helloworld!", 0, NULL),
       "a body of exactly the maximum (11)");
    ok(same_every_slice(in, 10, CM_CHUNKED_ERROR, "hello", 0,
                        "chunked body larger than the maximum"),
       "one byte over the maximum (10): refused at the second chunk-size");

    decode(in, strlen(in), 0, 10, &res);
    is_int(res.total, 5, "over the maximum: only the first chunk written");
    ok(res.out[5] == '\0', "nothing written beyond it");

    ok(same_every_slice("10001\r\n", OUT_MAX, CM_CHUNKED_ERROR, NULL, 0,
                        "chunked body larger than the maximum"),
       "one chunk of 64 KB + 1: refused before its data");
    ok(same_every_slice("5\r\nhello\r\n", 4, CM_CHUNKED_ERROR, NULL, 0,
                        "chunked body larger than the maximum"),
       "a first chunk over the maximum");
}


static void
test_after_end(void)
{
    size_t        used;
    cm_chunked_t  ck;
    const char   *in = "3\r\nabc\r\n0\r\n\r\nHTTP/1.1 200 OK\r\n";

    ok(same_every_slice(in, OUT_MAX, CM_CHUNKED_DONE, "abc", 17, NULL),
       "data after the end: done, those 17 bytes not used");

    cm_chunked_init(&ck, OUT_MAX);
    is_int(cm_chunked_feed(&ck, (const unsigned char *) in, strlen(in),
                           &used, res.out),
           CM_CHUNKED_DONE, "all at once: done");
    is_int(used, 13, "13 bytes used");
    is_int(cm_chunked_feed(&ck, (const unsigned char *) in, 0, &used,
                           res.out),
           CM_CHUNKED_DONE, "fed nothing after the end: still done");
    is_int(cm_chunked_feed(&ck, (const unsigned char *) in + used, 1, &used,
                           res.out),
           CM_CHUNKED_ERROR, "fed more after the end: error");
    is_str(ck.error, "data after the end of the chunked body",
           "its reason");
    is_int(ck.total, 3, "the body is still the 3 bytes");
}


static void
test_sticky_error(void)
{
    size_t        used;
    cm_chunked_t  ck;

    cm_chunked_init(&ck, OUT_MAX);
    is_int(cm_chunked_feed(&ck, (const unsigned char *) "x\r\n", 3, &used,
                           res.out),
           CM_CHUNKED_ERROR, "an error");
    is_int(cm_chunked_feed(&ck, (const unsigned char *) "0\r\n\r\n", 5,
                           &used, res.out),
           CM_CHUNKED_ERROR, "a valid end afterwards: still an error");
    is_int(used, 0, "nothing used");
    is_str(ck.error, "invalid chunk size", "the first reason stays");
}


/* the output in the same buffer as the input, before it */

static void
test_in_place(void)
{
    size_t         pos, n, used, len;
    cm_chunked_t   ck;
    unsigned char  buf[128];
    const char    *in = "7\r\nMozilla\r\n11\r\nDeveloper Network\r\n"
                        "0;x=1\r\nT: v\r\n\r\n";

    len = strlen(in);
    memcpy(buf, in, len);

    /* slices of 5 bytes: the chunk headers cut anywhere */
    cm_chunked_init(&ck, sizeof(buf));
    pos = 0;
    n = 0;

    for ( ;; ) {
        n = (len - pos < 5) ? len - pos : 5;

        if (cm_chunked_feed(&ck, buf + pos, n, &used, buf)
            != CM_CHUNKED_AGAIN)
        {
            break;
        }

        pos += n;
    }

    is_int(pos + used, len, "in place: done at the end");
    is_int(ck.total, 24, "in place: 24 bytes");
    ok(memcmp(buf, "MozillaDeveloper Network", 24) == 0,
       "in place: the body at the start of the buffer");
}


static void
test_bounds(void)
{
    char   *in, *p;
    size_t  len;

    len = 2 * CM_CHUNKED_TRAILER_MAX + 64;
    in = malloc(len + 1);
    if (in == NULL) {
        ok(0, "malloc");
        return;
    }

    /* an extension of 4096 bytes: too long */
    p = in;
    p += sprintf(p, "3;");
    memset(p, 'e', CM_CHUNKED_EXT_MAX);
    p += CM_CHUNKED_EXT_MAX;
    p += sprintf(p, "\r\nabc\r\n0\r\n\r\n");
    *p = '\0';

    decode(in, (size_t) (p - in), 0, OUT_MAX, &res);
    is_int(res.rc, CM_CHUNKED_ERROR, "a chunk header over %d bytes: error",
           CM_CHUNKED_EXT_MAX);
    is_str(res.error, "chunk header too long", "its reason");
    decode(in, (size_t) (p - in), 1, OUT_MAX, &res1);
    is_str(res1.error, "chunk header too long", "the same byte by byte");

    /* an extension just under the bound is fine */
    p = in;
    p += sprintf(p, "3;");
    memset(p, 'e', CM_CHUNKED_EXT_MAX - 3);
    p += CM_CHUNKED_EXT_MAX - 3;
    p += sprintf(p, "\r\nabc\r\n0\r\n\r\n");
    decode(in, (size_t) (p - in), 0, OUT_MAX, &res);
    is_int(res.rc, CM_CHUNKED_DONE, "a chunk header of %d bytes: fine",
           CM_CHUNKED_EXT_MAX);

    /* a trailer section over 8 KB, in many lines */
    p = in;
    p += sprintf(p, "0\r\n");

    while ((size_t) (p - in) < CM_CHUNKED_TRAILER_MAX * 3 / 2) {
        p += sprintf(p, "X-Pad: 0123456789\r\n");
    }

    p += sprintf(p, "\r\n");

    decode(in, (size_t) (p - in), 0, OUT_MAX, &res);
    is_int(res.rc, CM_CHUNKED_ERROR, "a trailer section over %d bytes: "
           "error", CM_CHUNKED_TRAILER_MAX);
    is_str(res.error, "trailer section too long", "its reason");

    /* endless leading zeros are bounded too */
    memset(in, '0', CM_CHUNKED_EXT_MAX + 10);
    decode(in, CM_CHUNKED_EXT_MAX + 10, 7, OUT_MAX, &res);
    is_int(res.rc, CM_CHUNKED_ERROR, "endless zeros of a chunk-size: error");
    is_str(res.error, "chunk header too long", "its reason");

    free(in);
}


/* a 60 KB body in chunks of 7 bytes, as t/pgsim sends them, fed 1000 */

static void
test_large(void)
{
    char    *in, *p, *want;
    size_t   i, n, total;

    total = 60000;
    in = malloc(total * 2 + 64);
    want = malloc(total + 1);
    if (in == NULL || want == NULL) {
        ok(0, "malloc");
        free(in);
        free(want);
        return;
    }

    for (i = 0; i < total; i++) {
        want[i] = (char) ('a' + i % 26);
    }

    want[total] = '\0';

    p = in;

    for (i = 0; i < total; i += n) {
        n = (total - i < 7) ? total - i : 7;
        p += sprintf(p, "%x\r\n", (unsigned) n);
        memcpy(p, want + i, n);
        p += n;
        p += sprintf(p, "\r\n");
    }

    p += sprintf(p, "0\r\n\r\n");

    decode(in, (size_t) (p - in), 1000, OUT_MAX, &res);
    is_int(res.rc, CM_CHUNKED_DONE, "60000 bytes in chunks of 7: done");
    is_int(res.total, total, "all of them");
    ok(memcmp(res.out, want, total) == 0, "in order");

    decode(in, (size_t) (p - in), 1000, total - 1, &res);
    is_int(res.rc, CM_CHUNKED_ERROR, "the same with a maximum of 59999: "
           "error");

    free(in);
    free(want);
}
