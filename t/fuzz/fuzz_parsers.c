/*
 * libFuzzer target for the pure C parsers: every input goes through
 * cm_parse_charge, cm_parse_order, cm_parse_payment, cm_parse_coupon
 * (and its timestamps), cm_parse_points_grant, cm_parse_shipment, the catalogue's bodies (cm_parse_product in both
 * modes, cm_parse_variant_patch, cm_parse_category, the store account and
 * SKU rules), the cart's and the address book's bodies (cm_parse_cart_item,
 * cm_parse_address in both modes), cm_parse_int64, cm_image_probe (JPEG, PNG and WebP headers),
 * cm_parse_image_order (the reorder body),
 * cm_json_escape and cm_jwt_verify, the account bodies and rules
 * (cm_parse_fields, cm_email_valid, cm_phone_valid, cm_name_valid,
 * cm_role_bit), cm_jwt_kid, the chunked decoder (whole, and fed in two
 * slices that must decode the same) and cm_text (base64 in both
 * alphabets, the UTF-8 decoder and counter, held to this file's own
 * UTF-8 check), and the results are checked against the promises of the
 * headers; a broken promise aborts.
 *
 * The input is also signed as the claims, and as the header, of a token
 * with the fuzz key, so that the claims parser (which runs only after a
 * good signature) is reached, and a sign/verify round trip is checked
 * with claims taken from the input bytes.
 */


#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_parse.h>

#include "cm_json.h"
#include "cm_coupon.h"
#include "cm_catalogue.h"
#include "cm_cart.h"
#include "cm_jwt.h"
#include "cm_account.h"
#include "cm_chunked.h"
#include "cm_text.h"
#include "cm_image.h"
#include "cm_points.h"
#include "cm_shipping.h"
#include "fuzz_key.h"


#define MAX_AMOUNT   1000000

#define check(cond)                                                           \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "check failed: %s at %s:%d\n", #cond, __FILE__,   \
                    __LINE__);                                                \
            abort();                                                          \
        }                                                                     \
    } while (0)


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_charge(const uint8_t *data, size_t size);
static void fuzz_order(const uint8_t *data, size_t size);
static void fuzz_payment(const uint8_t *data, size_t size);
static void fuzz_coupon(const uint8_t *data, size_t size);
static void fuzz_catalogue(const uint8_t *data, size_t size);
static void fuzz_cart(const uint8_t *data, size_t size);
static void fuzz_int64(const uint8_t *data, size_t size);
static void fuzz_escape(const uint8_t *data, size_t size);
static void fuzz_jwt(const uint8_t *data, size_t size);
static void fuzz_jwt_signed(const uint8_t *data, size_t size);
static void fuzz_jwt_roundtrip(const uint8_t *data, size_t size);
static void fuzz_account(const uint8_t *data, size_t size);
static void fuzz_chunked(const uint8_t *data, size_t size);
static void fuzz_text(const uint8_t *data, size_t size);
static void fuzz_image(const uint8_t *data, size_t size);
static void fuzz_points(const uint8_t *data, size_t size);
static void fuzz_shipment(const uint8_t *data, size_t size);
static void fuzz_image_order(const uint8_t *data, size_t size);
static void check_err(const char *err);
static void check_claims(const cm_jwt_claims_t *c);
static void check_card(cm_pay_method_e method, const char *type,
    const char *no);
static int json_valid(const uint8_t *data, size_t size);
static int json_string_decode(const char *s, size_t len, char *out,
    size_t *outlen);
static int yajl_string_cb(void *ctx, const unsigned char *p, size_t len);
static size_t utf8_valid_char(const uint8_t *p, size_t len);
static int utf8_valid(const uint8_t *p, size_t len);


typedef struct {
    char    *out;
    size_t   len;
    int      count;
} string_ctx_t;


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_charge(data, size);
    fuzz_order(data, size);
    fuzz_payment(data, size);
    fuzz_coupon(data, size);
    fuzz_catalogue(data, size);
    fuzz_cart(data, size);
    fuzz_int64(data, size);
    fuzz_escape(data, size);
    fuzz_jwt(data, size);
    fuzz_jwt_signed(data, size);
    fuzz_jwt_roundtrip(data, size);
    fuzz_account(data, size);
    fuzz_chunked(data, size);
    fuzz_text(data, size);
    fuzz_image(data, size);
    fuzz_points(data, size);
    fuzz_shipment(data, size);
    fuzz_image_order(data, size);

    return 0;
}


