/*
 * cm_chunked: an incremental decoder of the HTTP/1.1 chunked transfer
 * coding (RFC 9112, section 7.1), without nginx.
 *
 *   chunked-body = *chunk last-chunk trailer-section CRLF
 *   chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
 *   last-chunk   = 1*("0") [ chunk-ext ] CRLF
 *
 * The body comes in slices of any size, as recv() returns them: a chunk
 * header, a CRLF or the final empty line may be split anywhere.  Every
 * byte given is consumed (the decoder keeps what it needs of a partial
 * line in its state), except those after the end of the body.  Chunk
 * extensions and trailer fields are skipped; line ends must be CRLF.
 *
 * The decoded data goes to a caller buffer of max bytes, at out + total:
 * a body that would grow beyond max is refused as soon as a chunk-size
 * says so.  The output may overlap the input as long as it lies before it
 * (out + total <= in), so a caller can decode in place: decoding never
 * writes more than it has read.
 *
 * cm_chunked_t is fixed-size with no pointers into the input: a caller may
 * move its buffers between calls.
 */


#ifndef _CM_CHUNKED_H_INCLUDED_
#define _CM_CHUNKED_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


/* bounds of what is skipped, so that a peer cannot feed us forever */
#define CM_CHUNKED_EXT_MAX       4096   /* one chunk-ext */
#define CM_CHUNKED_TRAILER_MAX   8192   /* the whole trailer section */


typedef enum {
    CM_CHUNKED_DONE = 0,     /* the whole body: total bytes at out */
    CM_CHUNKED_AGAIN,        /* every byte used; more needed */
    CM_CHUNKED_ERROR         /* ck->error says why; stays in error */
} cm_chunked_rc_e;


typedef struct {
    uint64_t      size;      /* chunk-size being read, then bytes left */
    size_t        total;     /* decoded bytes written at out */
    size_t        max;       /* most decoded bytes accepted */
    size_t        skipped;   /* bytes of the chunk-ext / trailer so far */
    unsigned      state;
    const char   *error;     /* a static string, NULL unless an error */
} cm_chunked_t;


/* a new body, of max decoded bytes at most */
void cm_chunked_init(cm_chunked_t *ck, size_t max);

/*
 * Decodes in[0 .. len), writes the chunk data at out + ck->total (out has
 * room for ck->max bytes) and sets *used to the bytes of in consumed:
 * len on AGAIN; on DONE, the bytes from in + *used on follow the body
 * (they are not part of it).  Called again after DONE, it answers DONE
 * with nothing used for len 0, and ERROR ("data after the end of the
 * chunked body") otherwise.  After an ERROR, every call answers ERROR.
 */
cm_chunked_rc_e cm_chunked_feed(cm_chunked_t *ck, const unsigned char *in,
    size_t len, size_t *used, unsigned char *out);


#endif /* _CM_CHUNKED_H_INCLUDED_ */
