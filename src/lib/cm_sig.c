/*
 * cm_sig: Stripe-style webhook signatures and card-number masking (see
 * cm_sig.h).  No nginx headers: unit-tested as plain C.
 */


#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "cm_sig.h"


#define CM_SIG_MAC_LEN       32        /* SHA-256 */
#define CM_SIG_HEX_LEN       64

#define CM_CARD_DIGITS_MIN   12
#define CM_CARD_DIGITS_MAX   19
#define CM_CARD_KEEP         4

#define cm_sig_is_digit(c)   ((c) >= '0' && (c) <= '9')
#define cm_sig_is_space(c)   ((c) == ' ' || (c) == '\t')


static int cm_sig_hmac(const unsigned char *secret, size_t slen,
    const unsigned char *t, size_t tlen, const unsigned char *payload,
    size_t plen, unsigned char *mac);
static int cm_sig_hex_decode(const unsigned char *p, size_t len,
    unsigned char *out);
static int cm_sig_hex_value(unsigned char c);


size_t
cm_sig_make(char *dst, size_t dstlen, const unsigned char *secret,
    size_t slen, int64_t t, const unsigned char *payload, size_t plen)
{
    int            n;
    char           ts[CM_SIG_T_DIGITS + 1];
    size_t         i, len;
    unsigned char  mac[CM_SIG_MAC_LEN];
    static const char  hex[] = "0123456789abcdef";

    if (slen == 0 || t < 0 || t > INT64_C(999999999999999999)) {
        return 0;
    }

    n = snprintf(ts, sizeof(ts), "%" PRId64, t);
    if (n <= 0 || (size_t) n >= sizeof(ts)) {
        return 0;
    }

    len = 2 + (size_t) n + 4 + CM_SIG_HEX_LEN;

    if (dstlen <= len) {
        return 0;
    }

    if (cm_sig_hmac(secret, slen, (const unsigned char *) ts, (size_t) n,
                    payload, plen, mac)
        != 0)
    {
        return 0;
    }

    memcpy(dst, "t=", 2);
    memcpy(dst + 2, ts, (size_t) n);
    memcpy(dst + 2 + n, ",v1=", 4);

    for (i = 0; i < CM_SIG_MAC_LEN; i++) {
        dst[2 + n + 4 + 2 * i] = hex[mac[i] >> 4];
        dst[2 + n + 4 + 2 * i + 1] = hex[mac[i] & 0x0f];
    }

    dst[len] = '\0';

    return len;
}


int
cm_sig_verify(const unsigned char *header, size_t hlen,
    const unsigned char *secret, size_t slen, const unsigned char *payload,
    size_t plen, int64_t now, int64_t tolerance_s, const char **reason)
{
    int                   match, nv1;
    size_t                i, klen, vlen, tlen;
    int64_t               t;
    uint64_t              skew;
    const char           *why;
    const unsigned char  *p, *end, *item, *item_end, *eq, *v, *ts;
    unsigned char         mac[CM_SIG_MAC_LEN], got[CM_SIG_MAC_LEN];

    ts = NULL;
    tlen = 0;
    nv1 = 0;

    if (header == NULL || hlen == 0) {
        goto malformed;
    }

    /* first pass: the entries' shape, t, and that there is a v1 */

    p = header;
    end = header + hlen;

    for ( ;; ) {
        item_end = memchr(p, ',', (size_t) (end - p));
        if (item_end == NULL) {
            item_end = end;
        }

        item = p;
        while (item < item_end && cm_sig_is_space(*item)) {
            item++;
        }

        eq = memchr(item, '=', (size_t) (item_end - item));
        if (eq == NULL || eq == item) {
            goto malformed;
        }

        klen = (size_t) (eq - item);
        v = eq + 1;
        vlen = (size_t) (item_end - v);

        while (vlen > 0 && cm_sig_is_space(v[vlen - 1])) {
            vlen--;
        }

        if (klen == 1 && item[0] == 't') {

            if (ts != NULL || vlen == 0 || vlen > CM_SIG_T_DIGITS) {
                goto malformed;
            }

            for (i = 0; i < vlen; i++) {
                if (!cm_sig_is_digit(v[i])) {
                    goto malformed;
                }
            }

            ts = v;
            tlen = vlen;

        } else if (klen == 2 && item[0] == 'v' && item[1] == '1') {
            nv1++;
        }

        if (item_end == end) {
            break;
        }

        p = item_end + 1;
    }

    if (ts == NULL || nv1 == 0) {
        goto malformed;
    }

    if (slen == 0
        || cm_sig_hmac(secret, slen, ts, tlen, payload, plen, mac) != 0)
    {
        goto bad_signature;
    }

    /*
     * second pass: every well-formed v1 candidate, without stopping at a
     * match; the entries are known to be key=value now
     */

    match = 0;
    p = header;

    for ( ;; ) {
        item_end = memchr(p, ',', (size_t) (end - p));
        if (item_end == NULL) {
            item_end = end;
        }

        item = p;
        while (item < item_end && cm_sig_is_space(*item)) {
            item++;
        }

        eq = memchr(item, '=', (size_t) (item_end - item));
        v = eq + 1;
        vlen = (size_t) (item_end - v);

        while (vlen > 0 && cm_sig_is_space(v[vlen - 1])) {
            vlen--;
        }

        if (eq - item == 2 && item[0] == 'v' && item[1] == '1'
            && vlen == CM_SIG_HEX_LEN
            && cm_sig_hex_decode(v, vlen, got) == 0)
        {
            match |= (CRYPTO_memcmp(mac, got, CM_SIG_MAC_LEN) == 0);
        }

        if (item_end == end) {
            break;
        }

        p = item_end + 1;
    }

    if (!match) {
        goto bad_signature;
    }

    t = 0;
    for (i = 0; i < tlen; i++) {
        t = t * 10 + (ts[i] - '0');
    }

    if (tolerance_s < 0) {
        tolerance_s = 0;
    }

    /* |now - t| without overflow, for any now */
    skew = (now >= t) ? (uint64_t) now - (uint64_t) t
                      : (uint64_t) t - (uint64_t) now;

    if (skew > (uint64_t) tolerance_s) {
        why = "timestamp outside tolerance";
        goto failed;
    }

    if (reason != NULL) {
        *reason = NULL;
    }

    return 0;

malformed:

    why = "malformed";
    goto failed;

bad_signature:

    why = "bad signature";

failed:

    if (reason != NULL) {
        *reason = why;
    }

    return -1;
}