static void
fuzz_text(const uint8_t *data, size_t size)
{
    int             a, rc;
    char           *enc;
    size_t          i, n, k, m, chars, steps;
    uint32_t        cp;
    unsigned char  *dec;

    enc = malloc(size / 3 * 4 + 4);
    dec = malloc(size + 1);

    if (enc == NULL || dec == NULL) {
        abort();
    }

    for (a = CM_BASE64_STD; a <= CM_BASE64_URL; a++) {

        /* what decodes is canonical: it encodes back to the same text */
        if (cm_base64_decode((cm_base64_e) a, dec, size, data, size, &n)
            == 0)
        {
            check(size % 4 != 1);
            check(n == size / 4 * 3 + (size % 4 ? size % 4 - 1 : 0));
            check(memchr(data, '=', size) == NULL);

            m = cm_base64_encode((cm_base64_e) a, enc, size, dec, n);
            check(m == size && memcmp(enc, data, size) == 0);
        }

        /* any bytes encode, and decode back */
        m = cm_base64_encode((cm_base64_e) a, enc, size / 3 * 4 + 4, data,
                             size);
        check(m == size / 3 * 4 + (size % 3 ? size % 3 + 1 : 0));
        check(cm_base64_decode((cm_base64_e) a, dec, size,
                               (unsigned char *) enc, m, &n) == 0);
        check(n == size && memcmp(dec, data, size) == 0);

        /* one byte short of room is refused */
        if (m > 0) {
            check(cm_base64_encode((cm_base64_e) a, enc, m - 1, data, size)
                  == 0);
        }

        if (size > 0) {
            check(cm_base64_decode((cm_base64_e) a, dec, size - 1,
                                   (unsigned char *) enc, m, &n) == -1);
        }
    }

    /* UTF-8: the decoder agrees with utf8_valid_char() at every byte */
    steps = 0;
    rc = 0;

    for (i = 0; i < size; i += k) {
        k = cm_utf8_decode(data + i, size - i, &cp);
        check(k == utf8_valid_char(data + i, size - i));

        if (k == 0) {
            rc = -1;
            k = 1;
            continue;
        }

        check(cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff));
        steps++;
    }

    check(cm_utf8_decode(data, 0, &cp) == 0);

    /* the text rule: valid UTF-8 of that many characters, nothing less */
    if (cm_utf8_text(data, size, 0, (size_t) -1, 1) == 0) {
        check(utf8_valid(data, size));
        check(memchr(data, 0x7f, size) == NULL);
    }

    if (cm_utf8_text(data, size, 1, 100, 0) == 0) {
        check(size >= 1 && memchr(data, '\n', size) == NULL);
    }

    chars = (size_t) -1;

    if (cm_utf8_count(data, size, &chars) == 0) {
        check(rc == 0 && utf8_valid(data, size) && chars == steps);
    } else {
        check(rc == -1 && !utf8_valid(data, size));
    }

    free(enc);
    free(dec);
}


static void
fuzz_account(const uint8_t *data, size_t size)
{
    char         err[CM_JSON_ERR_LEN], a[64], b[16];
    size_t       i;
    uint32_t     kid;
    const char  *why;
    cm_field_t   f[2];

    memset(f, 0, sizeof(f));
    f[0].name = "email";
    f[0].max = sizeof(a) - 1;
    f[0].required = 1;
    f[0].value = a;
    f[1].name = "role";
    f[1].max = sizeof(b) - 1;
    f[1].value = b;

    err[0] = '\0';

    if (cm_parse_fields(data, size, f, 2, err, sizeof(err)) == 0) {
        for (i = 0; i < 2; i++) {
            if (f[i].seen) {
                check(f[i].len <= f[i].max);
                check(f[i].value[f[i].len] == '\0');
                check(strlen(f[i].value) == f[i].len);
                check(utf8_valid((const uint8_t *) f[i].value, f[i].len));
            }
        }

        check(f[0].seen);

        if (cm_email_valid(a, f[0].len, &why) == 0) {
            check(why == NULL && memchr(a, '@', f[0].len) != NULL);
        } else {
            check(why != NULL);
        }

        (void) cm_phone_valid(a, f[0].len, &why);
        (void) cm_name_valid(a, f[0].len, &why);

        if (f[1].seen && cm_role_bit(b, f[1].len) != 0) {
            check(cm_role_name(cm_role_bit(b, f[1].len)) != NULL);
        }

    } else {
        check_err(err);
    }

    why = NULL;
    if (cm_jwt_kid(data, size, &kid, &why) == 0) {
        check(kid <= 65535);
    } else {
        check(why != NULL);
    }
}


