/*
 * cm_json: validation of the API's JSON request bodies, without nginx.
 *
 * Bodies are read with yajl's event parser, never yajl_tree: the tree's
 * free is recursive and its depth unbounded, while here every event passes
 * through one walker that bounds nesting and skips unknown fields.
 *
 * Error messages written to err are short, printable ASCII without '"' or
 * '\\', and never quote the input, so callers may put them verbatim into
 * the "message" of a 400 INVALID_REQUEST.
 */


#ifndef _CM_JSON_H_INCLUDED_
#define _CM_JSON_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>
#include <string.h>


#define CM_ORDER_ITEMS_MAX   50
#define CM_QUANTITY_MAX      999
#define CM_JSON_DEPTH_MAX    8

/* room for a message such as "items[12345].productId must be ..." */
#define CM_JSON_ERR_LEN      128


typedef enum {
    CM_PAY_NONE = 0,
    CM_PAY_BALANCE,
    CM_PAY_CARD,
    CM_PAY_EASY_PAY,        /* through the gateway like a card, a provider */
    CM_PAY_TRANSFER         /* a virtual account the gateway issues */
} cm_pay_method_e;


/* product_id or variant_id may be 0 (not given), never both */
typedef struct {
    int64_t          product_id;
    int64_t          variant_id;
    int32_t          quantity;
} cm_order_item_t;


typedef struct {
    cm_order_item_t  items[CM_ORDER_ITEMS_MAX];
    size_t           nitems;       /* after merging duplicates */
    cm_pay_method_e  method;       /* CM_PAY_NONE: "payment" absent or null */
    int64_t          coupon_id;    /* a user coupon; 0: absent or null */
    /* mixed payments: the POINTS part (0: none); the amount the client
     * gave the other part (0: not given, the rest) */
    int64_t          points;
    int64_t          rest_amount;
    /* set, NUL-terminated, only when method is CM_PAY_CARD, else empty */
    char             card_type[16];
    char             card_no[20];
    /* KAKAOPAY or NAVERPAY when method is CM_PAY_EASY_PAY, else empty */
    char             provider[16];
    /* "fromCart": true: the cart's lines, not items (then nitems is 0);
     * variant_ids the "variantIds" selection (nvariants 0: every line) */
    unsigned         from_cart;
    size_t           nvariants;
    int64_t          variant_ids[CM_ORDER_ITEMS_MAX];
    /* "shippingAddress" given (cm_parse_order_shipping) */
    unsigned         shipping;
} cm_order_req_t;


typedef struct {
    cm_pay_method_e  method;
    char             card_type[16];
    char             card_no[20];
    char             provider[16];
    /* an order's CARD part with POINTS (cm_order_req_t), else 0 */
    int64_t          points;
    int64_t          rest_amount;
} cm_payment_req_t;


/*
 * cm_parse_order and cm_parse_payment live in cm_order.c.  An order item
 * names "productId", "variantId" or both; items naming the same product
 * (without variant) or the same variant (with the same productId, or
 * none) are merged, their quantities summed; items are sorted by product
 * id, then variant id.  Instead of "items", "fromCart": true orders
 * the cart's lines, or with "variantIds" (1..50 distinct positive ids,
 * duplicates are one) the lines of those variants; both "items" and
 * "fromCart": true, or "variantIds" without it, are invalid.
 *
 * All parsers return 0 on success, -1 on invalid input with a reason in
 * err (NUL-terminated, truncated to errlen).  buf need not be
 * NUL-terminated.
 */
int cm_parse_charge(const unsigned char *buf, size_t len, int64_t max_amount,
    int64_t *amount, char *err, size_t errlen);
int cm_parse_order(const unsigned char *buf, size_t len, cm_order_req_t *out,
    char *err, size_t errlen);
int cm_parse_payment(const unsigned char *buf, size_t len,
    cm_payment_req_t *out, char *err, size_t errlen);

/*
 * cm_parse_order, and "shippingAddress": an address as the address
 * book's (cm_cart.h, cm_parse_address; "isDefault" refused) into
 * *address, out->shipping set.  cm_parse_order skips that key, as any
 * unknown one.
 */
struct cm_address_req_s;
int cm_parse_order_shipping(const unsigned char *buf, size_t len,
    cm_order_req_t *out, struct cm_address_req_s *address, char *err,
    size_t errlen);

/*
 * Path and query integers: one or more decimal digits (no sign, no
 * spaces), value within [min, max]; returns 0 or -1.
 */
