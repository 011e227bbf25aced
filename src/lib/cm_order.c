/*
 * cm_order: the order and payment bodies (declared in cm_json.h), read
 * with cm_json's event walker.  An item names a product, a variant, or
 * both; duplicates are merged and the items sorted by product id, then
 * variant id (the database locks products in id order).
 */


#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cm_json.h"
#include "cm_cart.h"


/* bits for the fields of one object, to find duplicates and missing ones */
#define CM_ORDER_F_ITEMS      0x01
#define CM_ORDER_F_PAYMENT    0x02
#define CM_ORDER_F_COUPON     0x04
#define CM_ORDER_F_FROM_CART  0x08
#define CM_ORDER_F_VARIANTS   0x10
#define CM_ORDER_F_SHIPPING   0x20

#define CM_ITEM_F_PRODUCT     0x01
#define CM_ITEM_F_QUANTITY    0x02
#define CM_ITEM_F_VARIANT     0x04

#define CM_PAY_F_METHOD       0x01
#define CM_PAY_F_CARD_TYPE    0x02
#define CM_PAY_F_CARD_NO      0x04
#define CM_PAY_F_PROVIDER     0x08
#define CM_PAY_F_AMOUNT       0x10

#define CM_PAY_POINTS_MAX     1000000000000LL

#define CM_CARD_NO_LEN        19        /* dddd-dddd-dddd-dddd */


/* the "payment" object of an order, or the whole body of a payment */
typedef struct {
    unsigned           field;      /* CM_PAY_F_* whose value comes next */
    unsigned           seen;
    unsigned           bad;        /* card fields not a short string */
    unsigned           done:1;
    unsigned           parts:1;    /* an order's: POINTS and "amount" too */
    unsigned           points:1;   /* method POINTS (method left NONE) */
    cm_pay_method_e    method;
    int64_t            amount;     /* "amount", 0: not given */
    size_t             card_type_len;
    size_t             card_no_len;
    char               card_type[16];
    char               card_no[20];
    char               provider[16];
} cm_pay_parse_t;


/* a payment object, or a list of parts (mixed payments) */
typedef struct {
    cm_pay_parse_t     pay;        /* the object, or the part not POINTS */
    cm_pay_parse_t     part;       /* the element of a list being read */
    unsigned           list:1;     /* a list of parts */
    size_t             nparts;
    int64_t            points;     /* the POINTS part, 0: none */
} cm_pay_parts_t;


typedef struct {
    cm_order_req_t    *out;
    cm_pay_parts_t     parts;
    cm_address_req_t  *address;    /* NULL: "shippingAddress" not read */
    cm_address_parse_t ship;
    unsigned           field;      /* CM_ORDER_F_* whose value is parsed */
    unsigned           seen;

    size_t             count;      /* elements of "items" so far */
    size_t             vcount;     /* elements of "variantIds" so far */
    unsigned           item_field;
    unsigned           item_seen;
    int64_t            product_id;
    int64_t            variant_id;
    int64_t            quantity;
} cm_order_parse_t;


typedef struct {
    cm_payment_req_t  *out;
    cm_pay_parts_t     parts;
} cm_payment_parse_t;


static int cm_order_event(cm_json_walk_t *w, cm_json_event_e ev,
    const unsigned char *p, size_t len);
static int cm_order_key(cm_json_walk_t *w, cm_order_parse_t *op,
    const unsigned char *p, size_t len);
static int cm_order_items_event(cm_json_walk_t *w, cm_order_parse_t *op,
    cm_json_event_e ev, const unsigned char *p, size_t len);
static int cm_order_item_value(cm_json_walk_t *w, cm_order_parse_t *op,
    cm_json_event_e ev, const unsigned char *p, size_t len);
static int cm_order_item_done(cm_json_walk_t *w, cm_order_parse_t *op);
static int cm_order_variants_event(cm_json_walk_t *w, cm_order_parse_t *op,
    cm_json_event_e ev, const unsigned char *p, size_t len);
