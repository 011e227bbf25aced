/*
 * cm_pii: AES-256-GCM for personal data at rest under a rotating keyring,
 * a keyed blind index, and the key-file parser (see cm_pii.h).  No nginx
 * headers: unit-tested as plain C.
 */


#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "cm_pii.h"
#include "cm_text.h"


#define CM_PII_VERSION       "v1."
#define CM_PII_HEADER_LEN    (3 + 5 + 1)           /* "v1.65535." */
#define CM_PII_NONCE_B64     16                    /* 12 bytes */
#define CM_PII_SEALED_MAX    (CM_PII_PLAINTEXT_MAX + CM_PII_TAG_LEN)

#define cm_pii_is_space(c)                                                    \
    ((c) == ' ' || (c) == '\t' || (c) == '\r' || (c) == '\n'                  \
     || (c) == '\v' || (c) == '\f')

#define cm_pii_is_blank(c)   ((c) == ' ' || (c) == '\t')


static int cm_pii_gcm(int enc, const unsigned char *key,
    const unsigned char *nonce, const unsigned char *aad1, size_t aad1len,
    const unsigned char *aad2, size_t aad2len, const unsigned char *in,
    size_t len, unsigned char *out, unsigned char *tag);
static int cm_pii_kid(const char *p, size_t len, uint32_t *kid);
static size_t cm_pii_header(char *dst, uint32_t kid);
static int cm_pii_hex_decode(const char *p, size_t len, unsigned char *out);
static int cm_pii_hex_value(unsigned char c);
static int cm_keyring_line(cm_keyring_t *kr, const char *p, size_t len,
    const char **err);
static const char *cm_pii_token(const char **p, const char *end,
    size_t *len);


int
cm_keyring_parse(const char *text, size_t len, cm_keyring_t *out,
    const char **err)
{
    int          has_current;
    size_t       n;
    uint32_t     line;
    const char  *p, *end, *eol, *why;

    memset(out, 0, sizeof(cm_keyring_t));

    if (text == NULL && len != 0) {
        why = "bad key file";
        goto failed;
    }

    if (len != 0 && memchr(text, '\0', len) != NULL) {
        why = "bad key file";
        goto failed;
    }

    has_current = 0;
    line = 0;
    p = text;
    end = text + len;

    while (p < end) {
        line++;
        out->line = line;

        eol = memchr(p, '\n', (size_t) (end - p));
        n = (eol != NULL) ? (size_t) (eol - p) : (size_t) (end - p);

        switch (cm_keyring_line(out, p, n, &why)) {

        case -1:
            goto failed;

        case 2:
            if (has_current) {
                why = "more than one current key";
                goto failed;
            }

            has_current = 1;
            out->current = out->nkeys - 1;
            break;

        default:
            break;
        }

        p += n + (eol != NULL ? 1 : 0);
    }

    out->line = 0;

    if (out->nkeys == 0) {
        why = "no keys";
        goto failed;
    }

    if (!has_current) {
        why = "no current key";
        goto failed;
    }

    if (err != NULL) {
        *err = NULL;
    }

    return 0;

failed:

    line = out->line;
    cm_keyring_wipe(out);
    out->line = line;

    if (err != NULL) {
        *err = why;
    }

    return -1;
}


const cm_key_t *
cm_keyring_find(const cm_keyring_t *kr, uint32_t kid)
{
    uint32_t  i;

    for (i = 0; i < kr->nkeys && i < CM_KEYRING_MAX; i++) {
        if (kr->keys[i].kid == kid) {
            return &kr->keys[i];
        }
    }

    return NULL;
}


const cm_key_t *
cm_keyring_current(const cm_keyring_t *kr)
{
    if (kr->nkeys == 0 || kr->nkeys > CM_KEYRING_MAX
        || kr->current >= kr->nkeys)
    {
        return NULL;
    }

    return &kr->keys[kr->current];
}


void
cm_keyring_wipe(cm_keyring_t *kr)
{
    OPENSSL_cleanse(kr, sizeof(cm_keyring_t));
}


