
/*
 * cm_points: the body of an ADMIN's points grant,
 * {"amount": N, "reason": "..."}: amount a non-zero JSON integer of
 * -CM_POINTS_GRANT_MAX .. CM_POINTS_GRANT_MAX (negative: taken back),
 * reason 1..200 characters (cm_utf8_text), both required; an unknown or
 * repeated field is refused.
 */


#ifndef _CM_POINTS_H_INCLUDED_
#define _CM_POINTS_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


#define CM_POINTS_GRANT_MAX     100000000
#define CM_POINTS_REASON_MAX    200                  /* characters */
#define CM_POINTS_REASON_BYTES  (CM_POINTS_REASON_MAX * 4)


typedef struct {
    int64_t  amount;
    char     reason[CM_POINTS_REASON_BYTES + 1];     /* NUL-terminated */
    size_t   reason_len;
} cm_points_grant_t;


/* 0, or -1 with the reason in err (and *out zeroed) */
int cm_parse_points_grant(const unsigned char *buf, size_t len,
    cm_points_grant_t *out, char *err, size_t errlen);


#endif /* _CM_POINTS_H_INCLUDED_ */
