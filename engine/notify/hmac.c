/* HMAC-SHA256 as hex (see hmac.h). OpenSSL 3's EVP_MAC interface: the HMAC_CTX functions
 * are deprecated there, and the one-shot HMAC() would need the message in one buffer. */
#include "notify/hmac.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

/* EVP_MAC_init() rejects a NULL key even when its length is 0; HMAC defines the empty key. */
static const unsigned char empty_key[1];

static int mac_pieces(EVP_MAC_CTX *ctx, const void *key, size_t key_len,
                      const hmac_piece *pieces, size_t n, unsigned char *md, size_t *md_len)
{
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_end(),
    };
    if (!EVP_MAC_init(ctx, key_len ? key : empty_key, key_len, params))
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (pieces[i].len && !EVP_MAC_update(ctx, pieces[i].data, pieces[i].len))
            return -1;
    }
    return EVP_MAC_final(ctx, md, md_len, EVP_MAX_MD_SIZE) ? 0 : -1;
}

int hmac_sha256_hex(const void *key, size_t key_len, const hmac_piece *pieces, size_t n_pieces,
                    char hex[HMAC_SHA256_HEX_LEN + 1])
{
    static const char digits[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    size_t md_len = 0;
    hex[0] = '\0';
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
    int rc = ctx ? mac_pieces(ctx, key, key_len, pieces, n_pieces, md, &md_len) : -1;
    EVP_MAC_CTX_free(ctx);  /* also wipes the key schedule it holds */
    EVP_MAC_free(mac);
    if (rc == 0 && md_len * 2 != HMAC_SHA256_HEX_LEN)
        rc = -1;
    if (rc == 0) {
        for (size_t i = 0; i < md_len; i++) {
            hex[2 * i] = digits[md[i] >> 4];
            hex[2 * i + 1] = digits[md[i] & 0x0f];
        }
        hex[HMAC_SHA256_HEX_LEN] = '\0';
    }
    return rc;
}