static int cm_order_source(cm_json_walk_t *w, cm_order_parse_t *op);
static void cm_order_sort(cm_order_req_t *out);
static int cm_pay_parts_event(cm_json_walk_t *w, cm_pay_parts_t *pt,
    cm_json_event_e ev, const unsigned char *p, size_t len, unsigned base,
    const char *prefix);
static void cm_pay_parts_out(cm_pay_parts_t *pt, cm_payment_req_t *out);
static int cm_payment_event(cm_json_walk_t *w, cm_json_event_e ev,
    const unsigned char *p, size_t len);
static int cm_pay_event(cm_json_walk_t *w, cm_pay_parse_t *pp,
    cm_json_event_e ev, const unsigned char *p, size_t len, unsigned base,
    const char *prefix);
static int cm_pay_value(cm_json_walk_t *w, cm_pay_parse_t *pp,
    cm_json_event_e ev, const unsigned char *p, size_t len,
    const char *prefix);
static int cm_pay_done(cm_json_walk_t *w, cm_pay_parse_t *pp,
    const char *prefix);
static int cm_card_type_valid(const char *p, size_t len);
static int cm_provider_valid(const char *p, size_t len);
static int cm_card_no_valid(const char *p, size_t len);


int
cm_parse_order(const unsigned char *buf, size_t len, cm_order_req_t *out,
    char *err, size_t errlen)
{
    return cm_parse_order_shipping(buf, len, out, NULL, err, errlen);
}


int
cm_parse_order_shipping(const unsigned char *buf, size_t len,
    cm_order_req_t *out, struct cm_address_req_s *address, char *err,
    size_t errlen)
{
    cm_json_walk_t    w;
    cm_order_parse_t  op;
    cm_payment_req_t  pay;

    memset(out, 0, sizeof(cm_order_req_t));
    memset(&op, 0, sizeof(cm_order_parse_t));
    op.out = out;
    op.address = address;

    if (address != NULL) {
        memset(address, 0, sizeof(cm_address_req_t));
    }

    op.parts.part.parts = 1;

    memset(&w, 0, sizeof(cm_json_walk_t));
    w.handler = cm_order_event;
    w.data = &op;
    w.err = err;
    w.errlen = errlen;

    if (cm_json_walk(&w, buf, len) != 0) {
        goto failed;
    }

    if (cm_order_source(&w, &op) != CM_JSON_OK) {
        goto failed;
    }

    if (op.seen & CM_ORDER_F_SHIPPING) {
        if (cm_address_parse_done(&w, &op.ship) != 0) {
            goto failed;
        }

        out->shipping = 1;
    }

    /* "payment": null leaves the method at CM_PAY_NONE */
    if (op.parts.pay.done || op.parts.points) {
        cm_pay_parts_out(&op.parts, &pay);
        out->method = pay.method;
        out->rest_amount = pay.rest_amount;
        out->points = pay.points;
        memcpy(out->card_type, pay.card_type, sizeof(out->card_type));
        memcpy(out->card_no, pay.card_no, sizeof(out->card_no));
        memcpy(out->provider, pay.provider, sizeof(out->provider));
    }

    /* the database locks products in id order */
    cm_order_sort(out);

    return 0;

failed:

    memset(out, 0, sizeof(cm_order_req_t));

    if (address != NULL) {
        memset(address, 0, sizeof(cm_address_req_t));
    }

    return -1;
}


int
cm_parse_payment(const unsigned char *buf, size_t len, cm_payment_req_t *out,
    char *err, size_t errlen)
{
    cm_json_walk_t      w;
    cm_payment_parse_t  pp;

    memset(out, 0, sizeof(cm_payment_req_t));
    memset(&pp, 0, sizeof(cm_payment_parse_t));
    pp.out = out;
    pp.parts.part.parts = 1;

    memset(&w, 0, sizeof(cm_json_walk_t));
    w.handler = cm_payment_event;
    w.data = &pp;
    w.err = err;
    w.errlen = errlen;
    /* a list of parts is a top-level array */
    w.array_ok = 1;

    if (cm_json_walk(&w, buf, len) != 0) {
        memset(out, 0, sizeof(cm_payment_req_t));
        return -1;
    }

    /* the end of the object (or of each part) ran cm_pay_done() */
    cm_pay_parts_out(&pp.parts, out);

    return 0;
}


