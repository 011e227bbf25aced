/*
 * cm_catalogue: the catalogue's request bodies (see cm_catalogue.h), read
 * with cm_json's event walker like cm_parse_coupon.
 *
 * A product body is walked twice: the first walk reads every field but
 * "variants" (so the options are known wherever they stand in the
 * document), the second only "variants", each checked against the
 * options.  Combinations are numbered in mixed radix (the first option
 * the most significant) and marked in a bitmap: a variant named twice is
 * seen at once, and with as many variants as combinations and none twice,
 * every combination is there.
 */


#include <stdio.h>
#include <string.h>

#include "cm_json.h"
#include "cm_text.h"
#include "cm_catalogue.h"


enum {
    CM_PF_NAME = 0,
    CM_PF_DESCRIPTION,
    CM_PF_CATEGORY,
    CM_PF_PRICE,
    CM_PF_OPTIONS,
    CM_PF_VARIANTS,
    CM_PF_STORE,
    CM_PF_STATUS,
    CM_PF_VERSION,
    CM_PF_N
};


static const char  *cm_product_fields[CM_PF_N] = {
    "name", "description", "categoryId", "price", "options", "variants",
    "storeId", "status", "version"
};


/* the keys of an option and of a variant */
#define CM_OK_NAME        0x01
#define CM_OK_VALUES      0x02

#define CM_VK_SKU         0x01
#define CM_VK_VALUES      0x02
#define CM_VK_STOCK       0x04
#define CM_VK_DELTA       0x08

#define CM_TEXT_BYTES     (CM_OPTION_TEXT_MAX * 4 + 1)


typedef struct {
    cm_product_req_t   *out;
    cm_product_mode_e   mode;
    int                 pass;          /* 1: all but variants, 2: variants */
    int                 field;         /* CM_PF_* whose value comes, or -1 */

    size_t              nopt;
    unsigned            opt_key;
    unsigned            opt_seen;
    char                opt_name[CM_OPTIONS_MAX][CM_TEXT_BYTES];
    char                val[CM_OPTIONS_MAX][CM_OPTION_VALUES_MAX]
                           [CM_TEXT_BYTES];
    size_t              nval[CM_OPTIONS_MAX];

    size_t              nvar;
    unsigned            var_key;
    unsigned            var_seen;
    size_t              var_nvals;
    size_t              var_combo;
    unsigned char       combos[(CM_VARIANTS_MAX + 7) / 8];
} cm_product_parse_t;




static int cm_product_event(cm_json_walk_t *w, cm_json_event_e ev,
    const unsigned char *p, size_t len);
static int cm_product_key(cm_json_walk_t *w, cm_product_parse_t *pp,
    const unsigned char *p, size_t len);
static int cm_product_scalar(cm_json_walk_t *w, int f, cm_json_event_e ev,
    const unsigned char *p, size_t len);
static int cm_product_options(cm_json_walk_t *w, cm_product_parse_t *pp,
    cm_json_event_e ev, const unsigned char *p, size_t len);
static int cm_product_option_value(cm_json_walk_t *w,
    cm_product_parse_t *pp, const unsigned char *p, size_t len);
static int cm_product_variants(cm_json_walk_t *w, cm_product_parse_t *pp,
    cm_json_event_e ev, const unsigned char *p, size_t len);
static int cm_product_variant_scalar(cm_json_walk_t *w,
    cm_product_parse_t *pp, cm_json_event_e ev, const unsigned char *p,
    size_t len);
static int cm_product_variant_value(cm_json_walk_t *w,
    cm_product_parse_t *pp, const unsigned char *p, size_t len);
static int cm_product_variant_done(cm_json_walk_t *w,
    cm_product_parse_t *pp);
static int cm_variant_patch_event(cm_json_walk_t *w, cm_json_event_e ev,
    const unsigned char *p, size_t len);
static int cm_category_event(cm_json_walk_t *w, cm_json_event_e ev,
    const unsigned char *p, size_t len);
static int cm_catalogue_status(cm_json_event_e ev, const unsigned char *p,
    size_t len);


