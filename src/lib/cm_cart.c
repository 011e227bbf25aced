
/*
 * cm_cart: see cm_cart.h.  Both bodies are flat objects read with
 * cm_json_flat_key (cm_json.c): known keys, each once.
 */


#include <stdio.h>
#include <string.h>

#include "cm_json.h"
#include "cm_text.h"
#include "cm_account.h"
#include "cm_cart.h"


typedef struct {
    cm_json_flat_t      flat;
    int64_t             quantity;
} cm_cart_item_parse_t;


static int cm_cart_item_event(cm_json_walk_t *w, cm_json_event_e ev,
    const unsigned char *p, size_t len);
static int cm_address_event(cm_json_walk_t *w, cm_json_event_e ev,
    const unsigned char *p, size_t len);
static int cm_address_text(cm_json_walk_t *w, cm_address_parse_t *ap,
    int f, const unsigned char *p, size_t len);
static int cm_cart_walk(cm_json_walk_t *w, cm_json_handler_pt handler,
    void *data, const unsigned char *buf, size_t len, char *err,
    size_t errlen);


const char  *cm_address_fields[CM_AF_N] = {
    "recipient", "phone", "zipCode", "address1", "address2", "memo",
    "isDefault"
};

static const char  *cm_cart_item_fields[] = { "quantity" };


int
cm_parse_cart_item(const unsigned char *buf, size_t len, int32_t *quantity,
    char *err, size_t errlen)
{
    cm_json_walk_t        w;
    cm_cart_item_parse_t  cp;

    memset(&cp, 0, sizeof(cm_cart_item_parse_t));
    cp.flat.field = -1;

    if (cm_cart_walk(&w, cm_cart_item_event, &cp, buf, len, err, errlen)
        != 0)
    {
        return -1;
    }

    if (!(cp.flat.seen & 1u)) {
        cm_json_fail(&w, "quantity is required");
        return -1;
    }

    *quantity = (int32_t) cp.quantity;

    return 0;
}


static int
cm_cart_item_event(cm_json_walk_t *w, cm_json_event_e ev,
    const unsigned char *p, size_t len)
{
    cm_cart_item_parse_t  *cp;

    cp = w->data;

    if (cp->flat.field == -1) {
        return cm_json_flat_key(w, &cp->flat, cm_cart_item_fields, 1, ev, p,
                                len);
    }

    cp->flat.field = -1;

    return cm_json_int_value(w, ev, p, len, 1, 999, "quantity",
                             &cp->quantity);
}


int
cm_parse_address(const unsigned char *buf, size_t len, int create,
    cm_address_req_t *out, char *err, size_t errlen)
{
    cm_json_walk_t      w;
    cm_address_parse_t  ap;

    cm_address_parse_init(&ap, out, create, 1, CM_AF_N);

    if (cm_cart_walk(&w, cm_address_event, &ap, buf, len, err, errlen) != 0
        || cm_address_parse_done(&w, &ap) != 0)
    {
        memset(out, 0, sizeof(cm_address_req_t));
        return -1;
    }

    return 0;
}


void
cm_address_parse_init(cm_address_parse_t *ap, cm_address_req_t *out,
    int create, unsigned depth, int nfields)
{
    memset(out, 0, sizeof(cm_address_req_t));
    memset(ap, 0, sizeof(cm_address_parse_t));
    ap->flat.field = -1;
    ap->out = out;
    ap->create = create;
    ap->depth = depth;
    ap->nfields = nfields;
}


int
cm_address_parse_done(cm_json_walk_t *w, cm_address_parse_t *ap)
{
    int  f;

    ap->out->seen = ap->flat.seen;

    if (ap->create) {
        for (f = CM_AF_RECIPIENT; f <= CM_AF_ADDRESS1; f++) {
            if (!(ap->out->seen & (1u << f))) {
                cm_json_fail(w, "%s is required", cm_address_fields[f]);
                return -1;
            }
        }

    } else if (ap->out->seen == 0) {
        cm_json_fail(w, "nothing to change");
        return -1;
    }

    return 0;
}


static int
cm_address_event(cm_json_walk_t *w, cm_json_event_e ev,
    const unsigned char *p, size_t len)
{
    return cm_address_parse_event(w, w->data, ev, p, len);
}


int
cm_address_parse_event(cm_json_walk_t *w, cm_address_parse_t *ap,
    cm_json_event_e ev, const unsigned char *p, size_t len)
{
    int  f;

    if (ap->flat.field == -1) {
        return cm_json_flat_key(w, &ap->flat, cm_address_fields, ap->nfields,
                                ev, p, len);
    }

    f = ap->flat.field;
    ap->flat.field = -1;

    if (w->depth != ap->depth) {
        return cm_json_fail(w, "%s must not be an object or an array",
                            cm_address_fields[f]);
    }

    if (f == CM_AF_DEFAULT) {
        if (ev != CM_JSON_BOOL) {
            return cm_json_fail(w, "isDefault must be true or false");
        }

        ap->out->is_default = (len == 4);
        return CM_JSON_OK;
    }

    if (ev == CM_JSON_NULL && (f == CM_AF_ADDRESS2 || f == CM_AF_MEMO)) {
        /* none (create), or cleared (PATCH): seen, length 0 */
        return CM_JSON_OK;
    }

    if (ev != CM_JSON_STRING) {
        return cm_json_fail(w, "%s must be a string", cm_address_fields[f]);
    }

    return cm_address_text(w, ap, f, p, len);
}


/* a text field's rule, then its value copied out */

static int
cm_address_text(cm_json_walk_t *w, cm_address_parse_t *ap, int f,
    const unsigned char *p, size_t len)
{
    size_t       i, max;
    const char  *why;

    switch (f) {

    case CM_AF_PHONE:
        if (cm_phone_valid((const char *) p, len, &why) != 0) {
            return cm_json_fail(w, "%s", why);
        }
        break;

    case CM_AF_ZIP_CODE:
        for (i = 0; i < len; i++) {
            if (p[i] < '0' || p[i] > '9') {
                break;
            }
        }

        if (len != CM_ZIP_CODE_LEN || i != len) {
            return cm_json_fail(w, "zipCode must be 5 digits");
        }
        break;

    default:
        max = (f == CM_AF_RECIPIENT) ? CM_RECIPIENT_MAX
              : (f == CM_AF_MEMO) ? CM_ADDRESS_MEMO_MAX
              : CM_ADDRESS_LINE_MAX;

        /* address2 and memo may be "" (none); the others have text */
        if (len > CM_ADDRESS_BYTES
            || ((len > 0 || f == CM_AF_RECIPIENT || f == CM_AF_ADDRESS1)
                && cm_utf8_text(p, len, 1, max, 0) != 0))
        {
            return cm_json_fail(w, "%s must be 1 to %u characters, not blank,"
                                " without control characters",
                                cm_address_fields[f], (unsigned) max);
        }
        break;
    }

    memcpy(ap->out->text[f], p, len);
    ap->out->text[f][len] = '\0';
    ap->out->len[f] = len;

    return CM_JSON_OK;
}


static int
cm_cart_walk(cm_json_walk_t *w, cm_json_handler_pt handler, void *data,
    const unsigned char *buf, size_t len, char *err, size_t errlen)
{
    memset(w, 0, sizeof(cm_json_walk_t));
    w->handler = handler;
    w->data = data;
    w->err = err;
    w->errlen = errlen;

    return cm_json_walk(w, buf, len);
}
