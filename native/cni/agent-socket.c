/* The agent's CNI socket, client side: non-blocking I/O under one deadline (agent-socket.h). */
#define _GNU_SOURCE
#include "agent-socket.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "protocol.h"

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait for `events` on fd until the deadline: 1 ready, 0 timed out, -1 error. */
static int wait_for(int fd, short events, long long deadline)
{
	for (;;) {
		long long left = deadline - now_ms();
		if (left <= 0)
			return 0;
		struct pollfd pfd = { .fd = fd, .events = events };
		int r = poll(&pfd, 1, (int)left);
		if (r > 0)
			return 1;
		if (r == 0)
			return 0;
		if (errno != EINTR)
			return -1;
	}
}

static int fail(int *code, int value, char *err, size_t errcap, const char *what, const char *path, int e)
{
	*code = value;
	if (e != 0)
		snprintf(err, errcap, "%s %s: %s", what, path, strerror(e));
	else
		snprintf(err, errcap, "%s", what);
	return -1;
}

static int connect_until(int fd, const char *path, long long deadline, int *code, char *err, size_t errcap)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };

	memcpy(addr.sun_path, path, strlen(path) + 1); /* length checked by the caller */
	for (;;) {
		if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0)
			return 0;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN) { /* the agent's backlog is full: wait a little, within the deadline */
			if (now_ms() >= deadline)
				return fail(code, PCNI_ERR_TRY_AGAIN_LATER, err, errcap, "the palisade agent is too busy to accept (backlog full) on", path, ETIMEDOUT);
			struct timespec pause = { 0, 5 * 1000 * 1000 };
			nanosleep(&pause, NULL);
			continue;
		}
		if (errno == ENOENT || errno == ECONNREFUSED)
			return fail(code, PCNI_ERR_TRY_AGAIN_LATER, err, errcap, "the palisade agent is not running: nothing listens on", path, errno);
		return fail(code, PCNI_ERR_TRY_AGAIN_LATER, err, errcap, "cannot connect to the palisade agent at", path, errno);
	}
}

int agent_exchange(const char *path, unsigned long timeout_ms, const char *req, size_t reqlen, char *resp, size_t cap,
		   size_t *resplen, int *code, char *err, size_t errcap)
{
	long long deadline = now_ms() + (long long)timeout_ms;
	char timeout_msg[96];
	size_t sent = 0, got = 0;
	int fd, rc = -1;

	snprintf(timeout_msg, sizeof(timeout_msg), "the palisade agent did not answer within %lu ms", timeout_ms);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return fail(code, PCNI_ERR_IO_FAILURE, err, errcap, "cannot create a socket for", path, errno);
	if (connect_until(fd, path, deadline, code, err, errcap) < 0)
		goto out;
	/* Send the request. A peer that stops reading (it refused us early) still gets its answer read. */
	while (sent < reqlen) {
		ssize_t w = send(fd, req + sent, reqlen - sent, MSG_NOSIGNAL);
		if (w > 0) {
			sent += (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN) {
			int r = wait_for(fd, POLLOUT, deadline);
			if (r == 0) {
				fail(code, PCNI_ERR_TRY_AGAIN_LATER, err, errcap, timeout_msg, path, 0);
				goto out;
			}
			if (r > 0)
				continue;
		}
		break; /* EPIPE, ECONNRESET: read whatever the agent said */
	}
	shutdown(fd, SHUT_WR);
	for (;;) {
		if (got + 1 >= cap) {
			fail(code, PCNI_ERR_PROTOCOL, err, errcap, "the palisade agent's answer is too large", path, 0);
			goto out;
		}
		ssize_t r = recv(fd, resp + got, cap - 1 - got, 0);
		if (r > 0) {
			got += (size_t)r;
			continue;
		}
		if (r == 0)
			break;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN) {
			int w = wait_for(fd, POLLIN, deadline);
			if (w > 0)
				continue;
			if (w == 0) {
				fail(code, PCNI_ERR_TRY_AGAIN_LATER, err, errcap, timeout_msg, path, 0);
				goto out;
			}
		}
		if (got > 0)
			break; /* a reset after a complete answer */
		fail(code, PCNI_ERR_TRY_AGAIN_LATER, err, errcap, "lost the connection to the palisade agent at", path, errno);
		goto out;
	}
	if (got == 0) {
		fail(code, PCNI_ERR_TRY_AGAIN_LATER, err, errcap, "the palisade agent closed the connection without answering", path, 0);
		goto out;
	}
	resp[got] = '\0';
	*resplen = got;
	rc = 0;
out:
	close(fd);
	return rc;
}
