/* One request/response exchange with the agent over its CNI socket (protocol: protocol.h). */
#ifndef PALISADE_CNI_AGENT_SOCKET_H
#define PALISADE_CNI_AGENT_SOCKET_H

#include <stddef.h>

/**
 * Connect to `path`, send req[0..reqlen), half-close, read the answer into resp (at most cap - 1
 * bytes, NUL-terminated) until the agent closes. Everything, connect included, within timeout_ms.
 * 0 with *resplen on success; else -1 with a CNI error code in *code and a one-line reason in err.
 */
int agent_exchange(const char *path, unsigned long timeout_ms, const char *req, size_t reqlen, char *resp, size_t cap,
		   size_t *resplen, int *code, char *err, size_t errcap);

#endif
