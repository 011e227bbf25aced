/*
 * cm_text: base64 (RFC 4648) and UTF-8 (RFC 3629), without nginx.  The one
 * copy of each for src/lib: tokens, PII envelopes and password hashes use
 * the base64 here, the JSON escaper, the account rules and the password
 * policy the UTF-8 decoder.
 *
 * No static state: everything is reentrant.
 */


#ifndef _CM_TEXT_H_INCLUDED_
#define _CM_TEXT_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


/* the two alphabets share A-Z a-z 0-9 and differ in their last two */
typedef enum {
    CM_BASE64_STD = 0,   /* section 4: + and /  (PHC password hashes) */
    CM_BASE64_URL        /* section 5: - and _  (JWT, refresh tokens, PII) */
} cm_base64_e;


/*
 * Unpadded base64 of src[0 .. len) in alphabet a.  Returns the length
 * written (no NUL; len / 3 * 4, plus 2 or 3 for a last 1 or 2 bytes), or
 * 0 if dst is too small (or len is 0).
 */
size_t cm_base64_encode(cm_base64_e a, char *dst, size_t dstlen,
    const unsigned char *src, size_t len);

/*
 * Decodes unpadded base64 in alphabet a, the canonical spelling only, so
 * that a value has exactly one: characters of the alphabet alone (no '=',
 * no space, nothing of the other alphabet), no length of 4n + 1, and zero
 * unused bits in the last character.  Returns 0 with *outlen set, or -1
 * (also when the decoded bytes would not fit in dstlen; dst may then hold
 * nothing useful).  An empty src decodes to 0 bytes.
 */
int cm_base64_decode(cm_base64_e a, unsigned char *dst, size_t dstlen,
    const unsigned char *src, size_t len, size_t *outlen);

/*
 * The character at p, of len bytes available: its code point in *cp and
 * the length of its sequence, 1 to 4.  0 when p does not start a
 * well-formed sequence (Unicode 15, table 3-7): a continuation byte, a
 * byte never used (C0, C1, F5-FF), an overlong form, a surrogate, beyond
 * U+10FFFF, a sequence cut by len, or len 0.  *cp is then untouched.
 */
size_t cm_utf8_decode(const unsigned char *p, size_t len, uint32_t *cp);

/*
 * The number of characters of p[0 .. len): 0 with *chars set, or -1 if p
 * is not valid UTF-8 throughout (by cm_utf8_decode()).
 */
int cm_utf8_count(const unsigned char *p, size_t len, size_t *chars);

/*
 * A name or a text of people: valid UTF-8 of min..max characters (code
 * points, not bytes), without control characters (C0, DEL, C1; \t, \n
 * and \r allowed when multiline), and, when min > 0, not only spaces.
 * 0, or -1.  The one copy of the rule for products, options, categories,
 * stores and coupon names.
 */
int cm_utf8_text(const unsigned char *p, size_t len, size_t min, size_t max,
    int multiline);


#endif /* _CM_TEXT_H_INCLUDED_ */