int
cm_parse_product(const unsigned char *buf, size_t len, cm_product_mode_e mode,
    cm_product_req_t *out, char *err, size_t errlen)
{
    size_t               i;
    cm_json_walk_t       w;
    cm_product_parse_t  *pp, parse;

    pp = &parse;

    memset(out, 0, sizeof(cm_product_req_t));
    memset(pp, 0, sizeof(cm_product_parse_t));
    pp->out = out;
    pp->mode = mode;
    pp->pass = 1;
    pp->field = -1;

    memset(&w, 0, sizeof(cm_json_walk_t));
    w.handler = cm_product_event;
    w.data = pp;
    w.err = err;
    w.errlen = errlen;

    if (cm_json_walk(&w, buf, len) != 0) {
        goto failed;
    }

    if (mode == CM_PRODUCT_PATCH) {
        if ((out->seen & ~(1u << CM_PF_VERSION)) == 0) {
            cm_json_fail(&w, "nothing to change: give name, description,"
                         " categoryId, price or status");
            goto failed;
        }

        return 0;
    }

    if (!(out->seen & (1u << CM_PF_NAME))
        || !(out->seen & (1u << CM_PF_PRICE))
        || !(out->seen & (1u << CM_PF_VARIANTS)))
    {
        cm_json_fail(&w, "name, price and variants are required");
        goto failed;
    }

    out->noptions = pp->nopt;
    out->combinations = 1;

    for (i = 0; i < pp->nopt; i++) {
        out->combinations *= pp->nval[i];
    }

    /* the second walk: the variants against the options */
    pp->pass = 2;
    pp->field = -1;

    memset(&w, 0, sizeof(cm_json_walk_t));
    w.handler = cm_product_event;
    w.data = pp;
    w.err = err;
    w.errlen = errlen;

    if (cm_json_walk(&w, buf, len) != 0) {
        goto failed;
    }

    out->nvariants = pp->nvar;

    if (pp->nvar != out->combinations) {
        cm_json_fail(&w, "variants must hold one variant per combination of"
                     " option values: %zu, not %zu", out->combinations,
                     pp->nvar);
        goto failed;
    }

    return 0;

failed:

    memset(out, 0, sizeof(cm_product_req_t));

    return -1;
}


static int
cm_product_event(cm_json_walk_t *w, cm_json_event_e ev, const unsigned char *p,
    size_t len)
{
    int                  f, rc;
    cm_product_parse_t  *pp;

    pp = w->data;

    if (pp->field == -1) {
        switch (ev) {

        case CM_JSON_MAP_START:
        case CM_JSON_MAP_END:
            return CM_JSON_OK;

        case CM_JSON_KEY:
            return cm_product_key(w, pp, p, len);

        default:
            return cm_json_fail(w, "unexpected value");
        }
    }

    if (w->depth == 1) {
        f = pp->field;
        pp->field = -1;
        return cm_product_scalar(w, f, ev, p, len);
    }

    if (pp->field == CM_PF_OPTIONS) {
        rc = cm_product_options(w, pp, ev, p, len);

    } else if (pp->field == CM_PF_VARIANTS) {
        rc = cm_product_variants(w, pp, ev, p, len);

    } else {
        return cm_json_fail(w, "%s must not be an object or an array",
                            cm_product_fields[pp->field]);
    }

    if (w->depth == 2 && (ev == CM_JSON_ARRAY_END || ev == CM_JSON_MAP_END)) {
        pp->field = -1;
    }

    return rc;
}


static int
cm_product_key(cm_json_walk_t *w, cm_product_parse_t *pp,
    const unsigned char *p, size_t len)
{
    int  i;

    for (i = 0; i < CM_PF_N; i++) {
        if (strlen(cm_product_fields[i]) == len
            && memcmp(cm_product_fields[i], p, len) == 0)
        {
            break;
        }
    }

    if (pp->pass == 2) {
        if (i != CM_PF_VARIANTS) {
            return CM_JSON_SKIP;
        }

        pp->field = i;
        return CM_JSON_OK;
    }

    if (i == CM_PF_N
        || (pp->mode == CM_PRODUCT_CREATE
            && (i == CM_PF_STATUS || i == CM_PF_VERSION))
        || (pp->mode == CM_PRODUCT_PATCH && i == CM_PF_STORE))
    {
        return cm_json_fail(w, "unknown field");
    }

    if (pp->mode == CM_PRODUCT_PATCH
        && (i == CM_PF_OPTIONS || i == CM_PF_VARIANTS))
    {
        return cm_json_fail(w, "options and variants do not change after"
                            " creation: change a variant with PATCH"
                            " /api/v1/seller/products/{id}/variants/{id}");
    }

    if (pp->out->seen & (1u << i)) {
        return cm_json_fail(w, "duplicate field %s", cm_product_fields[i]);
    }

    pp->out->seen |= 1u << i;

    if (i == CM_PF_VARIANTS) {
        /* the second walk reads them */
        return CM_JSON_SKIP;
    }

    pp->field = i;

    return CM_JSON_OK;
}


