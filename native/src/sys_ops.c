/* The few syscalls the agent needs that Node does not offer. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include "common.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

/*
 * netnsCookie(path) -> bigint. Enters the namespace on this thread only long
 * enough to create a socket there, returns to the original namespace, then asks
 * the socket for its namespace cookie (SO_NETNS_COOKIE, Linux 5.14+).
 */
static napi_value netns_cookie(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1], out;
	char path[4096];
	int target, self, sock, err = 0;
	const char *failed = NULL;
	uint64_t cookie = 0;
	socklen_t len = sizeof(cookie);

	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (arg_string(env, argv[0], path, sizeof(path)))
		return throw_plain(env, "netnsCookie: bad arguments");
	target = open(path, O_RDONLY | O_CLOEXEC);
	if (target < 0)
		return throw_errno(env, errno, "open", path);
	self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (self < 0) {
		err = errno;
		close(target);
		return throw_errno(env, err, "open", "/proc/thread-self/ns/net");
	}
	if (setns(target, CLONE_NEWNET) < 0) {
		err = errno;
		close(target);
		close(self);
		return throw_errno(env, err, "setns", path);
	}
	sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (sock < 0) {
		err = errno;
		failed = "socket";
	}
	if (setns(self, CLONE_NEWNET) < 0) {
		/* Cannot return to our own namespace: the process is no longer safe to run. */
		abort();
	}
	close(target);
	close(self);
	if (failed)
		return throw_errno(env, err, failed, path);
	if (getsockopt(sock, SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &len) < 0) {
		err = errno;
		close(sock);
		return throw_errno(env, err, "getsockopt(SO_NETNS_COOKIE)", path);
	}
	close(sock);
	napi_create_bigint_uint64(env, cookie, &out);
	return out;
}

/* mountBpffs(path): mount -t bpf bpf <path> with mode 0700. */
static napi_value mount_bpffs(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1];
	char path[4096];

	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (arg_string(env, argv[0], path, sizeof(path)))
		return throw_plain(env, "mountBpffs: bad arguments");
	if (mount("bpf", path, "bpf", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0700") < 0)
		return throw_errno(env, errno, "mount", path);
	return NULL;
}

/* openDir(path) -> fd (O_RDONLY|O_DIRECTORY), for cgroup attach targets. */
static napi_value open_dir(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1];
	char path[4096];
	int fd;

	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (arg_string(env, argv[0], path, sizeof(path)))
		return throw_plain(env, "openDir: bad arguments");
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return throw_errno(env, errno, "open", path);
	return make_int(env, fd);
}

/* closeFd(fd) */
static napi_value close_fd(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1];
	int32_t fd;

	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (arg_int32(env, argv[0], &fd))
		return throw_plain(env, "closeFd: bad arguments");
	if (close(fd) < 0)
		return throw_errno(env, errno, "close", NULL);
	return NULL;
}

/*
 * lockFile(path) -> fd holding an exclusive, non-blocking flock. The lock lives
 * as long as the fd (i.e. the process): a second agent for one node gets EWOULDBLOCK.
 */
static napi_value lock_file(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1];
	char path[4096];
	int fd, err;

	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (arg_string(env, argv[0], path, sizeof(path)))
		return throw_plain(env, "lockFile: bad arguments");
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return throw_errno(env, errno, "open", path);
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		err = errno;
		close(fd);
		return throw_errno(env, err, "flock", path);
	}
	return make_int(env, fd);
}

/*
 * mallocTrim() -> bool: glibc's malloc_trim(0), which hands the free pages inside malloc's heaps
 * back to the kernel (free() only returns the top of a heap). true when some were released;
 * false where the C library is not glibc.
 */
static napi_value malloc_trim_op(napi_env env, napi_callback_info info)
{
	napi_value out;
	int released = 0;

	(void)info;
#ifdef __GLIBC__
	released = malloc_trim(0);
#endif
	napi_get_boolean(env, released != 0, &out);
	return out;
}

void register_sys_ops(napi_env env, napi_value exports)
{
	napi_property_descriptor props[] = {
		{ "netnsCookie", NULL, netns_cookie, NULL, NULL, NULL, napi_default, NULL },
		{ "mountBpffs", NULL, mount_bpffs, NULL, NULL, NULL, napi_default, NULL },
		{ "openDir", NULL, open_dir, NULL, NULL, NULL, napi_default, NULL },
		{ "closeFd", NULL, close_fd, NULL, NULL, NULL, napi_default, NULL },
		{ "lockFile", NULL, lock_file, NULL, NULL, NULL, napi_default, NULL },
		{ "mallocTrim", NULL, malloc_trim_op, NULL, NULL, NULL, napi_default, NULL },
	};

	napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
}
