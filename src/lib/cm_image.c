/*
 * cm_image: image type and dimensions from the bytes (see cm_image.h).
 * References: PNG (ISO/IEC 15948) 5.2-5.6 and 11.2.2; JPEG (ITU T.81)
 * B.1.1.3 and B.2.2; WebP container and VP8L bitstream specifications
 * (RFC 9649), VP8 key frame header (RFC 6386 9.1).
 */


#include <string.h>

#include "cm_image.h"
#include "cm_json.h"


#define CM_IMAGE_MAX_SIDE  0x7fffffffu


static int cm_image_png(const unsigned char *p, size_t len,
    cm_image_info_t *info, const char **why);
static int cm_image_jpeg(const unsigned char *p, size_t len,
    cm_image_info_t *info, const char **why);
static int cm_image_webp(const unsigned char *p, size_t len,
    cm_image_info_t *info, const char **why);
static uint32_t cm_image_be32(const unsigned char *p);
static uint32_t cm_image_le32(const unsigned char *p);
static uint32_t cm_image_le24(const unsigned char *p);
static uint32_t cm_image_crc32(const unsigned char *p, size_t len);
static int cm_image_order_event(cm_json_walk_t *w, cm_json_event_e ev,
    const unsigned char *p, size_t len);
static int cm_image_ext_of(const char *ext);


typedef struct {
    int64_t   *ids;
    size_t     n;
    unsigned   seen:1;      /* the key "ids" */
    unsigned   in_ids:1;    /* within its array */
    unsigned   closed:1;    /* its array ended */
} cm_image_order_t;


static const unsigned char  cm_image_png_magic[8] = {
    0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a
};


int
cm_image_probe(const unsigned char *p, size_t len, cm_image_info_t *info,
    const char **why)
{
    int  rc;

    info->type = CM_IMAGE_NONE;
    info->width = 0;
    info->height = 0;

    if (len >= 8 && memcmp(p, cm_image_png_magic, 8) == 0) {
        rc = cm_image_png(p, len, info, why);

    } else if (len >= 3 && p[0] == 0xff && p[1] == 0xd8 && p[2] == 0xff) {
        rc = cm_image_jpeg(p, len, info, why);

    } else if (len >= 12 && memcmp(p, "RIFF", 4) == 0
               && memcmp(p + 8, "WEBP", 4) == 0)
    {
        rc = cm_image_webp(p, len, info, why);

    } else {
        *why = "not a JPEG, PNG or WebP image";
        return -1;
    }

    if (rc != 0) {
        info->type = CM_IMAGE_NONE;
        info->width = 0;
        info->height = 0;
        return -1;
    }

    if (info->width == 0 || info->height == 0
        || info->width > CM_IMAGE_MAX_SIDE || info->height > CM_IMAGE_MAX_SIDE)
    {
        info->type = CM_IMAGE_NONE;
        info->width = 0;
        info->height = 0;
        *why = "the image has no valid dimensions";
        return -1;
    }

    return 0;
}


const char *
cm_image_ext(cm_image_type_e type)
{
    switch (type) {
    case CM_IMAGE_JPEG:
        return "jpg";
    case CM_IMAGE_PNG:
        return "png";
    case CM_IMAGE_WEBP:
        return "webp";
    default:
        return NULL;
    }
}


const char *
cm_image_name(cm_image_type_e type)
{
    switch (type) {
    case CM_IMAGE_JPEG:
        return "JPEG";
    case CM_IMAGE_PNG:
        return "PNG";
    case CM_IMAGE_WEBP:
        return "WEBP";
    default:
        return NULL;
    }
}


const char *
cm_image_mime(cm_image_type_e type)
{
    switch (type) {
    case CM_IMAGE_JPEG:
        return "image/jpeg";
    case CM_IMAGE_PNG:
        return "image/png";
    case CM_IMAGE_WEBP:
        return "image/webp";
    default:
        return NULL;
    }
}


/*
 * The signature, then IHDR first (length 13, valid depth for its colour
 * type, CRC), then every chunk's length within the bytes up to IEND.
 */