/*
 * What a payment object or a list of parts asks for: the method of the
 * object or of the part not POINTS (CM_PAY_NONE when POINTS pays it all),
 * and for a list the POINTS part and the other part's "amount" (so a list
 * is told from an object by points or rest_amount being set).
 */

static void
cm_pay_parts_out(cm_pay_parts_t *pt, cm_payment_req_t *out)
{
    memset(out, 0, sizeof(cm_payment_req_t));

    if (pt->pay.done) {
        out->method = pt->pay.method;
        out->rest_amount = pt->pay.amount;
        memcpy(out->card_type, pt->pay.card_type, sizeof(out->card_type));
        memcpy(out->card_no, pt->pay.card_no, sizeof(out->card_no));
        memcpy(out->provider, pt->pay.provider, sizeof(out->provider));
    }

    out->points = pt->points;
}

static int
cm_order_event(cm_json_walk_t *w, cm_json_event_e ev, const unsigned char *p,
    size_t len)
{
    cm_order_parse_t  *op;

    op = w->data;

    if (w->depth == 1) {
        switch (ev) {

        case CM_JSON_MAP_START:
        case CM_JSON_MAP_END:
            return CM_JSON_OK;

        case CM_JSON_KEY:
            return cm_order_key(w, op, p, len);

        default:
            break;
        }

        /* a scalar value of "items", "payment" or "couponId" */

        if (op->field == CM_ORDER_F_ITEMS) {
            return cm_json_fail(w, "items must be an array");
        }

        if (op->field == CM_ORDER_F_FROM_CART) {
            if (ev != CM_JSON_BOOL) {
                return cm_json_fail(w, "fromCart must be true or false");
            }

            op->out->from_cart = (len == 4);
            return CM_JSON_OK;
        }

        if (op->field == CM_ORDER_F_VARIANTS) {
            return cm_json_fail(w, "variantIds must be an array");
        }

        if (op->field == CM_ORDER_F_SHIPPING) {
            return cm_json_fail(w, "shippingAddress must be an object");
        }

        if (op->field == CM_ORDER_F_COUPON) {
            return (ev == CM_JSON_NULL)
                   ? CM_JSON_OK
                   : cm_json_int_value(w, ev, p, len, 1, INT64_MAX,
                                       "couponId", &op->out->coupon_id);
        }

        if (ev == CM_JSON_NULL) {
            return CM_JSON_OK;
        }

        return cm_json_fail(w, "payment must be an object or null");
    }

    if (op->field == CM_ORDER_F_ITEMS) {
        return cm_order_items_event(w, op, ev, p, len);
    }

    if (op->field == CM_ORDER_F_VARIANTS) {
        return cm_order_variants_event(w, op, ev, p, len);
    }

    if (op->field == CM_ORDER_F_FROM_CART) {
        return cm_json_fail(w, "fromCart must be true or false");
    }

    if (op->field == CM_ORDER_F_SHIPPING) {
        if (w->depth == 2 && ev == CM_JSON_ARRAY_START) {
            return cm_json_fail(w, "shippingAddress must be an object");
        }

        return cm_address_parse_event(w, &op->ship, ev, p, len);
    }

    if (op->field == CM_ORDER_F_COUPON) {
        return cm_json_fail(w, "couponId must be an integer");
    }

    if (op->parts.list || (w->depth == 2 && ev == CM_JSON_ARRAY_START)) {
        return cm_pay_parts_event(w, &op->parts, ev, p, len, 2,
                                  "payment[].");
    }

    return cm_pay_event(w, &op->parts.pay, ev, p, len, 2, "payment.");
}


/*
 * A list of parts (mixed payments): 1 or 2 objects, at most one POINTS
 * part with its "amount" and at most one BALANCE, CARD, EASY_PAY or
 * TRANSFER part (with an optional "amount"), which lands in pt->pay as a
 * single object would.  The list at depth base, its elements at base + 1:
 * an order's "payment" (base 2), or the whole body of a payment (base 1).
 */

