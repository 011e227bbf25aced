
/*
 * Request headers nginx does not index for us (Idempotency-Key, Origin,
 * the gateways' signature headers): one walk of the list.
 */


#include "ngx_commerce.h"


/*
 * The first header called name (case-insensitive), or NULL; *count, when
 * given, receives how many there are (a header sent twice is often an
 * error for the caller).
 */

ngx_table_elt_t *
ngx_commerce_header_in(ngx_http_request_t *r, const char *name,
    ngx_uint_t *count)
{
    size_t            len;
    ngx_uint_t        i, n;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h, *found;

    len = ngx_strlen(name);
    found = NULL;
    n = 0;

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */ ; i++) {
        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == len
            && ngx_strncasecmp(h[i].key.data, (u_char *) name, len) == 0)
        {
            if (found == NULL) {
                found = &h[i];
            }

            n++;

            if (count == NULL) {
                break;
            }
        }
    }

    if (count != NULL) {
        *count = n;
    }

    return found;
}
