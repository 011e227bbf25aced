/*
 * cm_text: base64 and UTF-8 (see cm_text.h).  No nginx headers:
 * unit-tested and fuzzed as plain C.
 */


#include "cm_text.h"


static int cm_base64_value(cm_base64_e a, unsigned char c);


/* indexed by cm_base64_e */
static const char  cm_base64_alphabet[2][65] = {
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
};


size_t
cm_base64_encode(cm_base64_e a, char *dst, size_t dstlen,
    const unsigned char *src, size_t len)
{
    size_t       i, n, need;
    uint32_t     v;
    const char  *abc;

    if ((unsigned) a > CM_BASE64_URL || len / 3 >= SIZE_MAX / 4 - 1) {
        return 0;
    }

    need = len / 3 * 4 + (len % 3 == 0 ? 0 : len % 3 + 1);
    if (need > dstlen) {
        return 0;
    }

    abc = cm_base64_alphabet[a];
    n = 0;

    for (i = 0; i + 2 < len; i += 3) {
        v = (uint32_t) src[i] << 16 | (uint32_t) src[i + 1] << 8 | src[i + 2];
        dst[n++] = abc[v >> 18];
        dst[n++] = abc[(v >> 12) & 0x3f];
        dst[n++] = abc[(v >> 6) & 0x3f];
        dst[n++] = abc[v & 0x3f];
    }

    if (len - i == 1) {
        v = (uint32_t) src[i] << 16;
        dst[n++] = abc[v >> 18];
        dst[n++] = abc[(v >> 12) & 0x3f];

    } else if (len - i == 2) {
        v = (uint32_t) src[i] << 16 | (uint32_t) src[i + 1] << 8;
        dst[n++] = abc[v >> 18];
        dst[n++] = abc[(v >> 12) & 0x3f];
        dst[n++] = abc[(v >> 6) & 0x3f];
    }

    return n;
}


int
cm_base64_decode(cm_base64_e a, unsigned char *dst, size_t dstlen,
    const unsigned char *src, size_t len, size_t *outlen)
{
    int       v;
    size_t    i, n, need;
    unsigned  bits;
    uint32_t  acc;

    /* one character left over holds only 6 bits: not a whole byte */
    if ((unsigned) a > CM_BASE64_URL || len % 4 == 1) {
        return -1;
    }

    need = len / 4 * 3 + (len % 4 == 0 ? 0 : len % 4 - 1);
    if (need > dstlen) {
        return -1;
    }

    n = 0;
    acc = 0;
    bits = 0;

    for (i = 0; i < len; i++) {
        v = cm_base64_value(a, src[i]);
        if (v < 0) {
            return -1;
        }

        acc = acc << 6 | (uint32_t) v;
        bits += 6;

        if (bits >= 8) {
            bits -= 8;
            dst[n++] = (unsigned char) (acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }

    /*
     * Nonzero unused bits would let several spellings decode alike: a
     * token could be altered without touching its signature bytes, and a
     * stored hash would no longer have one spelling.
     */
    if (acc != 0) {
        return -1;
    }

    *outlen = n;

    return 0;
}


static int
cm_base64_value(cm_base64_e a, unsigned char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }

    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }

    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }

    if (c == (unsigned char) cm_base64_alphabet[a][62]) {
        return 62;
    }

    if (c == (unsigned char) cm_base64_alphabet[a][63]) {
        return 63;
    }

    return -1;
}


/*
 * Table 3-7 of Unicode 15 ("well-formed UTF-8 byte sequences"): the lead
 * byte gives the length, and only the second byte has a range narrower
 * than 80..BF, which is what excludes overlong forms (E0, F0), surrogates
 * (ED) and code points beyond U+10FFFF (F4).  C0, C1 and F5..FF only
 * ever start overlong or out-of-range forms.
 */

size_t
cm_utf8_decode(const unsigned char *p, size_t len, uint32_t *cp)
{
    size_t         n, i;
    uint32_t       v;
    unsigned char  c, lo, hi;

    if (len == 0) {
        return 0;
    }

    c = p[0];

    if (c < 0x80) {
        *cp = c;
        return 1;
    }

    lo = 0x80;
    hi = 0xbf;

    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        v = c & 0x1f;

    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        v = c & 0x0f;

        if (c == 0xe0) {
            lo = 0xa0;

        } else if (c == 0xed) {
            hi = 0x9f;
        }

    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        v = c & 0x07;

        if (c == 0xf0) {
            lo = 0x90;

        } else if (c == 0xf4) {
            hi = 0x8f;
        }

    } else {
        return 0;
    }

    if (len < n || p[1] < lo || p[1] > hi) {
        return 0;
    }

    v = v << 6 | (p[1] & 0x3f);

    for (i = 2; i < n; i++) {
        if (p[i] < 0x80 || p[i] > 0xbf) {
            return 0;
        }

        v = v << 6 | (p[i] & 0x3f);
    }

    *cp = v;

    return n;
}


int
cm_utf8_count(const unsigned char *p, size_t len, size_t *chars)
{
    size_t    i, k, n;
    uint32_t  cp;

    n = 0;

    for (i = 0; i < len; i += k) {
        k = cm_utf8_decode(p + i, len - i, &cp);
        if (k == 0) {
            return -1;
        }

        n++;
    }

    *chars = n;

    return 0;
}


int
cm_utf8_text(const unsigned char *p, size_t len, size_t min, size_t max,
    int multiline)
{
    size_t  i, chars;
    int     blank;

    if (cm_utf8_count(p, len, &chars) != 0 || chars < min || chars > max) {
        return -1;
    }

    blank = 1;

    for (i = 0; i < len; i++) {
        if (p[i] < 0x20 || p[i] == 0x7f) {
            if (!(multiline && (p[i] == '\t' || p[i] == '\n'
                                || p[i] == '\r')))
            {
                return -1;
            }
        }

        /* C1 controls U+0080..U+009F: 0xC2 0x80..0x9F */
        if (p[i] == 0xc2 && i + 1 < len && p[i + 1] >= 0x80
            && p[i + 1] <= 0x9f)
        {
            return -1;
        }

        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\n' && p[i] != '\r') {
            blank = 0;
        }
    }

    return (min > 0 && blank) ? -1 : 0;
}
