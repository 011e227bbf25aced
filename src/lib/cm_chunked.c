/*
 * cm_chunked: incremental decoding of the HTTP/1.1 chunked transfer
 * coding (see cm_chunked.h).  No nginx headers: unit-tested as plain C.
 */


#include <string.h>

#include "cm_chunked.h"


enum {
    cm_ck_size_start = 0,    /* the first hex digit of a chunk-size */
    cm_ck_size,              /* more hex digits */
    cm_ck_size_ws,           /* BWS after the digits, before ';' or CR */
    cm_ck_ext,               /* a chunk-ext, skipped up to CR */
    cm_ck_size_lf,           /* the LF ending a chunk header */
    cm_ck_data,              /* chunk-data */
    cm_ck_data_cr,           /* the CRLF after chunk-data */
    cm_ck_data_lf,
    cm_ck_trailer_start,     /* a trailer field line, or the final CRLF */
    cm_ck_trailer,           /* a trailer field line, skipped up to CR */
    cm_ck_trailer_lf,
    cm_ck_final_lf,          /* the LF of the final CRLF */
    cm_ck_done,
    cm_ck_error
};


static cm_chunked_rc_e cm_chunked_fail(cm_chunked_t *ck, const char *error);
static int cm_chunked_hex(unsigned char c);


void
cm_chunked_init(cm_chunked_t *ck, size_t max)
{
    memset(ck, 0, sizeof(cm_chunked_t));

    ck->max = max;
    ck->state = cm_ck_size_start;
}


cm_chunked_rc_e
cm_chunked_feed(cm_chunked_t *ck, const unsigned char *in, size_t len,
    size_t *used, unsigned char *out)
{
    int            d;
    size_t         i, n;
    unsigned char  c;

    *used = 0;

    if (ck->state == cm_ck_error) {
        return CM_CHUNKED_ERROR;
    }

    if (ck->state == cm_ck_done) {
        if (len == 0) {
            return CM_CHUNKED_DONE;
        }

        return cm_chunked_fail(ck, "data after the end of the chunked body");
    }

    i = 0;

    while (i < len) {
        c = in[i];

        switch (ck->state) {

        case cm_ck_size_start:
            if (cm_chunked_hex(c) < 0) {
                return cm_chunked_fail(ck, "invalid chunk size");
            }

            ck->size = 0;
            ck->skipped = 0;
            ck->state = cm_ck_size;

            /* fall through */

        case cm_ck_size:
            d = cm_chunked_hex(c);

            if (d < 0) {
                /* looked at again as the end of the digits */
                ck->state = cm_ck_size_ws;
                break;
            }

            if (ck->size > (UINT64_MAX >> 4)) {
                return cm_chunked_fail(ck, "chunk size overflows");
            }

            ck->size = ck->size * 16 + (uint64_t) d;

            if (++ck->skipped > CM_CHUNKED_EXT_MAX) {
                return cm_chunked_fail(ck, "chunk header too long");
            }

            /* refused at once: no need to wait for the data */
            if (ck->size > (uint64_t) (ck->max - ck->total)) {
                return cm_chunked_fail(ck, "chunked body larger than the "
                                           "maximum");
            }

            i++;
            break;

        case cm_ck_size_ws:
        case cm_ck_ext:
            if (c == '\r') {
                ck->state = cm_ck_size_lf;
                i++;
                break;
            }

            if (c == '\n') {
                return cm_chunked_fail(ck, "chunk header not ended by CRLF");
            }

            if (ck->state == cm_ck_size_ws) {
                if (c == ';') {
                    ck->state = cm_ck_ext;

                } else if (c != ' ' && c != '\t') {
                    return cm_chunked_fail(ck, "invalid chunk size");
                }
            }

            /* the extension itself is ignored */

            if (++ck->skipped > CM_CHUNKED_EXT_MAX) {
                return cm_chunked_fail(ck, "chunk header too long");
            }

            i++;
            break;

        case cm_ck_size_lf:
            if (c != '\n') {
                return cm_chunked_fail(ck, "chunk header not ended by CRLF");
            }

            ck->skipped = 0;
            ck->state = (ck->size == 0) ? cm_ck_trailer_start : cm_ck_data;
            i++;
            break;

        case cm_ck_data:
            n = len - i;

            if ((uint64_t) n > ck->size) {
                n = (size_t) ck->size;
            }

            /* memmove: the caller may decode in place */
            memmove(out + ck->total, in + i, n);

            ck->total += n;
            ck->size -= n;
            i += n;

            if (ck->size == 0) {
                ck->state = cm_ck_data_cr;
            }

            break;

        case cm_ck_data_cr:
        case cm_ck_data_lf:
            if (c != (ck->state == cm_ck_data_cr ? '\r' : '\n')) {
                return cm_chunked_fail(ck, "chunk data not followed by "
                                           "CRLF");
            }

            ck->state = (ck->state == cm_ck_data_cr) ? cm_ck_data_lf
                                                     : cm_ck_size_start;
            i++;
            break;

        case cm_ck_trailer_start:
            if (c == '\r') {
                ck->state = cm_ck_final_lf;
                i++;
                break;
            }

            /* a trailer field line: skipped, whatever it says */
            ck->state = cm_ck_trailer;

            /* fall through */

        case cm_ck_trailer:
            if (c == '\r') {
                ck->state = cm_ck_trailer_lf;
                i++;
                break;
            }

            if (c == '\n') {
                return cm_chunked_fail(ck, "trailer field not ended by "
                                           "CRLF");
            }

            if (++ck->skipped > CM_CHUNKED_TRAILER_MAX) {
                return cm_chunked_fail(ck, "trailer section too long");
            }

            i++;
            break;

        case cm_ck_trailer_lf:
            if (c != '\n') {
                return cm_chunked_fail(ck, "trailer field not ended by "
                                           "CRLF");
            }

            ck->state = cm_ck_trailer_start;
            i++;
            break;

        case cm_ck_final_lf:
            if (c != '\n') {
                return cm_chunked_fail(ck, "chunked body not ended by CRLF");
            }

            ck->state = cm_ck_done;
            *used = i + 1;
            return CM_CHUNKED_DONE;

        default:
            return cm_chunked_fail(ck, "decoder state corrupted");
        }
    }

    *used = len;

    return CM_CHUNKED_AGAIN;
}


static cm_chunked_rc_e
cm_chunked_fail(cm_chunked_t *ck, const char *error)
{
    ck->state = cm_ck_error;
    ck->error = error;

    return CM_CHUNKED_ERROR;
}


static int
cm_chunked_hex(unsigned char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    c |= 0x20;

    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }

    return -1;
}
