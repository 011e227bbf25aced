/*
 * cm_catalogue: validation of the catalogue's request bodies, without
 * nginx: a seller's product (create, patch), a variant's patch, a
 * category, and the settlement account of a store.  Read with cm_json's
 * event walker; unknown and repeated fields are refused.  Lengths of
 * text are counted in characters (code points: cm_utf8_text of cm_text),
 * never in bytes: a Hangul syllable is one character.
 *
 * The bodies are checked here, then sent to Postgres as they are (jsonb),
 * whose functions check them again and apply them (sql/functions/
 * 15_catalogue.sql).  A product's options and variants are checked as a
 * matrix: one variant per combination of option values, each naming one
 * known value of every option, in the options' order, none twice.
 *
 * Error messages follow cm_json.h: short printable ASCII, never quoting
 * the input, fit for a 400 INVALID_REQUEST.
 */


#ifndef _CM_CATALOGUE_H_INCLUDED_
#define _CM_CATALOGUE_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


#define CM_PRODUCT_NAME_MAX      100          /* characters */
#define CM_PRODUCT_DESC_MAX      5000         /* characters */
#define CM_PRODUCT_PRICE_MAX     1000000000000LL
#define CM_OPTIONS_MAX           3
#define CM_OPTION_VALUES_MAX     20
#define CM_OPTION_TEXT_MAX       50           /* characters, names and values */
#define CM_VARIANTS_MAX          8000         /* 20 x 20 x 20 */
#define CM_STOCK_MAX             1000000000
#define CM_SKU_MAX               64
#define CM_REASON_MAX            200          /* characters */
#define CM_CATEGORY_NAME_MAX     50           /* characters */

#define CM_STORE_NAME_MAX        100          /* characters */
#define CM_ACCOUNT_DIGITS_MIN    6
#define CM_ACCOUNT_DIGITS_MAX    20


typedef enum {
    CM_PRODUCT_CREATE = 0,
    CM_PRODUCT_PATCH
} cm_product_mode_e;


/* what a product body held (the values themselves go to SQL as jsonb) */
typedef struct {
    unsigned   seen;          /* bits of the fields present */
    size_t     noptions;
    size_t     nvariants;
    size_t     combinations;  /* the product of the options' value counts */
} cm_product_req_t;


typedef struct {
    char       name[CM_CATEGORY_NAME_MAX * 4 + 1];    /* UTF-8, NUL */
    int64_t    parent_id;                             /* 0: none */
} cm_category_req_t;


/*
 * A product body.  CREATE: "name" (required), "description", "categoryId"
 * (or null), "price" (required), "options" (0..3 of {"name","values"}),
 * "variants" (required: one per combination, each {"sku","optionValues",
 * "stock","priceDelta"}; a product without options has one, without
 * optionValues or with []), "storeId".  PATCH: any of "name",
 * "description", "categoryId", "price", "status" (ON_SALE | STOPPED),
 * "version"; at least one but "version".  0, or -1 with the reason in err.
 */
int cm_parse_product(const unsigned char *buf, size_t len,
    cm_product_mode_e mode, cm_product_req_t *out, char *err, size_t errlen);

/*
 * A variant's patch: any of "stock" (set, 0..10^9) or "stockDelta"
 * (+N / -N, nonzero), "sku" (or null), "priceDelta", "status" (ON_SALE |
 * STOPPED), "reason" (the ledger's note, up to 200 characters); at least
 * one of them but "reason".
 */
int cm_parse_variant_patch(const unsigned char *buf, size_t len, char *err,
    size_t errlen);

/* a category: "name" (required, 1..50 characters), "parentId" if create */
int cm_parse_category(const unsigned char *buf, size_t len, int create,
    cm_category_req_t *out, char *err, size_t errlen);

/* [A-Za-z0-9][A-Za-z0-9._-]{0,63}: 0 or -1 */
int cm_catalogue_sku(const unsigned char *p, size_t len);

/*
 * A store's settlement account: bank code of 3 digits; account number of
 * 6..20 digits, '-' allowed between them (the last 4 digits are written
 * to last4 with a NUL).  0, or -1 with *reason a static string.
 */
int cm_store_account_valid(const char *bank, size_t blen, const char *number,
    size_t nlen, char last4[5], const char **reason);


#endif /* _CM_CATALOGUE_H_INCLUDED_ */