static void
fuzz_chunked(const uint8_t *data, size_t size)
{
    size_t           used1, used2, cut;
    unsigned char    out1[4096], out2[4096];
    cm_chunked_t     c1, c2;
    cm_chunked_rc_e  rc1, rc2;

    cm_chunked_init(&c1, sizeof(out1));
    rc1 = cm_chunked_feed(&c1, data, size, &used1, out1);
    check(c1.total <= sizeof(out1));
    check(used1 <= size);
    check(rc1 != CM_CHUNKED_ERROR || c1.error != NULL);
    check(rc1 != CM_CHUNKED_AGAIN || used1 == size);

    /* the same bytes in two slices decode the same */
    cut = size ? data[0] % (size + 1) : 0;
    cm_chunked_init(&c2, sizeof(out2));
    rc2 = cm_chunked_feed(&c2, data, cut, &used2, out2);

    if (rc2 == CM_CHUNKED_AGAIN) {
        rc2 = cm_chunked_feed(&c2, data + cut, size - cut, &used2, out2);
        used2 += cut;
    }

    check(rc1 == rc2);

    if (rc1 == CM_CHUNKED_DONE) {
        check(c1.total == c2.total && used1 == used2);
        check(memcmp(out1, out2, c1.total) == 0);
    }
}


static void
fuzz_charge(const uint8_t *data, size_t size)
{
    char     err[CM_JSON_ERR_LEN];
    int64_t  amount;

    amount = -1;

    if (cm_parse_charge(data, size, MAX_AMOUNT, &amount, err, sizeof(err))
        == 0)
    {
        check(amount >= 1 && amount <= MAX_AMOUNT);
        check(json_valid(data, size));
        return;
    }

    check_err(err);

    /* a tiny buffer: truncated but terminated */
    check(cm_parse_charge(data, size, MAX_AMOUNT, &amount, err, 4) == -1);
    check(strlen(err) < 4);
}


static void
fuzz_shipment(const uint8_t *data, size_t size)
{
    char               err[CM_JSON_ERR_LEN];
    cm_shipment_req_t  s;

    if (cm_parse_shipment(data, size, &s, err, sizeof(err)) == 0) {
        check(s.carrier != NULL && cm_carrier_code(s.carrier) != NULL);
        check(s.number_len == strlen(s.number)
              && cm_tracking_number_ok((const unsigned char *) s.number,
                                       s.number_len));
        check(json_valid(data, size));
        return;
    }

    check_err(err);
    check(s.carrier == NULL && s.number[0] == '\0');
}


static void
fuzz_points(const uint8_t *data, size_t size)
{
    char               err[CM_JSON_ERR_LEN];
    size_t             chars;
    cm_points_grant_t  g;

    if (cm_parse_points_grant(data, size, &g, err, sizeof(err)) == 0) {
        check(g.amount != 0 && g.amount >= -CM_POINTS_GRANT_MAX
              && g.amount <= CM_POINTS_GRANT_MAX);
        check(g.reason_len == strlen(g.reason));
        check(cm_utf8_count((const unsigned char *) g.reason, g.reason_len,
                            &chars) == 0
              && chars >= 1 && chars <= CM_POINTS_REASON_MAX);
        check(json_valid(data, size));
        return;
    }

    check_err(err);
    check(g.amount == 0 && g.reason[0] == '\0');
}


static void
fuzz_cart(const uint8_t *data, size_t size)
{
    int               create, f;
    char              err[CM_JSON_ERR_LEN];
    int32_t           q;
    cm_address_req_t  a;

    q = 0;
    err[0] = '\0';
    if (cm_parse_cart_item(data, size, &q, err, sizeof(err)) == 0) {
        check(q >= 1 && q <= 999);
    } else {
        check(err[0] != '\0');
    }

    for (create = 0; create < 2; create++) {
        err[0] = '\0';
        if (cm_parse_address(data, size, create, &a, err, sizeof(err)) != 0) {
            check(err[0] != '\0' && a.seen == 0);
            continue;
        }

        check(a.seen != 0 && a.seen < (1u << CM_AF_N));
        check(!create || (a.seen & 0x0f) == 0x0f);

        for (f = 0; f < CM_AF_TEXT_N; f++) {
            check(a.len[f] <= CM_ADDRESS_BYTES);
            check(strlen(a.text[f]) == a.len[f]);
        }

        check(!(a.seen & (1u << CM_AF_ZIP_CODE))
              || a.len[CM_AF_ZIP_CODE] == CM_ZIP_CODE_LEN);
    }
}