size_t
cm_pii_aad(char *dst, size_t dstlen, const char *field, int64_t id)
{
    int  n;

    if (dst == NULL || dstlen == 0 || field == NULL || field[0] == '\0') {
        return 0;
    }

    n = snprintf(dst, dstlen, "%s:%" PRId64, field, id);
    if (n <= 0 || (size_t) n >= dstlen) {
        dst[0] = '\0';
        return 0;
    }

    return (size_t) n;
}


size_t
cm_pii_encrypt(char *dst, size_t dstlen, const cm_keyring_t *kr,
    const unsigned char *aad, size_t aadlen, const unsigned char *pt,
    size_t ptlen)
{
    size_t           n, k;
    const cm_key_t  *key;
    unsigned char    nonce[CM_PII_NONCE_LEN];
    unsigned char    sealed[CM_PII_SEALED_MAX];

    if (dst == NULL || dstlen == 0) {
        return 0;
    }

    dst[0] = '\0';

    if (ptlen > CM_PII_PLAINTEXT_MAX || (pt == NULL && ptlen != 0)
        || (aad == NULL && aadlen != 0) || aadlen > INT_MAX
        || dstlen < CM_PII_TEXT_LEN(ptlen))
    {
        return 0;
    }

    key = cm_keyring_current(kr);
    if (key == NULL) {
        return 0;
    }

    if (RAND_bytes(nonce, sizeof(nonce)) != 1) {
        return 0;
    }

    n = cm_pii_header(dst, key->kid);

    if (cm_pii_gcm(1, key->key, nonce, (const unsigned char *) dst, n, aad,
                   aadlen, pt, ptlen, sealed, sealed + ptlen)
        != 0)
    {
        goto failed;
    }

    k = cm_base64_encode(CM_BASE64_URL, dst + n, dstlen - n, nonce,
                         sizeof(nonce));
    if (k != CM_PII_NONCE_B64) {
        goto failed;
    }

    n += k;
    dst[n++] = '.';

    k = cm_base64_encode(CM_BASE64_URL, dst + n, dstlen - n, sealed,
                         ptlen + CM_PII_TAG_LEN);
    if (k == 0 || n + k >= dstlen) {
        goto failed;
    }

    n += k;
    dst[n] = '\0';

    OPENSSL_cleanse(sealed, sizeof(sealed));

    return n;

failed:

    OPENSSL_cleanse(sealed, sizeof(sealed));
    dst[0] = '\0';

    return 0;
}