static int
cm_pay_parts_event(cm_json_walk_t *w, cm_pay_parts_t *pt, cm_json_event_e ev,
    const unsigned char *p, size_t len, unsigned base, const char *prefix)
{
    int  rc;

    if (w->depth == base) {
        if (ev == CM_JSON_ARRAY_START) {
            pt->list = 1;
            return CM_JSON_OK;
        }

        if (ev == CM_JSON_ARRAY_END) {
            return pt->nparts ? CM_JSON_OK
                              : cm_json_fail(w, "payment must hold 1 or 2 "
                                             "parts");
        }

        return cm_json_fail(w, "payment parts must be objects");
    }

    if (w->depth == base + 1 && ev == CM_JSON_ARRAY_START) {
        return cm_json_fail(w, "payment parts must be objects");
    }

    rc = cm_pay_event(w, &pt->part, ev, p, len, base + 1, prefix);

    if (rc != CM_JSON_OK || w->depth != base + 1 || ev != CM_JSON_MAP_END) {
        return rc;
    }

    /* a whole part */

    if (++pt->nparts > 2) {
        return cm_json_fail(w, "payment must hold 1 or 2 parts");
    }

    if (pt->part.points) {
        if (pt->points) {
            return cm_json_fail(w, "payment holds one POINTS part at most");
        }

        pt->points = pt->part.amount;

    } else {
        if (pt->pay.done) {
            return cm_json_fail(w, "payment holds one BALANCE, CARD, "
                                "EASY_PAY or TRANSFER part at most");
        }

        pt->pay = pt->part;
    }

    memset(&pt->part, 0, sizeof(cm_pay_parse_t));
    pt->part.parts = 1;

    return CM_JSON_OK;
}


static int
cm_order_key(cm_json_walk_t *w, cm_order_parse_t *op, const unsigned char *p,
    size_t len)
{
    unsigned     f;
    const char  *name;

    if (cm_json_str_is(p, len, "items")) {
        f = CM_ORDER_F_ITEMS;
        name = "items";

    } else if (cm_json_str_is(p, len, "payment")) {
        f = CM_ORDER_F_PAYMENT;
        name = "payment";

    } else if (cm_json_str_is(p, len, "couponId")) {
        f = CM_ORDER_F_COUPON;
        name = "couponId";

    } else if (cm_json_str_is(p, len, "fromCart")) {
        f = CM_ORDER_F_FROM_CART;
        name = "fromCart";

    } else if (cm_json_str_is(p, len, "variantIds")) {
        f = CM_ORDER_F_VARIANTS;
        name = "variantIds";

    } else if (op->address != NULL
               && cm_json_str_is(p, len, "shippingAddress"))
    {
        f = CM_ORDER_F_SHIPPING;
        name = "shippingAddress";

        if (!(op->seen & f)) {
            cm_address_parse_init(&op->ship, op->address, 1, 2,
                                  CM_AF_TEXT_N);
        }

    } else {
        return CM_JSON_SKIP;
    }

    if (op->seen & f) {
        return cm_json_fail(w, "duplicate field %s", name);
    }

    op->seen |= f;
    op->field = f;

    return CM_JSON_OK;
}


/*
 * Events below the "items" key: the array itself at depth 2, its elements
 * at depth 2 (scalars) or 3 (containers), their fields at depth 3, and
 * the container values of those fields at depth 4.
 */