static int
cm_image_png(const unsigned char *p, size_t len, cm_image_info_t *info,
    const char **why)
{
    size_t    off;
    uint32_t  n, depth, colour;

    if (len < 8 + 25) {
        *why = "the PNG header is cut short";
        return -1;
    }

    if (cm_image_be32(p + 8) != 13 || memcmp(p + 12, "IHDR", 4) != 0) {
        *why = "the PNG does not begin with its IHDR chunk";
        return -1;
    }

    if (cm_image_crc32(p + 12, 17) != cm_image_be32(p + 29)) {
        *why = "the PNG header fails its CRC";
        return -1;
    }

    depth = p[24];
    colour = p[25];

    switch (colour) {
    case 0:
        n = (depth == 1 || depth == 2 || depth == 4 || depth == 8
             || depth == 16);
        break;
    case 3:
        n = (depth == 1 || depth == 2 || depth == 4 || depth == 8);
        break;
    case 2:
    case 4:
    case 6:
        n = (depth == 8 || depth == 16);
        break;
    default:
        n = 0;
    }

    if (!n || p[26] != 0 || p[27] != 0 || p[28] > 1) {
        *why = "the PNG header is malformed";
        return -1;
    }

    info->width = cm_image_be32(p + 16);
    info->height = cm_image_be32(p + 20);

    /* the chunks after IHDR, each 12 bytes and its data, up to IEND */
    for (off = 33; ; ) {
        if (len - off < 12) {
            *why = "the PNG is cut short";
            return -1;
        }

        n = cm_image_be32(p + off);
        if (n > 0x7fffffffu || len - off - 12 < n) {
            *why = "the PNG is cut short";
            return -1;
        }

        if (memcmp(p + off + 4, "IEND", 4) == 0) {
            break;
        }

        off += 12 + (size_t) n;
    }

    info->type = CM_IMAGE_PNG;
    return 0;
}


/*
 * Segments after SOI until the first frame header (SOF0-SOF15 but DHT,
 * JPG and DAC): a scan or the end before it is no image.
 */

static int
cm_image_jpeg(const unsigned char *p, size_t len, cm_image_info_t *info,
    const char **why)
{
    size_t         off, n;
    unsigned char  m;

    off = 2;

    for ( ;; ) {
        if (off >= len || p[off] != 0xff) {
            *why = "the JPEG has no frame header";
            return -1;
        }

        /* fill bytes before a marker */
        while (off < len && p[off] == 0xff) {
            off++;
        }

        if (off >= len) {
            *why = "the JPEG has no frame header";
            return -1;
        }

        m = p[off++];

        /* markers without a length: TEM, RST0-7 */
        if (m == 0x01 || (m >= 0xd0 && m <= 0xd7)) {
            continue;
        }

        if (m == 0x00 || m == 0xd8 || m == 0xd9 || m == 0xda) {
            *why = "the JPEG has no frame header";
            return -1;
        }

        if (len - off < 2) {
            *why = "the JPEG is cut short";
            return -1;
        }

        n = ((size_t) p[off] << 8) | p[off + 1];
        if (n < 2 || len - off < n) {
            *why = "the JPEG is cut short";
            return -1;
        }

        if (m >= 0xc0 && m <= 0xcf && m != 0xc4 && m != 0xc8 && m != 0xcc) {
            /* Lf, P, Y, X, Nf, then 3 bytes per component */
            if (n < 8 || p[off + 7] == 0 || n < 8 + 3 * (size_t) p[off + 7]) {
                *why = "the JPEG frame header is malformed";
                return -1;
            }

            info->height = ((uint32_t) p[off + 3] << 8) | p[off + 4];
            info->width = ((uint32_t) p[off + 5] << 8) | p[off + 6];
            info->type = CM_IMAGE_JPEG;
            return 0;
        }

        off += n;
    }
}


/*
 * RIFF size within the bytes, then the first chunk: VP8 (a key frame's
 * start code and 14-bit sides), VP8L (signature 0x2f, 14-bit sides - 1,
 * version 0) or VP8X (24-bit canvas sides - 1).
 */

static int
cm_image_webp(const unsigned char *p, size_t len, cm_image_info_t *info,
    const char **why)
{
    uint32_t              riff, size, b;
    const unsigned char  *d;

    riff = cm_image_le32(p + 4);

    if (len < 20 || riff < 12 || (size_t) riff > len - 8) {
        *why = "the WebP is cut short";
        return -1;
    }

    size = cm_image_le32(p + 16);
    if (size > riff - 12) {
        *why = "the WebP is cut short";
        return -1;
    }

    d = p + 20;

    if (memcmp(p + 12, "VP8 ", 4) == 0) {
        if (size < 10) {
            *why = "the WebP is cut short";
            return -1;
        }

        if ((d[0] & 1) != 0 || d[3] != 0x9d || d[4] != 0x01 || d[5] != 0x2a) {
            *why = "the WebP (VP8) header is malformed";
            return -1;
        }

        info->width = (d[6] | ((uint32_t) d[7] << 8)) & 0x3fff;
        info->height = (d[8] | ((uint32_t) d[9] << 8)) & 0x3fff;

    } else if (memcmp(p + 12, "VP8L", 4) == 0) {
        if (size < 5) {
            *why = "the WebP is cut short";
            return -1;
        }

        b = cm_image_le32(d + 1);

        if (d[0] != 0x2f || (b >> 29) != 0) {
            *why = "the WebP (VP8L) header is malformed";
            return -1;
        }

        info->width = (b & 0x3fff) + 1;
        info->height = ((b >> 14) & 0x3fff) + 1;

    } else if (memcmp(p + 12, "VP8X", 4) == 0) {
        if (size < 10) {
            *why = "the WebP is cut short";
            return -1;
        }

        info->width = cm_image_le24(d + 4) + 1;
        info->height = cm_image_le24(d + 7) + 1;

    } else {
        *why = "the WebP has no VP8, VP8L or VP8X chunk";
        return -1;
    }

    info->type = CM_IMAGE_WEBP;
    return 0;
}


