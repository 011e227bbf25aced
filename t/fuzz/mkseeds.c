/*
 * Writes the signed tokens of the fuzz seed corpus: tokens made with the
 * fuzz key (fuzz_key.h), valid at FUZZ_NOW or broken in one known way, so
 * the fuzzer starts from inputs that reach past the signature check.
 *
 *   mkseeds t/fuzz/corpus
 */


#include <stdio.h>
#include <string.h>

#include "cm_jwt.h"
#include "fuzz_key.h"


static int write_seed(const char *dir, const char *name, const char *data,
    size_t len);


int
main(int argc, char **argv)
{
    char    tok[CM_JWT_LEN_MAX + 1];
    size_t  n;

    if (argc != 2) {
        fprintf(stderr, "usage: %s corpus-dir\n", argv[0]);
        return 2;
    }

    /* valid until 2100 */
    n = cm_jwt_sign(tok, sizeof(tok), (const unsigned char *) FUZZ_KEY,
                    FUZZ_KEY_LEN, 42, NULL, FUZZ_NOW, 4102444800);
    if (n == 0 || write_seed(argv[1], "jwt-valid", tok, n) != 0) {
        return 1;
    }

    n = cm_jwt_sign(tok, sizeof(tok), (const unsigned char *) FUZZ_KEY,
                    FUZZ_KEY_LEN, 7, "ADMIN", 0, 4102444800);
    if (n == 0 || write_seed(argv[1], "jwt-admin", tok, n) != 0) {
        return 1;
    }

    n = cm_jwt_sign(tok, sizeof(tok), (const unsigned char *) FUZZ_KEY,
                    FUZZ_KEY_LEN, 1, "USER", FUZZ_NOW - 7200, FUZZ_NOW - 3600);
    if (n == 0 || write_seed(argv[1], "jwt-expired", tok, n) != 0) {
        return 1;
    }

    n = cm_jwt_encode(tok, sizeof(tok), (const unsigned char *) FUZZ_KEY,
                      FUZZ_KEY_LEN, "{\"alg\":\"none\"}", 14,
                      "{\"sub\":1,\"exp\":4102444800,\"nbf\":1}", 34);
    if (n == 0 || write_seed(argv[1], "jwt-alg-none", tok, n) != 0) {
        return 1;
    }

    return 0;
}


static int
write_seed(const char *dir, const char *name, const char *data, size_t len)
{
    FILE  *f;
    char   path[1024];

    snprintf(path, sizeof(path), "%s/%s", dir, name);

    f = fopen(path, "wb");
    if (f == NULL) {
        perror(path);
        return -1;
    }

    if (fwrite(data, 1, len, f) != len || fclose(f) != 0) {
        perror(path);
        return -1;
    }

    return 0;
}
