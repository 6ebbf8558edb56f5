/* test_ntlm.c - NTLM crypto primitives and the NTLMSSP codec.
 *
 * Fixtures: MS-NLMP 4.2.2/4.2.3/4.2.4 messages and values, the gss-ntlmssp
 * Windows 7 CBT capture, RFC 1320 MD4 and RFC 2202 HMAC-MD5 vectors, curl's
 * 32-byte NEGOTIATE (all copied from /work/shared/vectors/ms-nlmp-4.2.md;
 * nothing is read at test time). Malformed AUTHENTICATE messages are
 * mutations of the 4.2.4 one or built by a test-only encoder, run through
 * the same check pipeline the handshake uses (table-driven, BAD-INPUTS.md
 * rows 46-65 at the codec level).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <nettle/md4.h>

#include "auth/ntcrypto.h"
#include "auth/ntlm.h"
#include "auth/ntlm_wire.h"
#include "auth/userfile.h"
#include "authgate/err.h"
#include "util/cursor.h"

/* --- vectors (ms-nlmp-4.2.md) -------------------------------------------- */

/* v1_chal: 68 bytes */
static const uint8_t v1_chal[] = {
    0x4e, 0x54, 0x4c, 0x4d, 0x53, 0x53, 0x50, 0x00, 0x02, 0x00, 0x00, 0x00, 0x0c, 0x00,
    0x0c, 0x00, 0x38, 0x00, 0x00, 0x00, 0x33, 0x82, 0x02, 0xe2, 0x01, 0x23, 0x45, 0x67,
    0x89, 0xab, 0xcd, 0xef, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x06, 0x00, 0x70, 0x17, 0x00, 0x00, 0x00, 0x0f,
    0x53, 0x00, 0x65, 0x00, 0x72, 0x00, 0x76, 0x00, 0x65, 0x00, 0x72, 0x00,
};

/* v1_auth: 172 bytes */
static const uint8_t v1_auth[] = {
    0x4e, 0x54, 0x4c, 0x4d, 0x53, 0x53, 0x50, 0x00, 0x03, 0x00, 0x00, 0x00, 0x18, 0x00, 0x18, 0x00,
    0x6c, 0x00, 0x00, 0x00, 0x18, 0x00, 0x18, 0x00, 0x84, 0x00, 0x00, 0x00, 0x0c, 0x00, 0x0c, 0x00,
    0x48, 0x00, 0x00, 0x00, 0x08, 0x00, 0x08, 0x00, 0x54, 0x00, 0x00, 0x00, 0x10, 0x00, 0x10, 0x00,
    0x5c, 0x00, 0x00, 0x00, 0x10, 0x00, 0x10, 0x00, 0x9c, 0x00, 0x00, 0x00, 0x35, 0x82, 0x80, 0xe2,
    0x05, 0x01, 0x28, 0x0a, 0x00, 0x00, 0x00, 0x0f, 0x44, 0x00, 0x6f, 0x00, 0x6d, 0x00, 0x61, 0x00,
    0x69, 0x00, 0x6e, 0x00, 0x55, 0x00, 0x73, 0x00, 0x65, 0x00, 0x72, 0x00, 0x43, 0x00, 0x4f, 0x00,
    0x4d, 0x00, 0x50, 0x00, 0x55, 0x00, 0x54, 0x00, 0x45, 0x00, 0x52, 0x00, 0x98, 0xde, 0xf7, 0xb8,
    0x7f, 0x88, 0xaa, 0x5d, 0xaf, 0xe2, 0xdf, 0x77, 0x96, 0x88, 0xa1, 0x72, 0xde, 0xf1, 0x1c, 0x7d,
    0x5c, 0xcd, 0xef, 0x13, 0x67, 0xc4, 0x30, 0x11, 0xf3, 0x02, 0x98, 0xa2, 0xad, 0x35, 0xec, 0xe6,
    0x4f, 0x16, 0x33, 0x1c, 0x44, 0xbd, 0xbe, 0xd9, 0x27, 0x84, 0x1f, 0x94, 0x51, 0x88, 0x22, 0xb1,
    0xb3, 0xf3, 0x50, 0xc8, 0x95, 0x86, 0x82, 0xec, 0xbb, 0x3e, 0x3c, 0xb7,
};

/* ess_chal: 68 bytes */
static const uint8_t ess_chal[] = {
    0x4e, 0x54, 0x4c, 0x4d, 0x53, 0x53, 0x50, 0x00, 0x02, 0x00, 0x00, 0x00, 0x0c, 0x00,
    0x0c, 0x00, 0x38, 0x00, 0x00, 0x00, 0x33, 0x82, 0x0a, 0x82, 0x01, 0x23, 0x45, 0x67,
    0x89, 0xab, 0xcd, 0xef, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x06, 0x00, 0x70, 0x17, 0x00, 0x00, 0x00, 0x0f,
    0x53, 0x00, 0x65, 0x00, 0x72, 0x00, 0x76, 0x00, 0x65, 0x00, 0x72, 0x00,
};

/* ess_auth: 156 bytes */
static const uint8_t ess_auth[] = {
    0x4e, 0x54, 0x4c, 0x4d, 0x53, 0x53, 0x50, 0x00, 0x03, 0x00, 0x00, 0x00, 0x18, 0x00, 0x18, 0x00,
    0x6c, 0x00, 0x00, 0x00, 0x18, 0x00, 0x18, 0x00, 0x84, 0x00, 0x00, 0x00, 0x0c, 0x00, 0x0c, 0x00,
    0x48, 0x00, 0x00, 0x00, 0x08, 0x00, 0x08, 0x00, 0x54, 0x00, 0x00, 0x00, 0x10, 0x00, 0x10, 0x00,
    0x5c, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x9c, 0x00, 0x00, 0x00, 0x35, 0x82, 0x08, 0x82,
    0x05, 0x01, 0x28, 0x0a, 0x00, 0x00, 0x00, 0x0f, 0x44, 0x00, 0x6f, 0x00, 0x6d, 0x00, 0x61, 0x00,
    0x69, 0x00, 0x6e, 0x00, 0x55, 0x00, 0x73, 0x00, 0x65, 0x00, 0x72, 0x00, 0x43, 0x00, 0x4f, 0x00,
    0x4d, 0x00, 0x50, 0x00, 0x55, 0x00, 0x54, 0x00, 0x45, 0x00, 0x52, 0x00, 0xaa, 0xaa, 0xaa, 0xaa,
    0xaa, 0xaa, 0xaa, 0xaa, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x75, 0x37, 0xf8, 0x03, 0xae, 0x36, 0x71, 0x28, 0xca, 0x45, 0x82, 0x04,
    0xbd, 0xe7, 0xca, 0xf8, 0x1e, 0x97, 0xed, 0x26, 0x83, 0x26, 0x72, 0x32,
};

/* v2_ti: 36 bytes */
static const uint8_t v2_ti[] = {
    0x02, 0x00, 0x0c, 0x00, 0x44, 0x00, 0x6f, 0x00, 0x6d, 0x00, 0x61, 0x00,
    0x69, 0x00, 0x6e, 0x00, 0x01, 0x00, 0x0c, 0x00, 0x53, 0x00, 0x65, 0x00,
    0x72, 0x00, 0x76, 0x00, 0x65, 0x00, 0x72, 0x00, 0x00, 0x00, 0x00, 0x00,
};

/* v2_chal: 104 bytes */
static const uint8_t v2_chal[] = {
    0x4e, 0x54, 0x4c, 0x4d, 0x53, 0x53, 0x50, 0x00, 0x02, 0x00, 0x00, 0x00, 0x0c, 0x00, 0x0c,
    0x00, 0x38, 0x00, 0x00, 0x00, 0x33, 0x82, 0x8a, 0xe2, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab,
    0xcd, 0xef, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x24, 0x00, 0x24, 0x00, 0x44,
    0x00, 0x00, 0x00, 0x06, 0x00, 0x70, 0x17, 0x00, 0x00, 0x00, 0x0f, 0x53, 0x00, 0x65, 0x00,
    0x72, 0x00, 0x76, 0x00, 0x65, 0x00, 0x72, 0x00, 0x02, 0x00, 0x0c, 0x00, 0x44, 0x00, 0x6f,
    0x00, 0x6d, 0x00, 0x61, 0x00, 0x69, 0x00, 0x6e, 0x00, 0x01, 0x00, 0x0c, 0x00, 0x53, 0x00,
    0x65, 0x00, 0x72, 0x00, 0x76, 0x00, 0x65, 0x00, 0x72, 0x00, 0x00, 0x00, 0x00, 0x00,
};

/* v2_auth: 232 bytes */
static const uint8_t v2_auth[] = {
    0x4e, 0x54, 0x4c, 0x4d, 0x53, 0x53, 0x50, 0x00, 0x03, 0x00, 0x00, 0x00, 0x18, 0x00, 0x18, 0x00,
    0x6c, 0x00, 0x00, 0x00, 0x54, 0x00, 0x54, 0x00, 0x84, 0x00, 0x00, 0x00, 0x0c, 0x00, 0x0c, 0x00,
    0x48, 0x00, 0x00, 0x00, 0x08, 0x00, 0x08, 0x00, 0x54, 0x00, 0x00, 0x00, 0x10, 0x00, 0x10, 0x00,
    0x5c, 0x00, 0x00, 0x00, 0x10, 0x00, 0x10, 0x00, 0xd8, 0x00, 0x00, 0x00, 0x35, 0x82, 0x88, 0xe2,
    0x05, 0x01, 0x28, 0x0a, 0x00, 0x00, 0x00, 0x0f, 0x44, 0x00, 0x6f, 0x00, 0x6d, 0x00, 0x61, 0x00,
    0x69, 0x00, 0x6e, 0x00, 0x55, 0x00, 0x73, 0x00, 0x65, 0x00, 0x72, 0x00, 0x43, 0x00, 0x4f, 0x00,
    0x4d, 0x00, 0x50, 0x00, 0x55, 0x00, 0x54, 0x00, 0x45, 0x00, 0x52, 0x00, 0x86, 0xc3, 0x50, 0x97,
    0xac, 0x9c, 0xec, 0x10, 0x25, 0x54, 0x76, 0x4a, 0x57, 0xcc, 0xcc, 0x19, 0xaa, 0xaa, 0xaa, 0xaa,
    0xaa, 0xaa, 0xaa, 0xaa, 0x68, 0xcd, 0x0a, 0xb8, 0x51, 0xe5, 0x1c, 0x96, 0xaa, 0xbc, 0x92, 0x7b,
    0xeb, 0xef, 0x6a, 0x1c, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0x00, 0x00, 0x00, 0x00,
    0x02, 0x00, 0x0c, 0x00, 0x44, 0x00, 0x6f, 0x00, 0x6d, 0x00, 0x61, 0x00, 0x69, 0x00, 0x6e, 0x00,
    0x01, 0x00, 0x0c, 0x00, 0x53, 0x00, 0x65, 0x00, 0x72, 0x00, 0x76, 0x00, 0x65, 0x00, 0x72, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xc5, 0xda, 0xd2, 0x54, 0x4f, 0xc9, 0x79, 0x90,
    0x94, 0xce, 0x1c, 0xe9, 0x0b, 0xc9, 0xd0, 0x3e,
};

/* cbt_chal: 254 bytes */
static const uint8_t cbt_chal[] = {
    0x4e, 0x54, 0x4c, 0x4d, 0x53, 0x53, 0x50, 0x00, 0x02, 0x00, 0x00, 0x00, 0x10, 0x00, 0x10, 0x00,
    0x38, 0x00, 0x00, 0x00, 0x05, 0x82, 0x89, 0xa2, 0xa2, 0xc5, 0xe8, 0xca, 0x30, 0x84, 0xaa, 0x72,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xb6, 0x00, 0xb6, 0x00, 0x48, 0x00, 0x00, 0x00,
    0x06, 0x01, 0xb0, 0x1d, 0x00, 0x00, 0x00, 0x0f, 0x57, 0x00, 0x53, 0x00, 0x32, 0x00, 0x30, 0x00,
    0x30, 0x00, 0x38, 0x00, 0x52, 0x00, 0x32, 0x00, 0x02, 0x00, 0x10, 0x00, 0x57, 0x00, 0x53, 0x00,
    0x32, 0x00, 0x30, 0x00, 0x30, 0x00, 0x38, 0x00, 0x52, 0x00, 0x32, 0x00, 0x01, 0x00, 0x16, 0x00,
    0x44, 0x00, 0x43, 0x00, 0x2d, 0x00, 0x57, 0x00, 0x53, 0x00, 0x32, 0x00, 0x30, 0x00, 0x30, 0x00,
    0x38, 0x00, 0x52, 0x00, 0x32, 0x00, 0x04, 0x00, 0x1c, 0x00, 0x77, 0x00, 0x73, 0x00, 0x32, 0x00,
    0x30, 0x00, 0x30, 0x00, 0x38, 0x00, 0x72, 0x00, 0x32, 0x00, 0x2e, 0x00, 0x6c, 0x00, 0x6f, 0x00,
    0x63, 0x00, 0x61, 0x00, 0x6c, 0x00, 0x03, 0x00, 0x34, 0x00, 0x44, 0x00, 0x43, 0x00, 0x2d, 0x00,
    0x77, 0x00, 0x73, 0x00, 0x32, 0x00, 0x30, 0x00, 0x30, 0x00, 0x38, 0x00, 0x72, 0x00, 0x32, 0x00,
    0x2e, 0x00, 0x77, 0x00, 0x73, 0x00, 0x32, 0x00, 0x30, 0x00, 0x30, 0x00, 0x38, 0x00, 0x72, 0x00,
    0x32, 0x00, 0x2e, 0x00, 0x6c, 0x00, 0x6f, 0x00, 0x63, 0x00, 0x61, 0x00, 0x6c, 0x00, 0x05, 0x00,
    0x1c, 0x00, 0x77, 0x00, 0x73, 0x00, 0x32, 0x00, 0x30, 0x00, 0x30, 0x00, 0x38, 0x00, 0x72, 0x00,
    0x32, 0x00, 0x2e, 0x00, 0x6c, 0x00, 0x6f, 0x00, 0x63, 0x00, 0x61, 0x00, 0x6c, 0x00, 0x07, 0x00,
    0x08, 0x00, 0x7b, 0xe7, 0x3f, 0xc3, 0x0b, 0xde, 0xcd, 0x01, 0x00, 0x00, 0x00, 0x00,
};

