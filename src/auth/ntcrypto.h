/* ntcrypto.h - the NTLM crypto primitives: UTF-8 -> UTF-16LE, NT hash,
 * HMAC-MD5, NTOWFv2.
 *
 * Glossary: NT hash = NTOWFv1 = MD4(UTF16LE(password)); NTOWFv2 = the
 * NTLMv2 response key, HMAC_MD5(NT hash, UTF16LE(UPPER(user)) || UTF16LE(domain)).
 * MD4 and HMAC-MD5 come from nettle (OpenSSL 3 hides MD4 in its legacy
 * provider). Every function is pure: no globals but const tables, any
 * thread. Key-derived intermediates are wiped before returning; the caller
 * owns (and wipes) every output buffer.
 */
#ifndef AG_AUTH_NTCRYPTO_H
#define AG_AUTH_NTCRYPTO_H

#include <stddef.h>
#include <stdint.h>

/* Strict UTF-8 -> UTF-16LE (rejects overlongs, surrogates, > U+10FFFF,
 * truncated sequences, stray continuation bytes, 0xC0/0xC1/0xF5..0xFF).
 * U+0000 is valid UTF-8 and is converted; callers that forbid NUL check it.
 * out has outcap bytes (may be NULL when outcap is 0); *outlen gets the bytes
 * written. Returns 0, AG_EINVAL for bad UTF-8, AG_ELIMIT when out is too
 * small (a UTF-8 input of n bytes never needs more than 2n bytes). On error
 * out may hold partial output: the caller wipes it if it was secret. */
int ag_utf8_to_utf16le(const char *in, size_t inlen, uint8_t *out, size_t outcap, size_t *outlen);

/* NT hash = MD4(UTF16LE(password)) with nettle; password is UTF-8 of at most
 * AG_PASSWORD_MAX bytes (AG_ELIMIT beyond), AG_EINVAL for bad UTF-8. The
 * UTF-16 copy is wiped. out is written only on success. */
int ag_nt_hash(const char *password, size_t len, uint8_t out[16]);

/* HMAC-MD5 of the concatenation parts[0] || ... || parts[nparts-1] under key
 * (any length; nettle hashes keys longer than the block). A part may be NULL
 * when its length is 0. Cannot fail. */
void ag_hmac_md5(const uint8_t *key, size_t keylen, const uint8_t *const parts[],
                 const size_t lens[], size_t nparts, uint8_t out[16]);

/* NTOWFv2 = HMAC_MD5(nt_hash, UTF16LE(UPPER(user)) || UTF16LE(domain)).
 * user16/dom16 are UTF-16LE bytes exactly as received (borrowed; dom16 may
 * be NULL when dlen is 0). The domain is used as is (MS-NLMP: case preserved).
 *
 * Upper-casing rule (ag_ntlm_upcase16 below), per UTF-16 code unit, a simple
 * one-to-one mapping as Windows' RtlUpcaseUnicodeChar does for these ranges:
 *   - ASCII a-z;
 *   - Latin-1: U+00E0..U+00FE except U+00F7 (minus 0x20); U+00FF -> U+0178;
 *     U+00B5 (micro) -> U+039C; U+00DF (sharp s) unchanged (no simple upper);
 *   - Latin Extended-A U+0100..U+017E case pairs (U+0131 dotless i, U+0138,
 *     U+0149, U+017F unchanged);
 *   - Greek U+03B1..U+03C9 (minus 0x20; final sigma U+03C2 -> U+03A3),
 *     U+03AC..U+03AF and U+03CC..U+03CE accented vowels;
 *   - Cyrillic U+0430..U+044F (minus 0x20), U+0450..U+045F (minus 0x50).
 * Everything else, including surrogate halves, is left unchanged; a user
 * name outside these scripts that differs only in case may not verify.
 * Returns 0, or AG_EINVAL if ulen or dlen is odd. out is written only on
 * success. */
int ag_ntowfv2(const uint8_t nt_hash[16], const uint8_t *user16, size_t ulen, const uint8_t *dom16,
               size_t dlen, uint8_t out[16]);

/* The upper-casing of one UTF-16 code unit used by ag_ntowfv2 (rule above). */
uint16_t ag_ntlm_upcase16(uint16_t c);

#endif