static void
fuzz_catalogue(const uint8_t *data, size_t size)
{
    int                m;
    char               err[CM_JSON_ERR_LEN], last4[5];
    size_t             n, chars;
    const char        *why;
    cm_product_req_t   pr;
    cm_category_req_t  c;

    for (m = CM_PRODUCT_CREATE; m <= CM_PRODUCT_PATCH; m++) {
        if (cm_parse_product(data, size, (cm_product_mode_e) m, &pr, err,
                             sizeof(err))
            != 0)
        {
            check_err(err);
            check(pr.seen == 0 && pr.nvariants == 0);
            continue;
        }

        check(json_valid(data, size));
        check(pr.seen != 0);

        if (m == CM_PRODUCT_CREATE) {
            /* the matrix: exactly one variant per combination */
            check(pr.noptions <= CM_OPTIONS_MAX);
            check(pr.nvariants == pr.combinations);
            check(pr.nvariants >= 1 && pr.nvariants <= CM_VARIANTS_MAX);
        }
    }

    if (cm_parse_variant_patch(data, size, err, sizeof(err)) != 0) {
        check_err(err);
    } else {
        check(json_valid(data, size));
    }

    for (m = 0; m <= 1; m++) {
        if (cm_parse_category(data, size, m, &c, err, sizeof(err)) != 0) {
            check_err(err);
            check(c.name[0] == '\0' && c.parent_id == 0);
            continue;
        }

        n = strlen(c.name);
        check(json_valid(data, size) && c.parent_id >= 0);
        check(cm_utf8_count((const unsigned char *) c.name, n, &chars) == 0);
        check(chars >= 1 && chars <= CM_CATEGORY_NAME_MAX);
    }

    if (cm_catalogue_sku(data, size) == 0) {
        check(size >= 1 && size <= CM_SKU_MAX);
    }

    if (size > 3
        && cm_store_account_valid((const char *) data, 3,
                                  (const char *) data + 3, size - 3, last4,
                                  &why)
           == 0)
    {
        check(strlen(last4) == 4 && why == NULL);
        check(memchr(data + 3, last4[3], size - 3) != NULL);
    }
}


static void
fuzz_coupon(const uint8_t *data, size_t size)
{
    char             err[CM_JSON_ERR_LEN];
    size_t           n;
    int64_t          epoch;
    cm_coupon_req_t  c;

    /* the input as a timestamp: a success is one of the accepted shapes */
    if (cm_coupon_parse_ts(data, size, &epoch) == 0) {
        check(size >= 20 && size <= 32);
        check(data[10] == 'T');
        check(epoch >= 946684800 - 15 * 3600);
    }

    if (cm_parse_coupon(data, size, &c, err, sizeof(err)) != 0) {
        check_err(err);
        check(c.name[0] == '\0' && c.value == 0);
        return;
    }

    check(json_valid(data, size));
    n = strlen(c.name);
    check(n >= 1 && n <= CM_COUPON_NAME_MAX * 4);
    check(utf8_valid((const uint8_t *) c.name, n));
    check(c.type == CM_COUPON_FIXED || c.type == CM_COUPON_RATE);
    check(c.value >= 1 && c.value <= CM_COUPON_AMOUNT_MAX);
    check(c.type == CM_COUPON_FIXED || c.value <= 100);
    check(c.max_discount == -1
          || (c.type == CM_COUPON_RATE && c.max_discount >= 1
              && c.max_discount <= CM_COUPON_AMOUNT_MAX));
    check(c.min_order_amount >= 0
          && c.min_order_amount <= CM_COUPON_AMOUNT_MAX);
    check(c.total_quantity >= 1 && c.total_quantity <= CM_COUPON_QUANTITY_MAX);
    check(c.per_user_limit >= 1 && c.per_user_limit <= c.total_quantity);
    check(c.valid_days >= 1 && c.valid_days <= CM_COUPON_DAYS_MAX);
    check(cm_coupon_parse_ts((const uint8_t *) c.starts_at,
                             strlen(c.starts_at), &epoch) == 0);
    check(cm_coupon_parse_ts((const uint8_t *) c.ends_at,
                             strlen(c.ends_at), &epoch) == 0);
}