/* cbt_auth: 552 bytes */
static const uint8_t cbt_auth[] = {
    0x4e, 0x54, 0x4c, 0x4d, 0x53, 0x53, 0x50, 0x00, 0x03, 0x00, 0x00, 0x00, 0x18, 0x00, 0x18, 0x00,
    0x94, 0x00, 0x00, 0x00, 0x7c, 0x01, 0x7c, 0x01, 0xac, 0x00, 0x00, 0x00, 0x10, 0x00, 0x10, 0x00,
    0x58, 0x00, 0x00, 0x00, 0x1a, 0x00, 0x1a, 0x00, 0x68, 0x00, 0x00, 0x00, 0x12, 0x00, 0x12, 0x00,
    0x82, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x28, 0x02, 0x00, 0x00, 0x05, 0x82, 0x88, 0xa2,
    0x06, 0x01, 0xb0, 0x1d, 0x00, 0x00, 0x00, 0x0f, 0xf0, 0x54, 0xa5, 0x42, 0xb0, 0x90, 0xb6, 0x6c,
    0x1f, 0xea, 0x1a, 0x2c, 0xc8, 0x2e, 0x93, 0x0b, 0x57, 0x00, 0x53, 0x00, 0x32, 0x00, 0x30, 0x00,
    0x30, 0x00, 0x38, 0x00, 0x52, 0x00, 0x32, 0x00, 0x41, 0x00, 0x64, 0x00, 0x6d, 0x00, 0x69, 0x00,
    0x6e, 0x00, 0x69, 0x00, 0x73, 0x00, 0x74, 0x00, 0x72, 0x00, 0x61, 0x00, 0x74, 0x00, 0x6f, 0x00,
    0x72, 0x00, 0x57, 0x00, 0x49, 0x00, 0x4e, 0x00, 0x37, 0x00, 0x2d, 0x00, 0x32, 0x00, 0x2d, 0x00,
    0x50, 0x00, 0x43, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x5a, 0x6a, 0x21, 0xae,
    0x1a, 0x44, 0xc0, 0x44, 0x69, 0x3e, 0xee, 0x59, 0xfc, 0x5d, 0x81, 0xe0, 0x01, 0x01, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x7b, 0xe7, 0x3f, 0xc3, 0x0b, 0xde, 0xcd, 0x01, 0x27, 0xfc, 0x11, 0x80,
    0x82, 0xc2, 0xfb, 0xdd, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x10, 0x00, 0x57, 0x00, 0x53, 0x00,
    0x32, 0x00, 0x30, 0x00, 0x30, 0x00, 0x38, 0x00, 0x52, 0x00, 0x32, 0x00, 0x01, 0x00, 0x16, 0x00,
    0x44, 0x00, 0x43, 0x00, 0x2d, 0x00, 0x57, 0x00, 0x53, 0x00, 0x32, 0x00, 0x30, 0x00, 0x30, 0x00,
    0x38, 0x00, 0x52, 0x00, 0x32, 0x00, 0x04, 0x00, 0x1c, 0x00, 0x77, 0x00, 0x73, 0x00, 0x32, 0x00,
    0x30, 0x00, 0x30, 0x00, 0x38, 0x00, 0x72, 0x00, 0x32, 0x00, 0x2e, 0x00, 0x6c, 0x00, 0x6f, 0x00,
    0x63, 0x00, 0x61, 0x00, 0x6c, 0x00, 0x03, 0x00, 0x34, 0x00, 0x44, 0x00, 0x43, 0x00, 0x2d, 0x00,
    0x77, 0x00, 0x73, 0x00, 0x32, 0x00, 0x30, 0x00, 0x30, 0x00, 0x38, 0x00, 0x72, 0x00, 0x32, 0x00,
    0x2e, 0x00, 0x77, 0x00, 0x73, 0x00, 0x32, 0x00, 0x30, 0x00, 0x30, 0x00, 0x38, 0x00, 0x72, 0x00,
    0x32, 0x00, 0x2e, 0x00, 0x6c, 0x00, 0x6f, 0x00, 0x63, 0x00, 0x61, 0x00, 0x6c, 0x00, 0x05, 0x00,
    0x1c, 0x00, 0x77, 0x00, 0x73, 0x00, 0x32, 0x00, 0x30, 0x00, 0x30, 0x00, 0x38, 0x00, 0x72, 0x00,
    0x32, 0x00, 0x2e, 0x00, 0x6c, 0x00, 0x6f, 0x00, 0x63, 0x00, 0x61, 0x00, 0x6c, 0x00, 0x07, 0x00,
    0x08, 0x00, 0x7b, 0xe7, 0x3f, 0xc3, 0x0b, 0xde, 0xcd, 0x01, 0x06, 0x00, 0x04, 0x00, 0x02, 0x00,
    0x00, 0x00, 0x08, 0x00, 0x30, 0x00, 0x30, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00,
    0x00, 0x00, 0x00, 0x20, 0x00, 0x00, 0x4d, 0x6b, 0x0d, 0x27, 0x54, 0x10, 0x22, 0xf5, 0xff, 0xa6,
    0x73, 0xda, 0x2b, 0xfc, 0xfd, 0xf1, 0x94, 0x2f, 0x25, 0x7b, 0xe1, 0x1a, 0x49, 0xc9, 0x54, 0x19,
    0x7a, 0xca, 0x8a, 0xaf, 0x2e, 0xaf, 0x0a, 0x00, 0x10, 0x00, 0x65, 0x86, 0xe9, 0x9d, 0x81, 0xc2,
    0xfc, 0x98, 0x4e, 0x47, 0x17, 0x2f, 0xd4, 0xdd, 0x03, 0x10, 0x09, 0x00, 0x3e, 0x00, 0x48, 0x00,
    0x54, 0x00, 0x54, 0x00, 0x50, 0x00, 0x2f, 0x00, 0x64, 0x00, 0x63, 0x00, 0x2d, 0x00, 0x77, 0x00,
    0x73, 0x00, 0x32, 0x00, 0x30, 0x00, 0x30, 0x00, 0x38, 0x00, 0x72, 0x00, 0x32, 0x00, 0x2e, 0x00,
    0x77, 0x00, 0x73, 0x00, 0x32, 0x00, 0x30, 0x00, 0x30, 0x00, 0x38, 0x00, 0x72, 0x00, 0x32, 0x00,
    0x2e, 0x00, 0x6c, 0x00, 0x6f, 0x00, 0x63, 0x00, 0x61, 0x00, 0x6c, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
};

/* curl's NEGOTIATE (test162/test1097): 32 bytes, no Version, flags 0x00088206. */
static const uint8_t curl_neg[] = {
    0x4e, 0x54, 0x4c, 0x4d, 0x53, 0x53, 0x50, 0x00, 0x01, 0x00, 0x00, 0x00, 0x06, 0x82, 0x08, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
};

/* A Windows-style 40-byte NEGOTIATE with Version (10.0.17763 rev 15). */
static const uint8_t win_neg[] = {
    0x4e, 0x54, 0x4c, 0x4d, 0x53, 0x53, 0x50, 0x00, 0x01, 0x00, 0x00, 0x00, 0x97, 0x82,
    0x08, 0xe2, 0x00, 0x00, 0x00, 0x00, 0x28, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x28, 0x00, 0x00, 0x00, 0x0a, 0x00, 0x63, 0x45, 0x00, 0x00, 0x00, 0x0f,
};

static const uint8_t server_chal[8] = {0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef};
static const uint8_t user16_v[] = {'U', 0, 's', 0, 'e', 0, 'r', 0};
static const uint8_t dom16_v[] = {'D', 0, 'o', 0, 'm', 0, 'a', 0, 'i', 0, 'n', 0};
static const uint8_t wks16_v[] = {'C', 0, 'O', 0, 'M', 0, 'P', 0, 'U', 0, 'T', 0, 'E', 0, 'R', 0};

static void unhex(const char *s, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        assert_int_equal(sscanf(s + 2 * i, "%2x", &v), 1);
        out[i] = (uint8_t)v;
    }
}

static void assert_hex(const uint8_t *got, const char *hex)
{
    uint8_t want[64];
    size_t n = strlen(hex) / 2;
    assert_true(n <= sizeof want);
    unhex(hex, want, n);
    assert_memory_equal(got, want, n);
}

static void nt_hash_password(uint8_t h[16])
{
    assert_int_equal(ag_nt_hash("Password", 8, h), 0);
}

/* --- primitives ---------------------------------------------------------- */

static void test_md4_rfc1320(void **state)
{
    static const struct {
        const char *in;
        const char *md4;
    } v[] = {
        {"", "31d6cfe0d16ae931b73c59d7e0c089c0"},
        {"a", "bde52cb31de33e46245e05fbdbd6fb24"},
        {"abc", "a448017aaf21d8525fc10ae87aa6729d"},
        {"message digest", "d9130a8164549fe818874806e1c7014b"},
        {"abcdefghijklmnopqrstuvwxyz", "d79e1c308aa5bbcdeea8ed63df412da9"},
        {"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
         "043f8582f241db351ce627e153e7f0e4"},
        {"12345678901234567890123456789012345678901234567890123456789012345678901234567890",
         "e33b4ddc9c38f2199c3e7b164fcc0536"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        struct md4_ctx c;
        uint8_t d[16];
        md4_init(&c);
        md4_update(&c, strlen(v[i].in), (const uint8_t *)v[i].in);
        md4_digest(&c, 16, d);
        assert_hex(d, v[i].md4);
    }
}

static void test_nt_hash(void **state)
{
    uint8_t h[16], before[16];
    char big[AG_PASSWORD_MAX + 1];
    (void)state;
    assert_int_equal(ag_nt_hash("Password", 8, h), 0);
    assert_hex(h, "a4f49c406510bdcab6824ee7c30fd852");
    assert_int_equal(ag_nt_hash("P@ssw0rd", 8, h), 0);
    assert_hex(h, "e19ccf75ee54e06b06a5907af13cef42");
    /* Empty password = MD4("") */
    assert_int_equal(ag_nt_hash("", 0, h), 0);
    assert_hex(h, "31d6cfe0d16ae931b73c59d7e0c089c0");
    /* Bad UTF-8 and over-long passwords fail and leave out untouched. */
    memset(h, 0x5a, 16);
    memcpy(before, h, 16);
    assert_int_equal(ag_nt_hash("\xc0\xaf", 2, h), AG_EINVAL);
    memset(big, 'x', sizeof big);
    assert_int_equal(ag_nt_hash(big, sizeof big, h), AG_ELIMIT);
    assert_memory_equal(h, before, 16);
    /* The maximum length, all 4-byte sequences' worst case is 2 bytes/byte. */
    assert_int_equal(ag_nt_hash(big, AG_PASSWORD_MAX, h), 0);
}

static void test_hmac_md5_rfc2202(void **state)
{
    uint8_t key[80], data[80], out[16];
    (void)state;

    memset(key, 0x0b, 16);
    {
        const uint8_t *p[] = {(const uint8_t *)"Hi There"};
        const size_t l[] = {8};
        ag_hmac_md5(key, 16, p, l, 1, out);
        assert_hex(out, "9294727a3638bb1c13f48ef8158bfc9d");
    }
    {
        /* Split into parts, including an empty NULL part. */
        const uint8_t *p[] = {(const uint8_t *)"what do ya ", NULL,
                              (const uint8_t *)"want for nothing?"};
        const size_t l[] = {11, 0, 17};
        ag_hmac_md5((const uint8_t *)"Jefe", 4, p, l, 3, out);
        assert_hex(out, "750c783e6ab0b503eaa86e310a5db738");
    }
    memset(key, 0xaa, 16);
    memset(data, 0xdd, 50);
    {
        const uint8_t *p[] = {data};
        const size_t l[] = {50};
        ag_hmac_md5(key, 16, p, l, 1, out);
        assert_hex(out, "56be34521d144c88dbb8c733f0e8b3f6");
    }
    for (int i = 0; i < 25; i++)
        key[i] = (uint8_t)(i + 1);
    memset(data, 0xcd, 50);
    {
        const uint8_t *p[] = {data};
        const size_t l[] = {50};
        ag_hmac_md5(key, 25, p, l, 1, out);
        assert_hex(out, "697eaf0aca3a3aea3a75164746ffaa79");
    }
    memset(key, 0x0c, 16);
    {
        const uint8_t *p[] = {(const uint8_t *)"Test With Truncation"};
        const size_t l[] = {20};
        ag_hmac_md5(key, 16, p, l, 1, out);
        assert_hex(out, "56461ef2342edc00f9bab995690efd4c");
    }
    memset(key, 0xaa, 80);
    {
        const char *d = "Test Using Larger Than Block-Size Key - Hash Key First";
        const uint8_t *p[] = {(const uint8_t *)d};
        const size_t l[] = {strlen(d)};
        ag_hmac_md5(key, 80, p, l, 1, out);
        assert_hex(out, "6b1ab7fe4bd7bf8f0b62e6ce61b9d0cd");
    }
    {
        const char *d = "Test Using Larger Than Block-Size Key and Larger Than One Block-Size Data";
        const uint8_t *p[] = {(const uint8_t *)d};
        const size_t l[] = {strlen(d)};
        ag_hmac_md5(key, 80, p, l, 1, out);
        assert_hex(out, "6f630fad67cda0ee1fb1f562db3aa53e");
    }
}

static void test_utf8_to_utf16le(void **state)
{
    static const struct {
        const char *in;
        size_t len;
        int rc;
        const char *hex; /* expected UTF-16LE */
    } v[] = {
        {"", 0, 0, ""},
        {"Ab", 2, 0, "41006200"},
        {"\xc3\xa9", 2, 0, "e900"},               /* U+00E9 */
        {"\xe2\x82\xac", 3, 0, "ac20"},           /* U+20AC */
        {"\xef\xbf\xbf", 3, 0, "ffff"},           /* U+FFFF */
        {"\xf0\x9f\x98\x80", 4, 0, "3dd800de"},   /* U+1F600 */
        {"\xf4\x8f\xbf\xbf", 4, 0, "ffdbffdf"},   /* U+10FFFF */
        {"a\0b", 3, 0, "610000006200"},           /* NUL is valid UTF-8 */
        {"\xc0\x80", 2, AG_EINVAL, NULL},         /* overlong NUL */
        {"\xc1\xbf", 2, AG_EINVAL, NULL},         /* overlong */
        {"\xe0\x80\xaf", 3, AG_EINVAL, NULL},     /* overlong 3 */
        {"\xf0\x8f\xbf\xbf", 4, AG_EINVAL, NULL}, /* overlong 4 */
        {"\xed\xa0\x80", 3, AG_EINVAL, NULL},     /* U+D800 */
        {"\xed\xbf\xbf", 3, AG_EINVAL, NULL},     /* U+DFFF */
        {"\xf4\x90\x80\x80", 4, AG_EINVAL, NULL}, /* U+110000 */
        {"\xf5\x80\x80\x80", 4, AG_EINVAL, NULL},
        {"\xff", 1, AG_EINVAL, NULL},
        {"\x80", 1, AG_EINVAL, NULL},         /* stray continuation */
        {"\xc3", 1, AG_EINVAL, NULL},         /* truncated */
        {"\xe2\x82", 2, AG_EINVAL, NULL},     /* truncated */
        {"\xf0\x9f\x98", 3, AG_EINVAL, NULL}, /* truncated */
        {"\xe2\x28\xa1", 3, AG_EINVAL, NULL}, /* bad continuation */
        {"\xc3\xa9", 1, AG_EINVAL, NULL},     /* cut by inlen, not by a NUL */
        {"\xe2\x82\xac", 2, AG_EINVAL, NULL},
        {"\xf0\x9f\x98\x80", 3, AG_EINVAL, NULL},
    };
    (void)state;
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        uint8_t out[16], want[16];
        size_t n = 999;
        int rc = ag_utf8_to_utf16le(v[i].in, v[i].len, out, sizeof out, &n);
        if (rc != v[i].rc)
            fail_msg("case %zu: rc %d want %d", i, rc, v[i].rc);
        if (v[i].hex) {
            size_t wn = strlen(v[i].hex) / 2;
            unhex(v[i].hex, want, wn);
            assert_int_equal(n, wn);
            assert_memory_equal(out, want, wn);
        }
    }
    /* Capacity: exact fits, one short fails. */
    {
        uint8_t out[4];
        size_t n;
        assert_int_equal(ag_utf8_to_utf16le("ab", 2, out, 4, &n), 0);
        assert_int_equal(ag_utf8_to_utf16le("abc", 3, out, 4, &n), AG_ELIMIT);
        assert_int_equal(ag_utf8_to_utf16le("\xf0\x9f\x98\x80", 4, out, 3, &n), AG_ELIMIT);
        assert_int_equal(ag_utf8_to_utf16le("", 0, NULL, 0, &n), 0);
        assert_int_equal(n, 0);
    }
}

static void test_upcase16(void **state)
{
    static const uint16_t v[][2] = {
        {'a', 'A'},     {'z', 'Z'},     {'A', 'A'},       {'0', '0'},       {'{', '{'},
        {0xe9, 0xc9},   {0xfe, 0xde},   {0xf7, 0xf7},     {0xdf, 0xdf},     {0xff, 0x178},
        {0xb5, 0x39c},  {0x101, 0x100}, {0x100, 0x100},   {0x131, 0x131},   {0x133, 0x132},
        {0x13a, 0x139}, {0x148, 0x147}, {0x149, 0x149},   {0x14b, 0x14a},   {0x17e, 0x17d},
        {0x17f, 0x17f}, {0x3b1, 0x391}, {0x3c2, 0x3a3},   {0x3c9, 0x3a9},   {0x3ac, 0x386},
        {0x3ad, 0x388}, {0x3cc, 0x38c}, {0x3ce, 0x38f},   {0x430, 0x410},   {0x44f, 0x42f},
        {0x451, 0x401}, {0x45f, 0x40f}, {0xd800, 0xd800}, {0x4e2d, 0x4e2d},
    };
    (void)state;
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        if (ag_ntlm_upcase16(v[i][0]) != v[i][1])
            fail_msg("U+%04X -> U+%04X, want U+%04X", v[i][0], ag_ntlm_upcase16(v[i][0]), v[i][1]);
}

