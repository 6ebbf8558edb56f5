/* fuzz_base64.c - libFuzzer target for the strict base64 codec
 * (src/util/base64.c), which decodes every Basic, NTLM and Negotiate token.
 *
 * Differential against nettle's decoder and encoder (a second, independent
 * implementation): what ours accepts nettle decodes to the same bytes, and
 * both encode any bytes to the same text. Invariants: strict means one
 * spelling, so encoding what ours decoded gives the input back; a too-small
 * output buffer is refused before a byte is written (the buffer is an
 * exact-size heap block: ASan sees any overrun); every byte string
 * round-trips.
 * Build: cmake -DAG_FUZZ=ON with CC=clang; run: fuzz_base64 corpus/base64.
 */
#include <nettle/base64.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "authgate/err.h"
#include "util/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void CHECK(bool ok)
{
    if (!ok)
        abort();
}

/* nettle's decoding of in, or -1 when it refuses. */
static long nettle_decode(const char *in, size_t n, uint8_t *out, size_t cap)
{
    struct base64_decode_ctx ctx;
    size_t got = cap;
    base64_decode_init(&ctx);
    if (!base64_decode_update(&ctx, &got, out, n, in) || !base64_decode_final(&ctx))
        return -1;
    return (long)got;
}

static void decode_side(const char *in, size_t n)
{
    size_t cap = n / 4 * 3 + 3, len = 0;
    uint8_t *out = malloc(cap), *ref = malloc(cap);
    CHECK(out && ref);
    int rc = ag_b64_decode(in, n, out, cap, &len);
    CHECK(rc == 0 || rc == AG_EINVAL);
    if (rc == 0) {
        CHECK(len <= n / 4 * 3);
        CHECK(nettle_decode(in, n, ref, cap) == (long)len && memcmp(out, ref, len) == 0);
        char *back = malloc(ag_b64_encoded_len(len) + 1);
        CHECK(back != NULL);
        ag_b64_encode(out, len, back);
        CHECK(strlen(back) == n && memcmp(back, in, n) == 0);
        free(back);
        /* One byte short of room: refused up front, nothing written past. */
        if (len > 0) {
            uint8_t *tight = malloc(len - 1 ? len - 1 : 1);
            CHECK(tight != NULL);
            size_t l2 = 0;
            CHECK(ag_b64_decode(in, n, tight, len - 1, &l2) == AG_ELIMIT);
            free(tight);
        }
    }
    free(out);
    free(ref);
}

static void encode_side(const uint8_t *in, size_t n)
{
    size_t el = ag_b64_encoded_len(n);
    CHECK(el == BASE64_ENCODE_RAW_LENGTH(n));
    char *enc = malloc(el + 1), *ref = malloc(el + 1);
    uint8_t *dec = malloc(n ? n : 1);
    CHECK(enc && ref && dec);
    ag_b64_encode(in, n, enc);
    CHECK(strlen(enc) == el);
    base64_encode_raw(ref, n, in);
    CHECK(memcmp(enc, ref, el) == 0);
    size_t dl = 0;
    CHECK(ag_b64_decode(enc, el, dec, n, &dl) == 0 && dl == n &&
          (n == 0 || memcmp(dec, in, n) == 0));
    free(enc);
    free(ref);
    free(dec);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in = malloc(size ? size : 1);
    CHECK(in != NULL);
    memcpy(in, data, size);
    decode_side(in, size);
    encode_side(data, size);
    free(in);
    return 0;
}