static void
fuzz_order(const uint8_t *data, size_t size)
{
    char              err[CM_JSON_ERR_LEN];
    size_t            i;
    cm_order_req_t    o;
    cm_address_req_t  a;

    if (cm_parse_order_shipping(data, size, &o, &a, err, sizeof(err)) != 0) {
        check_err(err);
        check(o.nitems == 0 && o.method == CM_PAY_NONE && !o.shipping);
        check(a.seen == 0 && a.len[CM_AF_RECIPIENT] == 0);
        return;
    }

    check(json_valid(data, size));
    /* checkout ("fromCart": true) names no items */
    check(o.from_cart ? o.nitems == 0
                      : (o.nitems >= 1 && o.nitems <= CM_ORDER_ITEMS_MAX));

    /* a list of parts: amounts 1..10^12, the other part's with its method */
    check(o.points >= 0 && o.points <= 1000000000000LL);
    check(o.rest_amount >= 0 && o.rest_amount <= 1000000000000LL);
    check(o.rest_amount == 0 || o.method != CM_PAY_NONE);

    for (i = 0; i < o.nitems; i++) {
        check(o.items[i].product_id >= 1 || o.items[i].variant_id >= 1);
        check(o.items[i].quantity >= 1
              && o.items[i].quantity <= CM_QUANTITY_MAX);
    }

    check_card(o.method, o.card_type, o.card_no);

    /* "shippingAddress": the address book's rules, no isDefault */
    if (o.shipping) {
        for (i = CM_AF_RECIPIENT; i <= CM_AF_ADDRESS1; i++) {
            check(a.seen & (1u << i));
            check(a.len[i] >= 1 && a.len[i] <= CM_ADDRESS_BYTES);
            check(strlen(a.text[i]) == a.len[i]);
            check(utf8_valid((const uint8_t *) a.text[i], a.len[i]));
        }

        check(a.len[CM_AF_ZIP_CODE] == CM_ZIP_CODE_LEN);
        check(!(a.seen & (1u << CM_AF_DEFAULT)));

    } else {
        check(a.seen == 0);
    }
}


static void
fuzz_payment(const uint8_t *data, size_t size)
{
    char              err[CM_JSON_ERR_LEN];
    cm_payment_req_t  p;

    if (cm_parse_payment(data, size, &p, err, sizeof(err)) != 0) {
        check_err(err);
        check(p.method == CM_PAY_NONE && p.points == 0 && p.rest_amount == 0);
        return;
    }

    check(json_valid(data, size));
    /* an object names its method; a list may be POINTS alone */
    check(p.method != CM_PAY_NONE || p.points > 0);
    /* a list of parts: amounts 1..10^12, the other part's with its method */
    check(p.points >= 0 && p.points <= 1000000000000LL);
    check(p.rest_amount >= 0 && p.rest_amount <= 1000000000000LL);
    check(p.rest_amount == 0 || p.method != CM_PAY_NONE);
    check_card(p.method, p.card_type, p.card_no);
}


static void
fuzz_int64(const uint8_t *data, size_t size)
{
    int                 rc;
    char                buf[32];
    size_t              i, start;
    int64_t             v;
    unsigned long long  ref;

    rc = cm_parse_int64(data, size, 0, INT64_MAX, &v);

    /* a reference: digits only, leading zeros dropped, then strtoull */
    for (i = 0; i < size; i++) {
        if (data[i] < '0' || data[i] > '9') {
            check(rc == -1);
            return;
        }
    }

    if (size == 0) {
        check(rc == -1);
        return;
    }

    for (start = 0; start + 1 < size && data[start] == '0'; start++) {
        /* void */
    }

    if (size - start > 19) {
        check(rc == -1);
        return;
    }

    memcpy(buf, data + start, size - start);
    buf[size - start] = '\0';
    ref = strtoull(buf, NULL, 10);

    if (ref > (unsigned long long) INT64_MAX) {
        check(rc == -1);
        return;
    }

    check(rc == 0 && (unsigned long long) v == ref);

    /* the bounds are inclusive */
    check(cm_parse_int64(data, size, v, v, &v) == 0);
    check(v == INT64_MAX || cm_parse_int64(data, size, v + 1, INT64_MAX, &v)
                            == -1);
}