static void test_ntowfv2(void **state)
{
    uint8_t h[16], k[16], k2[16];
    static const uint8_t upper[] = {'U', 0, 'S', 0, 'E', 0, 'R', 0};
    static const uint8_t lower[] = {'u', 0, 's', 0, 'e', 0, 'r', 0};
    static const uint8_t dom_lower[] = {'d', 0, 'o', 0, 'm', 0, 'a', 0, 'i', 0, 'n', 0};
    (void)state;
    nt_hash_password(h);
    assert_int_equal(ag_ntowfv2(h, user16_v, 8, dom16_v, 12, k), 0);
    assert_hex(k, "0c868a403bfd7a93a3001ef22ef02e3f");
    /* User is upper-cased, domain is not. */
    assert_int_equal(ag_ntowfv2(h, upper, 8, dom16_v, 12, k2), 0);
    assert_memory_equal(k, k2, 16);
    assert_int_equal(ag_ntowfv2(h, lower, 8, dom16_v, 12, k2), 0);
    assert_memory_equal(k, k2, 16);
    assert_int_equal(ag_ntowfv2(h, user16_v, 8, dom_lower, 12, k2), 0);
    assert_memory_not_equal(k, k2, 16);
    /* Latin-1 upper-casing: "é" hashes like "É". */
    {
        static const uint8_t e1[] = {0xe9, 0}, e2[] = {0xc9, 0};
        assert_int_equal(ag_ntowfv2(h, e1, 2, NULL, 0, k), 0);
        assert_int_equal(ag_ntowfv2(h, e2, 2, NULL, 0, k2), 0);
        assert_memory_equal(k, k2, 16);
    }
    /* A user longer than the internal chunk (64 bytes) upper-cases fully. */
    {
        uint8_t lo[200], up[200];
        for (int i = 0; i < 100; i++) {
            ag_put_u16le(lo + 2 * i, (uint16_t)('a' + i % 26));
            ag_put_u16le(up + 2 * i, (uint16_t)('A' + i % 26));
        }
        assert_int_equal(ag_ntowfv2(h, lo, 200, dom16_v, 12, k), 0);
        assert_int_equal(ag_ntowfv2(h, up, 200, dom16_v, 12, k2), 0);
        assert_memory_equal(k, k2, 16);
    }
    /* CBT capture: Administrator / WS2008R2 / P@ssw0rd. */
    {
        static const char *u = "Administrator", *d = "WS2008R2";
        uint8_t u16[64], d16[64];
        size_t ul, dl;
        assert_int_equal(ag_nt_hash("P@ssw0rd", 8, h), 0);
        assert_int_equal(ag_utf8_to_utf16le(u, strlen(u), u16, sizeof u16, &ul), 0);
        assert_int_equal(ag_utf8_to_utf16le(d, strlen(d), d16, sizeof d16, &dl), 0);
        assert_int_equal(ag_ntowfv2(h, u16, ul, d16, dl, k), 0);
        assert_hex(k, "22fe5b1bc73d136282aef78e70c8dd58");
    }
    memset(k2, 0x77, 16);
    memcpy(k, k2, 16);
    assert_int_equal(ag_ntowfv2(h, user16_v, 7, NULL, 0, k), AG_EINVAL);
    assert_int_equal(ag_ntowfv2(h, user16_v, 8, dom16_v, 11, k), AG_EINVAL);
    assert_memory_equal(k, k2, 16);
}

/* MS-NLMP 4.2.4 values computed from the common inputs. */
static void test_ntlmv2_values_4_2_4(void **state)
{
    uint8_t h[16], key[16], temp[68], proof[16], sbk[16], lmv2[16], esk[16], cc[8];
    uint8_t ersk[16];
    (void)state;
    nt_hash_password(h);
    assert_int_equal(ag_ntowfv2(h, user16_v, 8, dom16_v, 12, key), 0);
    unhex("01010000000000000000000000000000aaaaaaaaaaaaaaaa0000000002000c0044006f006d00610069006e"
          "0001000c005300650072007600650072000000000000000000",
          temp, sizeof temp);
    {
        const uint8_t *p[] = {server_chal, temp};
        const size_t l[] = {8, sizeof temp};
        ag_hmac_md5(key, 16, p, l, 2, proof);
        assert_hex(proof, "68cd0ab851e51c96aabc927bebef6a1c");
    }
    {
        const uint8_t *p[] = {proof};
        const size_t l[] = {16};
        ag_hmac_md5(key, 16, p, l, 1, sbk);
        assert_hex(sbk, "8de40ccadbc14a82f15cb0ad0de95ca3");
    }
    memset(cc, 0xaa, 8);
    {
        const uint8_t *p[] = {server_chal, cc};
        const size_t l[] = {8, 8};
        ag_hmac_md5(key, 16, p, l, 2, lmv2);
        assert_hex(lmv2, "86c35097ac9cec102554764a57cccc19");
    }
    /* The NT response inside the 4.2.4 AUTHENTICATE is NTProofStr || temp. */
    assert_memory_equal(v2_auth + 0x84, proof, 16);
    assert_memory_equal(v2_auth + 0x84 + 16, temp, sizeof temp);
    /* KEY_EXCH: RC4(SessionBaseKey, ERSK) = RandomSessionKey 55..55. */
    unhex("c5dad2544fc9799094ce1ce90bc9d03e", ersk, 16);
    assert_int_equal(ag_ntlm_exported_session_key(sbk, NTLMSSP_NEGOTIATE_KEY_EXCH, ersk, 16, esk),
                     0);
    assert_hex(esk, "55555555555555555555555555555555");
    assert_int_equal(ag_ntlm_exported_session_key(sbk, 0, NULL, 0, esk), 0);
    assert_memory_equal(esk, sbk, 16);
    assert_int_equal(ag_ntlm_exported_session_key(sbk, NTLMSSP_NEGOTIATE_KEY_EXCH, ersk, 15, esk),
                     AG_EINVAL);
    assert_int_equal(ag_ntlm_exported_session_key(sbk, NTLMSSP_NEGOTIATE_KEY_EXCH, NULL, 0, esk),
                     AG_EINVAL);
}

/* --- message type / NEGOTIATE --------------------------------------------- */

static void test_message_type(void **state)
{
    uint8_t m[16];
    (void)state;
    assert_int_equal(ag_ntlm_message_type(curl_neg, sizeof curl_neg), 1);
    assert_int_equal(ag_ntlm_message_type(v2_chal, sizeof v2_chal), 2);
    assert_int_equal(ag_ntlm_message_type(v2_auth, sizeof v2_auth), 3);
    assert_int_equal(ag_ntlm_message_type(curl_neg, 11), AG_EINVAL);
    assert_int_equal(ag_ntlm_message_type(curl_neg, 0), AG_EINVAL);
    assert_int_equal(ag_ntlm_message_type(NULL, 0), AG_EINVAL);
    memcpy(m, curl_neg, 16);
    m[7] = 'X';
    assert_int_equal(ag_ntlm_message_type(m, 16), AG_EINVAL);
    memcpy(m, curl_neg, 16);
    m[0] = 'n';
    assert_int_equal(ag_ntlm_message_type(m, 16), AG_EINVAL);
    memcpy(m, curl_neg, 16);
    m[8] = 9;
    assert_int_equal(ag_ntlm_message_type(m, 16), 9);
    m[11] = 0x80;
    assert_int_equal(ag_ntlm_message_type(m, 16), AG_EINVAL);
}

static void test_negotiate_parse(void **state)
{
    struct ag_ntlm_negotiate n;
    uint8_t m[AG_NTLM_MAX_DECODED + 8];
    (void)state;

    assert_int_equal(ag_ntlm_parse_negotiate(curl_neg, sizeof curl_neg, &n), 0);
    assert_int_equal(n.flags, 0x00088206);
    assert_false(n.has_version);

    assert_int_equal(ag_ntlm_parse_negotiate(win_neg, sizeof win_neg, &n), 0);
    assert_int_equal(n.flags, 0xe2088297);
    assert_true(n.has_version);
    assert_hex(n.version, "0a0063450000000f");

    /* 16-byte form (flags only). */
    assert_int_equal(ag_ntlm_parse_negotiate(curl_neg, 16, &n), 0);
    assert_int_equal(n.flags, 0x00088206);

    /* With OEM domain/workstation strings in the payload. */
    memcpy(m, curl_neg, 32);
    ag_put_u32le(m + 12, 0x00088206 | NTLMSSP_NEGOTIATE_OEM_DOMAIN_SUPPLIED |
                             NTLMSSP_NEGOTIATE_OEM_WORKSTATION_SUPPLIED);
    memcpy(m + 32, "DOMWKS", 6);
    ag_put_u16le(m + 16, 3), ag_put_u16le(m + 18, 3), ag_put_u32le(m + 20, 32);
    ag_put_u16le(m + 24, 3), ag_put_u16le(m + 26, 3), ag_put_u32le(m + 28, 35);
    assert_int_equal(ag_ntlm_parse_negotiate(m, 38, &n), 0);
    /* ... past the end */
    assert_int_equal(ag_ntlm_parse_negotiate(m, 37, &n), AG_EINVAL);
    /* ... overlapping the header */
    ag_put_u32le(m + 20, 16);
    assert_int_equal(ag_ntlm_parse_negotiate(m, 38, &n), AG_EINVAL);
    /* ... 32-bit overflow */
    ag_put_u32le(m + 20, 0xffffffffu);
    assert_int_equal(ag_ntlm_parse_negotiate(m, 38, &n), AG_EINVAL);

    /* VERSION flag but a workstation at 32: no Version read. */
    memcpy(m, curl_neg, 32);
    ag_put_u32le(m + 12, 0x00088206 | NTLMSSP_NEGOTIATE_VERSION);
    memcpy(m + 32, "WKSTATIO", 8);
    ag_put_u16le(m + 24, 8), ag_put_u16le(m + 26, 8), ag_put_u32le(m + 28, 32);
    assert_int_equal(ag_ntlm_parse_negotiate(m, 40, &n), 0);
    assert_false(n.has_version);

    /* Short, truncated field area, wrong types, signature, size cap. */
    memset(&n, 0x77, sizeof n);
    assert_int_equal(ag_ntlm_parse_negotiate(curl_neg, 15, &n), AG_EINVAL);
    assert_int_equal(ag_ntlm_parse_negotiate(curl_neg, 12, &n), AG_EINVAL);
    assert_int_equal(ag_ntlm_parse_negotiate(curl_neg, 20, &n), AG_EINVAL);
    assert_int_equal(ag_ntlm_parse_negotiate(curl_neg, 31, &n), AG_EINVAL);
    assert_int_equal(n.flags, 0x77777777u); /* untouched on failure */
    assert_int_equal(ag_ntlm_parse_negotiate(v2_chal, sizeof v2_chal, &n), AG_EINVAL);
    assert_int_equal(ag_ntlm_parse_negotiate(v2_auth, sizeof v2_auth, &n), AG_EINVAL);
    memcpy(m, curl_neg, 32);
    m[3] = 'X';
    assert_int_equal(ag_ntlm_parse_negotiate(m, 32, &n), AG_EINVAL);
    memset(m, 0, sizeof m);
    memcpy(m, curl_neg, 32);
    assert_int_equal(ag_ntlm_parse_negotiate(m, AG_NTLM_MAX_DECODED, &n), 0);
    assert_int_equal(ag_ntlm_parse_negotiate(m, AG_NTLM_MAX_DECODED + 1, &n), AG_ELIMIT);
}

/* --- CHALLENGE ------------------------------------------------------------ */

/* Walks an AV list and returns the value of id (or NULL). */
static const uint8_t *find_av(struct ag_ntlm_slice ti, uint16_t id, size_t *len)
{
    struct ag_cursor c;
    uint16_t i, l;
    ag_cur_init(&c, ti.p, ti.len);
    while (ag_cur_u16le(&c, &i) && ag_cur_u16le(&c, &l)) {
        if (i == id) {
            *len = l;
            return ag_cur_at(&c, c.off, l);
        }
        if (i == MSV_AV_EOL || !ag_cur_skip(&c, l))
            break;
    }
    return NULL;
}

static void assert_av_str(struct ag_ntlm_slice ti, uint16_t id, const char *ascii)
{
    size_t n = 0, i;
    const uint8_t *v = find_av(ti, id, &n);
    assert_non_null(v);
    assert_int_equal(n, 2 * strlen(ascii));
    for (i = 0; ascii[i]; i++) {
        assert_int_equal(v[2 * i], (uint8_t)ascii[i]);
        assert_int_equal(v[2 * i + 1], 0);
    }
}

static const uint64_t test_ts = 0x01d9a1b2c3d4e5f6ull;

static struct ag_ntlm_challenge_params std_params(uint32_t client_flags)
{
    struct ag_ntlm_challenge_params p;
    memset(&p, 0, sizeof p);
    p.client_flags = client_flags;
    p.server_challenge = server_chal;
    p.target_name = "EXAMPLE";
    p.nb_domain = "EXAMPLE";
    p.nb_computer = "PROXY1";
    p.dns_domain = "example.org";
    p.dns_computer = "proxy1.example.org";
    p.timestamp = test_ts;
    return p;
}

static void test_challenge_build_curl(void **state)
{
    struct ag_ntlm_challenge_params p = std_params(0x00088206);
    struct ag_ntlm_challenge ch;
    uint8_t out[512];
    size_t n = 0, l;
    uint32_t flags = 0;
    const uint8_t *v;
    (void)state;

    assert_int_equal(ag_ntlm_build_challenge(&p, out, sizeof out, &n, &flags), 0);
    /* OEM (curl does not offer UNICODE), NTLM, TARGET_INFO, ESS, REQUEST_TARGET
     * + TARGET_TYPE_DOMAIN, ALWAYS_SIGN echoed. */
    assert_int_equal(flags, 0x00898206);
    assert_memory_equal(out, "NTLMSSP\0\x02\0\0\0", 12);
    /* TargetName: 7 ASCII bytes at 56. */
    assert_int_equal(out[12] | out[13] << 8, 7);
    assert_int_equal(out[14] | out[15] << 8, 7);
    assert_int_equal(out[16] | out[17] << 8 | out[18] << 16 | out[19] << 24, 56);
    assert_memory_equal(out + 56, "EXAMPLE", 7);
    assert_int_equal(out[20] | out[21] << 8 | out[22] << 16 | (uint32_t)out[23] << 24, flags);
    assert_memory_equal(out + 24, server_chal, 8);
    assert_memory_equal(out + 32, "\0\0\0\0\0\0\0\0", 8); /* Reserved */
    /* TargetInfo right after the name. */
    assert_int_equal(out[44] | out[45] << 8, 63);
    assert_int_equal(out[40] | out[41] << 8, n - 63);
    assert_int_equal(out[42] | out[43] << 8, n - 63);
    assert_memory_equal(out + 48, "\0\0\0\0\0\0\0\0", 8); /* no VERSION: zeros */

    assert_int_equal(ag_ntlm_parse_challenge(out, n, &ch), 0);
    assert_int_equal(ch.flags, flags);
    assert_memory_equal(ch.server_challenge, server_chal, 8);
    assert_int_equal(ch.target_name.len, 7);
    /* AV pairs in order: NbDomain, NbComputer, DnsDomain, DnsComputer, Timestamp, EOL. */
    {
        static const uint16_t order[] = {2, 1, 4, 3, 7, 0};
        struct ag_cursor c;
        uint16_t id = 0, len = 0;
        ag_cur_init(&c, ch.target_info.p, ch.target_info.len);
        for (size_t i = 0; i < 6; i++) {
            assert_true(ag_cur_u16le(&c, &id) && ag_cur_u16le(&c, &len));
            assert_int_equal(id, order[i]);
            assert_true(ag_cur_skip(&c, len));
        }
        assert_int_equal(ag_cur_left(&c), 0);
    }
    assert_av_str(ch.target_info, MSV_AV_NB_DOMAIN_NAME, "EXAMPLE");
    assert_av_str(ch.target_info, MSV_AV_NB_COMPUTER_NAME, "PROXY1");
    assert_av_str(ch.target_info, MSV_AV_DNS_DOMAIN_NAME, "example.org");
    assert_av_str(ch.target_info, MSV_AV_DNS_COMPUTER_NAME, "proxy1.example.org");
    v = find_av(ch.target_info, MSV_AV_TIMESTAMP, &l);
    assert_non_null(v);
    assert_int_equal(l, 8);
    assert_memory_equal(v, "\xf6\xe5\xd4\xc3\xb2\xa1\xd9\x01", 8);

    /* Every capacity short of the size fails without overrunning. */
    for (size_t cap = 0; cap < n; cap++) {
        size_t m2;
        assert_int_equal(ag_ntlm_build_challenge(&p, out, cap, &m2, NULL), AG_ELIMIT);
    }
}

