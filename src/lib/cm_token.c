/*
 * cm_token: opaque refresh tokens, their storage hash, and JWT ids (see
 * cm_token.h).  No nginx headers: unit-tested as plain C.
 */


#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "cm_text.h"
#include "cm_token.h"


#define CM_TOKEN_BYTES       32
#define CM_JTI_BYTES         16


static void cm_token_hex(char *dst, const unsigned char *src, size_t len);


int
cm_token_new(char out[CM_TOKEN_LEN + 1], char hash_hex[CM_TOKEN_HASH_LEN + 1])
{
    unsigned char  raw[CM_TOKEN_BYTES];

    out[0] = '\0';
    hash_hex[0] = '\0';

    if (RAND_bytes(raw, sizeof(raw)) != 1) {
        return -1;
    }

    if (cm_base64_encode(CM_BASE64_URL, out, CM_TOKEN_LEN, raw, sizeof(raw))
        != CM_TOKEN_LEN)
    {
        OPENSSL_cleanse(raw, sizeof(raw));
        out[0] = '\0';
        return -1;
    }

    OPENSSL_cleanse(raw, sizeof(raw));

    out[CM_TOKEN_LEN] = '\0';

    if (cm_token_hash(out, CM_TOKEN_LEN, hash_hex) != 0) {
        OPENSSL_cleanse(out, CM_TOKEN_LEN + 1);
        return -1;
    }

    return 0;
}


int
cm_token_hash(const char *token, size_t len,
    char hash_hex[CM_TOKEN_HASH_LEN + 1])
{
    size_t         n;
    unsigned int   mdlen;
    unsigned char  raw[CM_TOKEN_BYTES], md[EVP_MAX_MD_SIZE];

    hash_hex[0] = '\0';

    if (token == NULL || len != CM_TOKEN_LEN
        || cm_base64_decode(CM_BASE64_URL, raw, sizeof(raw),
                            (const unsigned char *) token, len, &n)
           != 0
        || n != CM_TOKEN_BYTES)
    {
        return -1;
    }

    OPENSSL_cleanse(raw, sizeof(raw));

    mdlen = 0;

    if (EVP_Digest(token, len, md, &mdlen, EVP_sha256(), NULL) != 1
        || mdlen * 2 != CM_TOKEN_HASH_LEN)
    {
        return -1;
    }

    cm_token_hex(hash_hex, md, mdlen);

    return 0;
}


int
cm_token_jti(char out[CM_JTI_LEN + 1])
{
    unsigned char  raw[CM_JTI_BYTES];

    out[0] = '\0';

    if (RAND_bytes(raw, sizeof(raw)) != 1) {
        return -1;
    }

    cm_token_hex(out, raw, sizeof(raw));

    return 0;
}


/* lowercase hex and a NUL: dst has 2 * len + 1 bytes */

static void
cm_token_hex(char *dst, const unsigned char *src, size_t len)
{
    size_t  i;
    static const char  digits[] = "0123456789abcdef";

    for (i = 0; i < len; i++) {
        dst[2 * i] = digits[src[i] >> 4];
        dst[2 * i + 1] = digits[src[i] & 0x0f];
    }

    dst[2 * len] = '\0';
}