static int
cm_product_scalar(cm_json_walk_t *w, int f, cm_json_event_e ev,
    const unsigned char *p, size_t len)
{
    int64_t  v;

    switch (f) {

    case CM_PF_NAME:
        if (ev != CM_JSON_STRING
            || cm_utf8_text(p, len, 1, CM_PRODUCT_NAME_MAX, 0) != 0)
        {
            return cm_json_fail(w, "name must be a string of 1 to 100"
                                " characters, not blank, without control"
                                " characters");
        }

        return CM_JSON_OK;

    case CM_PF_DESCRIPTION:
        if (ev != CM_JSON_STRING
            || cm_utf8_text(p, len, 0, CM_PRODUCT_DESC_MAX, 1) != 0)
        {
            return cm_json_fail(w, "description must be a string of at most"
                                " 5000 characters");
        }

        return CM_JSON_OK;

    case CM_PF_CATEGORY:
    case CM_PF_STORE:
        if (ev == CM_JSON_NULL) {
            return CM_JSON_OK;
        }

        return cm_json_int_value(w, ev, p, len, 1, INT64_MAX,
                                 cm_product_fields[f], &v);

    case CM_PF_PRICE:
        return cm_json_int_value(w, ev, p, len, 0, CM_PRODUCT_PRICE_MAX,
                                 "price", &v);

    case CM_PF_VERSION:
        return cm_json_int_value(w, ev, p, len, 1, INT32_MAX, "version", &v);

    case CM_PF_STATUS:
        if (!cm_catalogue_status(ev, p, len)) {
            return cm_json_fail(w, "status must be ON_SALE or STOPPED");
        }

        return CM_JSON_OK;

    case CM_PF_OPTIONS:
        return cm_json_fail(w, "options must be an array");

    default:
        /* variants in the second walk */
        return cm_json_fail(w, "variants must be an array");
    }
}


/*
 * "options": the array at depth 2, an option's start and end, keys and
 * scalars at 3, its "values" at 4.
 */

static int
cm_product_options(cm_json_walk_t *w, cm_product_parse_t *pp,
    cm_json_event_e ev, const unsigned char *p, size_t len)
{
    size_t  n;

    n = pp->nopt;

    if (w->depth == 2) {
        if (ev == CM_JSON_ARRAY_START || ev == CM_JSON_ARRAY_END) {
            return CM_JSON_OK;
        }

        if (ev == CM_JSON_MAP_START) {
            return cm_json_fail(w, "options must be an array");
        }

        return cm_json_fail(w, "options[%zu] must be an object", n);
    }

    if (w->depth == 3) {
        switch (ev) {

        case CM_JSON_MAP_START:
            if (n == CM_OPTIONS_MAX) {
                return cm_json_fail(w, "options must not hold more than %d"
                                    " options", CM_OPTIONS_MAX);
            }

            pp->nopt++;
            pp->opt_seen = 0;
            pp->opt_key = 0;
            return CM_JSON_OK;

        case CM_JSON_MAP_END:
            if (pp->opt_seen != (CM_OK_NAME | CM_OK_VALUES)) {
                return cm_json_fail(w, "options[%zu] needs name and values",
                                    n - 1);
            }

            return CM_JSON_OK;

        case CM_JSON_KEY:
            if (cm_json_str_is(p, len, "name")) {
                pp->opt_key = CM_OK_NAME;

            } else if (cm_json_str_is(p, len, "values")) {
                pp->opt_key = CM_OK_VALUES;

            } else {
                return cm_json_fail(w, "options[%zu]: unknown field", n - 1);
            }

            if (pp->opt_seen & pp->opt_key) {
                return cm_json_fail(w, "options[%zu]: duplicate field",
                                    n - 1);
            }

            pp->opt_seen |= pp->opt_key;
            return CM_JSON_OK;

        case CM_JSON_STRING:
            if (pp->opt_key == CM_OK_NAME) {
                return cm_product_option_value(w, pp, p, len);
            }

            /* fall through */

        default:
            if (pp->opt_key == CM_OK_VALUES) {
                return cm_json_fail(w, "options[%zu].values must be an"
                                    " array", n - 1);
            }

            if (pp->opt_key == CM_OK_NAME) {
                return cm_json_fail(w, "options[%zu].name must be a string",
                                    n - 1);
            }

            return cm_json_fail(w, "options[%zu] must be an object", n);
        }
    }

    if (w->depth == 4 && pp->opt_key == CM_OK_VALUES) {
        switch (ev) {

        case CM_JSON_ARRAY_START:
            return CM_JSON_OK;

        case CM_JSON_ARRAY_END:
            if (pp->nval[n - 1] == 0) {
                return cm_json_fail(w, "options[%zu].values must not be"
                                    " empty", n - 1);
            }

            return CM_JSON_OK;

        case CM_JSON_STRING:
            return cm_product_option_value(w, pp, p, len);

        default:
            break;
        }
    }

    return cm_json_fail(w, "options[%zu] must be an object with a name and"
                        " an array of string values", n - 1);
}