static void test_challenge_build_windows(void **state)
{
    struct ag_ntlm_challenge_params p = std_params(0xe2088297);
    struct ag_ntlm_challenge ch;
    uint8_t out[512];
    size_t n;
    uint32_t flags;
    (void)state;

    assert_int_equal(ag_ntlm_build_challenge(&p, out, sizeof out, &n, &flags), 0);
    assert_true(flags & NTLMSSP_NEGOTIATE_UNICODE);
    assert_false(flags & NTLMSSP_NEGOTIATE_OEM);
    assert_false(flags & NTLMSSP_NEGOTIATE_LM_KEY);
    /* 0xe2088297 offers SIGN but not SEAL. */
    assert_false(flags & NTLMSSP_NEGOTIATE_SEAL);
    assert_int_equal(flags,
                     NTLMSSP_NEGOTIATE_UNICODE | NTLMSSP_REQUEST_TARGET | NTLMSSP_NEGOTIATE_SIGN |
                         NTLMSSP_NEGOTIATE_NTLM | NTLMSSP_NEGOTIATE_ALWAYS_SIGN |
                         NTLMSSP_TARGET_TYPE_DOMAIN | NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY |
                         NTLMSSP_NEGOTIATE_TARGET_INFO | NTLMSSP_NEGOTIATE_VERSION |
                         NTLMSSP_NEGOTIATE_128 | NTLMSSP_NEGOTIATE_KEY_EXCH | NTLMSSP_NEGOTIATE_56);
    assert_memory_equal(out + 48, "\x06\x01\xb1\x1d\0\0\0\x0f", 8); /* default Version */
    assert_int_equal(ag_ntlm_parse_challenge(out, n, &ch), 0);
    assert_int_equal(ch.target_name.len, 14);
    assert_memory_equal(ch.target_name.p, "E\0X\0A\0M\0P\0L\0E\0", 14);

    /* Never LM_KEY, DATAGRAM, ANONYMOUS, NON_NT_SESSION_KEY, IDENTIFY, OEM
     * with UNICODE; only the offered echo flags. */
    assert_int_equal(ag_ntlm_challenge_flags(0xffffffffu) &
                         (NTLMSSP_NEGOTIATE_LM_KEY | NTLMSSP_NEGOTIATE_DATAGRAM |
                          NTLMSSP_NEGOTIATE_ANONYMOUS | NTLMSSP_REQUEST_NON_NT_SESSION_KEY |
                          NTLMSSP_NEGOTIATE_IDENTIFY | NTLMSSP_NEGOTIATE_OEM |
                          NTLMSSP_TARGET_TYPE_SERVER),
                     0);
    assert_int_equal(ag_ntlm_challenge_flags(0), NTLMSSP_NEGOTIATE_OEM | NTLMSSP_NEGOTIATE_NTLM |
                                                     NTLMSSP_NEGOTIATE_TARGET_INFO |
                                                     NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY);

    /* No REQUEST_TARGET: empty TargetName at 56, no TARGET_TYPE_DOMAIN. */
    p.client_flags = NTLMSSP_NEGOTIATE_UNICODE | NTLMSSP_NEGOTIATE_NTLM;
    assert_int_equal(ag_ntlm_build_challenge(&p, out, sizeof out, &n, &flags), 0);
    assert_false(flags & (NTLMSSP_REQUEST_TARGET | NTLMSSP_TARGET_TYPE_DOMAIN));
    assert_memory_equal(out + 12, "\0\0\0\0\x38\0\0\0", 8);
    assert_int_equal(out[44], 56);

    /* Optional DNS names omitted. */
    p.dns_domain = NULL;
    p.dns_computer = "";
    assert_int_equal(ag_ntlm_build_challenge(&p, out, sizeof out, &n, &flags), 0);
    assert_int_equal(ag_ntlm_parse_challenge(out, n, &ch), 0);
    {
        size_t l;
        assert_null(find_av(ch.target_info, MSV_AV_DNS_DOMAIN_NAME, &l));
        assert_null(find_av(ch.target_info, MSV_AV_DNS_COMPUTER_NAME, &l));
        assert_non_null(find_av(ch.target_info, MSV_AV_TIMESTAMP, &l));
    }
}

static void test_challenge_build_errors(void **state)
{
    struct ag_ntlm_challenge_params p;
    uint8_t out[512];
    size_t n;
    (void)state;
    p = std_params(0x00088206);
    p.target_name = "D\xc3\xa9V"; /* non-ASCII under OEM */
    assert_int_equal(ag_ntlm_build_challenge(&p, out, sizeof out, &n, NULL), AG_EINVAL);
    p.client_flags |= NTLMSSP_NEGOTIATE_UNICODE; /* fine under UNICODE */
    assert_int_equal(ag_ntlm_build_challenge(&p, out, sizeof out, &n, NULL), 0);
    p = std_params(0xe2088297);
    p.nb_computer = "\xc0\x80"; /* bad UTF-8 */
    assert_int_equal(ag_ntlm_build_challenge(&p, out, sizeof out, &n, NULL), AG_EINVAL);
    p = std_params(0xe2088297);
    p.nb_domain = "";
    assert_int_equal(ag_ntlm_build_challenge(&p, out, sizeof out, &n, NULL), AG_EINVAL);
    p = std_params(0xe2088297);
    p.nb_computer = NULL;
    assert_int_equal(ag_ntlm_build_challenge(&p, out, sizeof out, &n, NULL), AG_EINVAL);
    p = std_params(0xe2088297);
    p.server_challenge = NULL;
    assert_int_equal(ag_ntlm_build_challenge(&p, out, sizeof out, &n, NULL), AG_EINVAL);
    /* An AV value of more than 65535 bytes. */
    {
        static char big[40000];
        static uint8_t bigout[100000];
        memset(big, 'x', sizeof big - 1);
        p = std_params(0xe2088297);
        p.dns_domain = big;
        assert_int_equal(ag_ntlm_build_challenge(&p, bigout, sizeof bigout, &n, NULL), AG_ELIMIT);
    }
}

/* Built with the 4.2.4 inputs, our CHALLENGE equals the gss-ntlmssp one in
 * every byte but the flags (we send TARGET_TYPE_DOMAIN, echo REQUEST_TARGET
 * and never OEM together with UNICODE). */
static void test_challenge_matches_vector(void **state)
{
    static const uint8_t ver[8] = {0x06, 0x00, 0x70, 0x17, 0x00, 0x00, 0x00, 0x0f};
    struct ag_ntlm_challenge_params p;
    struct ag_ntlm_challenge ch;
    uint8_t out[256];
    size_t n;
    uint32_t flags;
    (void)state;
    memset(&p, 0, sizeof p);
    p.client_flags = 0xe28a8237; /* the vector's flags plus REQUEST_TARGET */
    p.server_challenge = server_chal;
    p.target_name = "Server";
    p.nb_domain = "Domain";
    p.nb_computer = "Server";
    p.omit_timestamp = true;
    p.version = ver;
    assert_int_equal(ag_ntlm_build_challenge(&p, out, sizeof out, &n, &flags), 0);
    assert_int_equal(n, sizeof v2_chal);
    assert_memory_equal(out, v2_chal, 20);
    assert_memory_equal(out + 24, v2_chal + 24, sizeof v2_chal - 24);
    assert_int_equal(flags, 0xe2898235);

    assert_int_equal(ag_ntlm_parse_challenge(v2_chal, sizeof v2_chal, &ch), 0);
    assert_int_equal(ch.flags, 0xe28a8233);
    assert_memory_equal(ch.server_challenge, server_chal, 8);
    assert_int_equal(ch.target_info.len, sizeof v2_ti);
    assert_memory_equal(ch.target_info.p, v2_ti, sizeof v2_ti);
    assert_int_equal(ag_ntlm_parse_challenge(cbt_chal, sizeof cbt_chal, &ch), 0);
    assert_int_equal(ch.flags, 0xa2898205);
    assert_int_equal(ag_ntlm_parse_challenge(v1_chal, sizeof v1_chal, &ch), 0);
    assert_int_equal(ch.target_info.len, 0);
    assert_int_equal(ag_ntlm_parse_challenge(ess_chal, sizeof ess_chal, &ch), 0);
    assert_int_equal(ch.flags, 0x820a8233);
    assert_int_equal(ch.target_name.len, 12);
    /* The ntlm-auth erratum (TargetNameLen 3 under UNICODE) is malformed. */
    {
        uint8_t m[sizeof v2_chal];
        memcpy(m, v2_chal, sizeof m);
        m[12] = 3;
        assert_int_equal(ag_ntlm_parse_challenge(m, sizeof m, &ch), AG_EINVAL);
        memcpy(m, v2_chal, sizeof m);
        m[sizeof m - 4] = 1; /* EOL becomes an empty NbComputer: no EOL left */
        assert_int_equal(ag_ntlm_parse_challenge(m, sizeof m, &ch), AG_EINVAL);
    }
}

/* --- AUTHENTICATE: test-only encoder -------------------------------------- */

struct abuild {
    uint32_t flags;
    size_t hdr; /* 64, 72 or 88 */
    struct ag_ntlm_slice lm, nt, dom, user, wks, ek;
};

static void put_fld(uint8_t *m, size_t at, size_t len, size_t off)
{
    ag_put_u16le(m + at, (uint16_t)len);
    ag_put_u16le(m + at + 2, (uint16_t)len);
    ag_put_u32le(m + at + 4, (uint32_t)off);
}

/* Payload order: domain, user, workstation, LM, NT, session key. */
static size_t abuild(const struct abuild *b, uint8_t *m, size_t cap)
{
    const struct {
        size_t at;
        const struct ag_ntlm_slice *s;
    } f[] = {{28, &b->dom}, {36, &b->user}, {44, &b->wks},
             {12, &b->lm},  {20, &b->nt},   {52, &b->ek}};
    size_t off = b->hdr;
    assert_true(cap >= b->hdr);
    memset(m, 0, b->hdr);
    memcpy(m, "NTLMSSP\0\x03\0\0\0", 12);
    ag_put_u32le(m + 60, b->flags);
    if (b->hdr >= 72)
        memcpy(m + 64, "\x06\x01\xb1\x1d\0\0\0\x0f", 8);
    for (size_t i = 0; i < 6; i++) {
        assert_true(f[i].s->len <= cap - off);
        put_fld(m, f[i].at, f[i].s->len, f[i].s->len ? off : 0);
        if (f[i].s->len)
            memcpy(m + off, f[i].s->p, f[i].s->len);
        off += f[i].s->len;
    }
    return off;
}

static void av_put(uint8_t *p, size_t *off, uint16_t id, const void *v, uint16_t len)
{
    ag_put_u16le(p + *off, id);
    ag_put_u16le(p + *off + 2, len);
    if (len)
        memcpy(p + *off + 4, v, len);
    *off += 4u + len;
}

/* NT response = HMAC_MD5(NTOWFv2(4.2.4), chal || blob) || blob, where blob =
 * resp hiresp Z(6) Time Z(8)... with the AV bytes given. Returns its length. */
static size_t mknt(uint8_t *out, uint8_t resp, uint8_t hiresp, const uint8_t *av, size_t avlen,
                   const uint8_t *chal)
{
    uint8_t h[16], key[16];
    uint8_t *blob = out + 16;
    size_t bl = 28 + avlen + 4;
    memset(blob, 0, 28);
    blob[0] = resp;
    blob[1] = hiresp;
    memset(blob + 16, 0xaa, 8);
    memcpy(blob + 28, av, avlen);
    memset(blob + 28 + avlen, 0, 4);
    nt_hash_password(h);
    assert_int_equal(ag_ntowfv2(h, user16_v, 8, dom16_v, 12, key), 0);
    {
        const uint8_t *p[] = {chal, blob};
        const size_t l[] = {8, bl};
        ag_hmac_md5(key, 16, p, l, 2, out);
    }
    return 16 + bl;
}

/* The 4.2.4 target info followed by extra pairs, EOL last. */
static size_t av_with(uint8_t *av, const uint8_t *extra, size_t extralen)
{
    memcpy(av, v2_ti, sizeof v2_ti - 4);
    memcpy(av + sizeof v2_ti - 4, extra, extralen);
    memset(av + sizeof v2_ti - 4 + extralen, 0, 4);
    return sizeof v2_ti + extralen;
}

/* Computes and stores the MIC of m (with curl_neg and v2_chal). */
static void put_mic(uint8_t *m, size_t len, const uint8_t esk[16])
{
    uint8_t mic[16];
    memset(m + 72, 0, 16);
    {
        const uint8_t *p[] = {curl_neg, v2_chal, m};
        const size_t l[] = {sizeof curl_neg, sizeof v2_chal, len};
        ag_hmac_md5(esk, 16, p, l, 3, mic);
    }
    memcpy(m + 72, mic, 16);
}

static struct abuild std_build(const uint8_t *nt, size_t ntlen)
{
    static const uint8_t lm[24];
    struct abuild b;
    memset(&b, 0, sizeof b);
    b.flags = 0xe2888235 & ~NTLMSSP_NEGOTIATE_KEY_EXCH;
    b.hdr = 72;
    b.lm = (struct ag_ntlm_slice){lm, sizeof lm};
    b.nt = (struct ag_ntlm_slice){nt, ntlen};
    b.dom = (struct ag_ntlm_slice){dom16_v, sizeof dom16_v};
    b.user = (struct ag_ntlm_slice){user16_v, sizeof user16_v};
    b.wks = (struct ag_ntlm_slice){wks16_v, sizeof wks16_v};
    return b;
}

/* The handshake's checks in order, against the 4.2.4 CHALLENGE, the NT hash
 * of "Password" and curl_neg as the NEGOTIATE. First error wins. */
static int pipeline(const uint8_t *m, size_t len, struct ag_ntlm_auth *a)
{
    struct ag_ntlm_challenge ch;
    uint8_t h[16], sbk[16], esk[16];
    int rc;

    assert_int_equal(ag_ntlm_parse_challenge(v2_chal, sizeof v2_chal, &ch), 0);
    if ((rc = ag_ntlm_parse_authenticate(m, len, a)) < 0)
        return rc;
    if ((rc = ag_ntlm_flags_subset(a->flags, ch.flags)) < 0)
        return rc;
    if ((rc = ag_ntlmv2_check_av_echo(ch.target_info.p, ch.target_info.len, &a->v2)) < 0)
        return rc;
    nt_hash_password(h);
    if ((rc = ag_ntlmv2_verify_local(h, a->user16, a->user16_len, a->domain16, a->domain16_len,
                                     ch.server_challenge, a->nt.p, a->nt.len, sbk)) < 0)
        return rc;
    if ((rc = ag_ntlm_exported_session_key(sbk, a->flags, a->enc_key.p, a->enc_key.len, esk)) < 0)
        return rc;
    if (a->mic_present && (rc = ag_ntlm_mic_verify(esk, curl_neg, sizeof curl_neg, v2_chal,
                                                   sizeof v2_chal, m, len)) < 0)
        return rc;
    return 0;
}