static int
cm_order_items_event(cm_json_walk_t *w, cm_order_parse_t *op,
    cm_json_event_e ev, const unsigned char *p, size_t len)
{
    if (w->depth == 2) {
        switch (ev) {

        case CM_JSON_ARRAY_START:
            return CM_JSON_OK;

        case CM_JSON_MAP_START:
            return cm_json_fail(w, "items must be an array");

        case CM_JSON_ARRAY_END:
            if (op->count == 0) {
                return cm_json_fail(w, "items must not be empty");
            }

            return CM_JSON_OK;

        default:
            return cm_json_fail(w, "items[%zu] must be an object", op->count);
        }
    }

    if (w->depth == 3) {
        switch (ev) {

        case CM_JSON_MAP_START:
            op->count++;
            op->item_field = 0;
            op->item_seen = 0;
            op->product_id = 0;
            op->variant_id = 0;
            return CM_JSON_OK;

        case CM_JSON_ARRAY_START:
            return cm_json_fail(w, "items[%zu] must be an object", op->count);

        case CM_JSON_MAP_END:
            return cm_order_item_done(w, op);

        case CM_JSON_KEY:
            if (cm_json_str_is(p, len, "productId")) {
                op->item_field = CM_ITEM_F_PRODUCT;

            } else if (cm_json_str_is(p, len, "quantity")) {
                op->item_field = CM_ITEM_F_QUANTITY;

            } else if (cm_json_str_is(p, len, "variantId")) {
                op->item_field = CM_ITEM_F_VARIANT;

            } else {
                return CM_JSON_SKIP;
            }

            if (op->item_seen & op->item_field) {
                return cm_json_fail(w, "duplicate field items[%zu].%s",
                                    op->count - 1,
                                    op->item_field == CM_ITEM_F_PRODUCT
                                    ? "productId"
                                    : op->item_field == CM_ITEM_F_VARIANT
                                    ? "variantId" : "quantity");
            }

            op->item_seen |= op->item_field;
            return CM_JSON_OK;

        default:
            return cm_order_item_value(w, op, ev, p, len);
        }
    }

    /* an object or an array as the value of productId or quantity */
    return cm_order_item_value(w, op, ev, p, len);
}


static int
cm_order_item_value(cm_json_walk_t *w, cm_order_parse_t *op,
    cm_json_event_e ev, const unsigned char *p, size_t len)
{
    char  name[48];

    if (op->item_field == CM_ITEM_F_PRODUCT) {
        snprintf(name, sizeof(name), "items[%zu].productId", op->count - 1);
        return cm_json_int_value(w, ev, p, len, 1, INT64_MAX, name,
                                 &op->product_id);
    }

    if (op->item_field == CM_ITEM_F_VARIANT) {
        snprintf(name, sizeof(name), "items[%zu].variantId", op->count - 1);
        return cm_json_int_value(w, ev, p, len, 1, INT64_MAX, name,
                                 &op->variant_id);
    }

    snprintf(name, sizeof(name), "items[%zu].quantity", op->count - 1);
    return cm_json_int_value(w, ev, p, len, 1, CM_QUANTITY_MAX, name,
                             &op->quantity);
}


static int
cm_order_item_done(cm_json_walk_t *w, cm_order_parse_t *op)
{
    size_t            i, n;
    cm_order_item_t  *it;

    n = op->count - 1;

    if (!(op->item_seen & (CM_ITEM_F_PRODUCT|CM_ITEM_F_VARIANT))) {
        return cm_json_fail(w, "items[%zu].productId or variantId is required",
                            n);
    }

    if (!(op->item_seen & CM_ITEM_F_QUANTITY)) {
        return cm_json_fail(w, "items[%zu].quantity is required", n);
    }

    it = op->out->items;

    /* the same product without a variant, or the same variant */
    for (i = 0; i < op->out->nitems; i++) {
        if (it[i].product_id != op->product_id
            || it[i].variant_id != op->variant_id)
        {
            continue;
        }

        /* both are at most CM_QUANTITY_MAX: the sum cannot overflow */
        if (it[i].quantity + op->quantity > CM_QUANTITY_MAX) {
            return cm_json_fail(w, "items[%zu].quantity: total for one "
                                "product must not exceed %d", n,
                                CM_QUANTITY_MAX);
        }

        it[i].quantity += (int32_t) op->quantity;
        return CM_JSON_OK;
    }

    if (op->out->nitems == CM_ORDER_ITEMS_MAX) {
        return cm_json_fail(w, "items must not hold more than %d distinct "
                            "products", CM_ORDER_ITEMS_MAX);
    }

    it[i].product_id = op->product_id;
    it[i].variant_id = op->variant_id;
    it[i].quantity = (int32_t) op->quantity;
    op->out->nitems++;

    return CM_JSON_OK;
}


