
/*
 * cm_account: the request bodies and rules of accounts, without nginx:
 * string fields of a flat JSON object, email/phone/name rules, roles.
 */


#ifndef _CM_ACCOUNT_H_INCLUDED_
#define _CM_ACCOUNT_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


#define CM_FIELDS_MAX     8

#define CM_EMAIL_MAX      254
#define CM_NAME_MAX       100       /* characters (code points) */
#define CM_PHONE_MAX      20


/* roles, as bits of a route's allowed set */
#define CM_ROLE_CONSUMER  0x01
#define CM_ROLE_SELLER    0x02
#define CM_ROLE_MANAGER   0x04
#define CM_ROLE_ADMIN     0x08
#define CM_ROLE_ALL       0x0f


typedef struct {
    const char      *name;       /* the key */
    size_t           max;        /* bytes of the value, at most */
    unsigned         required:1;

    /* out: the decoded value (valid UTF-8, NUL-terminated) when seen */
    char            *value;      /* a buffer of max + 1 bytes */
    size_t           len;
    unsigned         seen:1;
} cm_field_t;


/*
 * A flat JSON object of string fields: each of fields[0..n) must be a
 * string of at most max bytes when present (a required one must be
 * present); unknown keys are skipped, a duplicate key or another type is
 * an error.  0, or -1 with the reason in err ("email must be a string",
 * "password is required", "name is longer than 100 bytes").
 */
int cm_parse_fields(const unsigned char *buf, size_t len, cm_field_t *fields,
    size_t n, char *err, size_t errlen);

/*
 * 0 when acceptable, else -1 with *reason a static string:
 *   email: 3..254 bytes, printable ASCII without spaces, exactly one '@'
 *          with something on both sides and a '.' after it;
 *   phone: an optional '+', then 7..20 digits and '-', at least 7 digits;
 *   name:  1..100 characters of valid UTF-8, no control characters.
 */
int cm_email_valid(const char *p, size_t len, const char **reason);
int cm_phone_valid(const char *p, size_t len, const char **reason);
int cm_name_valid(const char *p, size_t len, const char **reason);

/*
 * The role bit of a role name; "USER" (the claim of tokens from before
 * roles) is CONSUMER.  0 for anything else.
 */
unsigned cm_role_bit(const char *p, size_t len);

/* the canonical name of a role bit, or NULL */
const char *cm_role_name(unsigned bit);


#endif /* _CM_ACCOUNT_H_INCLUDED_ */