static void test_authenticate_4_2_4(void **state)
{
    struct ag_ntlm_auth a;
    struct ag_ntlm_challenge ch;
    uint8_t h[16], sbk[16], esk[16];
    (void)state;

    assert_int_equal(ag_ntlm_parse_authenticate(v2_auth, sizeof v2_auth, &a), 0);
    assert_int_equal(a.flags, 0xe2888235);
    assert_true(a.unicode);
    assert_string_equal(a.user, "User");
    assert_string_equal(a.domain, "Domain");
    assert_string_equal(a.workstation, "COMPUTER");
    assert_int_equal(a.user16_len, 8);
    assert_memory_equal(a.user16, user16_v, 8);
    assert_int_equal(a.domain16_len, 12);
    assert_memory_equal(a.domain16, dom16_v, 12);
    assert_int_equal(a.header_len, 72);
    assert_true(a.has_version);
    assert_hex(a.version, "0501280a0000000f");
    assert_false(a.mic_present);
    assert_null(a.mic);
    assert_int_equal(a.lm.len, 24);
    assert_ptr_equal(a.lm.p, v2_auth + 0x6c);
    assert_hex(a.lm.p, "86c35097ac9cec102554764a57cccc19aaaaaaaaaaaaaaaa");
    assert_int_equal(a.nt.len, 84);
    assert_ptr_equal(a.nt.p, v2_auth + 0x84);
    assert_int_equal(a.enc_key.len, 16);
    assert_hex(a.enc_key.p, "c5dad2544fc9799094ce1ce90bc9d03e");
    /* The blob */
    assert_ptr_equal(a.v2.proof, v2_auth + 0x84);
    assert_int_equal(a.v2.blob.len, 68);
    assert_int_equal(a.v2.time, 0);
    assert_hex(a.v2.client_chal, "aaaaaaaaaaaaaaaa");
    assert_int_equal(a.v2.av_count, 2);
    assert_int_equal(a.v2.av.len, sizeof v2_ti);
    assert_memory_equal(a.v2.av.p, v2_ti, sizeof v2_ti);
    assert_false(a.v2.has_av_flags);
    assert_false(a.v2.has_timestamp);
    assert_null(a.v2.channel_bindings);
    assert_int_equal(a.v2.target_name.len, 0);

    /* Checks against the CHALLENGE. */
    assert_int_equal(ag_ntlm_parse_challenge(v2_chal, sizeof v2_chal, &ch), 0);
    assert_int_equal(ag_ntlm_flags_subset(a.flags, ch.flags), 0);
    assert_int_equal(ag_ntlmv2_check_av_echo(ch.target_info.p, ch.target_info.len, &a.v2), 0);

    /* Local verification: SessionBaseKey and, with KEY_EXCH, the exported key. */
    nt_hash_password(h);
    assert_int_equal(ag_ntlmv2_verify_local(h, a.user16, a.user16_len, a.domain16, a.domain16_len,
                                            ch.server_challenge, a.nt.p, a.nt.len, sbk),
                     0);
    assert_hex(sbk, "8de40ccadbc14a82f15cb0ad0de95ca3");
    assert_int_equal(ag_ntlm_exported_session_key(sbk, a.flags, a.enc_key.p, a.enc_key.len, esk),
                     0);
    assert_hex(esk, "55555555555555555555555555555555");

    /* Wrong password, other challenge: AG_EAUTH, out untouched. */
    memset(sbk, 0x11, 16);
    assert_int_equal(ag_nt_hash("password", 8, h), 0);
    assert_int_equal(ag_ntlmv2_verify_local(h, a.user16, a.user16_len, a.domain16, a.domain16_len,
                                            ch.server_challenge, a.nt.p, a.nt.len, sbk),
                     AG_EAUTH);
    nt_hash_password(h);
    {
        static const uint8_t other[8] = {1, 2, 3, 4, 5, 6, 7, 8};
        assert_int_equal(ag_ntlmv2_verify_local(h, a.user16, a.user16_len, a.domain16,
                                                a.domain16_len, other, a.nt.p, a.nt.len, sbk),
                         AG_EAUTH);
    }
    assert_hex(sbk, "11111111111111111111111111111111");
    /* Another user name (different case is the same user). */
    {
        static const uint8_t u2[] = {'u', 0, 's', 0, 'e', 0, 'R', 0};
        static const uint8_t u3[] = {'U', 0, 's', 0, 'e', 0, 'r', 0, 's', 0};
        assert_int_equal(
            ag_ntlmv2_verify_local(h, u2, 8, dom16_v, 12, server_chal, a.nt.p, a.nt.len, sbk), 0);
        assert_int_equal(
            ag_ntlmv2_verify_local(h, u3, 10, dom16_v, 12, server_chal, a.nt.p, a.nt.len, sbk),
            AG_EAUTH);
    }
    /* The whole pipeline. */
    assert_int_equal(pipeline(v2_auth, sizeof v2_auth, &a), 0);
}

/* A client that computed NTOWFv2 with an empty domain but sent one verifies
 * through the retry; the session key is the one of the empty-domain key. */
static void test_verify_empty_domain_retry(void **state)
{
    uint8_t h[16], key[16], nt[128], sbk[16], want[16];
    size_t bl = sizeof v2_auth - 0x84 - 16 - 16; /* 4.2.4 blob */
    (void)state;
    nt_hash_password(h);
    assert_int_equal(ag_ntowfv2(h, user16_v, 8, NULL, 0, key), 0);
    memcpy(nt + 16, v2_auth + 0x84 + 16, bl);
    {
        const uint8_t *p[] = {server_chal, nt + 16};
        const size_t l[] = {8, bl};
        ag_hmac_md5(key, 16, p, l, 2, nt);
    }
    {
        const uint8_t *p[] = {nt};
        const size_t l[] = {16};
        ag_hmac_md5(key, 16, p, l, 1, want);
    }
    assert_int_equal(
        ag_ntlmv2_verify_local(h, user16_v, 8, dom16_v, 12, server_chal, nt, 16 + bl, sbk), 0);
    assert_memory_equal(sbk, want, 16);
    assert_int_equal(ag_ntlmv2_verify_local(h, user16_v, 8, NULL, 0, server_chal, nt, 16 + bl, sbk),
                     0);
    /* Length rules apply to the verifier too. */
    assert_int_equal(ag_ntlmv2_verify_local(h, user16_v, 8, NULL, 0, server_chal, nt, 24, sbk),
                     AG_EUNSUPP);
    assert_int_equal(ag_ntlmv2_verify_local(h, user16_v, 8, NULL, 0, server_chal, nt, 47, sbk),
                     AG_EINVAL);
    assert_int_equal(ag_ntlmv2_verify_local(h, user16_v, 7, NULL, 0, server_chal, nt, 16 + bl, sbk),
                     AG_EINVAL);
}

/* ntlm_allow_v1: the legacy parser accepts the 4.2.2/4.2.3 messages (and
 * only those lengths), and the NTLM2-session challenge winbind is given is
 * MD5(ServerChallenge || ClientChallenge)[0..7] (4.2.3: the NT response
 * 7537f803... is DESL(NTOWFv1, this value)). */
static void test_authenticate_v1_legacy_option(void **state)
{
    struct ag_ntlm_auth a;
    (void)state;
    assert_int_equal(ag_ntlm_parse_authenticate_legacy(v1_auth, sizeof v1_auth, &a), 0);
    assert_true(a.v1);
    assert_int_equal(a.nt.len, 24);
    assert_string_equal(a.user, "User");
    assert_int_equal(ag_ntlm_parse_authenticate_legacy(ess_auth, sizeof ess_auth, &a), 0);
    assert_true(a.v1);
    assert_true(a.flags & NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY);
    assert_int_equal(a.lm.len, 24);
    static const uint8_t cc[8] = {0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa};
    static const uint8_t want[8] = {0x5a, 0xf2, 0x55, 0x9e, 0x6b, 0xcb, 0x5c, 0x25};
    uint8_t got[8];
    ag_ntlm2_session_challenge(server_chal, cc, got);
    assert_memory_equal(got, want, 8);
    assert_memory_equal(a.lm.p, cc, 8);
    /* a NTLMv2 message is still parsed as NTLMv2 by the legacy parser */
    assert_int_equal(ag_ntlm_parse_authenticate_legacy(v2_auth, sizeof v2_auth, &a), 0);
    assert_false(a.v1);
}

static void test_authenticate_v1_refused(void **state)
{
    struct ag_ntlm_auth a;
    uint8_t h[16], sbk[16];
    (void)state;
    assert_int_equal(ag_ntlm_parse_authenticate(v1_auth, sizeof v1_auth, &a), AG_EUNSUPP);
    assert_int_equal(ag_ntlm_parse_authenticate(ess_auth, sizeof ess_auth, &a), AG_EUNSUPP);
    nt_hash_password(h);
    assert_int_equal(
        ag_ntlmv2_verify_local(h, user16_v, 8, dom16_v, 12, server_chal, v1_auth + 0x84, 24, sbk),
        AG_EUNSUPP);
    assert_int_equal(ag_ntlm_nt_response_kind(0), AG_EUNSUPP);
    assert_int_equal(ag_ntlm_nt_response_kind(24), AG_EUNSUPP);
    assert_int_equal(ag_ntlm_nt_response_kind(1), AG_EINVAL);
    assert_int_equal(ag_ntlm_nt_response_kind(23), AG_EINVAL);
    assert_int_equal(ag_ntlm_nt_response_kind(25), AG_EINVAL);
    assert_int_equal(ag_ntlm_nt_response_kind(47), AG_EINVAL);
    assert_int_equal(ag_ntlm_nt_response_kind(48), 0);
}

static void test_authenticate_cbt(void **state)
{
    struct ag_ntlm_auth a;
    struct ag_ntlm_challenge ch;
    uint8_t h[16], sbk[16];
    static const char spn[] = "HTTP/dc-ws2008r2.ws2008r2.local";
    (void)state;

    assert_int_equal(ag_ntlm_parse_authenticate(cbt_auth, sizeof cbt_auth, &a), 0);
    assert_string_equal(a.user, "Administrator");
    assert_string_equal(a.domain, "WS2008R2");
    assert_string_equal(a.workstation, "WIN7-2-PC");
    assert_int_equal(a.flags, 0xa2888205);
    assert_true(a.mic_present);
    assert_int_equal(a.header_len, 88);
    assert_ptr_equal(a.mic, cbt_auth + 72);
    assert_hex(a.mic, "f054a542b090b66c1fea1a2cc82e930b");
    assert_int_equal(a.enc_key.len, 0);
    assert_int_equal(a.nt.len, 380);
    assert_true(a.v2.has_av_flags);
    assert_int_equal(a.v2.av_flags, MSV_AV_FLAG_MIC_PRESENT);
    assert_true(a.v2.has_timestamp);
    assert_true(a.v2.timestamp == 0x01cdde0bc33fe77bull);
    assert_true(a.v2.time == 0x01cdde0bc33fe77bull);
    assert_hex(a.v2.client_chal, "27fc118082c2fbdd");
    assert_non_null(a.v2.channel_bindings);
    assert_hex(a.v2.channel_bindings, "6586e99d81c2fc984e47172fd4dd0310");
    assert_int_equal(a.v2.target_name.len, 2 * strlen(spn));
    for (size_t i = 0; spn[i]; i++)
        assert_int_equal(a.v2.target_name.p[2 * i], (uint8_t)spn[i]);
    assert_int_equal(a.v2.av_count, 10);

    assert_int_equal(ag_ntlm_parse_challenge(cbt_chal, sizeof cbt_chal, &ch), 0);
    assert_hex(ch.server_challenge, "a2c5e8ca3084aa72");
    assert_int_equal(ag_ntlm_flags_subset(a.flags, ch.flags), 0);
    assert_int_equal(ag_ntlmv2_check_av_echo(ch.target_info.p, ch.target_info.len, &a.v2), 0);
    /* ... but not the 4.2.4 target info. */
    assert_int_equal(ag_ntlmv2_check_av_echo(v2_ti, sizeof v2_ti, &a.v2), AG_EINVAL);

    assert_int_equal(ag_nt_hash("P@ssw0rd", 8, h), 0);
    assert_int_equal(ag_ntlmv2_verify_local(h, a.user16, a.user16_len, a.domain16, a.domain16_len,
                                            ch.server_challenge, a.nt.p, a.nt.len, sbk),
                     0);
    assert_hex(sbk, "9bd3f8be97c125f9e2f02bb60eb53ec7");
    /* The NEGOTIATE of this capture is not published: the MIC cannot match
     * with a stand-in one, and must not. */
    assert_int_equal(ag_ntlm_mic_verify(sbk, win_neg, sizeof win_neg, cbt_chal, sizeof cbt_chal,
                                        cbt_auth, sizeof cbt_auth),
                     AG_EAUTH);

    /* The MIC window may hold no payload: move the domain to 80. */
    {
        uint8_t m[sizeof cbt_auth];
        memcpy(m, cbt_auth, sizeof m);
        ag_put_u32le(m + 32, 80);
        assert_int_equal(ag_ntlm_parse_authenticate(m, sizeof m, &a), AG_EINVAL);
        ag_put_u32le(m + 32, 72);
        assert_int_equal(ag_ntlm_parse_authenticate(m, sizeof m, &a), AG_EINVAL);
        ag_put_u32le(m + 32, 87);
        assert_int_equal(ag_ntlm_parse_authenticate(m, sizeof m, &a), AG_EINVAL);
    }
}

/* MsvAvTargetName spellings (issue 10 item 2): HTTP/<name> and
 * HTTP/<name>:<port> for every configured name and listening port, any
 * ASCII case; nothing else. */
static bool spn_match(const char *const *spns, const char *target)
{
    uint8_t u[2 * AG_NTLM_SPN_LEN_MAX];
    size_t l = strlen(target);
    assert_true(l < AG_NTLM_SPN_LEN_MAX);
    for (size_t i = 0; i < l; i++) {
        u[2 * i] = (uint8_t)target[i];
        u[2 * i + 1] = 0;
    }
    struct ag_ntlm_slice tn = {u, 2 * l};
    return ag_ntlm_spn_ok(&tn, spns);
}