/* the "variantIds" array (depth 2) and its elements (depth 2 or 3) */

static int
cm_order_variants_event(cm_json_walk_t *w, cm_order_parse_t *op,
    cm_json_event_e ev, const unsigned char *p, size_t len)
{
    size_t    i;
    int64_t   id;
    char      name[32];

    if (w->depth == 2) {
        switch (ev) {

        case CM_JSON_ARRAY_START:
            return CM_JSON_OK;

        case CM_JSON_ARRAY_END:
            if (op->vcount == 0) {
                return cm_json_fail(w, "variantIds must not be empty");
            }

            return CM_JSON_OK;

        case CM_JSON_MAP_START:
            return cm_json_fail(w, "variantIds must be an array");

        default:
            break;
        }
    }

    snprintf(name, sizeof(name), "variantIds[%zu]", op->vcount);

    if (cm_json_int_value(w, ev, p, len, 1, INT64_MAX, name, &id)
        != CM_JSON_OK)
    {
        return CM_JSON_FAIL;
    }

    op->vcount++;

    for (i = 0; i < op->out->nvariants; i++) {
        if (op->out->variant_ids[i] == id) {
            return CM_JSON_OK;
        }
    }

    if (op->out->nvariants == CM_ORDER_ITEMS_MAX) {
        return cm_json_fail(w, "variantIds must not hold more than %d ids",
                            CM_ORDER_ITEMS_MAX);
    }

    op->out->variant_ids[op->out->nvariants++] = id;

    return CM_JSON_OK;
}


/* where the lines come from: "items", or "fromCart": true */

static int
cm_order_source(cm_json_walk_t *w, cm_order_parse_t *op)
{
    if (op->out->from_cart) {
        if (op->seen & CM_ORDER_F_ITEMS) {
            return cm_json_fail(w, "items and fromCart must not both be "
                                "given");
        }

        return CM_JSON_OK;
    }

    if (op->seen & CM_ORDER_F_VARIANTS) {
        return cm_json_fail(w, "variantIds needs fromCart true");
    }

    if (!(op->seen & CM_ORDER_F_ITEMS)) {
        return cm_json_fail(w, "items or fromCart true is required");
    }

    return CM_JSON_OK;
}


static void
cm_order_sort(cm_order_req_t *out)
{
    size_t           i, j;
    cm_order_item_t  t;

    /* insertion sort: at most CM_ORDER_ITEMS_MAX distinct ids */
    for (i = 1; i < out->nitems; i++) {
        t = out->items[i];

        for (j = i;
             j > 0 && (out->items[j - 1].product_id > t.product_id
                       || (out->items[j - 1].product_id == t.product_id
                           && out->items[j - 1].variant_id > t.variant_id));
             j--)
        {
            out->items[j] = out->items[j - 1];
        }

        out->items[j] = t;
    }
}


static int
cm_payment_event(cm_json_walk_t *w, cm_json_event_e ev,
    const unsigned char *p, size_t len)
{
    cm_payment_parse_t  *pp;

    pp = w->data;

    if (w->depth == 1 && ev == CM_JSON_ARRAY_START) {
        pp->parts.list = 1;
    }

    if (pp->parts.list) {
        return cm_pay_parts_event(w, &pp->parts, ev, p, len, 1, "[].");
    }

    return cm_pay_event(w, &pp->parts.pay, ev, p, len, 1, "");
}


/*
 * The fields of a payment object whose own depth is base: prefix names it
 * in messages ("payment." inside an order, "" for a whole body).
 */

