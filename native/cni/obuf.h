/* A bounded output buffer, with JSON string escaping, for what palisade-cni writes. */
#ifndef PALISADE_CNI_OBUF_H
#define PALISADE_CNI_OBUF_H

#include <stddef.h>

/** `full` is set (and stays set) once something did not fit; what fits is NUL-terminated. */
struct obuf {
	char *p;
	size_t len;
	size_t cap;
	int full;
};

void obuf_raw(struct obuf *b, const char *s, size_t n);
void obuf_cstr(struct obuf *b, const char *s);
/** Append s as a JSON string, quotes included (", \ and control characters escaped). */
void obuf_jstr(struct obuf *b, const char *s);

#endif