static void test_spns(void **state)
{
    struct ag_ntlm_spns s;
    static const uint16_t ports[] = {3128, 8080, 3128, 0};
    const char *names[] = {"proxy.corp.example", "PROXY.corp.example"};
    (void)state;

    assert_int_equal(ag_ntlm_spns_build(&s, names, 2, ports, 4), 0);
    /* the second name repeats the first, port 3128 twice, 0 is no port */
    assert_int_equal(s.n, 3);
    assert_string_equal(s.list[0], "HTTP/proxy.corp.example");
    assert_string_equal(s.list[1], "HTTP/proxy.corp.example:3128");
    assert_string_equal(s.list[2], "HTTP/proxy.corp.example:8080");
    assert_null(s.list[3]);
    static const char *const good[] = {
        "HTTP/proxy.corp.example",      "HTTP/PROXY.CORP.EXAMPLE",      "http/Proxy.Corp.Example",
        "HTTP/proxy.corp.example:3128", "HTTP/PROXY.CORP.EXAMPLE:8080", "",
    };
    static const char *const bad[] = {
        "HTTP/evil.example",
        "HTTP/proxy.corp.example:3129",
        "HTTP/proxy.corp.example:",
        "HTTP/proxy.corp.example:03128",
        "HTTP/proxy.corp.example.",
        "HTTP/proxy.corp.example:3128x",
        "HTTP/proxy",
        "HOST/proxy.corp.example",
        "HTTP/proxy.corp.example:80",
        "proxy.corp.example",
        "HTTP/proxy.corp.example:8080:3128",
    };
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        assert_true(spn_match(s.list, good[i]));
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        assert_false(spn_match(s.list, bad[i]));
    /* a UTF-16 code unit with a high byte never equals an ASCII letter */
    {
        uint8_t u[] = {'H', 0, 'T', 0, 'T', 0, 'P', 1};
        struct ag_ntlm_slice tn = {u, sizeof u};
        const char *const l[] = {"HTTP", NULL};
        assert_false(ag_ntlm_spn_ok(&tn, l));
    }
    /* a second, different name gets its own spellings */
    names[1] = "alias.corp.example";
    assert_int_equal(ag_ntlm_spns_build(&s, names, 2, ports, 2), 0);
    assert_int_equal(s.n, 6);
    assert_true(spn_match(s.list, "HTTP/alias.corp.example:8080"));
    assert_true(spn_match(s.list, "HTTP/alias.corp.example"));
    assert_false(spn_match(s.list, "HTTP/alias.corp.example:1"));
    /* NULL or empty names are skipped; the caps hold */
    const char *none[] = {NULL, ""};
    assert_int_equal(ag_ntlm_spns_build(&s, none, 2, ports, 2), 0);
    assert_int_equal(s.n, 0);
    assert_null(s.list[0]);
    const char *three[] = {"a", "b", "c"};
    assert_int_equal(ag_ntlm_spns_build(&s, three, 3, ports, 2), AG_ELIMIT);
    uint16_t many[AG_MAX_LISTENERS + 1] = {0};
    assert_int_equal(ag_ntlm_spns_build(&s, names, 1, many, AG_MAX_LISTENERS + 1), AG_ELIMIT);
    char longname[300];
    memset(longname, 'a', 254);
    longname[254] = '\0';
    const char *ln[] = {longname};
    assert_int_equal(ag_ntlm_spns_build(&s, ln, 1, ports, 2), AG_ELIMIT);
    assert_int_equal(s.n, 0);
    /* the largest list fits: two 253-byte names, 16 distinct ports */
    char n1[254], n2[254];
    memset(n1, 'a', 253);
    n1[253] = '\0';
    memset(n2, 'b', 253);
    n2[253] = '\0';
    for (size_t i = 0; i < AG_MAX_LISTENERS; i++)
        many[i] = (uint16_t)(65535 - i);
    const char *big[] = {n1, n2};
    assert_int_equal(ag_ntlm_spns_build(&s, big, 2, many, AG_MAX_LISTENERS), 0);
    assert_int_equal(s.n, AG_NTLM_SPNS_MAX);
    char want[AG_NTLM_SPN_LEN_MAX];
    snprintf(want, sizeof want, "HTTP/%s:65520", n2);
    assert_string_equal(s.list[AG_NTLM_SPNS_MAX - 1], want);
    assert_null(s.list[AG_NTLM_SPNS_MAX]);
}

/* A MIC we compute ourselves verifies; any change to any of the three
 * messages or the key breaks it. */
static void test_mic(void **state)
{
    uint8_t av[256], nt[512], m[1024], esk[16], key[16];
    uint8_t fl[4];
    size_t avl, ntl, n;
    struct ag_ntlm_auth a;
    struct abuild b;
    uint8_t h[16];
    (void)state;

    ag_put_u32le(fl, MSV_AV_FLAG_MIC_PRESENT);
    {
        uint8_t extra[8];
        size_t o = 0;
        av_put(extra, &o, MSV_AV_FLAGS, fl, 4);
        avl = av_with(av, extra, o);
    }
    ntl = mknt(nt, 1, 1, av, avl, server_chal);
    b = std_build(nt, ntl);
    b.hdr = 88;
    n = abuild(&b, m, sizeof m);
    /* ExportedSessionKey = SessionBaseKey (no KEY_EXCH) */
    nt_hash_password(h);
    assert_int_equal(ag_ntowfv2(h, user16_v, 8, dom16_v, 12, key), 0);
    {
        const uint8_t *p[] = {nt};
        const size_t l[] = {16};
        ag_hmac_md5(key, 16, p, l, 1, esk);
    }
    put_mic(m, n, esk);
    assert_int_equal(pipeline(m, n, &a), 0);
    assert_true(a.mic_present);
    assert_int_equal(
        ag_ntlm_mic_verify(esk, curl_neg, sizeof curl_neg, v2_chal, sizeof v2_chal, m, n), 0);
    /* Tamper with each input. */
    {
        uint8_t neg2[sizeof curl_neg], ch2[sizeof v2_chal], k2[16];
        memcpy(neg2, curl_neg, sizeof neg2);
        neg2[13] ^= 1;
        assert_int_equal(ag_ntlm_mic_verify(esk, neg2, sizeof neg2, v2_chal, sizeof v2_chal, m, n),
                         AG_EAUTH);
        memcpy(ch2, v2_chal, sizeof ch2);
        ch2[30] ^= 1;
        assert_int_equal(ag_ntlm_mic_verify(esk, curl_neg, sizeof curl_neg, ch2, sizeof ch2, m, n),
                         AG_EAUTH);
        memcpy(k2, esk, 16);
        k2[0] ^= 1;
        assert_int_equal(
            ag_ntlm_mic_verify(k2, curl_neg, sizeof curl_neg, v2_chal, sizeof v2_chal, m, n),
            AG_EAUTH);
        assert_int_equal(
            ag_ntlm_mic_verify(esk, curl_neg, sizeof curl_neg, v2_chal, sizeof v2_chal, m, n - 1),
            AG_EAUTH);
        assert_int_equal(
            ag_ntlm_mic_verify(esk, curl_neg, sizeof curl_neg, v2_chal, sizeof v2_chal, m, 87),
            AG_EINVAL);
        for (size_t i = 0; i < n; i++) {
            m[i] ^= 0x40;
            if (ag_ntlm_mic_verify(esk, curl_neg, sizeof curl_neg, v2_chal, sizeof v2_chal, m, n) !=
                AG_EAUTH)
                fail_msg("MIC still verifies with byte %zu changed", i);
            m[i] ^= 0x40;
        }
    }
    /* Wrong MIC through the pipeline (row 60). */
    m[80] ^= 1;
    assert_int_equal(pipeline(m, n, &a), AG_EAUTH);
    m[80] ^= 1;
    /* MIC flagged but no room for it (header 72, payload at 72): row 60. */
    b.hdr = 72;
    n = abuild(&b, m, sizeof m);
    assert_int_equal(ag_ntlm_parse_authenticate(m, n, &a), AG_EINVAL);
    /* Same with a 64-byte header and no VERSION. */
    b.hdr = 64;
    b.flags &= ~NTLMSSP_NEGOTIATE_VERSION;
    n = abuild(&b, m, sizeof m);
    assert_int_equal(ag_ntlm_parse_authenticate(m, n, &a), AG_EINVAL);
}

/* curl end to end: 32-byte NEGOTIATE, our OEM CHALLENGE, an AUTHENTICATE the
 * way curl writes it (64-byte header, OEM strings, flags = our flags, session
 * key field all zero, target info copied verbatim into the blob). */
static void test_curl_flow(void **state)
{
    struct ag_ntlm_negotiate neg;
    struct ag_ntlm_challenge_params p;
    struct ag_ntlm_challenge ch;
    struct ag_ntlm_auth a;
    struct abuild b;
    uint8_t chal[512], nt[512], m[1024], h[16], sbk[16];
    size_t cl, ntl, n;
    uint32_t flags;
    (void)state;

    assert_int_equal(ag_ntlm_parse_negotiate(curl_neg, sizeof curl_neg, &neg), 0);
    p = std_params(neg.flags);
    assert_int_equal(ag_ntlm_build_challenge(&p, chal, sizeof chal, &cl, &flags), 0);
    assert_int_equal(ag_ntlm_parse_challenge(chal, cl, &ch), 0);
    ntl = mknt(nt, 1, 1, ch.target_info.p, ch.target_info.len - 4, ch.server_challenge);
    b = std_build(nt, ntl);
    b.hdr = 64;
    b.flags = flags;
    b.dom = (struct ag_ntlm_slice){(const uint8_t *)"Domain", 6};
    b.user = (struct ag_ntlm_slice){(const uint8_t *)"User", 4};
    b.wks = (struct ag_ntlm_slice){(const uint8_t *)"curlhost", 8};
    n = abuild(&b, m, sizeof m);
    assert_int_equal(ag_ntlm_parse_authenticate(m, n, &a), 0);
    assert_false(a.unicode);
    assert_int_equal(a.header_len, 64);
    assert_false(a.has_version);
    assert_string_equal(a.user, "User");
    assert_string_equal(a.workstation, "curlhost");
    assert_int_equal(a.user16_len, 8);
    assert_memory_equal(a.user16, user16_v, 8);
    assert_int_equal(ag_ntlm_flags_subset(a.flags, flags), 0);
    assert_int_equal(ag_ntlmv2_check_av_echo(ch.target_info.p, ch.target_info.len, &a.v2), 0);
    nt_hash_password(h);
    assert_int_equal(ag_ntlmv2_verify_local(h, a.user16, a.user16_len, a.domain16, a.domain16_len,
                                            ch.server_challenge, a.nt.p, a.nt.len, sbk),
                     0);
    /* A changed timestamp in the echoed target info is caught. */
    {
        uint8_t ti[512];
        size_t l;
        memcpy(ti, ch.target_info.p, ch.target_info.len);
        for (l = 0; l + 4 <= ch.target_info.len; l += 4u + (ti[l + 2] | ti[l + 3] << 8))
            if (ti[l] == MSV_AV_TIMESTAMP)
                break;
        assert_true(l + 12 <= ch.target_info.len);
        ti[l + 4] ^= 1;
        assert_int_equal(ag_ntlmv2_check_av_echo(ti, ch.target_info.len, &a.v2), AG_EINVAL);
    }
}

/* --- the handshake's own checks: ag_ntlm_check, then the local verifier -- */

/* What one AUTHENTICATE of the flow below carries besides a valid response. */
struct e2e {
    bool mic;             /* MsvAvFlags MIC_PRESENT and a MIC */
    bool mic_wrong;       /* ... with one bit flipped */
    bool require_mic;     /* ntlm_require_mic */
    uint32_t extra_flags; /* flags the CHALLENGE did not offer */
    bool ti_altered;      /* a server AV pair changed in the echo */
    int cbt;              /* 0 none, 1 all-zero bindings, 2 non-zero bindings */
};

/* curl's NEGOTIATE through ag_ntlm_challenge (the daemon's leg 1), an
 * AUTHENTICATE for Domain\User / "Password" against that CHALLENGE, then
 * ag_ntlm_check and ag_ntlm_verify_local_blocking (leg 2) as the daemon
 * runs them. 0 when the user is let in; *reason says why not. */
static int e2e_run(const struct e2e *e, const char **reason)
{
    struct ag_ntlm_server ns = {.nb_domain = "DOMAIN",
                                .nb_computer = "PROXY",
                                .dns_domain = "domain.test",
                                .dns_computer = "proxy.domain.test",
                                .require_mic = e->require_mic};
    struct ag_ntlm_state *st = NULL;
    struct ag_ntlm_challenge ch;
    uint8_t chal[1024], av[1024], nt[1024], m[2048], h[16], key[16], esk[16];
    size_t cl, avl, ntl, n;
    assert_int_equal(ag_ntlm_challenge(curl_neg, sizeof curl_neg, &ns, 0x01d9000000000000ull, &st,
                                       chal, sizeof chal, &cl),
                     0);
    assert_int_equal(ag_ntlm_parse_challenge(st->chal, st->challen, &ch), 0);
    avl = ch.target_info.len - 4; /* without EOL */
    memcpy(av, ch.target_info.p, avl);
    if (e->ti_altered)
        av[4] ^= 1; /* the first pair's value */
    if (e->mic) {
        uint8_t fl[4];
        ag_put_u32le(fl, MSV_AV_FLAG_MIC_PRESENT);
        av_put(av, &avl, MSV_AV_FLAGS, fl, 4);
    }
    if (e->cbt) {
        uint8_t cb[16];
        memset(cb, e->cbt == 2 ? 0x5a : 0, sizeof cb);
        av_put(av, &avl, MSV_AV_CHANNEL_BINDINGS, cb, sizeof cb);
    }
    ntl = mknt(nt, 1, 1, av, avl, st->server_challenge);
    struct abuild b = std_build(nt, ntl);
    b.hdr = e->mic ? 88 : 64;
    b.flags = st->chal_flags | e->extra_flags;
    if (!e->mic)
        b.flags &= ~NTLMSSP_NEGOTIATE_VERSION;
    b.dom = (struct ag_ntlm_slice){(const uint8_t *)"Domain", 6};
    b.user = (struct ag_ntlm_slice){(const uint8_t *)"User", 4};
    b.wks = (struct ag_ntlm_slice){(const uint8_t *)"curlhost", 8};
    n = abuild(&b, m, sizeof m);
    if (e->mic) {
        /* ExportedSessionKey = SessionBaseKey (no KEY_EXCH): the MIC over
         * the NEGOTIATE and CHALLENGE as the state keeps them. */
        nt_hash_password(h);
        assert_int_equal(ag_ntowfv2(h, user16_v, 8, dom16_v, 12, key), 0);
        const uint8_t *kp[] = {nt};
        const size_t kl[] = {16};
        ag_hmac_md5(key, 16, kp, kl, 1, esk);
        const uint8_t *p[] = {st->neg, st->chal, m};
        const size_t l[] = {st->neglen, st->challen, n};
        ag_hmac_md5(esk, 16, p, l, 3, m + 72);
        if (e->mic_wrong)
            m[80] ^= 1;
    }
    struct ag_ntlm_verify *v = NULL;
    *reason = "";
    int rc = ag_ntlm_check(m, n, st, &ns, &v, reason);
    if (rc != 0)
        return rc;
    char err[128];
    static const char users[] = "User:a4f49c406510bdcab6824ee7c30fd852\n";
    struct ag_userfile *uf = ag_userfile_parse(users, strlen(users), "users", err, sizeof err);
    assert_non_null(uf);
    struct ag_identity id;
    memset(&id, 0, sizeof id);
    rc = ag_ntlm_verify_local_blocking(v, uf, &id, reason);
    if (rc == 0)
        assert_string_equal(id.user, "User");
    ag_identity_clear(&id);
    ag_ntlm_verify_free(v);
    ag_userfile_free(uf);
    return rc;
}

/* Each guard of leg 2 refuses its own defect, and only it (rows 60-65:
 * MIC wrong or required and absent, flags not offered, the server's AV
 * pairs altered, channel bindings on plain HTTP). */
