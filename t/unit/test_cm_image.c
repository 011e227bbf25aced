/*
 * Unit tests of cm_image: JPEG, PNG and WebP (VP8, VP8L, VP8X) by their
 * bytes with their dimensions; other files, truncated and malformed
 * headers refused; every prefix of a valid image probed without reading
 * beyond it (the ASan build checks).  TAP output.
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_image.h"
#include "tap.h"


static uint32_t crc32_png(const unsigned char *p, size_t len);
static void put_be32(unsigned char *p, uint32_t v);
static void put_le32(unsigned char *p, uint32_t v);
static size_t make_png(unsigned char *b, uint32_t w, uint32_t h, int depth,
    int colour);
static size_t make_jpeg(unsigned char *b, uint32_t w, uint32_t h, int sof,
    int with_app);
static size_t make_webp(unsigned char *b, const char *fourcc, uint32_t w,
    uint32_t h);
static void probe_is(const unsigned char *b, size_t len, cm_image_type_e t,
    uint32_t w, uint32_t h, const char *name);
static void refused(const unsigned char *b, size_t len, const char *name);
static void prefixes(const unsigned char *b, size_t len, const char *name);
static void test_png(void);
static void test_jpeg(void);
static void test_webp(void);
static void test_others(void);
static void test_names(void);
static void test_order(void);
static void test_file_names(void);
static void order_is(const char *body, const char *want, const char *name);


/* the classic 1x1 RGBA PNG, 67 bytes, as encoders write it */
static const unsigned char  png_1x1[] = {
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d,
    0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01,
    0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4, 0x89, 0x00, 0x00, 0x00,
    0x0a, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x00, 0x01, 0x00, 0x00,
    0x05, 0x00, 0x01, 0x0d, 0x0a, 0x2d, 0xb4, 0x00, 0x00, 0x00, 0x00, 0x49,
    0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82
};


int
main(void)
{
    test_png();
    test_jpeg();
    test_webp();
    test_others();
    test_names();
    test_order();
    test_file_names();

    return tap_done();
}


static void
test_png(void)
{
    size_t         n;
    unsigned char  b[256];

    probe_is(png_1x1, sizeof(png_1x1), CM_IMAGE_PNG, 1, 1, "1x1 PNG");
    prefixes(png_1x1, sizeof(png_1x1), "1x1 PNG");

    n = make_png(b, 640, 480, 8, 2);
    probe_is(b, n, CM_IMAGE_PNG, 640, 480, "640x480 RGB PNG");
    prefixes(b, n, "640x480 PNG");

    n = make_png(b, 0x7fffffff, 3, 1, 0);
    probe_is(b, n, CM_IMAGE_PNG, 0x7fffffff, 3, "widest PNG");

    n = make_png(b, 0x80000000u, 3, 1, 0);
    refused(b, n, "PNG wider than 2^31 - 1");

    n = make_png(b, 0, 3, 8, 2);
    refused(b, n, "PNG of width 0");

    n = make_png(b, 3, 3, 16, 3);
    refused(b, n, "palette PNG of depth 16");

    n = make_png(b, 3, 3, 8, 5);
    refused(b, n, "PNG of colour type 5");

    memcpy(b, png_1x1, sizeof(png_1x1));
    b[19] = 2;
    refused(b, sizeof(png_1x1), "PNG whose width does not match its CRC");

    memcpy(b, png_1x1, sizeof(png_1x1));
    b[12] = 'i';
    refused(b, sizeof(png_1x1), "PNG without IHDR first");

    /* the IDAT's length beyond the bytes */
    memcpy(b, png_1x1, sizeof(png_1x1));
    b[35] = 0x7f;
    refused(b, sizeof(png_1x1), "PNG with a chunk beyond its end");

    /* no IEND: the upload was cut */
    refused(png_1x1, sizeof(png_1x1) - 12, "PNG without IEND");

    /* trailing bytes after IEND do not matter */
    memcpy(b, png_1x1, sizeof(png_1x1));
    memset(b + sizeof(png_1x1), 0, 5);
    probe_is(b, sizeof(png_1x1) + 5, CM_IMAGE_PNG, 1, 1,
             "PNG with bytes after IEND");
}


