/* HMAC-SHA256 over a message given in pieces, from OpenSSL's libcrypto (EVP_MAC), as
 * lower-case hex. The webhook signature is HMAC("<timestamp>.<body>"): passing the pieces
 * avoids copying the body just to put the timestamp in front of it. */
#ifndef M2P_NOTIFY_HMAC_H
#define M2P_NOTIFY_HMAC_H

#include <stddef.h>

#define HMAC_SHA256_HEX_LEN 64

typedef struct hmac_piece {
    const void *data;
    size_t len;
} hmac_piece;

/* Writes the 64 hex digits and a NUL to `hex`. A zero-length key is allowed (RFC 2104).
 * Returns 0, or -1 when libcrypto fails (hex is then an empty string). */
int hmac_sha256_hex(const void *key, size_t key_len, const hmac_piece *pieces, size_t n_pieces,
                    char hex[HMAC_SHA256_HEX_LEN + 1]);

#endif