static int
cm_pay_event(cm_json_walk_t *w, cm_pay_parse_t *pp, cm_json_event_e ev,
    const unsigned char *p, size_t len, unsigned base, const char *prefix)
{
    unsigned     f;
    const char  *name;

    if (w->depth != base) {
        /* an object or an array as the value of a field */
        return cm_pay_value(w, pp, ev, p, len, prefix);
    }

    switch (ev) {

    case CM_JSON_MAP_START:
        return CM_JSON_OK;

    case CM_JSON_MAP_END:
        return cm_pay_done(w, pp, prefix);

    case CM_JSON_KEY:
        if (cm_json_str_is(p, len, "method")) {
            f = CM_PAY_F_METHOD;
            name = "method";

        } else if (cm_json_str_is(p, len, "cardType")) {
            f = CM_PAY_F_CARD_TYPE;
            name = "cardType";

        } else if (cm_json_str_is(p, len, "cardNo")) {
            f = CM_PAY_F_CARD_NO;
            name = "cardNo";

        } else if (cm_json_str_is(p, len, "provider")) {
            f = CM_PAY_F_PROVIDER;
            name = "provider";

        } else if (pp->parts && cm_json_str_is(p, len, "amount")) {
            f = CM_PAY_F_AMOUNT;
            name = "amount";

        } else if (pp->parts) {
            return cm_json_fail(w, "%s: method, amount, cardType, cardNo and "
                                "provider only", prefix);

        } else {
            return CM_JSON_SKIP;
        }

        if (pp->seen & f) {
            return cm_json_fail(w, "duplicate field %s%s", prefix, name);
        }

        pp->seen |= f;
        pp->field = f;
        return CM_JSON_OK;

    default:
        return cm_pay_value(w, pp, ev, p, len, prefix);
    }
}


static int
cm_pay_value(cm_json_walk_t *w, cm_pay_parse_t *pp, cm_json_event_e ev,
    const unsigned char *p, size_t len, const char *prefix)
{
    int  container;

    container = (ev == CM_JSON_MAP_START || ev == CM_JSON_ARRAY_START);

    switch (pp->field) {

    case CM_PAY_F_METHOD:
        if (ev == CM_JSON_STRING && cm_json_str_is(p, len, "BALANCE")) {
            pp->method = CM_PAY_BALANCE;
            return CM_JSON_OK;
        }

        if (ev == CM_JSON_STRING && cm_json_str_is(p, len, "CARD")) {
            pp->method = CM_PAY_CARD;
            return CM_JSON_OK;
        }

        if (ev == CM_JSON_STRING && cm_json_str_is(p, len, "EASY_PAY")) {
            pp->method = CM_PAY_EASY_PAY;
            return CM_JSON_OK;
        }

        if (ev == CM_JSON_STRING && cm_json_str_is(p, len, "TRANSFER")) {
            pp->method = CM_PAY_TRANSFER;
            return CM_JSON_OK;
        }

        if (pp->parts) {
            /* a part of a list */
            if (ev == CM_JSON_STRING && cm_json_str_is(p, len, "POINTS")) {
                pp->points = 1;
                return CM_JSON_OK;
            }

            return cm_json_fail(w, "%smethod must be POINTS, BALANCE, CARD, "
                                "EASY_PAY or TRANSFER", prefix);
        }

        return cm_json_fail(w, "%smethod must be BALANCE, CARD, EASY_PAY or "
                            "TRANSFER", prefix);

    case CM_PAY_F_PROVIDER:
        /* judged once the method is known, as the card fields are */
        if (ev == CM_JSON_STRING && len < sizeof(pp->provider)
            && cm_provider_valid((const char *) p, len))
        {
            memcpy(pp->provider, p, len);

        } else {
            pp->bad |= CM_PAY_F_PROVIDER;
        }

        return container ? CM_JSON_SKIP : CM_JSON_OK;

    case CM_PAY_F_AMOUNT:
        if (container) {
            return cm_json_fail(w, "%samount must be an integer", prefix);
        }

        return cm_json_int_value(w, ev, p, len, 1, CM_PAY_POINTS_MAX,
                                 "payment amount", &pp->amount);

    case CM_PAY_F_CARD_TYPE:
        /*
         * Card fields are judged once the method is known, which may come
         * later in the object: keep them, or remember they are unusable.
         */
        if (ev == CM_JSON_STRING && len < sizeof(pp->card_type)) {
            memcpy(pp->card_type, p, len);
            pp->card_type_len = len;

        } else {
            pp->bad |= CM_PAY_F_CARD_TYPE;
        }

        return container ? CM_JSON_SKIP : CM_JSON_OK;

    default: /* CM_PAY_F_CARD_NO */
        if (ev == CM_JSON_STRING && len < sizeof(pp->card_no)) {
            memcpy(pp->card_no, p, len);
            pp->card_no_len = len;

        } else {
            pp->bad |= CM_PAY_F_CARD_NO;
        }

        return container ? CM_JSON_SKIP : CM_JSON_OK;
    }
}


