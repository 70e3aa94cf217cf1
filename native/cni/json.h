/*
 * Just enough JSON for palisade-cni: a strict validator (RFC 8259, UTF-8, bounded depth) and, on
 * text it has validated, lookups that return spans of the original bytes (so prevResult can be
 * passed through exactly as received).
 */
#ifndef PALISADE_CNI_JSON_H
#define PALISADE_CNI_JSON_H

#include <stddef.h>

/** A slice of validated JSON text: one value, no surrounding whitespace. */
struct jspan {
	const char *p;
	size_t n;
};

enum jtype { J_INVALID, J_OBJECT, J_ARRAY, J_STRING, J_NUMBER, J_LITERAL };

/* Nesting deeper than this is refused (a CNI configuration is a handful of levels deep). */
#define JSON_MAX_DEPTH 64

/** 0 if p[0..n) is exactly one JSON value with optional whitespace around it, else -1 with *where
 * set to the offset of the first offending byte. */
int json_validate(const char *p, size_t n, size_t *where);

/** The value of validated text, without the whitespace around it. */
struct jspan json_root(const char *p, size_t n);

enum jtype json_type(struct jspan v);

/** In object `obj`: 1 and *out when `key` is there once, 0 when absent, -1 when it is there twice. */
int json_member(struct jspan obj, const char *key, struct jspan *out);

/** Iterate array `arr`: start with *pos = 0; 1 and *elem per element, then 0. */
int json_next(struct jspan arr, size_t *pos, struct jspan *elem);

/** Decode string value `v` into out (NUL-terminated). -1 if it is not a string, does not fit in
 * cap bytes, or holds a NUL or a lone surrogate; else its length. */
int json_string(struct jspan v, char *out, size_t cap);

/** A non-negative integer no larger than max: 0 and *out, else -1. */
int json_uint(struct jspan v, unsigned long max, unsigned long *out);

#endif