int
cm_pii_decrypt(unsigned char *dst, size_t dstlen, size_t *ptlen,
    const cm_keyring_t *kr, const unsigned char *aad, size_t aadlen,
    const char *text, size_t len, int *stale, const char **reason)
{
    size_t           n, sealed_len, hlen;
    uint32_t         kid;
    const char      *p, *end, *dot, *why;
    const cm_key_t  *key, *current;
    unsigned char    nonce[CM_PII_NONCE_LEN];
    unsigned char    sealed[CM_PII_SEALED_MAX];

    if (stale != NULL) {
        *stale = 0;
    }

    *ptlen = 0;

    if (text == NULL || (aad == NULL && aadlen != 0) || aadlen > INT_MAX) {
        why = "malformed";
        goto failed;
    }

    p = text;
    end = text + len;

    /* v1.<kid>. */

    if (len < sizeof(CM_PII_VERSION) - 1
        || memcmp(p, CM_PII_VERSION, sizeof(CM_PII_VERSION) - 1) != 0)
    {
        why = "malformed";
        goto failed;
    }

    p += sizeof(CM_PII_VERSION) - 1;

    dot = memchr(p, '.', (size_t) (end - p));
    if (dot == NULL || cm_pii_kid(p, (size_t) (dot - p), &kid) != 0) {
        why = "malformed";
        goto failed;
    }

    p = dot + 1;
    hlen = (size_t) (p - text);

    /* <nonce>. */

    dot = memchr(p, '.', (size_t) (end - p));
    if (dot == NULL || dot - p != CM_PII_NONCE_B64
        || cm_base64_decode(CM_BASE64_URL, nonce, sizeof(nonce),
                            (const unsigned char *) p, CM_PII_NONCE_B64, &n)
           != 0
        || n != CM_PII_NONCE_LEN)
    {
        why = "malformed";
        goto failed;
    }

    p = dot + 1;

    /* <ciphertext and tag> */

    if (cm_base64_decode(CM_BASE64_URL, sealed, sizeof(sealed),
                         (const unsigned char *) p, (size_t) (end - p),
                         &sealed_len)
        != 0
        || sealed_len < CM_PII_TAG_LEN)
    {
        why = "malformed";
        goto failed;
    }

    key = cm_keyring_find(kr, kid);
    if (key == NULL) {
        why = "unknown key";
        goto failed;
    }

    n = sealed_len - CM_PII_TAG_LEN;

    if (n > dstlen || (dst == NULL && n != 0)) {
        why = "buffer too small";
        goto failed;
    }

    /* the header "v1.<kid>." as written: the kid is canonical */

    if (cm_pii_gcm(0, key->key, nonce, (const unsigned char *) text, hlen,
                   aad, aadlen, sealed, n, dst, sealed + n)
        != 0)
    {
        why = "authentication failed";
        goto failed;
    }

    OPENSSL_cleanse(sealed, sizeof(sealed));

    *ptlen = n;

    current = cm_keyring_current(kr);

    if (stale != NULL) {
        *stale = (current == NULL || current->kid != kid);
    }

    if (reason != NULL) {
        *reason = NULL;
    }

    return 0;

failed:

    OPENSSL_cleanse(sealed, sizeof(sealed));

    if (dst != NULL && dstlen != 0) {
        OPENSSL_cleanse(dst, dstlen);
    }

    if (reason != NULL) {
        *reason = why;
    }

    return -1;
}


size_t
cm_pii_normalize(char *dst, size_t dstlen, const char *src, size_t len)
{
    size_t         i;
    unsigned char  c;

    if (src == NULL) {
        len = 0;
    }

    while (len > 0 && cm_pii_is_space(src[0])) {
        src++;
        len--;
    }

    while (len > 0 && cm_pii_is_space(src[len - 1])) {
        len--;
    }

    if (dst == NULL || dstlen <= len) {
        return (size_t) -1;
    }

    for (i = 0; i < len; i++) {
        c = (unsigned char) src[i];
        dst[i] = (char) ((c >= 'A' && c <= 'Z') ? (c | 0x20) : c);
    }

    dst[len] = '\0';

    return len;
}


int
cm_pii_blind_index(char hex[CM_PII_INDEX_LEN], const unsigned char *key,
    size_t keylen, const char *value, size_t len)
{
    size_t         i, n;
    unsigned int   maclen;
    unsigned char  mac[EVP_MAX_MD_SIZE];
    char           norm[CM_PII_INDEX_VALUE_MAX + 1];
    static const char  digits[] = "0123456789abcdef";

    hex[0] = '\0';

    if (key == NULL || keylen == 0 || keylen > INT_MAX
        || len > CM_PII_INDEX_VALUE_MAX || (value == NULL && len != 0))
    {
        return -1;
    }

    n = cm_pii_normalize(norm, sizeof(norm), value, len);
    if (n == (size_t) -1) {
        return -1;
    }

    maclen = 0;

    if (HMAC(EVP_sha256(), key, (int) keylen, (const unsigned char *) norm,
             n, mac, &maclen)
        == NULL
        || maclen != 32)
    {
        OPENSSL_cleanse(norm, sizeof(norm));
        return -1;
    }

    for (i = 0; i < 32; i++) {
        hex[2 * i] = digits[mac[i] >> 4];
        hex[2 * i + 1] = digits[mac[i] & 0x0f];
    }

    hex[64] = '\0';

    OPENSSL_cleanse(norm, sizeof(norm));

    return 0;
}


int
cm_aes256gcm_seal(const unsigned char key[CM_KEY_LEN],
    const unsigned char nonce[CM_PII_NONCE_LEN], const unsigned char *aad1,
    size_t aad1len, const unsigned char *aad2, size_t aad2len,
    const unsigned char *pt, size_t ptlen, unsigned char *ct,
    unsigned char tag[CM_PII_TAG_LEN])
{
    return cm_pii_gcm(1, key, nonce, aad1, aad1len, aad2, aad2len, pt, ptlen,
                      ct, tag);
}