static void
fuzz_escape(const uint8_t *data, size_t size)
{
    char    *out, *part, *dec;
    size_t   n, m, dstlen, declen;

    out = malloc(size * 6 + 1);
    part = malloc(size * 6 + 1);
    dec = malloc(size * 6 + 1);

    if (out == NULL || part == NULL || dec == NULL) {
        abort();
    }

    /* room for the worst case: every byte a \u00XX */
    n = cm_json_escape(out, size * 6, data, size);
    check(n <= size * 6);

    check(json_string_decode(out, n, dec, &declen) == 0);

    if (utf8_valid(data, size)) {
        check(declen == size && memcmp(dec, data, size) == 0);
    }

    /* a shorter buffer: a prefix, cut before a unit of at most 6 bytes */
    dstlen = size > 0 ? (size * 6) * data[0] / 255 : 0;
    m = cm_json_escape(part, dstlen, data, size);
    check(m <= dstlen && m <= n);
    check(memcmp(part, out, m) == 0);
    check(m == n || m + 6 > dstlen);
    check(json_string_decode(part, m, dec, &declen) == 0);

    free(out);
    free(part);
    free(dec);
}


static void
fuzz_jwt(const uint8_t *data, size_t size)
{
    int              rc;
    const char      *reason;
    cm_jwt_claims_t  c;

    reason = "unset";
    rc = cm_jwt_verify(data, size, (const unsigned char *) FUZZ_KEY,
                       FUZZ_KEY_LEN, FUZZ_NOW, FUZZ_LEEWAY, &c, &reason);

    if (rc == 0) {
        check(reason == NULL);
        check_claims(&c);
        return;
    }

    check(rc == -1 && reason != NULL && strlen(reason) > 0);
    check(c.user_id == 0 && c.role[0] == '\0');
}


static void
fuzz_jwt_signed(const uint8_t *data, size_t size)
{
    int              rc;
    char             tok[CM_JWT_LEN_MAX * 2];
    size_t           n;
    const char      *reason;
    cm_jwt_claims_t  c;
    static const char  header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    static const char  claims[] = "{\"sub\":\"1\",\"exp\":2000000000}";

    if (size == 0 || size > CM_JWT_LEN_MAX) {
        return;
    }

    /* the input as the claims */
    n = cm_jwt_encode(tok, sizeof(tok), (const unsigned char *) FUZZ_KEY,
                      FUZZ_KEY_LEN, header, sizeof(header) - 1,
                      (const char *) data, size);
    check(n > 0);

    rc = cm_jwt_verify((unsigned char *) tok, n,
                       (const unsigned char *) FUZZ_KEY, FUZZ_KEY_LEN,
                       FUZZ_NOW, FUZZ_LEEWAY, &c, &reason);

    if (rc == 0) {
        check(n <= CM_JWT_LEN_MAX);
        check(json_valid(data, size));
        check_claims(&c);

    } else {
        check(reason != NULL);

        /* the signature is good: only the claims or the length can fail */
        check(strcmp(reason, "bad signature") != 0);
        check(strcmp(reason, "unsupported alg") != 0);
    }

    /* the input as the header */
    n = cm_jwt_encode(tok, sizeof(tok), (const unsigned char *) FUZZ_KEY,
                      FUZZ_KEY_LEN, (const char *) data, size, claims,
                      sizeof(claims) - 1);
    check(n > 0);

    rc = cm_jwt_verify((unsigned char *) tok, n,
                       (const unsigned char *) FUZZ_KEY, FUZZ_KEY_LEN,
                       FUZZ_NOW, FUZZ_LEEWAY, &c, &reason);

    if (rc == 0) {
        check(json_valid(data, size));
        check(c.user_id == 1 && c.exp == 2000000000);
    }
}


static void
fuzz_jwt_roundtrip(const uint8_t *data, size_t size)
{
    int              rc;
    char             tok[1024];
    size_t           n;
    int64_t          user_id, iat, exp;
    const char      *role, *reason;
    cm_jwt_claims_t  c;
    static const char  *roles[] = { NULL, "USER", "ADMIN", "A", "_" };

    if (size < 25) {
        return;
    }

    memcpy(&user_id, data, 8);
    memcpy(&iat, data + 8, 8);
    memcpy(&exp, data + 16, 8);
    role = roles[data[24] % 5];

    n = cm_jwt_sign(tok, sizeof(tok), (const unsigned char *) FUZZ_KEY,
                    FUZZ_KEY_LEN, user_id, role, iat, exp);

    if (user_id < 1) {
        check(n == 0);
        return;
    }

    check(n > 0 && n == strlen(tok));

    rc = cm_jwt_verify((unsigned char *) tok, n,
                       (const unsigned char *) FUZZ_KEY, FUZZ_KEY_LEN,
                       FUZZ_NOW, FUZZ_LEEWAY, &c, &reason);

    if (exp <= FUZZ_NOW - FUZZ_LEEWAY) {
        check(rc == -1 && strcmp(reason, "expired") == 0);
        return;
    }

    check(rc == 0);
    check(c.user_id == user_id && c.iat == iat && c.exp == exp);
    check(strcmp(c.role, role != NULL ? role : "USER") == 0);
}