static void
test_jpeg(void)
{
    int            sof;
    char           name[64];
    size_t         n;
    unsigned char  b[256];

    n = make_jpeg(b, 1920, 1080, 0xc0, 1);
    probe_is(b, n, CM_IMAGE_JPEG, 1920, 1080, "baseline JPEG with APP0");
    prefixes(b, n, "baseline JPEG");

    n = make_jpeg(b, 65535, 1, 0xc2, 0);
    probe_is(b, n, CM_IMAGE_JPEG, 65535, 1, "progressive JPEG");

    for (sof = 0xc0; sof <= 0xcf; sof++) {
        n = make_jpeg(b, 10, 20, sof, 1);
        snprintf(name, sizeof(name), "JPEG with marker %02X first", sof);

        if (sof == 0xc4 || sof == 0xc8 || sof == 0xcc) {
            /* DHT, JPG, DAC: no frame header; the scan follows */
            refused(b, n, name);

        } else {
            probe_is(b, n, CM_IMAGE_JPEG, 10, 20, name);
        }
    }

    n = make_jpeg(b, 10, 0, 0xc0, 1);
    refused(b, n, "JPEG of height 0 (DNL)");

    /* the frame header's component count beyond its length */
    n = make_jpeg(b, 10, 20, 0xc0, 0);
    b[11] = 9;
    refused(b, n, "JPEG frame header with too many components");

    /* a scan before any frame header */
    n = make_jpeg(b, 10, 20, 0xc0, 0);
    b[3] = 0xda;
    refused(b, n, "JPEG with SOS first");

    /* fill bytes before a marker are allowed */
    {
        static const unsigned char  j[] = {
            0xff, 0xd8, 0xff, 0xff, 0xff, 0xc0, 0x00, 0x0b, 0x08,
            0x00, 0x02, 0x00, 0x03, 0x01, 0x01, 0x11, 0x00
        };

        probe_is(j, sizeof(j), CM_IMAGE_JPEG, 3, 2, "JPEG with fill bytes");
    }
}


static void
test_webp(void)
{
    size_t         n;
    unsigned char  b[256];

    n = make_webp(b, "VP8 ", 800, 600);
    probe_is(b, n, CM_IMAGE_WEBP, 800, 600, "lossy WebP (VP8)");
    prefixes(b, n, "VP8");

    n = make_webp(b, "VP8L", 16384, 1);
    probe_is(b, n, CM_IMAGE_WEBP, 16384, 1, "lossless WebP (VP8L)");
    prefixes(b, n, "VP8L");

    n = make_webp(b, "VP8X", 16777216, 2);
    probe_is(b, n, CM_IMAGE_WEBP, 16777216, 2, "extended WebP (VP8X)");
    prefixes(b, n, "VP8X");

    n = make_webp(b, "VP8 ", 800, 600);
    b[23] = 0x9e;
    refused(b, n, "VP8 without its start code");

    n = make_webp(b, "VP8 ", 800, 600);
    b[20] |= 1;
    refused(b, n, "VP8 that is not a key frame");

    n = make_webp(b, "VP8L", 10, 10);
    b[20] = 0x2e;
    refused(b, n, "VP8L without its signature");

    n = make_webp(b, "VP8L", 10, 10);
    b[24] |= 0x20;
    refused(b, n, "VP8L of version 1");

    n = make_webp(b, "ALPH", 10, 10);
    refused(b, n, "WebP with an unknown first chunk");

    /* the RIFF size beyond the bytes: cut */
    n = make_webp(b, "VP8X", 10, 10);
    refused(b, n - 1, "WebP cut by a byte");

    n = make_webp(b, "VP8 ", 0, 600);
    refused(b, n, "VP8 of width 0");
}


