/* Shared by the addon's C files: argument helpers and the one error shape. */
#ifndef PALISADE_NATIVE_COMMON_H
#define PALISADE_NATIVE_COMMON_H

#include <node_api.h>
#include <stdint.h>
#include <stddef.h>

#define NAPI_CALL(env, call)                                                   \
	do {                                                                   \
		if ((call) != napi_ok) {                                       \
			throw_plain((env), "native call failed: " #call);      \
			return NULL;                                           \
		}                                                              \
	} while (0)

/* Throw an Error shaped like Node's errno errors: { code, errno, syscall, path? }. */
napi_value throw_errno(napi_env env, int err, const char *syscall, const char *path);
napi_value throw_plain(napi_env env, const char *msg);

/* Arguments are validated in TypeScript; these only unwrap. */
int arg_string(napi_env env, napi_value v, char *buf, size_t len);
int arg_int32(napi_env env, napi_value v, int32_t *out);
int arg_buffer(napi_env env, napi_value v, void **data, size_t *len);

napi_value make_int(napi_env env, int64_t v);
napi_value make_buffer_copy(napi_env env, const void *data, size_t len);

/* The last lines libbpf logged (verifier output), for error messages. */
const char *libbpf_last_log(void);
void libbpf_clear_log(void);

void register_bpf_ops(napi_env env, napi_value exports);
void register_sys_ops(napi_env env, napi_value exports);
void register_probe_ops(napi_env env, napi_value exports);
void register_pod_ops(napi_env env, napi_value exports);

#endif
