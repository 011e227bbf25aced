/*
 * cm_sig: signed payment-gateway callbacks, and card-number masking,
 * without nginx.
 *
 * Signatures follow Stripe's webhook scheme.  The header value is
 *
 *     t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<payload>")>
 *
 * where <t> is signed as written.  A header may carry several v1 entries
 * (a sender rolling its secret signs with both) and entries of other
 * schemes (v0=...), which are ignored; it is valid when any v1 entry
 * matches.  Spaces and tabs around an entry are allowed.
 */


#ifndef _CM_SIG_H_INCLUDED_
#define _CM_SIG_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


/* "t=" 18 digits ",v1=" 64 hex digits, and a NUL */
#define CM_SIG_HEADER_LEN   (2 + 18 + 4 + 64 + 1)

/* at most this many digits in t, so that it fits in int64_t */
#define CM_SIG_T_DIGITS     18


/*
 * Writes the header value for payload signed at t (0 <= t < 10^18) and a
 * NUL after it; returns its length, or 0 if dst is too small (make it
 * CM_SIG_HEADER_LEN), the secret is empty, t is out of range or HMAC
 * fails.
 */
size_t cm_sig_make(char *dst, size_t dstlen, const unsigned char *secret,
    size_t slen, int64_t t, const unsigned char *payload, size_t plen);

/*
 * 0 when header is a valid signature of payload under secret, made at most
 * tolerance_s seconds before or after now (unix seconds); else -1 with
 * *reason, a static string:
 *
 *   "malformed"                  not comma-separated key=value entries,
 *                                no t, t twice, t not 1..18 digits, no v1
 *   "bad signature"              no v1 entry matches (or an empty secret)
 *   "timestamp outside tolerance"  |now - t| > tolerance_s
 *
 * The signature is checked before the timestamp, so a forged header is
 * "bad signature" whatever its t.  A negative tolerance_s is 0.  Each
 * candidate is compared in constant time (CRYPTO_memcmp).  reason may be
 * NULL; it is set to NULL on success.
 */
int cm_sig_verify(const unsigned char *header, size_t hlen,
    const unsigned char *secret, size_t slen, const unsigned char *payload,
    size_t plen, int64_t now, int64_t tolerance_s, const char **reason);

/*
 * Masks card numbers in a text, such as a JSON body, before it is logged
 * or stored: every run of 12 to 19 digits, in which single '-' or ' '
 * may separate digits, keeps its last 4 digits and has the others replaced
 * by '*'; separators and all other bytes are kept.  Runs shorter or
 * longer are left alone.
 *
 *     {"cardNo":"1234-5678-9012-3456"}  ->  {"cardNo":"****-****-****-3456"}
 *
 * The output has the length of the input and a NUL after it.  Returns
 * len, or 0 (with dst "" when dstlen > 0) if dstlen <= len.  dst may be
 * src itself.
 */
size_t cm_mask_card_numbers(char *dst, size_t dstlen,
    const unsigned char *src, size_t len);


#endif /* _CM_SIG_H_INCLUDED_ */