static void test_check_and_verify_e2e(void **state)
{
    static const struct {
        struct e2e e;
        int rc;
        const char *reason;
    } rows[] = {
        {{0}, 0, NULL},
        {{.mic = true}, 0, NULL},
        {{.mic = true, .require_mic = true}, 0, NULL},
        {{.mic = true, .mic_wrong = true}, AG_EAUTH, "MIC mismatch"},
        {{.require_mic = true}, AG_EINVAL, "MIC required but absent"},
        {{.extra_flags = NTLMSSP_NEGOTIATE_DATAGRAM},
         AG_EINVAL,
         "AUTHENTICATE flags not offered in CHALLENGE"},
        {{.ti_altered = true}, AG_EINVAL, "server AV pairs missing or altered"},
        {{.cbt = 1}, 0, NULL},
        {{.cbt = 2}, AG_EINVAL, "channel bindings on plain HTTP"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const char *reason = "";
        int rc = e2e_run(&rows[i].e, &reason);
        if (rc != rows[i].rc)
            fail_msg("row %zu: rc %d (%s), want %d", i, rc, reason, rows[i].rc);
        if (rows[i].reason)
            assert_string_equal(reason, rows[i].reason);
    }
}

/* --- malformed AUTHENTICATE table (BAD-INPUTS.md 46-65) ------------------- */

#define MBUF 8192

static size_t m_none(uint8_t *m, size_t n)
{
    (void)m;
    return n;
}
static size_t m_bad_sig(uint8_t *m, size_t n)
{
    m[1] = 'X';
    return n;
}
static size_t m_type2(uint8_t *m, size_t n)
{
    m[8] = 2;
    return n;
}
static size_t m_type_unknown(uint8_t *m, size_t n)
{
    m[8] = 4;
    return n;
}
static size_t m_short_header(uint8_t *m, size_t n)
{
    (void)m;
    (void)n;
    return 63;
}
static size_t m_oversize(uint8_t *m, size_t n)
{
    memset(m + n, 0, AG_NTLM_MAX_DECODED + 1 - n);
    return AG_NTLM_MAX_DECODED + 1;
}
static size_t m_truncated(uint8_t *m, size_t n)
{
    (void)m;
    return n - 1; /* the session key now runs past the end */
}
static size_t m_user_past_end(uint8_t *m, size_t n)
{
    ag_put_u32le(m + 40, (uint32_t)n - 4);
    return n;
}
static size_t m_user_off_ffffffff(uint8_t *m, size_t n)
{
    ag_put_u32le(m + 40, 0xffffffffu);
    return n;
}
static size_t m_nt_off_overflow(uint8_t *m, size_t n)
{
    /* 0xffffffb0 + 0x54 wraps to 4 in 32-bit arithmetic. */
    ag_put_u32le(m + 24, 0xffffffb0u);
    return n;
}
static size_t m_dom_len_overflow(uint8_t *m, size_t n)
{
    ag_put_u16le(m + 28, 0xffff);
    return n;
}
static size_t m_user_in_header(uint8_t *m, size_t n)
{
    ag_put_u32le(m + 40, 0x30);
    return n;
}
static size_t m_user_in_version(uint8_t *m, size_t n)
{
    ag_put_u32le(m + 40, 64); /* VERSION is set: header is 72 */
    return n;
}
static size_t m_lm_at_zero(uint8_t *m, size_t n)
{
    ag_put_u32le(m + 16, 0);
    return n;
}
static size_t m_user_odd(uint8_t *m, size_t n)
{
    ag_put_u16le(m + 36, 7);
    return n;
}
static size_t m_user_nul(uint8_t *m, size_t n)
{
    m[0x54 + 2] = 0; /* "U\0" "\0\0" "e\0" "r\0" */
    return n;
}
static size_t m_user_cr(uint8_t *m, size_t n)
{
    m[0x54 + 2] = '\r';
    return n;
}
static size_t m_user_c1(uint8_t *m, size_t n)
{
    m[0x54 + 2] = 0x85; /* U+0085 NEL */
    return n;
}
static size_t m_user_high_surrogate(uint8_t *m, size_t n)
{
    m[0x54 + 6] = 0x00, m[0x54 + 7] = 0xd8; /* last unit U+D800, nothing after */
    return n;
}
static size_t m_user_high_then_ascii(uint8_t *m, size_t n)
{
    m[0x54 + 2] = 0x00, m[0x54 + 3] = 0xd8; /* U+D800 followed by 'e' */
    return n;
}
static size_t m_user_low_surrogate(uint8_t *m, size_t n)
{
    m[0x54 + 2] = 0x00, m[0x54 + 3] = 0xdc;
    return n;
}
static size_t m_dom_nul(uint8_t *m, size_t n)
{
    m[0x48] = 0;
    return n;
}
static size_t m_wks_odd(uint8_t *m, size_t n)
{
    ag_put_u16le(m + 44, 15);
    return n;
}
static size_t m_oem_with_utf16(uint8_t *m, size_t n)
{
    m[60] &= (uint8_t)~NTLMSSP_NEGOTIATE_UNICODE; /* UTF-16 bytes read as OEM hold NULs */
    return n;
}
static size_t m_anon_flag(uint8_t *m, size_t n)
{
    m[61] |= NTLMSSP_NEGOTIATE_ANONYMOUS >> 8;
    return n;
}
static size_t m_empty_nt(uint8_t *m, size_t n)
{
    ag_put_u16le(m + 20, 0); /* LM only */
    return n;
}
static size_t m_anonymous(uint8_t *m, size_t n)
{
    ag_put_u16le(m + 12, 0);
    ag_put_u16le(m + 20, 0);
    ag_put_u16le(m + 36, 0);
    m[61] |= NTLMSSP_NEGOTIATE_ANONYMOUS >> 8;
    return n;
}
static size_t m_empty_user(uint8_t *m, size_t n)
{
    ag_put_u16le(m + 36, 0);
    return n;
}
static size_t m_nt24(uint8_t *m, size_t n)
{
    ag_put_u16le(m + 20, 24);
    return n;
}
static size_t m_nt30(uint8_t *m, size_t n)
{
    ag_put_u16le(m + 20, 30);
    return n;
}
static size_t m_nt47(uint8_t *m, size_t n)
{
    ag_put_u16le(m + 20, 47);
    return n;
}
static size_t m_nt1(uint8_t *m, size_t n)
{
    ag_put_u16le(m + 20, 1);
    return n;
}
static size_t m_resptype2(uint8_t *m, size_t n)
{
    m[0x84 + 16] = 2;
    return n;
}
static size_t m_hiresptype2(uint8_t *m, size_t n)
{
    m[0x84 + 17] = 2;
    return n;
}
static size_t m_avlen_past_end(uint8_t *m, size_t n)
{
    ag_put_u16le(m + 0xb0 + 2, 0xff00);
    return n;
}
static size_t m_avlen_one_past(uint8_t *m, size_t n)
{
    /* The last pair before EOL claims 1 byte more than the blob holds. */
    ag_put_u16le(m + 0xc0 + 2, (uint16_t)(0xd8 - 0xc4 + 1));
    return n;
}
static size_t m_no_eol(uint8_t *m, size_t n)
{
    ag_put_u16le(m + 20, 76); /* NT response ends right before MsvAvEOL */
    return n;
}
static size_t m_eol_with_len(uint8_t *m, size_t n)
{
    ag_put_u16le(m + 0xd0 + 2, 4);
    return n;
}
static size_t m_av_altered(uint8_t *m, size_t n)
{
    m[0xb4] = 'E'; /* NbDomain "Domain" -> "Eomain" */
    return n;
}
static size_t m_ek15(uint8_t *m, size_t n)
{
    ag_put_u16le(m + 52, 15);
    return n;
}
static size_t m_ek0_keyexch(uint8_t *m, size_t n)
{
    ag_put_u16le(m + 52, 0);
    return n;
}
static size_t m_flag_lm_key(uint8_t *m, size_t n)
{
    m[60] |= NTLMSSP_NEGOTIATE_LM_KEY;
    return n;
}
static size_t m_flag_datagram(uint8_t *m, size_t n)
{
    m[60] |= NTLMSSP_NEGOTIATE_DATAGRAM;
    return n;
}
static size_t m_flag_identify(uint8_t *m, size_t n)
{
    m[62] |= NTLMSSP_NEGOTIATE_IDENTIFY >> 16;
    return n;
}
static size_t m_flag_non_nt(uint8_t *m, size_t n)
{
    m[62] |= NTLMSSP_REQUEST_NON_NT_SESSION_KEY >> 16;
    return n;
}
static size_t m_flag_informational(uint8_t *m, size_t n)
{
    /* Informational bits are not part of the subset check. */
    m[62] |= (NTLMSSP_TARGET_TYPE_DOMAIN | NTLMSSP_TARGET_TYPE_SERVER) >> 16;
    m[61] |= NTLMSSP_NEGOTIATE_OEM_WORKSTATION_SUPPLIED >> 8;
    return n;
}
static size_t m_proof_flipped(uint8_t *m, size_t n)
{
    m[0x84 + 3] ^= 1;
    return n;
}
static size_t m_blob_time_changed(uint8_t *m, size_t n)
{
    m[0x84 + 16 + 8] ^= 1;
    return n;
}
static size_t m_maxlen_ignored(uint8_t *m, size_t n)
{
    ag_put_u16le(m + 38, 0xffff); /* MaxLen is ignored */
    return n;
}
static size_t m_ek_off_ignored_keyexch_off(uint8_t *m, size_t n)
{
    m[63] &= (uint8_t) ~(NTLMSSP_NEGOTIATE_KEY_EXCH >> 24);
    put_fld(m, 52, 0, 0); /* empty session key field at offset 0, like curl */
    return n;
}

/* Builder-made messages (the input copy is replaced). */
static size_t build_with_av(uint8_t *m, const uint8_t *extra, size_t extralen)
{
    uint8_t av[1024], nt[1200];
    size_t avl = av_with(av, extra, extralen);
    size_t ntl = mknt(nt, 1, 1, av, avl, server_chal);
    struct abuild b = std_build(nt, ntl);
    return abuild(&b, m, MBUF);
}
static size_t m_b_valid_extra_pairs(uint8_t *m, size_t n)
{
    uint8_t extra[128], v8[8] = {0}, sh[48] = {0};
    size_t o = 0;
    (void)n;
    av_put(extra, &o, MSV_AV_TIMESTAMP, v8, 8);
    av_put(extra, &o, MSV_AV_SINGLE_HOST, sh, 48);
    av_put(extra, &o, 0x4242, NULL, 0); /* unknown id: skipped */
    return build_with_av(m, extra, o);
}
static size_t m_b_100_pairs(uint8_t *m, size_t n)
{
    uint8_t extra[1024];
    size_t o = 0;
    (void)n;
    for (int i = 0; i < 100; i++)
        av_put(extra, &o, 0x100, NULL, 0);
    return build_with_av(m, extra, o);
}
static size_t m_b_64_pairs(uint8_t *m, size_t n)
{
    uint8_t extra[1024];
    size_t o = 0;
    (void)n;
    for (int i = 0; i < AG_NTLM_MAX_AV_PAIRS - 2; i++) /* plus the 2 of v2_ti */
        av_put(extra, &o, 0x100, NULL, 0);
    return build_with_av(m, extra, o);
}
static size_t m_b_65_pairs(uint8_t *m, size_t n)
{
    uint8_t extra[1024];
    size_t o = 0;
    (void)n;
    for (int i = 0; i < AG_NTLM_MAX_AV_PAIRS - 1; i++)
        av_put(extra, &o, 0x100, NULL, 0);
    return build_with_av(m, extra, o);
}
static size_t m_b_dup_flags(uint8_t *m, size_t n)
{
    uint8_t extra[32], f[4] = {0};
    size_t o = 0;
    (void)n;
    av_put(extra, &o, MSV_AV_FLAGS, f, 4);
    av_put(extra, &o, MSV_AV_FLAGS, f, 4); /* harmless values: only the repeat is wrong */
    return build_with_av(m, extra, o);
}
static size_t m_b_flags_len3(uint8_t *m, size_t n)
{
    uint8_t extra[32], f[4] = {0};
    size_t o = 0;
    (void)n;
    av_put(extra, &o, MSV_AV_FLAGS, f, 3);
    return build_with_av(m, extra, o);
}
static size_t m_b_cb_len15(uint8_t *m, size_t n)
{
    uint8_t extra[32], cb[16] = {0};
    size_t o = 0;
    (void)n;
    av_put(extra, &o, MSV_AV_CHANNEL_BINDINGS, cb, 15);
    return build_with_av(m, extra, o);
}
static size_t m_b_target_odd(uint8_t *m, size_t n)
{
    uint8_t extra[32];
    size_t o = 0;
    (void)n;
    av_put(extra, &o, MSV_AV_TARGET_NAME, "H\0T\0T", 5);
    return build_with_av(m, extra, o);
}
static size_t m_b_ts_len4(uint8_t *m, size_t n)
{
    uint8_t extra[32], t[8] = {0};
    size_t o = 0;
    (void)n;
    av_put(extra, &o, MSV_AV_TIMESTAMP, t, 4);
    return build_with_av(m, extra, o);
}
static size_t m_b_missing_server_pair(uint8_t *m, size_t n)
{
    uint8_t av[64], nt[256];
    size_t o = 0, ntl;
    struct abuild b;
    (void)n;
    av_put(av, &o, MSV_AV_NB_DOMAIN_NAME, dom16_v, sizeof dom16_v); /* NbComputer dropped */
    av_put(av, &o, MSV_AV_EOL, NULL, 0);
    ntl = mknt(nt, 1, 1, av, o, server_chal);
    b = std_build(nt, ntl);
    return abuild(&b, m, MBUF);
}
static size_t m_b_resptype2_signed(uint8_t *m, size_t n)
{
    uint8_t nt[256];
    size_t ntl = mknt(nt, 2, 2, v2_ti, sizeof v2_ti, server_chal);
    struct abuild b = std_build(nt, ntl);
    (void)n;
    return abuild(&b, m, MBUF);
}
static size_t m_b_user(uint8_t *m, const uint8_t *u, size_t ul, bool unicode, bool is_domain)
{
    uint8_t nt[256];
    size_t ntl = mknt(nt, 1, 1, v2_ti, sizeof v2_ti, server_chal);
    struct abuild b = std_build(nt, ntl);
    if (is_domain)
        b.dom = (struct ag_ntlm_slice){u, ul};
    else
        b.user = (struct ag_ntlm_slice){u, ul};
    if (!unicode) {
        b.flags &= ~NTLMSSP_NEGOTIATE_UNICODE;
        if (!is_domain)
            b.dom = (struct ag_ntlm_slice){(const uint8_t *)"Domain", 6};
        else
            b.user = (struct ag_ntlm_slice){(const uint8_t *)"User", 4};
        b.wks = (struct ag_ntlm_slice){(const uint8_t *)"WKS", 3};
    }
    return abuild(&b, m, MBUF);
}
static size_t m_b_version_flag_payload_64(uint8_t *m, size_t n)
{
    uint8_t nt[256];
    size_t ntl = mknt(nt, 1, 1, v2_ti, sizeof v2_ti, server_chal);
    struct abuild b = std_build(nt, ntl);
    (void)n;
    b.hdr = 64; /* VERSION stays set: the Version field is missing */
    return abuild(&b, m, MBUF);
}
static size_t m_b_no_version_payload_64(uint8_t *m, size_t n)
{
    uint8_t nt[256];
    size_t ntl = mknt(nt, 1, 1, v2_ti, sizeof v2_ti, server_chal);
    struct abuild b = std_build(nt, ntl);
    (void)n;
    b.hdr = 64;
    b.flags &= ~NTLMSSP_NEGOTIATE_VERSION;
    return abuild(&b, m, MBUF);
}
static size_t m_b_oem_valid(uint8_t *m, size_t n)
{
    (void)n;
    return m_b_user(m, (const uint8_t *)"user", 4, false, false);
}
static size_t m_b_oem_non_ascii(uint8_t *m, size_t n)
{
    (void)n;
    return m_b_user(m, (const uint8_t *)"Us\xe9r", 4, false, false);
}
static size_t m_b_oem_user_256(uint8_t *m, size_t n)
{
    static uint8_t u[256];
    (void)n;
    memset(u, 'a', sizeof u);
    return m_b_user(m, u, sizeof u, false, false);
}
static size_t m_b_oem_user_255(uint8_t *m, size_t n)
{
    static uint8_t u[255];
    (void)n;
    memset(u, 'a', sizeof u);
    return m_b_user(m, u, sizeof u, false, false);
}
static size_t m_b_uni_user_256(uint8_t *m, size_t n)
{
    static uint8_t u[512];
    (void)n;
    for (size_t i = 0; i < 256; i++)
        ag_put_u16le(u + 2 * i, 'a');
    return m_b_user(m, u, sizeof u, true, false);
}
static size_t m_b_uni_user_255(uint8_t *m, size_t n)
{
    static uint8_t u[510];
    (void)n;
    for (size_t i = 0; i < 255; i++)
        ag_put_u16le(u + 2 * i, 'a');
    return m_b_user(m, u, sizeof u, true, false);
}
static size_t m_b_uni_user_86_euro(uint8_t *m, size_t n)
{
    /* 86 x U+20AC = 172 bytes of UTF-16 but 258 bytes of UTF-8. */
    static uint8_t u[172];
    (void)n;
    for (size_t i = 0; i < 86; i++)
        ag_put_u16le(u + 2 * i, 0x20ac);
    return m_b_user(m, u, sizeof u, true, false);
}
static size_t m_b_uni_dom_256(uint8_t *m, size_t n)
{
    static uint8_t d[512];
    (void)n;
    for (size_t i = 0; i < 256; i++)
        ag_put_u16le(d + 2 * i, 'D');
    return m_b_user(m, d, sizeof d, true, true);
}
static size_t m_b_uni_user_emoji(uint8_t *m, size_t n)
{
    static const uint8_t u[] = {'U', 0, 0x3d, 0xd8, 0x00, 0xde}; /* "U" U+1F600 */
    (void)n;
    return m_b_user(m, u, sizeof u, true, false);
}

struct bad_case {
    const char *name;
    int row; /* BAD-INPUTS.md row */
    size_t (*mut)(uint8_t *m, size_t n);
    int want;        /* result of the check pipeline ... */
    bool parse_only; /* ... or of ag_ntlm_parse_authenticate alone */
};

static const struct bad_case bad_cases[] = {
    {"4.2.4 unchanged", 0, m_none, 0, false},
    {"bad signature", 46, m_bad_sig, AG_EINVAL, false},
    {"type 2 from the client", 46, m_type2, AG_EINVAL, false},
    {"unknown type", 46, m_type_unknown, AG_EINVAL, false},
    {"shorter than the header", 47, m_short_header, AG_EINVAL, false},
    {"over AG_NTLM_MAX_DECODED", 31, m_oversize, AG_ELIMIT, false},
    {"truncated by one byte", 52, m_truncated, AG_EINVAL, false},
    {"user offset past the end", 52, m_user_past_end, AG_EINVAL, false},
    {"user offset 0xffffffff", 52, m_user_off_ffffffff, AG_EINVAL, false},
    {"NT offset+len wraps 32 bits", 52, m_nt_off_overflow, AG_EINVAL, false},
    {"domain length 0xffff", 52, m_dom_len_overflow, AG_EINVAL, false},
    {"user inside the fixed header", 53, m_user_in_header, AG_EINVAL, false},
    {"user inside the Version field", 53, m_user_in_version, AG_EINVAL, false},
    {"LM response at offset 0", 53, m_lm_at_zero, AG_EINVAL, false},
    {"odd-length UNICODE user", 54, m_user_odd, AG_EINVAL, false},
    {"embedded NUL in user", 54, m_user_nul, AG_EINVAL, false},
    {"CR in user", 67, m_user_cr, AG_EINVAL, false},
    {"C1 control in user", 67, m_user_c1, AG_EINVAL, false},
    {"unpaired high surrogate at end", 54, m_user_high_surrogate, AG_EINVAL, false},
    {"high surrogate then ASCII", 54, m_user_high_then_ascii, AG_EINVAL, false},
    {"lone low surrogate", 54, m_user_low_surrogate, AG_EINVAL, false},
    {"embedded NUL in domain", 54, m_dom_nul, AG_EINVAL, false},
    {"odd-length UNICODE workstation", 54, m_wks_odd, AG_EINVAL, false},
    {"UTF-16 bytes under OEM", 54, m_oem_with_utf16, AG_EINVAL, false},
    {"OEM non-ASCII user", 54, m_b_oem_non_ascii, AG_EINVAL, false},
    {"OEM user of 256 bytes", 55, m_b_oem_user_256, AG_ELIMIT, false},
    {"UNICODE user of 256 chars", 55, m_b_uni_user_256, AG_ELIMIT, false},
    {"UNICODE user of 258 UTF-8 bytes", 55, m_b_uni_user_86_euro, AG_ELIMIT, false},
    {"UNICODE domain of 256 chars", 55, m_b_uni_dom_256, AG_ELIMIT, false},
    {"OEM user of 255 bytes (wrong user)", 55, m_b_oem_user_255, AG_EAUTH, false},
    {"UNICODE user of 255 chars (wrong user)", 55, m_b_uni_user_255, AG_EAUTH, false},
    {"surrogate pair user (wrong user)", 54, m_b_uni_user_emoji, AG_EAUTH, false},
    {"ANONYMOUS flag", 56, m_anon_flag, AG_EUNSUPP, false},
    {"anonymous: empty user/NT/LM + flag", 56, m_anonymous, AG_EUNSUPP, false},
    {"empty user", 56, m_empty_user, AG_EUNSUPP, false},
    {"LM only (empty NT response)", 57, m_empty_nt, AG_EUNSUPP, false},
    {"24-byte NT response", 57, m_nt24, AG_EUNSUPP, false},
    {"30-byte NT response", 58, m_nt30, AG_EINVAL, false},
    {"47-byte NT response", 58, m_nt47, AG_EINVAL, false},
    {"1-byte NT response", 58, m_nt1, AG_EINVAL, false},
    {"RespType 2", 58, m_resptype2, AG_EINVAL, false},
    {"HiRespType 2", 58, m_hiresptype2, AG_EINVAL, false},
    {"RespType 2 with a matching proof", 58, m_b_resptype2_signed, AG_EINVAL, false},
    {"AvLen far past the end", 58, m_avlen_past_end, AG_EINVAL, false},
    {"AvLen one past the end", 58, m_avlen_one_past, AG_EINVAL, false},
    {"no MsvAvEOL", 58, m_no_eol, AG_EINVAL, false},
    {"MsvAvEOL with a length", 58, m_eol_with_len, AG_EINVAL, false},
    {"100 AV pairs", 58, m_b_100_pairs, AG_ELIMIT, false},
    {"AG_NTLM_MAX_AV_PAIRS + 1 pairs", 58, m_b_65_pairs, AG_ELIMIT, false},
    {"AG_NTLM_MAX_AV_PAIRS pairs", 58, m_b_64_pairs, 0, false},
    {"duplicate MsvAvFlags", 58, m_b_dup_flags, AG_EINVAL, false},
    {"MsvAvFlags of 3 bytes", 58, m_b_flags_len3, AG_EINVAL, false},
    {"MsvAvTimestamp of 4 bytes", 58, m_b_ts_len4, AG_EINVAL, false},
    {"MsvAvChannelBindings of 15 bytes", 63, m_b_cb_len15, AG_EINVAL, false},
    {"odd-length MsvAvTargetName", 62, m_b_target_odd, AG_EINVAL, false},
    {"extra client pairs accepted", 61, m_b_valid_extra_pairs, 0, false},
    {"NTProofStr altered", 59, m_proof_flipped, AG_EAUTH, false},
    {"blob altered", 59, m_blob_time_changed, AG_EAUTH, false},
    {"server AV pair altered", 61, m_av_altered, AG_EINVAL, false},
    {"server AV pair missing", 61, m_b_missing_server_pair, AG_EINVAL, false},
    {"KEY_EXCH with a 15-byte key", 64, m_ek15, AG_EINVAL, false},
    {"KEY_EXCH with no key", 64, m_ek0_keyexch, AG_EINVAL, false},
    {"KEY_EXCH with a 15-byte key (parser)", 64, m_ek15, AG_EINVAL, true},
    {"KEY_EXCH with no key (parser)", 64, m_ek0_keyexch, AG_EINVAL, true},
    {"VERSION flagged, payload at 64", 53, m_b_version_flag_payload_64, AG_EINVAL, false},
    {"no VERSION, payload at 64", 0, m_b_no_version_payload_64, 0, false},
    {"flags: LM_KEY not offered", 65, m_flag_lm_key, AG_EINVAL, false},
    {"flags: DATAGRAM not offered", 65, m_flag_datagram, AG_EINVAL, false},
    {"flags: IDENTIFY not offered", 65, m_flag_identify, AG_EINVAL, false},
    {"flags: NON_NT_SESSION_KEY not offered", 65, m_flag_non_nt, AG_EINVAL, false},
    {"flags: informational bits ignored", 65, m_flag_informational, 0, false},
    {"MaxLen ignored", 0, m_maxlen_ignored, 0, false},
    {"no KEY_EXCH, empty key at offset 0", 0, m_ek_off_ignored_keyexch_off, 0, false},
    {"OEM AUTHENTICATE verifies", 0, m_b_oem_valid, 0, false},
};

static void test_authenticate_bad_table(void **state)
{
    static uint8_t m[MBUF];
    (void)state;
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        struct ag_ntlm_auth a;
        size_t n;
        int rc;
        memset(m, 0, sizeof m);
        memcpy(m, v2_auth, sizeof v2_auth);
        n = bad_cases[i].mut(m, sizeof v2_auth);
        memset(&a, 0x5c, sizeof a);
        rc = bad_cases[i].parse_only ? ag_ntlm_parse_authenticate(m, n, &a) : pipeline(m, n, &a);
        if (rc != bad_cases[i].want)
            fail_msg("row %d \"%s\": got %d (%s), want %d", bad_cases[i].row, bad_cases[i].name, rc,
                     ag_strerror(rc), bad_cases[i].want);
    }
}