static void
test_others(void)
{
    static const char  html[] =
        "<!DOCTYPE html><html><body>not an image</body></html>";
    static const unsigned char  gif[] = "GIF89a\x01\x00\x01\x00\x00\x00\x00";
    static const unsigned char  riff_wav[] =
        "RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00";

    refused((const unsigned char *) html, sizeof(html) - 1, "HTML");
    refused(gif, sizeof(gif) - 1, "GIF");
    refused(riff_wav, sizeof(riff_wav) - 1, "a RIFF that is not WebP");
    refused((const unsigned char *) "", 0, "nothing");
    refused((const unsigned char *) "\xff\xd8", 2, "SOI alone");
}


static void
test_names(void)
{
    is_str(cm_image_ext(CM_IMAGE_JPEG), "jpg", "ext of JPEG");
    is_str(cm_image_ext(CM_IMAGE_PNG), "png", "ext of PNG");
    is_str(cm_image_ext(CM_IMAGE_WEBP), "webp", "ext of WebP");
    ok(cm_image_ext(CM_IMAGE_NONE) == NULL, "no ext of NONE");
    is_str(cm_image_name(CM_IMAGE_PNG), "PNG", "name of PNG");
    is_str(cm_image_mime(CM_IMAGE_WEBP), "image/webp", "type of WebP");
    ok(cm_image_mime(CM_IMAGE_NONE) == NULL, "no type of NONE");
}


static void
probe_is(const unsigned char *b, size_t len, cm_image_type_e t, uint32_t w,
    uint32_t h, const char *name)
{
    const char       *why;
    cm_image_info_t   info;

    why = NULL;

    if (!ok(cm_image_probe(b, len, &info, &why) == 0, "%s: accepted", name)) {
        tap_diag("why: %s", why ? why : "(none)");
        return;
    }

    ok(info.type == t && info.width == w && info.height == h,
       "%s: type %d %ux%u", name, (int) info.type, (unsigned) info.width,
       (unsigned) info.height);
}


static void
refused(const unsigned char *b, size_t len, const char *name)
{
    int               rc;
    const char       *why;
    cm_image_info_t   info;

    why = NULL;
    rc = cm_image_probe(b, len, &info, &why);

    ok(rc == -1 && why != NULL && info.type == CM_IMAGE_NONE
       && info.width == 0, "%s: refused (%s)", name, why ? why : "-");
}


/* each proper prefix in a buffer of exactly its size: ASan sees overreads */

static void
prefixes(const unsigned char *b, size_t len, const char *name)
{
    int               bad;
    size_t            n;
    const char       *why;
    unsigned char    *copy;
    cm_image_info_t   info;

    bad = 0;

    for (n = 0; n < len; n++) {
        copy = malloc(n ? n : 1);
        if (copy == NULL) {
            abort();
        }

        memcpy(copy, b, n);

        if (cm_image_probe(copy, n, &info, &why) == 0
            && info.type != CM_IMAGE_JPEG)
        {
            /* a JPEG is known once its frame header is: the rest may go */
            bad++;
        }

        free(copy);
    }

    ok(bad == 0, "%s: every prefix refused (%d accepted)", name, bad);
}


static uint32_t
crc32_png(const unsigned char *p, size_t len)
{
    int       k;
    size_t    i;
    uint32_t  c;

    c = 0xffffffffu;

    for (i = 0; i < len; i++) {
        c ^= p[i];
        for (k = 0; k < 8; k++) {
            c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
        }
    }

    return c ^ 0xffffffffu;
}


static void
put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char) (v >> 24);
    p[1] = (unsigned char) (v >> 16);
    p[2] = (unsigned char) (v >> 8);
    p[3] = (unsigned char) v;
}


static void
put_le32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char) v;
    p[1] = (unsigned char) (v >> 8);
    p[2] = (unsigned char) (v >> 16);
    p[3] = (unsigned char) (v >> 24);
}


/* signature, IHDR with its CRC, an empty IDAT, IEND */