int cm_parse_int64(const unsigned char *s, size_t len, int64_t min,
    int64_t max, int64_t *out);

/*
 * Writes s as the body of a JSON string (without the quotes): '"', '\\'
 * and control characters are escaped, invalid UTF-8 bytes become U+FFFD.
 * Returns the bytes written, never more than dstlen; output is cut only
 * between characters.  Nothing is NUL-terminated.
 */
size_t cm_json_escape(char *dst, size_t dstlen, const unsigned char *s,
    size_t len);


/*
 * The event walker under the parsers, shared with cm_jwt.c.
 *
 * Events come in document order.  w->depth is the nesting level of the
 * container an event belongs to: 1 for the keys and scalar values of the
 * top-level object, 2 for the start and end of a container that is the
 * value of a top-level key, and so on.  The top level must be an object;
 * nesting deeper than CM_JSON_DEPTH_MAX fails.
 *
 * A handler returns CM_JSON_OK, CM_JSON_SKIP (after a key: skip its whole
 * value; after a container start: skip the container, its end included)
 * or CM_JSON_FAIL after cm_json_fail().
 */

/* is the string p (len bytes, not NUL-terminated) the literal s? */
#define cm_json_str_is(p, len, s)                                             \
    ((len) == sizeof(s) - 1 && memcmp(p, s, sizeof(s) - 1) == 0)


#define CM_JSON_OK     0
#define CM_JSON_SKIP   1
#define CM_JSON_FAIL   (-1)


typedef enum {
    CM_JSON_NULL = 0,
    CM_JSON_BOOL,
    CM_JSON_NUMBER,            /* p, len: the token, as written */
    CM_JSON_STRING,            /* p, len: the decoded, valid UTF-8 value */
    CM_JSON_KEY,               /* p, len: the decoded key */
    CM_JSON_MAP_START,
    CM_JSON_MAP_END,
    CM_JSON_ARRAY_START,
    CM_JSON_ARRAY_END
} cm_json_event_e;


typedef struct cm_json_walk_s  cm_json_walk_t;

typedef int (*cm_json_handler_pt)(cm_json_walk_t *w, cm_json_event_e ev,
    const unsigned char *p, size_t len);


struct cm_json_walk_s {
    cm_json_handler_pt   handler;
    void                *data;
    char                *err;
    size_t               errlen;

    unsigned             depth;
    unsigned             skip_depth;
    unsigned             skipping:1;
    unsigned             started:1;
    unsigned             failed:1;
    /* set by the caller: the top level may be an array too */
    unsigned             array_ok:1;
};


/*
 * Walks a whole document; returns 0 or -1 with w->err set: by a handler,
 * or to a fixed message for malformed JSON, nesting, or a top level that
 * is not an object (nor an array, with w->array_ok).
 */
int cm_json_walk(cm_json_walk_t *w, const unsigned char *buf, size_t len);
int cm_json_fail(cm_json_walk_t *w, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/*
 * Reads a JSON number token as an integer: CM_JSON_OK, CM_JSON_NOT_INT
 * (a fraction or an exponent, even "1.0" or "1e3") or CM_JSON_RANGE
 * (outside int64_t).
 */
#define CM_JSON_NOT_INT  (-2)
#define CM_JSON_RANGE    (-3)

int cm_json_number(const unsigned char *p, size_t len, int64_t *out);

/*
 * For a handler: the value event is an integer of [min, max], stored in
 * *out (CM_JSON_OK), else CM_JSON_FAIL with "<name> must be an integer"
 * or "<name> must be between <min> and <max>".
 */
int cm_json_int_value(cm_json_walk_t *w, cm_json_event_e ev,
    const unsigned char *p, size_t len, int64_t min, int64_t max,
    const char *name, int64_t *out);


/*
 * A flat object whose keys are names[0 .. n), each at most once, any other
 * key refused ("unknown field", "duplicate field <name>").  A handler
 * calls cm_json_flat_key() while f->field is -1 (the object's own start
 * and end, and its keys): on a key it sets the key's bit in f->seen and
 * its index in f->field; the handler reads the value, then sets f->field
 * back to -1.  n is at most 32.
 */
typedef struct {
    unsigned             seen;
    int                  field;
} cm_json_flat_t;

int cm_json_flat_key(cm_json_walk_t *w, cm_json_flat_t *f, const char **names,
    int n, cm_json_event_e ev, const unsigned char *p, size_t len);


#endif /* _CM_JSON_H_INCLUDED_ */
