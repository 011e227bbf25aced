/*
 * cm_json: the event walker on yajl's parser under every request body
 * (the order and payment bodies: cm_order.c), the charge body, path
 * integers, and JSON string escaping.  No nginx headers: unit-tested and fuzzed as plain C.
 */


#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <yajl/yajl_parse.h>

#include "cm_json.h"
#include "cm_text.h"


typedef struct {
    int64_t            max;
    int64_t            amount;
    unsigned           seen:1;
} cm_charge_parse_t;


static int cm_json_yajl_null(void *ctx);
static int cm_json_yajl_boolean(void *ctx, int val);
static int cm_json_yajl_number(void *ctx, const char *p, size_t len);
static int cm_json_yajl_string(void *ctx, const unsigned char *p,
    size_t len);
static int cm_json_yajl_start_map(void *ctx);
static int cm_json_yajl_map_key(void *ctx, const unsigned char *p,
    size_t len);
static int cm_json_yajl_end_map(void *ctx);
static int cm_json_yajl_start_array(void *ctx);
static int cm_json_yajl_end_array(void *ctx);
static int cm_json_scalar(cm_json_walk_t *w, cm_json_event_e ev,
    const unsigned char *p, size_t len);
static int cm_json_open(cm_json_walk_t *w, cm_json_event_e ev);
static int cm_json_close(cm_json_walk_t *w, cm_json_event_e ev);
static int cm_json_call(cm_json_walk_t *w, cm_json_event_e ev,
    const unsigned char *p, size_t len);

static int cm_charge_event(cm_json_walk_t *w, cm_json_event_e ev,
    const unsigned char *p, size_t len);

static const yajl_callbacks  cm_json_callbacks = {
    cm_json_yajl_null,
    cm_json_yajl_boolean,
    NULL,                      /* integers and doubles come as numbers */
    NULL,
    cm_json_yajl_number,
    cm_json_yajl_string,
    cm_json_yajl_start_map,
    cm_json_yajl_map_key,
    cm_json_yajl_end_map,
    cm_json_yajl_start_array,
    cm_json_yajl_end_array
};


int
cm_json_walk(cm_json_walk_t *w, const unsigned char *buf, size_t len)
{
    yajl_handle  h;
    yajl_status  st;

    w->depth = 0;
    w->skip_depth = 0;
    w->skipping = 0;
    w->started = 0;
    w->failed = 0;

    if (w->err != NULL && w->errlen > 0) {
        w->err[0] = '\0';
    }

    if (len == 0) {
        return cm_json_fail(w, "request body is empty");
    }

    /* no options: strict JSON, UTF-8 checked, no trailing data */
    h = yajl_alloc(&cm_json_callbacks, NULL, w);
    if (h == NULL) {
        return cm_json_fail(w, "out of memory");
    }

    st = yajl_parse(h, buf, len);

    if (st == yajl_status_ok) {
        st = yajl_complete_parse(h);
    }

    yajl_free(h);

    if (w->failed) {
        return CM_JSON_FAIL;
    }

    /*
     * yajl's own messages are not used: verbose ones quote the input and
     * the others name parser internals.
     */
    if (st != yajl_status_ok || !w->started || w->depth != 0) {
        return cm_json_fail(w, "malformed JSON");
    }

    return 0;
}


int
cm_json_fail(cm_json_walk_t *w, const char *fmt, ...)
{
    va_list  args;

    /* the first failure is the one to report */
    if (!w->failed && w->err != NULL && w->errlen > 0) {
        va_start(args, fmt);
        vsnprintf(w->err, w->errlen, fmt, args);
        va_end(args);
    }

    w->failed = 1;

    return CM_JSON_FAIL;
}


int
cm_json_number(const unsigned char *p, size_t len, int64_t *out)
{
    int       neg, range;
    size_t    i;
    uint64_t  v, limit, d;

    i = 0;
    neg = 0;

    if (len > 0 && p[0] == '-') {
        neg = 1;
        i = 1;
    }

    if (i == len) {
        return CM_JSON_NOT_INT;
    }

    limit = neg ? (uint64_t) INT64_MAX + 1 : (uint64_t) INT64_MAX;
    range = 0;
    v = 0;

    /* scan to the end even after an overflow: "1e999" is not an integer */
    for ( /* void */ ; i < len; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return CM_JSON_NOT_INT;
        }

        d = (uint64_t) (p[i] - '0');

        if (v > (limit - d) / 10) {
            range = 1;

        } else {
            v = v * 10 + d;
        }
    }

    if (range) {
        return CM_JSON_RANGE;
    }

    if (!neg) {
        *out = (int64_t) v;

    } else if (v == (uint64_t) INT64_MAX + 1) {
        *out = INT64_MIN;

    } else {
        *out = -(int64_t) v;
    }

    return CM_JSON_OK;
}