/* an option's name (opt_key CM_OK_NAME) or one of its values */

static int
cm_product_option_value(cm_json_walk_t *w, cm_product_parse_t *pp,
    const unsigned char *p, size_t len)
{
    size_t  i, n, k;

    n = pp->nopt - 1;

    if (cm_utf8_text(p, len, 1, CM_OPTION_TEXT_MAX, 0) != 0) {
        return cm_json_fail(w, "options[%zu]: names and values are 1 to 50"
                            " characters, not blank, without control"
                            " characters", n);
    }

    if (pp->opt_key == CM_OK_NAME) {
        for (i = 0; i < n; i++) {
            if (strlen(pp->opt_name[i]) == len
                && memcmp(pp->opt_name[i], p, len) == 0)
            {
                return cm_json_fail(w, "options[%zu].name repeats the name"
                                    " of options[%zu]", n, i);
            }
        }

        memcpy(pp->opt_name[n], p, len);
        pp->opt_name[n][len] = '\0';
        return CM_JSON_OK;
    }

    k = pp->nval[n];

    if (k == CM_OPTION_VALUES_MAX) {
        return cm_json_fail(w, "options[%zu].values must not hold more than"
                            " %d values", n, CM_OPTION_VALUES_MAX);
    }

    for (i = 0; i < k; i++) {
        if (strlen(pp->val[n][i]) == len
            && memcmp(pp->val[n][i], p, len) == 0)
        {
            return cm_json_fail(w, "options[%zu].values[%zu] repeats"
                                " values[%zu]", n, k, i);
        }
    }

    memcpy(pp->val[n][k], p, len);
    pp->val[n][k][len] = '\0';
    pp->nval[n]++;

    return CM_JSON_OK;
}


/*
 * "variants" (second walk): the array at depth 2, a variant's start, end,
 * keys and scalars at 3, its "optionValues" at 4.
 */

