/* UTF-8 checks (RFC 3629): no overlong forms, no surrogates, nothing past U+10FFFF. */
#ifndef PALISADE_CNI_UTF8_H
#define PALISADE_CNI_UTF8_H

#include <stddef.h>

/** Length of the well-formed sequence starting at s[0] (a byte >= 0x80) within n bytes, or 0. */
size_t utf8_seq(const unsigned char *s, size_t n);

/** 1 if s[0..n) is well-formed UTF-8. */
int utf8_valid(const char *s, size_t n);

#endif