static uint32_t
cm_image_be32(const unsigned char *p)
{
    return ((uint32_t) p[0] << 24) | ((uint32_t) p[1] << 16)
           | ((uint32_t) p[2] << 8) | p[3];
}


static uint32_t
cm_image_le32(const unsigned char *p)
{
    return ((uint32_t) p[3] << 24) | ((uint32_t) p[2] << 16)
           | ((uint32_t) p[1] << 8) | p[0];
}


static uint32_t
cm_image_le24(const unsigned char *p)
{
    return ((uint32_t) p[2] << 16) | ((uint32_t) p[1] << 8) | p[0];
}


/* CRC-32 of PNG (ISO 3309), bitwise: it only ever covers 17 bytes here */

static uint32_t
cm_image_crc32(const unsigned char *p, size_t len)
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


/* ------------------------------------------------------------------------
 * file names
 */

int
cm_image_file_name(const char *name)
{
    size_t  i;

    for (i = 0; i < 64; i++) {
        if (!((name[i] >= '0' && name[i] <= '9')
              || (name[i] >= 'a' && name[i] <= 'f')))
        {
            return 0;
        }
    }

    return name[64] == '.' && cm_image_ext_of(name + 65);
}


static int
cm_image_ext_of(const char *ext)
{
    int  t;

    for (t = CM_IMAGE_JPEG; t <= CM_IMAGE_WEBP; t++) {
        if (strcmp(ext, cm_image_ext((cm_image_type_e) t)) == 0) {
            return 1;
        }
    }

    return 0;
}


/* ------------------------------------------------------------------------
 * {"ids":[..]}
 */

int
cm_parse_image_order(const unsigned char *buf, size_t len, int64_t *ids,
    size_t *n, char *err, size_t errlen)
{
    cm_json_walk_t    w;
    cm_image_order_t  o;

    memset(&o, 0, sizeof(cm_image_order_t));
    o.ids = ids;

    memset(&w, 0, sizeof(cm_json_walk_t));
    w.handler = cm_image_order_event;
    w.data = &o;
    w.err = err;
    w.errlen = errlen;

    *n = 0;

    if (cm_json_walk(&w, buf, len) != 0) {
        return -1;
    }

    if (!o.closed || o.n == 0) {
        cm_json_fail(&w, "ids must be an array of 1 to %d image ids",
                     CM_IMAGE_MAX_PER_PRODUCT);
        return -1;
    }

    *n = o.n;

    return 0;
}


static int
cm_image_order_event(cm_json_walk_t *w, cm_json_event_e ev,
    const unsigned char *p, size_t len)
{
    size_t             i;
    int64_t            id;
    cm_image_order_t  *o = w->data;

    if (w->depth == 1) {
        switch (ev) {

        case CM_JSON_MAP_START:
        case CM_JSON_MAP_END:
            return CM_JSON_OK;

        case CM_JSON_KEY:
            if (!cm_json_str_is(p, len, "ids")) {
                return cm_json_fail(w, "unknown field: only ids");
            }

            if (o->seen) {
                return cm_json_fail(w, "ids given twice");
            }

            o->seen = 1;
            return CM_JSON_OK;

        default:
            return cm_json_fail(w, "ids must be an array of 1 to %d image"
                                " ids", CM_IMAGE_MAX_PER_PRODUCT);
        }
    }

    if (w->depth == 2 && ev == CM_JSON_ARRAY_START) {
        o->in_ids = 1;
        return CM_JSON_OK;
    }

    if (w->depth == 2 && ev == CM_JSON_ARRAY_END) {
        o->in_ids = 0;
        o->closed = 1;
        return CM_JSON_OK;
    }

    if (!o->in_ids || w->depth != 2 || ev == CM_JSON_MAP_START
        || ev == CM_JSON_ARRAY_START)
    {
        return cm_json_fail(w, "ids must be an array of 1 to %d image ids",
                            CM_IMAGE_MAX_PER_PRODUCT);
    }

    if (cm_json_int_value(w, ev, p, len, 1, INT64_MAX, "each id", &id)
        != CM_JSON_OK)
    {
        return CM_JSON_FAIL;
    }

    if (o->n == CM_IMAGE_MAX_PER_PRODUCT) {
        return cm_json_fail(w, "ids must be an array of 1 to %d image ids",
                            CM_IMAGE_MAX_PER_PRODUCT);
    }

    for (i = 0; i < o->n; i++) {
        if (o->ids[i] == id) {
            return cm_json_fail(w, "ids must name each image once");
        }
    }

    o->ids[o->n++] = id;

    return CM_JSON_OK;
}