size_t
cm_mask_card_numbers(char *dst, size_t dstlen, const unsigned char *src,
    size_t len)
{
    size_t  i, j, end, digits, n;

    if (dstlen <= len) {
        if (dstlen > 0) {
            dst[0] = '\0';
        }

        return 0;
    }

    if (len > 0) {
        memmove(dst, src, len);
    }

    dst[len] = '\0';

    /* from here on only dst is read: it may be src */

    i = 0;

    while (i < len) {

        if (!cm_sig_is_digit(dst[i])) {
            i++;
            continue;
        }

        /* a run: digits, and single separators between two digits */

        digits = 0;
        end = i;

        for (j = i; j < len; j++) {

            if (cm_sig_is_digit(dst[j])) {
                digits++;
                end = j + 1;
                continue;
            }

            if ((dst[j] == '-' || dst[j] == ' ')
                && j + 1 < len && cm_sig_is_digit(dst[j + 1]))
            {
                continue;
            }

            break;
        }

        if (digits >= CM_CARD_DIGITS_MIN && digits <= CM_CARD_DIGITS_MAX) {
            n = 0;

            for (j = i; j < end; j++) {
                if (cm_sig_is_digit(dst[j]) && n++ < digits - CM_CARD_KEEP) {
                    dst[j] = '*';
                }
            }
        }

        i = end;
    }

    return len;
}


static int
cm_sig_hmac(const unsigned char *secret, size_t slen, const unsigned char *t,
    size_t tlen, const unsigned char *payload, size_t plen,
    unsigned char *mac)
{
    int          rc;
    size_t       maclen;
    EVP_PKEY    *key;
    EVP_MD_CTX  *ctx;

    /* streamed, so that the payload need not be copied after "<t>." */

    rc = -1;
    ctx = NULL;

    key = EVP_PKEY_new_raw_private_key(EVP_PKEY_HMAC, NULL, secret, slen);
    if (key == NULL) {
        goto failed;
    }

    ctx = EVP_MD_CTX_new();
    if (ctx == NULL) {
        goto failed;
    }

    maclen = CM_SIG_MAC_LEN;

    if (EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key) != 1
        || EVP_DigestSignUpdate(ctx, t, tlen) != 1
        || EVP_DigestSignUpdate(ctx, ".", 1) != 1
        || (plen > 0 && EVP_DigestSignUpdate(ctx, payload, plen) != 1)
        || EVP_DigestSignFinal(ctx, mac, &maclen) != 1
        || maclen != CM_SIG_MAC_LEN)
    {
        goto failed;
    }

    rc = 0;

failed:

    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(key);

    return rc;
}


static int
cm_sig_hex_decode(const unsigned char *p, size_t len, unsigned char *out)
{
    int     hi, lo;
    size_t  i;

    for (i = 0; i < len / 2; i++) {
        hi = cm_sig_hex_value(p[2 * i]);
        lo = cm_sig_hex_value(p[2 * i + 1]);

        if (hi < 0 || lo < 0) {
            return -1;
        }

        out[i] = (unsigned char) (hi << 4 | lo);
    }

    return 0;
}


static int
cm_sig_hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }

    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }

    return -1;
}
