
/*
 * cm_account: see cm_account.h.  The fields go through the same bounded
 * event walker as every other body (cm_json.c).
 */


#include "cm_account.h"
#include "cm_json.h"
#include "cm_text.h"

#include <string.h>


typedef struct {
    cm_field_t   *fields;
    size_t        n;
    cm_field_t   *current;
} cm_fields_parse_t;


static int cm_fields_event(cm_json_walk_t *w, cm_json_event_e ev,
    const unsigned char *p, size_t len);


int
cm_parse_fields(const unsigned char *buf, size_t len, cm_field_t *fields,
    size_t n, char *err, size_t errlen)
{
    size_t             i;
    cm_json_walk_t     w;
    cm_fields_parse_t  fp;

    for (i = 0; i < n; i++) {
        fields[i].seen = 0;
        fields[i].len = 0;
        if (fields[i].value != NULL) {
            fields[i].value[0] = '\0';
        }
    }

    memset(&fp, 0, sizeof(cm_fields_parse_t));
    fp.fields = fields;
    fp.n = n;

    memset(&w, 0, sizeof(cm_json_walk_t));
    w.handler = cm_fields_event;
    w.data = &fp;
    w.err = err;
    w.errlen = errlen;

    if (cm_json_walk(&w, buf, len) != 0) {
        return -1;
    }

    for (i = 0; i < n; i++) {
        if (fields[i].required && !fields[i].seen) {
            cm_json_fail(&w, "%s is required", fields[i].name);
            return -1;
        }
    }

    return 0;
}


static int
cm_fields_event(cm_json_walk_t *w, cm_json_event_e ev, const unsigned char *p,
    size_t len)
{
    size_t              i;
    cm_field_t         *f;
    cm_fields_parse_t  *fp;

    fp = w->data;

    if (w->depth == 1) {
        switch (ev) {

        case CM_JSON_MAP_START:
        case CM_JSON_MAP_END:
            return CM_JSON_OK;

        case CM_JSON_KEY:
            for (i = 0; i < fp->n; i++) {
                f = &fp->fields[i];

                if (strlen(f->name) == len && memcmp(f->name, p, len) == 0) {
                    if (f->seen) {
                        return cm_json_fail(w, "duplicate field %s", f->name);
                    }

                    f->seen = 1;
                    fp->current = f;
                    return CM_JSON_OK;
                }
            }

            /* unknown fields are ignored */
            return CM_JSON_SKIP;

        default:
            break;
        }
    }

    f = fp->current;

    if (f == NULL) {
        return cm_json_fail(w, "malformed request");
    }

    if (ev != CM_JSON_STRING) {
        return cm_json_fail(w, "%s must be a string", f->name);
    }

    if (len > f->max) {
        return cm_json_fail(w, "%s is longer than %u bytes", f->name,
                            (unsigned) f->max);
    }

    if (memchr(p, '\0', len) != NULL) {
        return cm_json_fail(w, "%s must not contain NUL", f->name);
    }

    memcpy(f->value, p, len);
    f->value[len] = '\0';
    f->len = len;
    fp->current = NULL;

    return CM_JSON_OK;
}


int
cm_email_valid(const char *p, size_t len, const char **reason)
{
    size_t  i, at, dot;

    *reason = "email must be an address like name@example.com";

    if (len < 3 || len > CM_EMAIL_MAX) {
        return -1;
    }

    at = len;
    dot = 0;

    for (i = 0; i < len; i++) {
        if (p[i] <= ' ' || p[i] >= 0x7f) {
            return -1;
        }

        if (p[i] == '@') {
            if (at != len) {
                return -1;
            }

            at = i;

        } else if (p[i] == '.' && at != len) {
            dot = i;
        }
    }

    /* "a@b.c": something before '@', a '.' inside the domain, not last */
    if (at == 0 || at == len || dot <= at + 1 || dot == len - 1) {
        return -1;
    }

    *reason = NULL;

    return 0;
}


int
cm_phone_valid(const char *p, size_t len, const char **reason)
{
    size_t  i, digits;

    *reason = "phone must be 7 to 20 digits, '-' or a leading '+'";

    if (len == 0 || len > CM_PHONE_MAX) {
        return -1;
    }

    digits = 0;

    for (i = 0; i < len; i++) {
        if (p[i] >= '0' && p[i] <= '9') {
            digits++;

        } else if (!(p[i] == '-' || (p[i] == '+' && i == 0))) {
            return -1;
        }
    }

    if (digits < 7) {
        return -1;
    }

    *reason = NULL;

    return 0;
}


int
cm_name_valid(const char *p, size_t len, const char **reason)
{
    size_t  i, n;

    *reason = "name must be 1 to 100 characters without control characters";

    /*
     * The module's names passed the JSON walker, which refuses invalid
     * UTF-8; anything else is refused here too, not counted.
     */
    if (cm_utf8_count((const unsigned char *) p, len, &n) != 0
        || n == 0 || n > CM_NAME_MAX)
    {
        return -1;
    }

    for (i = 0; i < len; i++) {
        if ((unsigned char) p[i] < ' ' || p[i] == 0x7f) {
            return -1;
        }
    }

    *reason = NULL;

    return 0;
}


static const struct {
    const char  *name;
    unsigned     bit;
} cm_roles[] = {
    { "CONSUMER", CM_ROLE_CONSUMER },
    { "SELLER",   CM_ROLE_SELLER },
    { "MANAGER",  CM_ROLE_MANAGER },
    { "ADMIN",    CM_ROLE_ADMIN },
    { "USER",     CM_ROLE_CONSUMER },
    { NULL, 0 }
};


unsigned
cm_role_bit(const char *p, size_t len)
{
    size_t  i;

    for (i = 0; cm_roles[i].name != NULL; i++) {
        if (strlen(cm_roles[i].name) == len
            && memcmp(cm_roles[i].name, p, len) == 0)
        {
            return cm_roles[i].bit;
        }
    }

    return 0;
}


const char *
cm_role_name(unsigned bit)
{
    size_t  i;

    for (i = 0; cm_roles[i].name != NULL; i++) {
        if (cm_roles[i].bit == bit) {
            return cm_roles[i].name;
        }
    }

    return NULL;
}