/* A failed parse leaves the output untouched. */
static void test_authenticate_no_partial_output(void **state)
{
    uint8_t m[sizeof v2_auth];
    struct ag_ntlm_auth a, before;
    (void)state;
    memcpy(m, v2_auth, sizeof m);
    m[0xd0 + 2] = 4; /* EOL with a length: fails in the blob walk */
    memset(&a, 0x5c, sizeof a);
    memcpy(&before, &a, sizeof a);
    assert_int_equal(ag_ntlm_parse_authenticate(m, sizeof m, &a), AG_EINVAL);
    assert_memory_equal(&a, &before, sizeof a);
    memcpy(m, v2_auth, sizeof m);
    m[0x54 + 2] = 0;
    assert_int_equal(ag_ntlm_parse_authenticate(m, sizeof m, &a), AG_EINVAL);
    assert_memory_equal(&a, &before, sizeof a);
}

/* Every truncation of the valid messages fails cleanly (ASan watches). */
static void test_truncations(void **state)
{
    (void)state;
    for (size_t n = 0; n < sizeof v2_auth; n++) {
        struct ag_ntlm_auth a;
        uint8_t *m = malloc(n ? n : 1);
        assert_non_null(m);
        memcpy(m, v2_auth, n);
        assert_true(ag_ntlm_parse_authenticate(m, n, &a) < 0);
        free(m);
    }
    for (size_t n = 0; n < sizeof cbt_auth; n++) {
        struct ag_ntlm_auth a;
        uint8_t *m = malloc(n ? n : 1);
        assert_non_null(m);
        memcpy(m, cbt_auth, n);
        assert_true(ag_ntlm_parse_authenticate(m, n, &a) < 0);
        free(m);
    }
    for (size_t n = 0; n < sizeof win_neg; n++) {
        struct ag_ntlm_negotiate ng;
        uint8_t *m = malloc(n ? n : 1);
        int rc;
        assert_non_null(m);
        memcpy(m, win_neg, n);
        rc = ag_ntlm_parse_negotiate(m, n, &ng);
        /* 16 and >= 32 parse (VERSION flagged but no room: no Version read). */
        if (n == 16 || n >= 32)
            assert_int_equal(rc, 0);
        else
            assert_true(rc < 0);
        free(m);
    }
    for (size_t n = 0; n < sizeof v2_chal; n++) {
        struct ag_ntlm_challenge ch;
        uint8_t *m = malloc(n ? n : 1);
        assert_non_null(m);
        memcpy(m, v2_chal, n);
        assert_true(ag_ntlm_parse_challenge(m, n, &ch) < 0);
        free(m);
    }
}

/* Non-ASCII names come out as UTF-8 and keep their UTF-16 form. */
static void test_authenticate_unicode_names(void **state)
{
    static const char *u8 = "J\xc3\xbcrgen\xe7\x94\xa8\xf0\x9f\x98\x80"; /* Jürgen用😀 */
    static const char *d8 = "\xd0\x94\xd0\xbe\xd0\xbc";                  /* Дом */
    uint8_t u16[64], d16[64], nt[256], m[1024];
    size_t ul, dl, ntl, n;
    struct ag_ntlm_auth a;
    struct abuild b;
    (void)state;
    assert_int_equal(ag_utf8_to_utf16le(u8, strlen(u8), u16, sizeof u16, &ul), 0);
    assert_int_equal(ag_utf8_to_utf16le(d8, strlen(d8), d16, sizeof d16, &dl), 0);
    ntl = mknt(nt, 1, 1, v2_ti, sizeof v2_ti, server_chal);
    b = std_build(nt, ntl);
    b.user = (struct ag_ntlm_slice){u16, ul};
    b.dom = (struct ag_ntlm_slice){d16, dl};
    n = abuild(&b, m, sizeof m);
    assert_int_equal(ag_ntlm_parse_authenticate(m, n, &a), 0);
    assert_string_equal(a.user, u8);
    assert_string_equal(a.domain, d8);
    assert_int_equal(a.user16_len, ul);
    assert_memory_equal(a.user16, u16, ul);
    assert_int_equal(a.domain16_len, dl);
    assert_memory_equal(a.domain16, d16, dl);
}

static void test_blob_parser_direct(void **state)
{
    struct ag_ntlmv2_blob b;
    const uint8_t *nt = v2_auth + 0x84;
    (void)state;
    assert_int_equal(ag_ntlmv2_parse_response(nt, 84, &b), 0);
    assert_int_equal(b.av_count, 2);
    assert_int_equal(ag_ntlmv2_parse_response(nt, 24, &b), AG_EUNSUPP);
    assert_int_equal(ag_ntlmv2_parse_response(nt, 0, &b), AG_EUNSUPP);
    assert_int_equal(ag_ntlmv2_parse_response(nt, 30, &b), AG_EINVAL);
    assert_int_equal(ag_ntlmv2_parse_response(nt, 76, &b), AG_EINVAL); /* no EOL */
    assert_int_equal(ag_ntlmv2_parse_response(nt, 80, &b), 0);         /* EOL, no padding */
    assert_int_equal(ag_ntlmv2_parse_response(NULL, 84, &b), AG_EINVAL);
    /* Echo check with a malformed "sent" list. */
    assert_int_equal(ag_ntlmv2_parse_response(nt, 84, &b), 0);
    assert_int_equal(ag_ntlmv2_check_av_echo(v2_ti, sizeof v2_ti - 4, &b), AG_EINVAL);
    assert_int_equal(ag_ntlmv2_check_av_echo(v2_ti, 4, &b), AG_EINVAL);
    assert_int_equal(ag_ntlmv2_check_av_echo(v2_ti + sizeof v2_ti - 4, 4, &b), 0); /* EOL only */
    assert_int_equal(ag_ntlm_flags_subset(0xe2888235, 0xe28a8233), 0);
    assert_int_equal(ag_ntlm_flags_subset(0xe2888235 | NTLMSSP_NEGOTIATE_KEY_EXCH, 0x00898206),
                     AG_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_md4_rfc1320),
        cmocka_unit_test(test_nt_hash),
        cmocka_unit_test(test_hmac_md5_rfc2202),
        cmocka_unit_test(test_utf8_to_utf16le),
        cmocka_unit_test(test_upcase16),
        cmocka_unit_test(test_ntowfv2),
        cmocka_unit_test(test_ntlmv2_values_4_2_4),
        cmocka_unit_test(test_message_type),
        cmocka_unit_test(test_negotiate_parse),
        cmocka_unit_test(test_challenge_build_curl),
        cmocka_unit_test(test_challenge_build_windows),
        cmocka_unit_test(test_challenge_build_errors),
        cmocka_unit_test(test_challenge_matches_vector),
        cmocka_unit_test(test_authenticate_4_2_4),
        cmocka_unit_test(test_verify_empty_domain_retry),
        cmocka_unit_test(test_authenticate_v1_refused),
        cmocka_unit_test(test_authenticate_v1_legacy_option),
        cmocka_unit_test(test_authenticate_cbt),
        cmocka_unit_test(test_mic),
        cmocka_unit_test(test_spns),
        cmocka_unit_test(test_curl_flow),
        cmocka_unit_test(test_check_and_verify_e2e),
        cmocka_unit_test(test_authenticate_bad_table),
        cmocka_unit_test(test_authenticate_no_partial_output),
        cmocka_unit_test(test_truncations),
        cmocka_unit_test(test_authenticate_unicode_names),
        cmocka_unit_test(test_blob_parser_direct),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
