
/*
 * cm_cart: the request bodies of the cart and of the address book,
 * without nginx (issue 12 sections 1 and 2).  Read with cm_json's event
 * walker; unknown and repeated fields are refused, like the catalogue's
 * bodies.  Text lengths are counted in characters (cm_utf8_text).
 *
 * Error messages follow cm_json.h: short printable ASCII, never quoting
 * the input, fit for a 400 INVALID_REQUEST.
 */


#ifndef _CM_CART_H_INCLUDED_
#define _CM_CART_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>

#include "cm_json.h"


#define CM_CART_LINES_MAX         100
#define CM_ADDRESS_BOOK_MAX       10

#define CM_RECIPIENT_MAX          100      /* characters */
#define CM_ADDRESS_LINE_MAX       200      /* characters */
#define CM_ADDRESS_MEMO_MAX       100      /* characters */
#define CM_ZIP_CODE_LEN           5        /* Korean postal codes */

/* bytes of the longest text field: 200 characters of up to 4 bytes */
#define CM_ADDRESS_BYTES          (CM_ADDRESS_LINE_MAX * 4)


/* the fields of an address, in the order of the body's documentation */
typedef enum {
    CM_AF_RECIPIENT = 0,
    CM_AF_PHONE,
    CM_AF_ZIP_CODE,
    CM_AF_ADDRESS1,
    CM_AF_ADDRESS2,
    CM_AF_MEMO,
    CM_AF_TEXT_N,                 /* the text fields come before this */
    CM_AF_DEFAULT = CM_AF_TEXT_N,
    CM_AF_N
} cm_address_field_e;


typedef struct cm_address_req_s {
    unsigned   seen;              /* bits 1u << CM_AF_* of the fields given */
    int        is_default;        /* isDefault, when seen */
    /* the texts given, valid UTF-8, NUL-terminated; address2 and memo
     * given as null or "" are seen with len 0 (none, or cleared) */
    size_t     len[CM_AF_TEXT_N];
    char       text[CM_AF_TEXT_N][CM_ADDRESS_BYTES + 1];
} cm_address_req_t;


/* the body's key of a field, "recipient" .. "isDefault" */
extern const char  *cm_address_fields[CM_AF_N];


/*
 * PUT /cart/items/{variantId}: {"quantity": 1..999}, nothing else.
 * 0, or -1 with the reason in err.
 */
int cm_parse_cart_item(const unsigned char *buf, size_t len,
    int32_t *quantity, char *err, size_t errlen);

/*
 * An address.  create: "recipient" (1..100 characters), "phone" (as an
 * account's, cm_phone_valid), "zipCode" (5 digits) and "address1"
 * (1..200 characters) required; "address2" (up to 200), "memo" (up to
 * 100), both string or null, and "isDefault" (boolean) optional.  Not
 * create (a PATCH): any of them, at least one; null only for address2
 * and memo.  0, or -1 with the reason in err.
 */
int cm_parse_address(const unsigned char *buf, size_t len, int create,
    cm_address_req_t *out, char *err, size_t errlen);


/*
 * An address as the value of a key of another body (an order's
 * "shippingAddress"): the walker's events from the object's start (at
 * depth, the object's own) to its end go to cm_address_parse_event, then
 * cm_address_parse_done checks the fields required.  nfields:
 * CM_AF_TEXT_N refuses "isDefault" as an unknown field, CM_AF_N takes it.
 */
typedef struct {
    cm_json_flat_t      flat;
    cm_address_req_t   *out;
    int                 create;
    unsigned            depth;
    int                 nfields;
} cm_address_parse_t;

void cm_address_parse_init(cm_address_parse_t *ap, cm_address_req_t *out,
    int create, unsigned depth, int nfields);
int cm_address_parse_event(cm_json_walk_t *w, cm_address_parse_t *ap,
    cm_json_event_e ev, const unsigned char *p, size_t len);
int cm_address_parse_done(cm_json_walk_t *w, cm_address_parse_t *ap);


#endif /* _CM_CART_H_INCLUDED_ */