static int
cm_product_variants(cm_json_walk_t *w, cm_product_parse_t *pp,
    cm_json_event_e ev, const unsigned char *p, size_t len)
{
    size_t  n;

    n = pp->nvar;

    if (w->depth == 2) {
        if (ev == CM_JSON_ARRAY_START || ev == CM_JSON_ARRAY_END) {
            return CM_JSON_OK;
        }

        if (ev == CM_JSON_MAP_START) {
            return cm_json_fail(w, "variants must be an array");
        }

        return cm_json_fail(w, "variants[%zu] must be an object", n);
    }

    if (w->depth == 3) {
        switch (ev) {

        case CM_JSON_MAP_START:
            if (n == CM_VARIANTS_MAX || n == pp->out->combinations) {
                return cm_json_fail(w, "variants must hold one variant per"
                                    " combination of option values: %zu",
                                    pp->out->combinations);
            }

            pp->nvar++;
            pp->var_seen = 0;
            pp->var_key = 0;
            pp->var_nvals = 0;
            pp->var_combo = 0;
            return CM_JSON_OK;

        case CM_JSON_MAP_END:
            return cm_product_variant_done(w, pp);

        case CM_JSON_KEY:
            if (cm_json_str_is(p, len, "sku")) {
                pp->var_key = CM_VK_SKU;

            } else if (cm_json_str_is(p, len, "optionValues")) {
                pp->var_key = CM_VK_VALUES;

            } else if (cm_json_str_is(p, len, "stock")) {
                pp->var_key = CM_VK_STOCK;

            } else if (cm_json_str_is(p, len, "priceDelta")) {
                pp->var_key = CM_VK_DELTA;

            } else {
                return cm_json_fail(w, "variants[%zu]: unknown field", n - 1);
            }

            if (pp->var_seen & pp->var_key) {
                return cm_json_fail(w, "variants[%zu]: duplicate field",
                                    n - 1);
            }

            pp->var_seen |= pp->var_key;
            return CM_JSON_OK;

        case CM_JSON_ARRAY_START:
            if (pp->var_key == 0) {
                return cm_json_fail(w, "variants[%zu] must be an object", n);
            }

            break;

        default:
            return cm_product_variant_scalar(w, pp, ev, p, len);
        }
    }

    if (w->depth == 4 && pp->var_key == CM_VK_VALUES) {
        switch (ev) {

        case CM_JSON_ARRAY_START:
        case CM_JSON_ARRAY_END:
            return CM_JSON_OK;

        case CM_JSON_STRING:
            return cm_product_variant_value(w, pp, p, len);

        default:
            break;
        }
    }

    return cm_json_fail(w, "variants[%zu]: sku is a string, optionValues an"
                        " array of strings, stock and priceDelta integers",
                        n - 1);
}


static int
cm_product_variant_scalar(cm_json_walk_t *w, cm_product_parse_t *pp,
    cm_json_event_e ev, const unsigned char *p, size_t len)
{
    char     name[48];
    size_t   n;
    int64_t  v;

    n = pp->nvar - 1;

    switch (pp->var_key) {

    case CM_VK_SKU:
        if (ev == CM_JSON_NULL
            || (ev == CM_JSON_STRING && cm_catalogue_sku(p, len) == 0))
        {
            return CM_JSON_OK;
        }

        return cm_json_fail(w, "variants[%zu].sku must be 1 to 64 letters,"
                            " digits, '.', '_' or '-', starting with a letter"
                            " or a digit", n);

    case CM_VK_STOCK:
        snprintf(name, sizeof(name), "variants[%zu].stock", n);
        return cm_json_int_value(w, ev, p, len, 0, CM_STOCK_MAX, name, &v);

    case CM_VK_DELTA:
        snprintf(name, sizeof(name), "variants[%zu].priceDelta", n);
        return cm_json_int_value(w, ev, p, len, -CM_PRODUCT_PRICE_MAX,
                                 CM_PRODUCT_PRICE_MAX, name, &v);

    default:
        return cm_json_fail(w, "variants[%zu].optionValues must be an array"
                            " of strings", n);
    }
}


/* the k-th value of a variant's optionValues: a value of the k-th option */

static int
cm_product_variant_value(cm_json_walk_t *w, cm_product_parse_t *pp,
    const unsigned char *p, size_t len)
{
    size_t  i, k, n;

    n = pp->nvar - 1;
    k = pp->var_nvals;

    if (k == pp->nopt) {
        return cm_json_fail(w, "variants[%zu].optionValues names more values"
                            " than there are options (%zu)", n, pp->nopt);
    }

    for (i = 0; i < pp->nval[k]; i++) {
        if (strlen(pp->val[k][i]) == len
            && memcmp(pp->val[k][i], p, len) == 0)
        {
            break;
        }
    }

    if (i == pp->nval[k]) {
        return cm_json_fail(w, "variants[%zu].optionValues[%zu] is not a"
                            " value of options[%zu]", n, k, k);
    }

    pp->var_combo = pp->var_combo * pp->nval[k] + i;
    pp->var_nvals++;

    return CM_JSON_OK;
}


