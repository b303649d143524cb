/* derbuf.h - a small DER writer for the unit tests, to craft well-formed
 * and malformed messages that the production encoders would never make. */
#ifndef DERBUF_H
#define DERBUF_H

#include <string.h>

#include <check.h>

typedef struct {
    unsigned char b[80000];
    size_t n;
} buf;

static inline void
put(buf *o, const void *p, size_t n)
{
    ck_assert(o->n + n <= sizeof(o->b));
    memcpy(o->b + o->n, p, n);
    o->n += n;
}

/* Append tag, definite length and contents. */
static inline void
tlv(buf *o, unsigned char tag, const buf *c)
{
    unsigned char hdr[5];
    size_t h = 0;

    hdr[h++] = tag;
    if (c->n < 128) {
        hdr[h++] = (unsigned char)c->n;
    } else if (c->n < 256) {
        hdr[h++] = 0x81;
        hdr[h++] = (unsigned char)c->n;
    } else if (c->n < 65536) {
        hdr[h++] = 0x82;
        hdr[h++] = (unsigned char)(c->n >> 8);
        hdr[h++] = (unsigned char)c->n;
    } else {
        hdr[h++] = 0x83;
        hdr[h++] = (unsigned char)(c->n >> 16);
        hdr[h++] = (unsigned char)(c->n >> 8);
        hdr[h++] = (unsigned char)c->n;
    }
    put(o, hdr, h);
    put(o, c->b, c->n);
}

/* Append a minimal two's-complement INTEGER. */
static inline void
integer(buf *o, long long v)
{
    buf c = { .n = 0 };
    unsigned char bytes[8];
    int i;

    for (i = 0; i < 8; i++)
        bytes[i] = (unsigned char)(v >> (56 - 8 * i));
    /* Strip redundant leading bytes, keeping the sign. */
    i = 0;
    while (i < 7 && ((bytes[i] == 0 && !(bytes[i + 1] & 0x80)) ||
                     (bytes[i] == 0xff && (bytes[i + 1] & 0x80))))
        i++;
    put(&c, bytes + i, 8 - i);
    tlv(o, 0x02, &c);
}

#endif /* DERBUF_H */
