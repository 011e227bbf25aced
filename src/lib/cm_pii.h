/*
 * cm_pii: personal data at rest, without nginx: AES-256-GCM under a
 * keyring that rotates, a keyed blind index for lookups, and the key-file
 * parser.
 *
 * Ciphertexts are text, for a Postgres text column:
 *
 *     v1.<kid>.<nonce>.<ciphertext and tag>
 *
 * <kid> is the decimal key id (1..65535, no leading zero), <nonce> the
 * 12 random bytes of this encryption and the last field the ciphertext
 * followed by the 16-byte GCM tag, both unpadded base64url.  The
 * associated data authenticated with it is "v1.<kid>." followed by the
 * caller's aad, which should name the column and the row (cm_pii_aad():
 * "users.email:42"), so that a ciphertext copied to another row or column
 * fails to decrypt.
 *
 * Rotation: encrypt always under the keyring's current key; decrypt under
 * whichever key the ciphertext names, and re-encrypt when cm_pii_decrypt()
 * says the key was not the current one.  Retire a key from the file only
 * when no row uses it any more.
 *
 * The blind index is HMAC-SHA256(index key, normalized value) in lowercase
 * hex, normalized meaning trimmed of ASCII whitespace and ASCII-lowercased:
 * equal emails have equal indexes, and the index reveals nothing without
 * the key.  The index key is not the encryption key and does not rotate
 * like it: changing it means recomputing every index.
 *
 * Key files have one key a line, "<kid> <64 hex digits>", one of them
 * followed by "current"; '#' starts a comment, blank lines are ignored.
 * The same format serves any set of 32-byte keys (JWT signing keys too).
 *
 * Values are small (an email, a phone number, an address): at most
 * CM_PII_PLAINTEXT_MAX bytes, so that the work buffers live on the stack.
 * No static state: everything is reentrant.
 */


#ifndef _CM_PII_H_INCLUDED_
#define _CM_PII_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


#define CM_KEY_LEN           32
#define CM_KEYRING_MAX       16
#define CM_KID_MAX           65535

#define CM_PII_PLAINTEXT_MAX 4096
#define CM_PII_NONCE_LEN     12
#define CM_PII_TAG_LEN       16

/* the text of a plaintext of n bytes, with its NUL */
#define CM_PII_TEXT_LEN(n)                                                    \
    (3 + 5 + 1 + 16 + 1 + ((n) + CM_PII_TAG_LEN + 2) / 3 * 4 + 1)

/* cm_pii_blind_index() refuses longer values */
#define CM_PII_INDEX_VALUE_MAX  1024

/* hex of a SHA-256, with its NUL */
#define CM_PII_INDEX_LEN     65


typedef struct {
    uint32_t       kid;
    unsigned char  key[CM_KEY_LEN];
} cm_key_t;


typedef struct {
    uint32_t       nkeys;
    uint32_t       current;       /* index in keys[] of the current key */
    uint32_t       line;          /* after a failed parse: the line, or 0 */
    cm_key_t       keys[CM_KEYRING_MAX];
} cm_keyring_t;


/*
 * Parses a key file into *out: 0, or -1 with *err a static string and
 * out->line the line at fault (0 for the whole file), such as
 *
 *   "bad key id"            not decimal 1..65535 without a leading zero
 *   "bad key"               not exactly 64 hex digits
 *   "all-zero key"
 *   "duplicate key id"
 *   "same key under two ids"
 *   "unexpected text after the key"   only "current" may follow
 *   "more than one current key"
 *   "too many keys"         more than CM_KEYRING_MAX
 *   "no keys"
 *   "no current key"
 *
 * A NUL byte is an error ("bad key file").  On failure *out holds no key
 * material.
 */
int cm_keyring_parse(const char *text, size_t len, cm_keyring_t *out,
    const char **err);

/* the key with this id, or NULL */
const cm_key_t *cm_keyring_find(const cm_keyring_t *kr, uint32_t kid);

