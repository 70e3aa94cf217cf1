/*
 * Palisade's Node-API addon: a thin layer over libbpf and a few syscalls.
 * TypeScript (native/index.ts) validates every argument; C trusts them.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <bpf/libbpf.h>
#include "common.h"

#define LOG_CAP 8192
static char log_buf[LOG_CAP];
static size_t log_len;

static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list args)
{
	int n;

	if (level == LIBBPF_DEBUG)
		return 0;
	if (log_len >= LOG_CAP - 1) {
		/* keep the tail: the verifier's last lines say why */
		memmove(log_buf, log_buf + LOG_CAP / 2, LOG_CAP / 2);
		log_len -= LOG_CAP / 2;
	}
	n = vsnprintf(log_buf + log_len, LOG_CAP - log_len, fmt, args);
	if (n > 0)
		log_len += (size_t)n < LOG_CAP - log_len ? (size_t)n : LOG_CAP - log_len - 1;
	return 0;
}

const char *libbpf_last_log(void)
{
	log_buf[log_len] = '\0';
	return log_buf;
}

void libbpf_clear_log(void)
{
	log_len = 0;
	log_buf[0] = '\0';
}

napi_value throw_plain(napi_env env, const char *msg)
{
	napi_throw_error(env, NULL, msg);
	return NULL;
}

napi_value throw_errno(napi_env env, int err, const char *syscall, const char *path)
{
	char msg[512];
	const char *name = strerrorname_np(err);
	napi_value error, message, v;

	if (!name)
		name = "EUNKNOWN";
	if (path)
		snprintf(msg, sizeof(msg), "%s: %s, %s '%s'", name, strerror(err), syscall, path);
	else
		snprintf(msg, sizeof(msg), "%s: %s, %s", name, strerror(err), syscall);
	napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message);
	napi_create_error(env, NULL, message, &error);
	napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &v);
	napi_set_named_property(env, error, "code", v);
	napi_create_int32(env, -err, &v);
	napi_set_named_property(env, error, "errno", v);
	napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &v);
	napi_set_named_property(env, error, "syscall", v);
	if (path) {
		napi_create_string_utf8(env, path, NAPI_AUTO_LENGTH, &v);
		napi_set_named_property(env, error, "path", v);
	}
	if (log_len > 0) {
		napi_create_string_utf8(env, libbpf_last_log(), NAPI_AUTO_LENGTH, &v);
		napi_set_named_property(env, error, "log", v);
	}
	napi_throw(env, error);
	return NULL;
}

int arg_string(napi_env env, napi_value v, char *buf, size_t len)
{
	size_t got;

	if (napi_get_value_string_utf8(env, v, buf, len, &got) != napi_ok || got >= len - 1)
		return -1;
	return 0;
}

int arg_int32(napi_env env, napi_value v, int32_t *out)
{
	return napi_get_value_int32(env, v, out) == napi_ok ? 0 : -1;
}

int arg_buffer(napi_env env, napi_value v, void **data, size_t *len)
{
	return napi_get_buffer_info(env, v, data, len) == napi_ok ? 0 : -1;
}

napi_value make_int(napi_env env, int64_t v)
{
	napi_value out;

	napi_create_int64(env, v, &out);
	return out;
}

napi_value make_buffer_copy(napi_env env, const void *data, size_t len)
{
	napi_value out;
	void *dst;

	napi_create_buffer_copy(env, len, data, &dst, &out);
	return out;
}

static napi_value init(napi_env env, napi_value exports)
{
	libbpf_set_print(libbpf_print);
	register_bpf_ops(env, exports);
	register_sys_ops(env, exports);
	register_probe_ops(env, exports);
	register_pod_ops(env, exports);
	return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
