/* A bounded output buffer for palisade-cni (see obuf.h). */
#include "obuf.h"

#include <string.h>

void obuf_raw(struct obuf *b, const char *s, size_t n)
{
	if (b->full || b->cap - b->len <= n) {
		b->full = 1;
		return;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void obuf_cstr(struct obuf *b, const char *s)
{
	obuf_raw(b, s, strlen(s));
}

void obuf_jstr(struct obuf *b, const char *s)
{
	static const char hex[] = "0123456789abcdef";

	obuf_raw(b, "\"", 1);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			char esc[2] = { '\\', (char)c };
			obuf_raw(b, esc, 2);
		} else if (c < 0x20 || c == 0x7f) {
			char esc[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
			obuf_raw(b, esc, 6);
		} else {
			obuf_raw(b, (const char *)&c, 1);
		}
	}
	obuf_raw(b, "\"", 1);
}