static int
cm_product_variant_done(cm_json_walk_t *w, cm_product_parse_t *pp)
{
    size_t  n, c;

    n = pp->nvar - 1;

    if (!(pp->var_seen & CM_VK_STOCK)) {
        return cm_json_fail(w, "variants[%zu].stock is required", n);
    }

    if (pp->var_nvals != pp->nopt) {
        return cm_json_fail(w, "variants[%zu].optionValues must name one"
                            " value of each of the %zu options, in order",
                            n, pp->nopt);
    }

    c = pp->var_combo;

    if (pp->combos[c / 8] & (1u << (c % 8))) {
        return cm_json_fail(w, "variants[%zu] repeats the option values of"
                            " another variant", n);
    }

    pp->combos[c / 8] |= (unsigned char) (1u << (c % 8));

    return CM_JSON_OK;
}


/* ------------------------------------------------------------------------
 * flat bodies: a variant's patch, a category
 */

static const char  *cm_variant_fields[] = {
    "stock", "stockDelta", "sku", "priceDelta", "status", "reason"
};

#define CM_VF_STOCK    0
#define CM_VF_DELTA    1
#define CM_VF_SKU      2
#define CM_VF_PRICE    3
#define CM_VF_STATUS   4
#define CM_VF_REASON   5
#define CM_VF_N        6


int
cm_parse_variant_patch(const unsigned char *buf, size_t len, char *err,
    size_t errlen)
{
    cm_json_walk_t   w;
    cm_json_flat_t  fp;

    memset(&fp, 0, sizeof(cm_json_flat_t));
    fp.field = -1;

    memset(&w, 0, sizeof(cm_json_walk_t));
    w.handler = cm_variant_patch_event;
    w.data = &fp;
    w.err = err;
    w.errlen = errlen;

    if (cm_json_walk(&w, buf, len) != 0) {
        return -1;
    }

    if ((fp.seen & (1u << CM_VF_STOCK)) && (fp.seen & (1u << CM_VF_DELTA))) {
        cm_json_fail(&w, "give stock or stockDelta, not both");
        return -1;
    }

    if ((fp.seen & ~(1u << CM_VF_REASON)) == 0) {
        cm_json_fail(&w, "nothing to change: give stock, stockDelta, sku,"
                     " priceDelta or status");
        return -1;
    }

    return 0;
}


static int
cm_variant_patch_event(cm_json_walk_t *w, cm_json_event_e ev,
    const unsigned char *p, size_t len)
{
    int               f;
    int64_t           v;
    cm_json_flat_t  *fp;

    fp = w->data;

    if (fp->field == -1) {
        return cm_json_flat_key(w, fp, cm_variant_fields, CM_VF_N, ev, p,
                                len);
    }

    f = fp->field;
    fp->field = -1;

    if (w->depth != 1) {
        return cm_json_fail(w, "%s must not be an object or an array",
                            cm_variant_fields[f]);
    }

    switch (f) {

    case CM_VF_STOCK:
        return cm_json_int_value(w, ev, p, len, 0, CM_STOCK_MAX, "stock", &v);

    case CM_VF_DELTA:
        if (cm_json_int_value(w, ev, p, len, -CM_STOCK_MAX, CM_STOCK_MAX,
                              "stockDelta", &v)
            != CM_JSON_OK)
        {
            return CM_JSON_FAIL;
        }

        return v != 0 ? CM_JSON_OK
                      : cm_json_fail(w, "stockDelta must not be 0");

    case CM_VF_SKU:
        if (ev == CM_JSON_NULL
            || (ev == CM_JSON_STRING && cm_catalogue_sku(p, len) == 0))
        {
            return CM_JSON_OK;
        }

        return cm_json_fail(w, "sku must be 1 to 64 letters, digits, '.',"
                            " '_' or '-', starting with a letter or a"
                            " digit");

    case CM_VF_PRICE:
        return cm_json_int_value(w, ev, p, len, -CM_PRODUCT_PRICE_MAX,
                                 CM_PRODUCT_PRICE_MAX, "priceDelta", &v);

    case CM_VF_STATUS:
        return cm_catalogue_status(ev, p, len)
               ? CM_JSON_OK
               : cm_json_fail(w, "status must be ON_SALE or STOPPED");

    default:
        if (ev == CM_JSON_STRING
            && cm_utf8_text(p, len, 0, CM_REASON_MAX, 0) == 0)
        {
            return CM_JSON_OK;
        }

        return cm_json_fail(w, "reason must be a string of at most 200"
                            " characters");
    }
}


static const char  *cm_category_fields[] = { "name", "parentId" };


typedef struct {
    cm_json_flat_t     flat;
    cm_category_req_t  *out;
    int                 create;
} cm_category_parse_t;


