/* JSON validation and span lookups for palisade-cni (see json.h). */
#include "json.h"

#include <string.h>

#include "utf8.h"

static size_t skip_ws(const char *p, size_t n, size_t i)
{
	while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r'))
		i++;
	return i;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int v_value(const char *p, size_t n, size_t *i, int depth);

static int v_string(const char *p, size_t n, size_t *i)
{
	size_t j = *i + 1;

	while (j < n) {
		unsigned char c = (unsigned char)p[j];
		if (c == '"') {
			*i = j + 1;
			return 0;
		}
		if (c < 0x20)
			break;
		if (c == '\\') {
			if (j + 1 >= n)
				break;
			char e = p[j + 1];
			if (e == 'u') {
				if (j + 5 >= n)
					break;
				for (size_t k = 2; k < 6; k++)
					if (hexval(p[j + k]) < 0) {
						*i = j + k;
						return -1;
					}
				j += 6;
			} else if (e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' || e == 'n' || e == 'r' || e == 't') {
				j += 2;
			} else {
				break;
			}
			continue;
		}
		if (c < 0x80) {
			j++;
			continue;
		}
		size_t k = utf8_seq((const unsigned char *)p + j, n - j);
		if (k == 0)
			break;
		j += k;
	}
	*i = j;
	return -1;
}

static int v_digits(const char *p, size_t n, size_t *i)
{
	size_t start = *i;

	while (*i < n && p[*i] >= '0' && p[*i] <= '9')
		(*i)++;
	return *i > start ? 0 : -1;
}

static int v_number(const char *p, size_t n, size_t *i)
{
	if (p[*i] == '-')
		(*i)++;
	if (*i < n && p[*i] == '0')
		(*i)++;
	else if (v_digits(p, n, i) < 0)
		return -1;
	if (*i < n && p[*i] == '.') {
		(*i)++;
		if (v_digits(p, n, i) < 0)
			return -1;
	}
	if (*i < n && (p[*i] == 'e' || p[*i] == 'E')) {
		(*i)++;
		if (*i < n && (p[*i] == '+' || p[*i] == '-'))
			(*i)++;
		if (v_digits(p, n, i) < 0)
			return -1;
	}
	return 0;
}

static int v_literal(const char *p, size_t n, size_t *i, const char *word)
{
	size_t len = strlen(word);

	if (n - *i < len || memcmp(p + *i, word, len) != 0)
		return -1;
	*i += len;
	return 0;
}

/* '{' or '[' at *i: members or elements separated by ',' up to the closing bracket. */
static int v_container(const char *p, size_t n, size_t *i, int depth)
{
	char close = p[*i] == '{' ? '}' : ']';
	int object = close == '}';

	if (depth >= JSON_MAX_DEPTH)
		return -1;
	*i = skip_ws(p, n, *i + 1);
	if (*i < n && p[*i] == close) {
		(*i)++;
		return 0;
	}
	for (;;) {
		if (object) {
			if (*i >= n || p[*i] != '"' || v_string(p, n, i) < 0)
				return -1;
			*i = skip_ws(p, n, *i);
			if (*i >= n || p[*i] != ':')
				return -1;
			*i = skip_ws(p, n, *i + 1);
		}
		if (v_value(p, n, i, depth + 1) < 0)
			return -1;
		*i = skip_ws(p, n, *i);
		if (*i < n && p[*i] == ',') {
			*i = skip_ws(p, n, *i + 1);
			continue;
		}
		if (*i < n && p[*i] == close) {
			(*i)++;
			return 0;
		}
		return -1;
	}
}

static int v_value(const char *p, size_t n, size_t *i, int depth)
{
	if (*i >= n)
		return -1;
	switch (p[*i]) {
	case '{':
	case '[':
		return v_container(p, n, i, depth);
	case '"':
		return v_string(p, n, i);
	case 't':
		return v_literal(p, n, i, "true");
	case 'f':
		return v_literal(p, n, i, "false");
	case 'n':
		return v_literal(p, n, i, "null");
	default:
		if (p[*i] == '-' || (p[*i] >= '0' && p[*i] <= '9'))
			return v_number(p, n, i);
		return -1;
	}
}

int json_validate(const char *p, size_t n, size_t *where)
{
	size_t i = skip_ws(p, n, 0);

	if (v_value(p, n, &i, 0) < 0) {
		*where = i;
		return -1;
	}
	i = skip_ws(p, n, i);
	if (i != n) {
		*where = i;
		return -1;
	}
	return 0;
}

struct jspan json_root(const char *p, size_t n)
{
	size_t start = skip_ws(p, n, 0), end = n;

	while (end > start && (p[end - 1] == ' ' || p[end - 1] == '\t' || p[end - 1] == '\n' || p[end - 1] == '\r'))
		end--;
	return (struct jspan){ p + start, end - start };
}

enum jtype json_type(struct jspan v)
{
	if (v.n == 0)
		return J_INVALID;
	switch (v.p[0]) {
	case '{':
		return J_OBJECT;
	case '[':
		return J_ARRAY;
	case '"':
		return J_STRING;
	case 't':
	case 'f':
	case 'n':
		return J_LITERAL;
	default:
		return J_NUMBER;
	}
}

/* End of the value starting at i, in validated text. */
static size_t skip_value(const char *p, size_t n, size_t i)
{
	if (i >= n)
		return n;
	if (p[i] == '"') {
		for (i++; i < n && p[i] != '"'; i++)
			if (p[i] == '\\')
				i++;
		return i < n ? i + 1 : n;
	}
	if (p[i] == '{' || p[i] == '[') {
		int depth = 0;
		while (i < n) {
			char c = p[i];
			if (c == '"') {
				i = skip_value(p, n, i);
				continue;
			}
			if (c == '{' || c == '[')
				depth++;
			else if (c == '}' || c == ']')
				depth--;
			i++;
			if (depth == 0)
				break;
		}
		return i;
	}
	while (i < n && p[i] != ',' && p[i] != '}' && p[i] != ']' && p[i] != ' ' && p[i] != '\t' && p[i] != '\n' && p[i] != '\r')
		i++;
	return i;
}

int json_member(struct jspan obj, const char *key, struct jspan *out)
{
	char name[128];
	int found = 0;
	size_t i;

	if (json_type(obj) != J_OBJECT)
		return 0;
	i = skip_ws(obj.p, obj.n, 1);
	while (i < obj.n && obj.p[i] == '"') {
		size_t kend = skip_value(obj.p, obj.n, i);
		int match = json_string((struct jspan){ obj.p + i, kend - i }, name, sizeof(name)) >= 0 && strcmp(name, key) == 0;
		i = skip_ws(obj.p, obj.n, kend);
		i = skip_ws(obj.p, obj.n, i + 1); /* ':' */
		size_t vend = skip_value(obj.p, obj.n, i);
		if (match) {
			if (found)
				return -1;
			found = 1;
			*out = (struct jspan){ obj.p + i, vend - i };
		}
		i = skip_ws(obj.p, obj.n, vend);
		if (i < obj.n && obj.p[i] == ',')
			i = skip_ws(obj.p, obj.n, i + 1);
	}
	return found;
}

int json_next(struct jspan arr, size_t *pos, struct jspan *elem)
{
	size_t i;

	if (json_type(arr) != J_ARRAY)
		return 0;
	i = skip_ws(arr.p, arr.n, *pos == 0 ? 1 : *pos);
	if (*pos != 0 && i < arr.n && arr.p[i] == ',')
		i = skip_ws(arr.p, arr.n, i + 1);
	if (i >= arr.n || arr.p[i] == ']')
		return 0;
	size_t end = skip_value(arr.p, arr.n, i);
	*elem = (struct jspan){ arr.p + i, end - i };
	*pos = end;
	return 1;
}

static unsigned hex4(const char *s)
{
	return (unsigned)(hexval(s[0]) << 12 | hexval(s[1]) << 8 | hexval(s[2]) << 4 | hexval(s[3]));
}

int json_string(struct jspan v, char *out, size_t cap)
{
	size_t o = 0;

	if (json_type(v) != J_STRING || v.n < 2 || cap == 0)
		return -1;
	for (size_t i = 1; i + 1 < v.n;) {
		char utf8[4];
		size_t len = 1;
		if (v.p[i] != '\\') {
			utf8[0] = v.p[i++];
		} else {
			char e = v.p[i + 1];
			i += 2;
			if (e != 'u') {
				utf8[0] = e == 'b' ? '\b' : e == 'f' ? '\f' : e == 'n' ? '\n' : e == 'r' ? '\r' : e == 't' ? '\t' : e;
			} else {
				unsigned cp = hex4(v.p + i);
				i += 4;
				if (cp >= 0xdc00 && cp <= 0xdfff)
					return -1; /* lone low surrogate */
				if (cp >= 0xd800 && cp <= 0xdbff) {
					if (i + 6 > v.n - 1 || v.p[i] != '\\' || v.p[i + 1] != 'u')
						return -1;
					unsigned low = hex4(v.p + i + 2);
					if (low < 0xdc00 || low > 0xdfff)
						return -1;
					cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
					i += 6;
				}
				if (cp == 0)
					return -1;
				if (cp < 0x80) {
					utf8[0] = (char)cp;
				} else if (cp < 0x800) {
					utf8[0] = (char)(0xc0 | cp >> 6);
					utf8[1] = (char)(0x80 | (cp & 0x3f));
					len = 2;
				} else if (cp < 0x10000) {
					utf8[0] = (char)(0xe0 | cp >> 12);
					utf8[1] = (char)(0x80 | (cp >> 6 & 0x3f));
					utf8[2] = (char)(0x80 | (cp & 0x3f));
					len = 3;
				} else {
					utf8[0] = (char)(0xf0 | cp >> 18);
					utf8[1] = (char)(0x80 | (cp >> 12 & 0x3f));
					utf8[2] = (char)(0x80 | (cp >> 6 & 0x3f));
					utf8[3] = (char)(0x80 | (cp & 0x3f));
					len = 4;
				}
			}
		}
		if (o + len >= cap)
			return -1;
		memcpy(out + o, utf8, len);
		o += len;
	}
	out[o] = '\0';
	return (int)o;
}

int json_uint(struct jspan v, unsigned long max, unsigned long *out)
{
	unsigned long x = 0;

	if (v.n == 0 || v.n > 10 || (v.n > 1 && v.p[0] == '0'))
		return -1;
	for (size_t i = 0; i < v.n; i++) {
		if (v.p[i] < '0' || v.p[i] > '9')
			return -1;
		x = x * 10 + (unsigned long)(v.p[i] - '0');
	}
	if (x > max)
		return -1;
	*out = x;
	return 0;
}