static int
cm_pay_done(cm_json_walk_t *w, cm_pay_parse_t *pp, const char *prefix)
{
    if (!(pp->seen & CM_PAY_F_METHOD)) {
        return cm_json_fail(w, "%smethod is required", prefix);
    }

    if (pp->parts && !(pp->seen & CM_PAY_F_AMOUNT)) {
        return cm_json_fail(w, "%samount is required", prefix);
    }

    if (pp->method != CM_PAY_EASY_PAY && (pp->seen & CM_PAY_F_PROVIDER)) {
        return cm_json_fail(w, "%sprovider is only for EASY_PAY", prefix);
    }

    if (pp->method == CM_PAY_EASY_PAY) {
        if (!(pp->seen & CM_PAY_F_PROVIDER)) {
            return cm_json_fail(w, "%sprovider is required", prefix);
        }

        if (pp->bad & CM_PAY_F_PROVIDER) {
            return cm_json_fail(w, "%sprovider must be KAKAOPAY or NAVERPAY",
                                prefix);
        }

        if (pp->seen & (CM_PAY_F_CARD_TYPE | CM_PAY_F_CARD_NO)) {
            return cm_json_fail(w, "%scard fields are only for CARD", prefix);
        }

    } else if (pp->method == CM_PAY_TRANSFER) {
        if (pp->seen & (CM_PAY_F_CARD_TYPE | CM_PAY_F_CARD_NO)) {
            return cm_json_fail(w, "%scard fields are only for CARD", prefix);
        }

    } else if (pp->method == CM_PAY_CARD) {
        if (!(pp->seen & CM_PAY_F_CARD_TYPE)) {
            return cm_json_fail(w, "%scardType is required", prefix);
        }

        if ((pp->bad & CM_PAY_F_CARD_TYPE)
            || !cm_card_type_valid(pp->card_type, pp->card_type_len))
        {
            return cm_json_fail(w, "%scardType must be SAMSUNG, KB or "
                                "HYUNDAI", prefix);
        }

        if (!(pp->seen & CM_PAY_F_CARD_NO)) {
            return cm_json_fail(w, "%scardNo is required", prefix);
        }

        if ((pp->bad & CM_PAY_F_CARD_NO)
            || !cm_card_no_valid(pp->card_no, pp->card_no_len))
        {
            return cm_json_fail(w, "%scardNo must look like "
                                "1234-5678-9012-3456", prefix);
        }

    } else {
        /* BALANCE ignores card fields, whatever they hold */
        memset(pp->card_type, 0, sizeof(pp->card_type));
        memset(pp->card_no, 0, sizeof(pp->card_no));
    }

    pp->done = 1;

    return CM_JSON_OK;
}


static int
cm_card_type_valid(const char *p, size_t len)
{
    return cm_json_str_is(p, len, "SAMSUNG")
           || cm_json_str_is(p, len, "KB")
           || cm_json_str_is(p, len, "HYUNDAI");
}


static int
cm_provider_valid(const char *p, size_t len)
{
    return cm_json_str_is(p, len, "KAKAOPAY")
           || cm_json_str_is(p, len, "NAVERPAY");
}


static int
cm_card_no_valid(const char *p, size_t len)
{
    size_t  i;

    if (len != CM_CARD_NO_LEN) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        if (i % 5 == 4) {
            if (p[i] != '-') {
                return 0;
            }

        } else if (p[i] < '0' || p[i] > '9') {
            return 0;
        }
    }

    return 1;
}