int
cm_parse_category(const unsigned char *buf, size_t len, int create,
    cm_category_req_t *out, char *err, size_t errlen)
{
    cm_json_walk_t       w;
    cm_category_parse_t  cp;

    memset(out, 0, sizeof(cm_category_req_t));
    memset(&cp, 0, sizeof(cm_category_parse_t));
    cp.flat.field = -1;
    cp.out = out;
    cp.create = create;

    memset(&w, 0, sizeof(cm_json_walk_t));
    w.handler = cm_category_event;
    w.data = &cp;
    w.err = err;
    w.errlen = errlen;

    if (cm_json_walk(&w, buf, len) != 0) {
        goto failed;
    }

    if (!(cp.flat.seen & 1u)) {
        cm_json_fail(&w, "name is required");
        goto failed;
    }

    return 0;

failed:

    memset(out, 0, sizeof(cm_category_req_t));

    return -1;
}


static int
cm_category_event(cm_json_walk_t *w, cm_json_event_e ev,
    const unsigned char *p, size_t len)
{
    int                   f;
    cm_category_parse_t  *cp;

    cp = w->data;

    if (cp->flat.field == -1) {
        return cm_json_flat_key(w, &cp->flat, cm_category_fields,
                                cp->create ? 2 : 1, ev, p, len);
    }

    f = cp->flat.field;
    cp->flat.field = -1;

    if (w->depth != 1) {
        return cm_json_fail(w, "%s must not be an object or an array",
                            cm_category_fields[f]);
    }

    if (f == 1) {
        if (ev == CM_JSON_NULL) {
            return CM_JSON_OK;
        }

        return cm_json_int_value(w, ev, p, len, 1, INT64_MAX, "parentId",
                                 &cp->out->parent_id);
    }

    if (ev != CM_JSON_STRING
        || cm_utf8_text(p, len, 1, CM_CATEGORY_NAME_MAX, 0) != 0)
    {
        return cm_json_fail(w, "name must be a string of 1 to 50 characters,"
                            " not blank, without control characters");
    }

    memcpy(cp->out->name, p, len);
    cp->out->name[len] = '\0';

    return CM_JSON_OK;
}


static int
cm_catalogue_status(cm_json_event_e ev, const unsigned char *p, size_t len)
{
    return ev == CM_JSON_STRING
           && (cm_json_str_is(p, len, "ON_SALE")
               || cm_json_str_is(p, len, "STOPPED"));
}


/* ------------------------------------------------------------------------
 * text rules
 */

int
cm_catalogue_sku(const unsigned char *p, size_t len)
{
    size_t  i;

    if (len == 0 || len > CM_SKU_MAX) {
        return -1;
    }

    for (i = 0; i < len; i++) {
        if ((p[i] >= 'A' && p[i] <= 'Z') || (p[i] >= 'a' && p[i] <= 'z')
            || (p[i] >= '0' && p[i] <= '9'))
        {
            continue;
        }

        if (i > 0 && (p[i] == '.' || p[i] == '_' || p[i] == '-')) {
            continue;
        }

        return -1;
    }

    return 0;
}


int
cm_store_account_valid(const char *bank, size_t blen, const char *number,
    size_t nlen, char last4[5], const char **reason)
{
    size_t  i, digits;
    char    d[CM_ACCOUNT_DIGITS_MAX];

    if (blen != 3 || bank[0] < '0' || bank[0] > '9' || bank[1] < '0'
        || bank[1] > '9' || bank[2] < '0' || bank[2] > '9')
    {
        *reason = "bankCode must be 3 digits";
        return -1;
    }

    *reason = "accountNumber must be 6 to 20 digits, '-' between digits";
    digits = 0;

    for (i = 0; i < nlen; i++) {
        if (number[i] >= '0' && number[i] <= '9') {
            if (digits == CM_ACCOUNT_DIGITS_MAX) {
                return -1;
            }

            d[digits++] = number[i];
            continue;
        }

        if (number[i] != '-' || i == 0 || i + 1 == nlen
            || number[i - 1] == '-')
        {
            return -1;
        }
    }

    if (digits < CM_ACCOUNT_DIGITS_MIN) {
        return -1;
    }

    memcpy(last4, d + digits - 4, 4);
    last4[4] = '\0';
    *reason = NULL;

    return 0;
}
