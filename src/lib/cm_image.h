/*
 * cm_image: what an uploaded image is, from its bytes alone (never from
 * the client's Content-Type or file name): JPEG, PNG or WebP by magic
 * bytes, and its dimensions from the header that holds them (PNG IHDR,
 * JPEG SOFn, WebP VP8/VP8L/VP8X).  Nothing is decoded beyond the headers.
 *
 * No nginx headers, no static state: reentrant, unit-tested and fuzzed.
 */


#ifndef _CM_IMAGE_H_INCLUDED_
#define _CM_IMAGE_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


typedef enum {
    CM_IMAGE_NONE = 0,
    CM_IMAGE_JPEG,
    CM_IMAGE_PNG,
    CM_IMAGE_WEBP
} cm_image_type_e;


typedef struct {
    cm_image_type_e  type;
    uint32_t         width;     /* 1 .. 2^31 - 1 */
    uint32_t         height;
} cm_image_info_t;


/*
 * Probes p[0 .. len): 0 with *info set, or -1 with *why (a static
 * sentence for the client) when the bytes are not a JPEG, PNG or WebP
 * image with positive dimensions: unknown magic, a header cut short, a
 * PNG whose IHDR is not first, is malformed or fails its CRC, or whose
 * chunks do not reach IEND, a JPEG without a frame header before its
 * scan, a WebP whose RIFF size exceeds the bytes.
 */
int cm_image_probe(const unsigned char *p, size_t len, cm_image_info_t *info,
    const char **why);

/* "jpg", "png", "webp"; NULL for CM_IMAGE_NONE */
const char *cm_image_ext(cm_image_type_e type);

/* "JPEG", "PNG", "WEBP": the type's name in documents and rows */
const char *cm_image_name(cm_image_type_e type);

/* "image/jpeg", "image/png", "image/webp" */
const char *cm_image_mime(cm_image_type_e type);


/*
 * Is name a file of images, "<sha256, 64 lowercase hex>.<jpg|png|webp>"
 * (NUL-terminated)?  1 or 0: what the module writes, and so the only names
 * it removes or links.
 */
int cm_image_file_name(const char *name);


/* a product shows at most this many images */
#define CM_IMAGE_MAX_PER_PRODUCT  10


/*
 * The body of a reorder, {"ids":[<image id>, ..]}: 1 to
 * CM_IMAGE_MAX_PER_PRODUCT positive integers, no other key, no id twice;
 * 0 with ids[0 .. *n) in order, or -1 with err set.  Which ids the product
 * has is the database's to say.
 */
int cm_parse_image_order(const unsigned char *buf, size_t len, int64_t *ids,
    size_t *n, char *err, size_t errlen);


#endif /* _CM_IMAGE_H_INCLUDED_ */
