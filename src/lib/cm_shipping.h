
/*
 * cm_shipping: the body of a seller's shipment,
 * {"carrier": "CJ"|"LOTTE"|"HANJIN", "trackingNumber": "<9 to 14 digits>"}
 * (the CHECKs of shipments, sql/027_fulfilment.sql), both required; an
 * unknown or repeated field is refused.  And the carriers' codes at the
 * tracking service (Sweet Tracker's t_code).
 */


#ifndef _CM_SHIPPING_H_INCLUDED_
#define _CM_SHIPPING_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


#define CM_TRACKING_MIN  9
#define CM_TRACKING_MAX  14


typedef struct {
    const char  *carrier;                       /* "CJ", static */
    char         number[CM_TRACKING_MAX + 1];   /* NUL-terminated */
    size_t       number_len;
} cm_shipment_req_t;


/* 0, or -1 with the reason in err (and *out zeroed) */
int cm_parse_shipment(const unsigned char *buf, size_t len,
    cm_shipment_req_t *out, char *err, size_t errlen);

/* the carrier named name (len bytes): its name (static) or NULL */
const char *cm_carrier_name(const unsigned char *name, size_t len);

/* the tracking service's code of a carrier ("04"), or NULL */
const char *cm_carrier_code(const char *carrier);

/* is s (len bytes) a tracking number: 9 to 14 ASCII digits? */
int cm_tracking_number_ok(const unsigned char *s, size_t len);


#endif /* _CM_SHIPPING_H_INCLUDED_ */