int
cm_parse_int64(const unsigned char *s, size_t len, int64_t min, int64_t max,
    int64_t *out)
{
    size_t    i;
    uint64_t  v, d;

    if (s == NULL || len == 0) {
        return -1;
    }

    v = 0;

    for (i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }

        d = (uint64_t) (s[i] - '0');

        if (v > ((uint64_t) INT64_MAX - d) / 10) {
            return -1;
        }

        v = v * 10 + d;
    }

    if ((int64_t) v < min || (int64_t) v > max) {
        return -1;
    }

    *out = (int64_t) v;

    return 0;
}


int
cm_parse_charge(const unsigned char *buf, size_t len, int64_t max_amount,
    int64_t *amount, char *err, size_t errlen)
{
    cm_json_walk_t     w;
    cm_charge_parse_t  cp;

    memset(&cp, 0, sizeof(cm_charge_parse_t));
    cp.max = max_amount;

    memset(&w, 0, sizeof(cm_json_walk_t));
    w.handler = cm_charge_event;
    w.data = &cp;
    w.err = err;
    w.errlen = errlen;

    if (cm_json_walk(&w, buf, len) != 0) {
        return -1;
    }

    if (!cp.seen) {
        cm_json_fail(&w, "amount is required");
        return -1;
    }

    *amount = cp.amount;

    return 0;
}


size_t
cm_json_escape(char *dst, size_t dstlen, const unsigned char *s, size_t len)
{
    size_t          i, n, clen;
    uint32_t        cp;
    unsigned char   c;
    static const char  hex[] = "0123456789abcdef";

    n = 0;

    for (i = 0; i < len; i += clen) {
        c = s[i];

        if (c == '"' || c == '\\') {
            if (dstlen - n < 2) {
                break;
            }

            dst[n++] = '\\';
            dst[n++] = (char) c;
            clen = 1;

        } else if (c < 0x20) {
            if (dstlen - n < 6) {
                break;
            }

            dst[n++] = '\\';
            dst[n++] = 'u';
            dst[n++] = '0';
            dst[n++] = '0';
            dst[n++] = hex[c >> 4];
            dst[n++] = hex[c & 0x0f];
            clen = 1;

        } else if (c < 0x80) {
            if (dstlen - n < 1) {
                break;
            }

            dst[n++] = (char) c;
            clen = 1;

        } else {
            clen = cm_utf8_decode(s + i, len - i, &cp);

            if (clen == 0) {
                /* one U+FFFD per bad byte, then resynchronise */
                if (dstlen - n < 3) {
                    break;
                }

                dst[n++] = (char) 0xef;
                dst[n++] = (char) 0xbf;
                dst[n++] = (char) 0xbd;
                clen = 1;

            } else {
                if (dstlen - n < clen) {
                    break;
                }

                memcpy(dst + n, s + i, clen);
                n += clen;
            }
        }
    }

    return n;
}


static int
cm_json_yajl_null(void *ctx)
{
    return cm_json_scalar(ctx, CM_JSON_NULL, NULL, 0);
}


static int
cm_json_yajl_boolean(void *ctx, int val)
{
    return cm_json_scalar(ctx, CM_JSON_BOOL,
                          (const unsigned char *) (val ? "true" : "false"),
                          val ? 4 : 5);
}


static int
cm_json_yajl_number(void *ctx, const char *p, size_t len)
{
    return cm_json_scalar(ctx, CM_JSON_NUMBER, (const unsigned char *) p,
                          len);
}


static int
cm_json_yajl_string(void *ctx, const unsigned char *p, size_t len)
{
    return cm_json_scalar(ctx, CM_JSON_STRING, p, len);
}


static int
cm_json_yajl_start_map(void *ctx)
{
    return cm_json_open(ctx, CM_JSON_MAP_START);
}


static int
cm_json_yajl_map_key(void *ctx, const unsigned char *p, size_t len)
{
    int              rc;
    cm_json_walk_t  *w;

    w = ctx;

    /* keys inside a skipped value: the skip ends with that value */
    if (w->skipping) {
        return 1;
    }

    rc = cm_json_call(w, CM_JSON_KEY, p, len);

    if (rc == CM_JSON_FAIL) {
        return 0;
    }

    if (rc == CM_JSON_SKIP) {
        w->skipping = 1;
        w->skip_depth = w->depth;
    }

    return 1;
}


static int
cm_json_yajl_end_map(void *ctx)
{
    return cm_json_close(ctx, CM_JSON_MAP_END);
}


static int
cm_json_yajl_start_array(void *ctx)
{
    return cm_json_open(ctx, CM_JSON_ARRAY_START);
}


static int
cm_json_yajl_end_array(void *ctx)
{
    return cm_json_close(ctx, CM_JSON_ARRAY_END);
}