static size_t
make_png(unsigned char *b, uint32_t w, uint32_t h, int depth, int colour)
{
    memcpy(b, png_1x1, 8);
    put_be32(b + 8, 13);
    memcpy(b + 12, "IHDR", 4);
    put_be32(b + 16, w);
    put_be32(b + 20, h);
    b[24] = (unsigned char) depth;
    b[25] = (unsigned char) colour;
    b[26] = 0;
    b[27] = 0;
    b[28] = 0;
    put_be32(b + 29, crc32_png(b + 12, 17));
    put_be32(b + 33, 0);
    memcpy(b + 37, "IDAT", 4);
    put_be32(b + 41, crc32_png(b + 37, 4));
    memcpy(b + 45, png_1x1 + sizeof(png_1x1) - 12, 12);

    return 57;
}


/* SOI, APP0 (JFIF) maybe, a frame header of 1 component, SOS, EOI */

static size_t
make_jpeg(unsigned char *b, uint32_t w, uint32_t h, int sof, int with_app)
{
    size_t  n;

    static const unsigned char  app0[] = {
        0xff, 0xe0, 0x00, 0x10, 'J', 'F', 'I', 'F', 0x00, 0x01, 0x01,
        0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00
    };
    static const unsigned char  tail[] = {
        0xff, 0xda, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x3f, 0x00,
        0x12, 0x34, 0xff, 0xd9
    };

    n = 0;
    b[n++] = 0xff;
    b[n++] = 0xd8;

    if (with_app) {
        memcpy(b + n, app0, sizeof(app0));
        n += sizeof(app0);
    }

    b[n++] = 0xff;
    b[n++] = (unsigned char) sof;
    b[n++] = 0x00;
    b[n++] = 0x0b;
    b[n++] = 0x08;
    b[n++] = (unsigned char) (h >> 8);
    b[n++] = (unsigned char) h;
    b[n++] = (unsigned char) (w >> 8);
    b[n++] = (unsigned char) w;
    b[n++] = 0x01;
    b[n++] = 0x01;
    b[n++] = 0x11;
    b[n++] = 0x00;

    memcpy(b + n, tail, sizeof(tail));

    return n + sizeof(tail);
}


/* RIFF, WEBP, one chunk of 10 bytes of header and 2 of data */

static size_t
make_webp(unsigned char *b, const char *fourcc, uint32_t w, uint32_t h)
{
    uint32_t  v;

    memcpy(b, "RIFF", 4);
    put_le32(b + 4, 4 + 8 + 12);
    memcpy(b + 8, "WEBP", 4);
    memcpy(b + 12, fourcc, 4);
    put_le32(b + 16, 12);
    memset(b + 20, 0, 12);

    if (memcmp(fourcc, "VP8 ", 4) == 0) {
        b[20] = 0x50;               /* key frame, version 0, shown */
        b[23] = 0x9d;
        b[24] = 0x01;
        b[25] = 0x2a;
        b[26] = (unsigned char) w;
        b[27] = (unsigned char) (w >> 8);
        b[28] = (unsigned char) h;
        b[29] = (unsigned char) (h >> 8);

    } else if (memcmp(fourcc, "VP8L", 4) == 0) {
        b[20] = 0x2f;
        v = (w - 1) | ((h - 1) << 14);
        put_le32(b + 21, v);

    } else if (memcmp(fourcc, "VP8X", 4) == 0) {
        v = w - 1;
        b[24] = (unsigned char) v;
        b[25] = (unsigned char) (v >> 8);
        b[26] = (unsigned char) (v >> 16);
        v = h - 1;
        b[27] = (unsigned char) v;
        b[28] = (unsigned char) (v >> 8);
        b[29] = (unsigned char) (v >> 16);
    }

    return 32;
}


/* the reorder body: "1,2,3" for the ids it holds, or "!" + the error */