int
cm_aes256gcm_open(const unsigned char key[CM_KEY_LEN],
    const unsigned char nonce[CM_PII_NONCE_LEN], const unsigned char *aad1,
    size_t aad1len, const unsigned char *aad2, size_t aad2len,
    const unsigned char *ct, size_t ctlen,
    const unsigned char tag[CM_PII_TAG_LEN], unsigned char *pt)
{
    return cm_pii_gcm(0, key, nonce, aad1, aad1len, aad2, aad2len, ct, ctlen,
                      pt, (unsigned char *) tag);
}


/*
 * One AES-256-GCM operation.  Encrypting writes the tag to tag;
 * decrypting reads it from there, and zeroes out unless it matched.
 */

static int
cm_pii_gcm(int enc, const unsigned char *key, const unsigned char *nonce,
    const unsigned char *aad1, size_t aad1len, const unsigned char *aad2,
    size_t aad2len, const unsigned char *in, size_t len, unsigned char *out,
    unsigned char *tag)
{
    int              n, rc;
    unsigned char    last[16];
    EVP_CIPHER_CTX  *ctx;

    if (key == NULL || nonce == NULL || tag == NULL
        || aad1len > INT_MAX || aad2len > INT_MAX || len > INT_MAX
        || (aad1 == NULL && aad1len != 0) || (aad2 == NULL && aad2len != 0)
        || ((in == NULL || out == NULL) && len != 0))
    {
        return -1;
    }

    ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL) {
        return -1;
    }

    rc = -1;

    if (EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL, enc) != 1
        || EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, CM_PII_NONCE_LEN,
                               NULL) != 1
        || EVP_CipherInit_ex(ctx, NULL, NULL, key, nonce, enc) != 1)
    {
        goto done;
    }

    if (aad1len != 0
        && EVP_CipherUpdate(ctx, NULL, &n, aad1, (int) aad1len) != 1)
    {
        goto done;
    }

    if (aad2len != 0
        && EVP_CipherUpdate(ctx, NULL, &n, aad2, (int) aad2len) != 1)
    {
        goto done;
    }

    if (len != 0
        && (EVP_CipherUpdate(ctx, out, &n, in, (int) len) != 1
            || (size_t) n != len))
    {
        goto done;
    }

    if (!enc
        && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, CM_PII_TAG_LEN, tag)
           != 1)
    {
        goto done;
    }

    /* GCM is a stream mode: Final writes nothing; it makes or checks the tag */

    if (EVP_CipherFinal_ex(ctx, last, &n) != 1 || n != 0) {
        goto done;
    }

    if (enc
        && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, CM_PII_TAG_LEN, tag)
           != 1)
    {
        goto done;
    }

    rc = 0;

done:

    EVP_CIPHER_CTX_free(ctx);

    if (rc != 0 && !enc && len != 0 && out != NULL) {
        OPENSSL_cleanse(out, len);
    }

    return rc;
}


/* 1..65535, decimal, no leading zero */

static int
cm_pii_kid(const char *p, size_t len, uint32_t *kid)
{
    size_t    i;
    uint32_t  v;

    if (len == 0 || len > 5 || p[0] == '0') {
        return -1;
    }

    v = 0;

    for (i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return -1;
        }

        v = v * 10 + (uint32_t) (p[i] - '0');
    }

    if (v < 1 || v > CM_KID_MAX) {
        return -1;
    }

    *kid = v;

    return 0;
}


/* "v1.<kid>." into dst (CM_PII_HEADER_LEN bytes suffice), no NUL */

static size_t
cm_pii_header(char *dst, uint32_t kid)
{
    char    digits[5];
    size_t  n, i;

    memcpy(dst, CM_PII_VERSION, sizeof(CM_PII_VERSION) - 1);
    n = sizeof(CM_PII_VERSION) - 1;

    i = 0;

    do {
        digits[i++] = (char) ('0' + kid % 10);
        kid /= 10;
    } while (kid != 0 && i < sizeof(digits));

    while (i > 0) {
        dst[n++] = digits[--i];
    }

    dst[n++] = '.';

    return n;
}