/* messages go into JSON unescaped and never quote the input */

static void
check_err(const char *err)
{
    size_t  i;

    check(err[0] != '\0');

    for (i = 0; err[i] != '\0'; i++) {
        check(i < CM_JSON_ERR_LEN);
        check(err[i] >= 0x20 && err[i] <= 0x7e);
        check(err[i] != '"' && err[i] != '\\');
    }
}


static void
check_claims(const cm_jwt_claims_t *c)
{
    size_t  i;

    check(c->user_id >= 1);
    check(c->exp > FUZZ_NOW - FUZZ_LEEWAY);
    check(c->role[0] != '\0');

    for (i = 0; c->role[i] != '\0'; i++) {
        check(i < sizeof(c->role) - 1);
        check((c->role[i] >= 'A' && c->role[i] <= 'Z') || c->role[i] == '_');
    }
}


static void
check_card(cm_pay_method_e method, const char *type, const char *no)
{
    size_t  i;

    if (method != CM_PAY_CARD) {
        check(type[0] == '\0' && no[0] == '\0');
        return;
    }

    check(strcmp(type, "SAMSUNG") == 0 || strcmp(type, "KB") == 0
          || strcmp(type, "HYUNDAI") == 0);
    check(strlen(no) == 19);

    for (i = 0; i < 19; i++) {
        check(i % 5 == 4 ? no[i] == '-' : (no[i] >= '0' && no[i] <= '9'));
    }
}


/* what yajl alone, with no callbacks, thinks of the document */

static int
json_valid(const uint8_t *data, size_t size)
{
    int          rc;
    yajl_handle  h;

    h = yajl_alloc(NULL, NULL, NULL);
    if (h == NULL) {
        abort();
    }

    rc = yajl_parse(h, data, size) == yajl_status_ok
         && yajl_complete_parse(h) == yajl_status_ok;

    yajl_free(h);

    return rc;
}


/*
 * Checks that s is the content of a JSON string as cm_json_escape()
 * promises it (only \", \\ and \u00XX escapes, no raw control bytes,
 * strict UTF-8), then lets yajl decode it.
 */

static int
json_string_decode(const char *s, size_t len, char *out, size_t *outlen)
{
    int                   rc;
    char                 *buf;
    size_t                i, n;
    yajl_handle           h;
    string_ctx_t          ctx;
    const unsigned char  *p;
    static yajl_callbacks  cb;

    p = (const unsigned char *) s;

    for (i = 0; i < len; i += n) {
        n = 1;

        if (p[i] < 0x20 || p[i] == '"') {
            return -1;
        }

        if (p[i] == '\\') {
            if (i + 1 >= len) {
                return -1;
            }

            if (p[i + 1] == '"' || p[i + 1] == '\\') {
                n = 2;

            } else if (p[i + 1] == 'u' && i + 5 < len
                       && p[i + 2] == '0' && p[i + 3] == '0'
                       && (p[i + 4] == '0' || p[i + 4] == '1')
                       && strchr("0123456789abcdef", p[i + 5]) != NULL
                       && p[i + 5] != '\0')
            {
                n = 6;

            } else {
                return -1;
            }

        } else if (p[i] >= 0x80) {
            n = utf8_valid_char(p + i, len - i);
            if (n == 0) {
                return -1;
            }
        }
    }

    buf = malloc(len + 2);
    if (buf == NULL) {
        abort();
    }

    buf[0] = '"';
    memcpy(buf + 1, s, len);
    buf[len + 1] = '"';

    cb.yajl_string = yajl_string_cb;
    ctx.out = out;
    ctx.len = 0;
    ctx.count = 0;

    h = yajl_alloc(&cb, NULL, &ctx);
    if (h == NULL) {
        abort();
    }

    rc = yajl_parse(h, (unsigned char *) buf, len + 2) == yajl_status_ok
         && yajl_complete_parse(h) == yajl_status_ok
         && ctx.count == 1;

    yajl_free(h);
    free(buf);

    *outlen = ctx.len;

    return rc ? 0 : -1;
}