/* the key that encrypts, or NULL for an empty keyring */
const cm_key_t *cm_keyring_current(const cm_keyring_t *kr);

/* zeroes the keyring, keys included, in a way the compiler keeps */
void cm_keyring_wipe(cm_keyring_t *kr);

/*
 * Writes "<field>:<id>" and a NUL, the associated data that binds a value
 * to its column and row; returns its length, or 0 if dst is too small or
 * field empty.
 */
size_t cm_pii_aad(char *dst, size_t dstlen, const char *field, int64_t id);

/*
 * Encrypts pt under the current key with a fresh random nonce; writes the
 * text and a NUL to dst, which must have CM_PII_TEXT_LEN(ptlen) bytes.
 * Returns its length, or 0 if dst is smaller, pt is longer than
 * CM_PII_PLAINTEXT_MAX, the keyring has no current key or OpenSSL failed.
 * An empty pt is allowed.
 */
size_t cm_pii_encrypt(char *dst, size_t dstlen, const cm_keyring_t *kr,
    const unsigned char *aad, size_t aadlen, const unsigned char *pt,
    size_t ptlen);

/*
 * Decrypts a text of cm_pii_encrypt() with the same aad into dst (len
 * bytes always suffice; no NUL is added): 0 with *ptlen set, and *stale 1
 * when the key is not the current one (re-encrypt), or -1 with *reason:
 *
 *   "malformed"       not v1.<kid>.<nonce>.<ciphertext>, not canonical,
 *                     or longer than any cm_pii_encrypt() output
 *   "unknown key"     no key with that id in the keyring
 *   "authentication failed"   wrong key, wrong aad, or altered text
 *   "buffer too small"
 *
 * dst is zeroed on failure.  stale and reason may be NULL.
 */
int cm_pii_decrypt(unsigned char *dst, size_t dstlen, size_t *ptlen,
    const cm_keyring_t *kr, const unsigned char *aad, size_t aadlen,
    const char *text, size_t len, int *stale, const char **reason);

/*
 * The normalized value the blind index is computed on: src trimmed of
 * ASCII whitespace and ASCII-lowercased, written with a NUL; returns its
 * length, or (size_t) -1 if dst is too small.  Non-ASCII bytes are kept.
 */
size_t cm_pii_normalize(char *dst, size_t dstlen, const char *src,
    size_t len);

/*
 * hex = lowercase hex of HMAC-SHA256(key, normalized value), 64 digits and
 * a NUL.  0, or -1 if the key is empty, the value longer than
 * CM_PII_INDEX_VALUE_MAX or HMAC failed.  An empty value (after trimming)
 * is allowed; refuse it in the caller if it makes no sense.
 */
int cm_pii_blind_index(char hex[CM_PII_INDEX_LEN], const unsigned char *key,
    size_t keylen, const char *value, size_t len);

/*
 * Raw AES-256-GCM with a 96-bit nonce and a 16-byte tag, for known-answer
 * tests; the associated data is aad1 followed by aad2 (either may be
 * empty).  seal writes ptlen bytes to ct and the tag; open checks the tag
 * and writes ctlen bytes to pt (zeroed on failure).  ct and pt may be the
 * same buffer.  0, or -1.
 */
int cm_aes256gcm_seal(const unsigned char key[CM_KEY_LEN],
    const unsigned char nonce[CM_PII_NONCE_LEN], const unsigned char *aad1,
    size_t aad1len, const unsigned char *aad2, size_t aad2len,
    const unsigned char *pt, size_t ptlen, unsigned char *ct,
    unsigned char tag[CM_PII_TAG_LEN]);
int cm_aes256gcm_open(const unsigned char key[CM_KEY_LEN],
    const unsigned char nonce[CM_PII_NONCE_LEN], const unsigned char *aad1,
    size_t aad1len, const unsigned char *aad2, size_t aad2len,
    const unsigned char *ct, size_t ctlen,
    const unsigned char tag[CM_PII_TAG_LEN], unsigned char *pt);


#endif /* _CM_PII_H_INCLUDED_ */