static int
cm_json_scalar(cm_json_walk_t *w, cm_json_event_e ev, const unsigned char *p,
    size_t len)
{
    if (w->depth == 0) {
        cm_json_fail(w, "request body must be a JSON object");
        return 0;
    }

    if (w->skipping) {
        if (w->depth == w->skip_depth) {
            /* this scalar was the whole skipped value */
            w->skipping = 0;
        }

        return 1;
    }

    return cm_json_call(w, ev, p, len) == CM_JSON_FAIL ? 0 : 1;
}


static int
cm_json_open(cm_json_walk_t *w, cm_json_event_e ev)
{
    int  rc;

    if (w->depth == 0) {
        if ((ev != CM_JSON_MAP_START
             && !(w->array_ok && ev == CM_JSON_ARRAY_START))
            || w->started)
        {
            cm_json_fail(w, "request body must be a JSON object");
            return 0;
        }

        w->started = 1;
    }

    /* skipped values count too: yajl's own stack grows without a bound */
    if (w->depth >= CM_JSON_DEPTH_MAX) {
        cm_json_fail(w, "JSON nested deeper than %d levels",
                     CM_JSON_DEPTH_MAX);
        return 0;
    }

    w->depth++;

    if (w->skipping) {
        return 1;
    }

    rc = cm_json_call(w, ev, NULL, 0);

    if (rc == CM_JSON_FAIL) {
        return 0;
    }

    if (rc == CM_JSON_SKIP) {
        w->skipping = 1;
        w->skip_depth = w->depth - 1;
    }

    return 1;
}


static int
cm_json_close(cm_json_walk_t *w, cm_json_event_e ev)
{
    int  rc;

    if (w->skipping) {
        w->depth--;

        if (w->depth == w->skip_depth) {
            w->skipping = 0;
        }

        return 1;
    }

    rc = cm_json_call(w, ev, NULL, 0);

    w->depth--;

    return rc == CM_JSON_FAIL ? 0 : 1;
}


static int
cm_json_call(cm_json_walk_t *w, cm_json_event_e ev, const unsigned char *p,
    size_t len)
{
    int  rc;

    rc = w->handler(w, ev, p, len);

    if (rc == CM_JSON_FAIL || w->failed) {
        /* no effect when the handler already said why */
        cm_json_fail(w, "invalid request");
        return CM_JSON_FAIL;
    }

    return rc;
}


int
cm_json_int_value(cm_json_walk_t *w, cm_json_event_e ev,
    const unsigned char *p, size_t len, int64_t min, int64_t max,
    const char *name, int64_t *out)
{
    int      rc;
    int64_t  v;

    if (ev != CM_JSON_NUMBER) {
        return cm_json_fail(w, "%s must be an integer", name);
    }

    rc = cm_json_number(p, len, &v);

    if (rc == CM_JSON_NOT_INT) {
        return cm_json_fail(w, "%s must be an integer", name);
    }

    if (rc != CM_JSON_OK || v < min || v > max) {
        return cm_json_fail(w, "%s must be between %" PRId64 " and %" PRId64,
                            name, min, max);
    }

    *out = v;

    return CM_JSON_OK;
}


static int
cm_charge_event(cm_json_walk_t *w, cm_json_event_e ev, const unsigned char *p,
    size_t len)
{
    cm_charge_parse_t  *cp;

    cp = w->data;

    if (w->depth == 1) {
        switch (ev) {

        case CM_JSON_MAP_START:
        case CM_JSON_MAP_END:
            return CM_JSON_OK;

        case CM_JSON_KEY:
            if (!cm_json_str_is(p, len, "amount")) {
                return CM_JSON_SKIP;
            }

            if (cp->seen) {
                return cm_json_fail(w, "duplicate field amount");
            }

            cp->seen = 1;
            return CM_JSON_OK;

        default:
            break;
        }
    }

    /* unknown fields are skipped: anything else is the value of "amount" */
    return cm_json_int_value(w, ev, p, len, 1, cp->max, "amount",
                             &cp->amount);
}


/* the object's own start and end, and its keys: one of names[0 .. n) */

int
cm_json_flat_key(cm_json_walk_t *w, cm_json_flat_t *f, const char **names,
    int n, cm_json_event_e ev, const unsigned char *p, size_t len)
{
    int  i;

    if (ev == CM_JSON_MAP_START || ev == CM_JSON_MAP_END) {
        return CM_JSON_OK;
    }

    if (ev != CM_JSON_KEY) {
        return cm_json_fail(w, "unexpected value");
    }

    for (i = 0; i < n; i++) {
        if (strlen(names[i]) == len && memcmp(names[i], p, len) == 0) {
            break;
        }
    }

    if (i == n) {
        return cm_json_fail(w, "unknown field");
    }

    if (f->seen & (1u << i)) {
        return cm_json_fail(w, "duplicate field %s", names[i]);
    }

    f->seen |= 1u << i;
    f->field = i;

    return CM_JSON_OK;
}