static int
yajl_string_cb(void *ctx, const unsigned char *p, size_t len)
{
    string_ctx_t  *sc;

    sc = ctx;
    memcpy(sc->out, p, len);
    sc->len = len;
    sc->count++;

    return 1;
}


/* an independent strict UTF-8 check: decode, then test the code point */

static size_t
utf8_valid_char(const uint8_t *p, size_t len)
{
    size_t    n, i;
    uint32_t  cp, min;

    if (p[0] < 0x80) {
        return 1;

    } else if ((p[0] & 0xe0) == 0xc0) {
        n = 2;
        cp = p[0] & 0x1f;
        min = 0x80;

    } else if ((p[0] & 0xf0) == 0xe0) {
        n = 3;
        cp = p[0] & 0x0f;
        min = 0x800;

    } else if ((p[0] & 0xf8) == 0xf0) {
        n = 4;
        cp = p[0] & 0x07;
        min = 0x10000;

    } else {
        return 0;
    }

    if (len < n) {
        return 0;
    }

    for (i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return 0;
        }

        cp = cp << 6 | (p[i] & 0x3f);
    }

    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
        return 0;
    }

    return n;
}


static int
utf8_valid(const uint8_t *p, size_t len)
{
    size_t  i, n;

    for (i = 0; i < len; i += n) {
        n = utf8_valid_char(p + i, len - i);
        if (n == 0) {
            return 0;
        }
    }

    return 1;
}


/*
 * cm_image_probe: an accepted image has a known type, its magic bytes and
 * positive dimensions; the answer does not depend on bytes past the end
 * (probed again in a buffer of exactly its size, so ASan sees overreads),
 * and a refusal always says why.
 */

static void
fuzz_image(const uint8_t *data, size_t size)
{
    int               rc, rc2;
    uint8_t          *copy;
    const char       *why;
    cm_image_info_t   info, info2;

    why = NULL;
    rc = cm_image_probe(data, size, &info, &why);

    if (rc != 0) {
        check(rc == -1 && why != NULL && info.type == CM_IMAGE_NONE);
        check(info.width == 0 && info.height == 0);

    } else {
        check(info.width > 0 && info.height > 0);
        check(info.width <= 0x7fffffffu && info.height <= 0x7fffffffu);
        check(cm_image_ext(info.type) != NULL);
        check(cm_image_name(info.type) != NULL);
        check(cm_image_mime(info.type) != NULL);

        switch (info.type) {
        case CM_IMAGE_PNG:
            check(size >= 8 && data[0] == 0x89 && data[1] == 'P');
            break;
        case CM_IMAGE_JPEG:
            check(size >= 3 && data[0] == 0xff && data[1] == 0xd8);
            break;
        case CM_IMAGE_WEBP:
            check(size >= 12 && memcmp(data, "RIFF", 4) == 0
                  && memcmp(data + 8, "WEBP", 4) == 0);
            break;
        default:
            check(0);
        }
    }

    copy = malloc(size ? size : 1);
    if (copy == NULL) {
        abort();
    }

    memcpy(copy, data, size);
    rc2 = cm_image_probe(copy, size, &info2, &why);
    check(rc2 == rc && info2.type == info.type && info2.width == info.width
          && info2.height == info.height);

    free(copy);
}


/*
 * cm_parse_image_order: an accepted body is valid JSON holding 1 to 10
 * distinct positive ids; a refusal says why in a printable message.
 */

static void
fuzz_image_order(const uint8_t *data, size_t size)
{
    int      rc;
    char     err[CM_JSON_ERR_LEN];
    size_t   i, j, n;
    int64_t  ids[CM_IMAGE_MAX_PER_PRODUCT];

    err[0] = '\0';
    rc = cm_parse_image_order(data, size, ids, &n, err, sizeof(err));

    if (rc != 0) {
        check(rc == -1 && n == 0);
        check_err(err);
        return;
    }

    check(json_valid(data, size));
    check(n >= 1 && n <= CM_IMAGE_MAX_PER_PRODUCT);

    for (i = 0; i < n; i++) {
        check(ids[i] >= 1);

        for (j = 0; j < i; j++) {
            check(ids[i] != ids[j]);
        }
    }
}