/* exactly 2 * CM_KEY_LEN hex digits, either case */

static int
cm_pii_hex_decode(const char *p, size_t len, unsigned char *out)
{
    int     hi, lo;
    size_t  i;

    if (len != 2 * CM_KEY_LEN) {
        return -1;
    }

    for (i = 0; i < CM_KEY_LEN; i++) {
        hi = cm_pii_hex_value((unsigned char) p[2 * i]);
        lo = cm_pii_hex_value((unsigned char) p[2 * i + 1]);

        if (hi < 0 || lo < 0) {
            return -1;
        }

        out[i] = (unsigned char) (hi << 4 | lo);
    }

    return 0;
}


static int
cm_pii_hex_value(unsigned char c)
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


/*
 * One line of a key file: 0 for a blank or comment line, 1 for a key, 2
 * for the current key (appended to kr), -1 with *err.
 */

static int
cm_keyring_line(cm_keyring_t *kr, const char *p, size_t len,
    const char **err)
{
    size_t          klen, hlen, clen, i;
    uint32_t        kid;
    const char     *end, *k, *h, *c, *hash;
    unsigned char   key[CM_KEY_LEN], zero[CM_KEY_LEN];

    hash = memchr(p, '#', len);
    end = (hash != NULL) ? hash : p + len;

    /* a CRLF file, or trailing blanks */
    while (end > p && (cm_pii_is_blank(end[-1]) || end[-1] == '\r')) {
        end--;
    }

    k = cm_pii_token(&p, end, &klen);
    if (k == NULL) {
        return 0;
    }

    if (cm_pii_kid(k, klen, &kid) != 0) {
        *err = "bad key id";
        return -1;
    }

    h = cm_pii_token(&p, end, &hlen);
    if (h == NULL || cm_pii_hex_decode(h, hlen, key) != 0) {
        *err = "bad key";
        return -1;
    }

    c = cm_pii_token(&p, end, &clen);

    if ((c != NULL
         && (clen != sizeof("current") - 1
             || memcmp(c, "current", clen) != 0))
        || cm_pii_token(&p, end, &clen) != NULL)
    {
        OPENSSL_cleanse(key, sizeof(key));
        *err = "unexpected text after the key";
        return -1;
    }

    memset(zero, 0, sizeof(zero));

    if (CRYPTO_memcmp(key, zero, CM_KEY_LEN) == 0) {
        *err = "all-zero key";
        return -1;
    }

    for (i = 0; i < kr->nkeys; i++) {
        if (kr->keys[i].kid == kid) {
            OPENSSL_cleanse(key, sizeof(key));
            *err = "duplicate key id";
            return -1;
        }

        if (CRYPTO_memcmp(kr->keys[i].key, key, CM_KEY_LEN) == 0) {
            OPENSSL_cleanse(key, sizeof(key));
            *err = "same key under two ids";
            return -1;
        }
    }

    if (kr->nkeys == CM_KEYRING_MAX) {
        OPENSSL_cleanse(key, sizeof(key));
        *err = "too many keys";
        return -1;
    }

    kr->keys[kr->nkeys].kid = kid;
    memcpy(kr->keys[kr->nkeys].key, key, CM_KEY_LEN);
    kr->nkeys++;

    OPENSSL_cleanse(key, sizeof(key));

    return (c != NULL) ? 2 : 1;
}


/* the next blank-separated token before end, or NULL */

static const char *
cm_pii_token(const char **p, const char *end, size_t *len)
{
    const char  *s, *q;

    s = *p;

    while (s < end && cm_pii_is_blank(*s)) {
        s++;
    }

    if (s == end) {
        *p = s;
        return NULL;
    }

    q = s;

    while (q < end && !cm_pii_is_blank(*q)) {
        q++;
    }

    *len = (size_t) (q - s);
    *p = q;

    return s;
}
