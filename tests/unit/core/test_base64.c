/*
 * test_base64.c: RFC 4648 vectors both ways, and memcached 1.6's lenient
 * decoding (each case checked against memcached 1.6.18's "mg <key> b k").
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base64.h"

static void test_base64_rfc4648_vectors(void **state)
{
    (void)state;
    static const struct {
        const char *plain, *encoded;
    } v[] = {
        {"f", "Zg=="},         {"fo", "Zm8="},         {"foo", "Zm9v"},
        {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        char out[16];
        size_t n = base64_encode(v[i].plain, strlen(v[i].plain), out);
        assert_int_equal(n, strlen(v[i].encoded));
        assert_int_equal(n, BASE64_ENCODED_LEN(strlen(v[i].plain)));
        assert_memory_equal(out, v[i].encoded, n);
        unsigned char dec[16];
        n = base64_decode(v[i].encoded, strlen(v[i].encoded), dec);
        assert_int_equal(n, strlen(v[i].plain));
        assert_memory_equal(dec, v[i].plain, n);
    }
    char none[1];
    assert_int_equal(base64_encode("", 0, none), 0);
}

static void test_base64_binary_roundtrip(void **state)
{
    (void)state;
    unsigned char all[256], back[BASE64_DECODED_MAX(BASE64_ENCODED_LEN(256))];
    char enc[BASE64_ENCODED_LEN(256)];
    for (int i = 0; i < 256; i++)
        all[i] = (unsigned char)i;
    for (size_t len = 1; len <= 256; len++) {
        size_t n = base64_encode(all, len, enc);
        assert_int_equal(n, BASE64_ENCODED_LEN(len));
        assert_int_equal(base64_decode(enc, n, back), len);
        assert_memory_equal(back, all, len);
    }
}

/* memcached's decoder, byte for byte (replies of memcached 1.6.18). */
static void test_base64_decode_as_memcached(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        const char *out; /* NULL: refused */
        size_t len;
    } v[] = {
        {"Zm9v-YmFy", "foobar", 6},    /* bytes outside the alphabet are skipped */
        {"Zm9v YmFy", "foobar", 6},
        {"Zm9v\x80YmFy", "foobar", 6},
        {"Zm9vYg==junk", "foob", 4},   /* the padded group ends the decode */
        {"Zm9vYg=x", "foob\0", 5},     /* one '=' anywhere in a group drops one byte */
        {"Zm9v=mFy", "foo\x02\x61", 5},
        {"Zm=vYmFy", "f\x60", 2},      /* ...and stops there */
        {"AA==", "\0", 1},
        {"Zm9", NULL, 0},              /* not a multiple of four */
        {"Zm9vY", NULL, 0},
        {"", NULL, 0},
        {"!!!", NULL, 0},              /* nothing of the alphabet */
        {"A===", NULL, 0},             /* three '=' */
        {"====", NULL, 0},
    };
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        unsigned char out[16];
        size_t n = base64_decode(v[i].in, strlen(v[i].in), out);
        if (v[i].out == NULL) {
            assert_int_equal(n, 0);
            continue;
        }
        assert_int_equal(n, v[i].len);
        assert_memory_equal(out, v[i].out, n);
        assert_true(n <= BASE64_DECODED_MAX(strlen(v[i].in)));
    }
}

/* The encoder re-encodes what the lenient decoder accepted in canonical
 * form, as memcached's k flag does ("Zm9vYg=x" comes back "Zm9vYgA="). */
static void test_base64_reencode_is_canonical(void **state)
{
    (void)state;
    unsigned char dec[8];
    char enc[16];
    size_t n = base64_decode("Zm9vYg=x", 8, dec);
    n = base64_encode(dec, n, enc);
    assert_int_equal(n, 8);
    assert_memory_equal(enc, "Zm9vYgA=", 8);
    n = base64_decode("Zm=vYmFy", 8, dec);
    n = base64_encode(dec, n, enc);
    assert_memory_equal(enc, "ZmA=", n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base64_rfc4648_vectors),
        cmocka_unit_test(test_base64_binary_roundtrip),
        cmocka_unit_test(test_base64_decode_as_memcached),
        cmocka_unit_test(test_base64_reencode_is_canonical),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
