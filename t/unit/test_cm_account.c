
/*
 * Unit tests of cm_account.c: string fields, email/phone/name rules, roles.
 */


#include "cm_account.h"
#include "tap.h"

#include <string.h>


static int parse(const char *json, char *err, size_t errlen);
static void test_fields(void);
static void test_rules(void);
static void test_roles(void);


static char        email[CM_EMAIL_MAX + 1], password[257], name[401];
static cm_field_t  fields[] = {
    { "email", CM_EMAIL_MAX, 1, email, 0, 0 },
    { "password", 256, 1, password, 0, 0 },
    { "name", 400, 0, name, 0, 0 },
};


int
main(void)
{
    test_fields();
    test_rules();
    test_roles();

    return tap_done();
}


static int
parse(const char *json, char *err, size_t errlen)
{
    return cm_parse_fields((const unsigned char *) json, strlen(json), fields,
                           3, err, errlen);
}


static void
test_fields(void)
{
    char  err[128], big[400];

    ok(parse("{\"email\":\"a@b.co\",\"password\":\"p\\u00e9ss\","
             "\"extra\":{\"x\":[1,2]}}", err, sizeof(err)) == 0,
       "required fields, an unknown field skipped");
    is_str(email, "a@b.co", "email value");
    is_str(password, "p\xc3\xa9ss", "escapes decoded to UTF-8");
    ok(fields[2].seen == 0 && name[0] == '\0', "optional name absent");

    ok(parse("{\"email\":\"a@b.co\"}", err, sizeof(err)) == -1, "missing");
    is_str(err, "password is required", "missing: message");

    ok(parse("{\"email\":1,\"password\":\"x\"}", err, sizeof(err)) == -1,
       "a number for a string");
    is_str(err, "email must be a string", "wrong type: message");

    ok(parse("{\"email\":null,\"password\":\"x\"}", err, sizeof(err)) == -1,
       "null for a string");
    ok(parse("{\"email\":[\"a\"],\"password\":\"x\"}", err, sizeof(err))
       == -1, "an array for a string");
    is_str(err, "email must be a string", "array: message");

    ok(parse("{\"email\":\"a\",\"email\":\"b\",\"password\":\"x\"}", err,
             sizeof(err)) == -1, "duplicate key");
    is_str(err, "duplicate field email", "duplicate: message");

    memset(big, 'x', 300);
    big[300] = '\0';
    {
        char  json[512];

        strcpy(json, "{\"email\":\"a@b.co\",\"password\":\"");
        strcat(json, big);
        strcat(json, "\"}");
        ok(parse(json, err, sizeof(err)) == -1, "too long");
        is_str(err, "password is longer than 256 bytes", "too long: message");
    }

    ok(parse("{\"email\":\"a\\u0000b\",\"password\":\"x\"}", err,
             sizeof(err)) == -1, "an embedded NUL");
    ok(parse("{\"email\":\"a@b.co\",\"password\":", err, sizeof(err)) == -1,
       "truncated JSON");
    ok(parse("[]", err, sizeof(err)) == -1, "not an object");
    ok(parse("", err, sizeof(err)) == -1, "empty body");
}


static void
test_rules(void)
{
    const char  *why;

    ok(cm_email_valid("kim@example.com", 15, &why) == 0 && why == NULL,
       "email ok");
    ok(cm_email_valid("a@b.c", 5, &why) == 0, "shortest email");
    ok(cm_email_valid("ab", 2, &why) == -1, "too short");
    ok(cm_email_valid("no-at.example.com", 17, &why) == -1, "no @");
    ok(cm_email_valid("a@@b.com", 8, &why) == -1, "two @");
    ok(cm_email_valid("@b.com", 6, &why) == -1, "nothing before @");
    ok(cm_email_valid("a@com", 5, &why) == -1, "no dot in the domain");
    ok(cm_email_valid("a@b.com.", 8, &why) == -1, "dot last");
    ok(cm_email_valid("a b@c.com", 9, &why) == -1, "a space");
    ok(cm_email_valid("a@b.com'--", 10, &why) == 0,
       "quote characters are data, not syntax");
    ok(cm_email_valid("\xea\xb9\x80@b.com", 9, &why) == -1, "non-ASCII");

    ok(cm_phone_valid("010-1234-5678", 13, &why) == 0, "phone ok");
    ok(cm_phone_valid("+821012345678", 13, &why) == 0, "phone with +");
    ok(cm_phone_valid("123456", 6, &why) == -1, "6 digits");
    ok(cm_phone_valid("1234567+", 8, &why) == -1, "+ not first");
    ok(cm_phone_valid("012345678901234567890", 21, &why) == -1, "21 bytes");
    ok(cm_phone_valid("010 1234 5678", 13, &why) == -1, "spaces");

    ok(cm_name_valid("Kim", 3, &why) == 0, "name ok");
    ok(cm_name_valid("\xea\xb9\x80\xec\xb2\xa0\xec\x88\x98", 9, &why) == 0,
       "Hangul name");
    ok(cm_name_valid("", 0, &why) == -1, "empty name");
    ok(cm_name_valid("a\nb", 3, &why) == -1, "control character");
}


static void
test_roles(void)
{
    is_int(cm_role_bit("CONSUMER", 8), CM_ROLE_CONSUMER, "CONSUMER");
    is_int(cm_role_bit("SELLER", 6), CM_ROLE_SELLER, "SELLER");
    is_int(cm_role_bit("MANAGER", 7), CM_ROLE_MANAGER, "MANAGER");
    is_int(cm_role_bit("ADMIN", 5), CM_ROLE_ADMIN, "ADMIN");
    is_int(cm_role_bit("USER", 4), CM_ROLE_CONSUMER, "legacy USER");
    is_int(cm_role_bit("admin", 5), 0, "case matters");
    is_int(cm_role_bit("ADMINX", 6), 0, "no prefix match");
    is_int(cm_role_bit("", 0), 0, "empty");
    is_str(cm_role_name(CM_ROLE_ADMIN), "ADMIN", "name of ADMIN");
    ok(cm_role_name(0x10) == NULL, "no name for an unknown bit");
}