static void
test_order(void)
{
    order_is("{\"ids\":[3,1,2]}", "3,1,2", "three ids in order");
    order_is("{\"ids\":[7]}", "7", "one id");
    order_is("{\"ids\":[1,2,3,4,5,6,7,8,9,10]}", "1,2,3,4,5,6,7,8,9,10",
             "ten ids");
    order_is("{\"ids\":[1,2,3,4,5,6,7,8,9,10,11]}",
             "!ids must be an array of 1 to 10 image ids", "eleven ids");
    order_is("{\"ids\":[]}", "!ids must be an array of 1 to 10 image ids",
             "no id");
    order_is("{}", "!ids must be an array of 1 to 10 image ids", "no ids");
    order_is("{\"ids\":[1,1]}", "!ids must name each image once",
             "an id twice");
    order_is("{\"ids\":[0]}", "!each id must be between 1 and "
             "9223372036854775807", "id 0");
    order_is("{\"ids\":[-2]}", "!each id must be between 1 and "
             "9223372036854775807", "a negative id");
    order_is("{\"ids\":[1.5]}", "!each id must be an integer", "1.5");
    order_is("{\"ids\":[\"1\"]}", "!each id must be an integer",
             "a string id");
    order_is("{\"ids\":[null]}", "!each id must be an integer", "null");
    order_is("{\"ids\":[[1]]}", "!ids must be an array of 1 to 10 image ids",
             "an array in the array");
    order_is("{\"ids\":[{\"id\":1}]}",
             "!ids must be an array of 1 to 10 image ids", "an object");
    order_is("{\"ids\":5}", "!ids must be an array of 1 to 10 image ids",
             "a number for ids");
    order_is("{\"ids\":{}}", "!ids must be an array of 1 to 10 image ids",
             "an object for ids");
    order_is("{\"ids\":[1],\"ids\":[2]}", "!ids given twice",
             "ids twice");
    order_is("{\"ids\":[1],\"x\":1}", "!unknown field: only ids",
             "another field");
    order_is("[1,2]", "!request body must be a JSON object", "an array");
    order_is("{\"ids\":[1,2]", NULL, "cut JSON");
}


static void
order_is(const char *body, const char *want, const char *name)
{
    int      rc;
    char     err[128], got[256], *p;
    size_t   i, n;
    int64_t  ids[CM_IMAGE_MAX_PER_PRODUCT];

    err[0] = '\0';
    rc = cm_parse_image_order((const unsigned char *) body, strlen(body), ids,
                              &n, err, sizeof(err));

    if (rc != 0) {
        snprintf(got, sizeof(got), "!%s", err);

        if (want == NULL) {
            ok(n == 0, "order: %s: refused (%s)", name, err);
            return;
        }

    } else {
        p = got;
        got[0] = '\0';

        for (i = 0; i < n; i++) {
            p += snprintf(p, got + sizeof(got) - p, "%s%lld", i ? "," : "",
                          (long long) ids[i]);
        }

        if (want == NULL) {
            ok(0, "order: %s: refused, not %s", name, got);
            return;
        }
    }

    is_str(got, want, "order: %s", name);
}


static void
test_file_names(void)
{
    char         name[80];
    size_t       i;
    const char  *bad[] = { "", ".png", "x.png", "../etc/passwd",
                           ".trash-1-2-3-x.png" };

    memset(name, 'a', 64);
    strcpy(name + 64, ".png");
    ok(cm_image_file_name(name), "file name: 64 hex .png");
    strcpy(name + 64, ".jpg");
    ok(cm_image_file_name(name), "file name: .jpg");
    strcpy(name + 64, ".webp");
    ok(cm_image_file_name(name), "file name: .webp");
    strcpy(name + 64, ".gif");
    ok(!cm_image_file_name(name), "file name: not .gif");
    strcpy(name + 64, ".png.bak");
    ok(!cm_image_file_name(name), "file name: nothing after the extension");
    strcpy(name + 64, "png");
    ok(!cm_image_file_name(name), "file name: the dot");
    name[10] = 'A';
    strcpy(name + 64, ".png");
    ok(!cm_image_file_name(name), "file name: upper-case hex refused");
    name[10] = '/';
    ok(!cm_image_file_name(name), "file name: no slash");
    name[10] = 'a';
    name[63] = '\0';
    ok(!cm_image_file_name(name), "file name: 63 digits, cut");

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ok(!cm_image_file_name(bad[i]), "file name: \"%s\" refused", bad[i]);
    }
}
