/*
 * palisade-cni: a chained CNI plugin (CNI spec 1.0.0: ADD, DEL, CHECK, VERSION) that puts each
 * pod sandbox into the Palisade mesh. It runs after the plugins that give the pod its network,
 * sends {container id, CNI_NETNS, K8S_POD_NAMESPACE/NAME/UID, CNI_IFNAME, prevResult} to the node
 * agent's Unix socket (protocol: agent/cni/protocol.ts) and returns only once the agent says the
 * pod is enrolled, passing prevResult through unchanged. A pod never starts outside the mesh: ADD
 * fails (CNI code 11) when the agent is not there or does not answer within `timeoutMs`. Pods of
 * `excludeNamespaces` (the agent's own among them) pass without asking the agent. DEL never fails:
 * what the agent misses it reconciles later. Every bad input is one CNI error, one line on stdout.
 *
 * Plugin configuration (besides the standard cniVersion, name, type, prevResult):
 *   "agentSocket": "/run/palisade/cni.sock"   the agent's CNI socket
 *   "timeoutMs": 3000                         the whole exchange with the agent, connect included
 *   "excludeNamespaces": ["palisade-system"]  pods that are never enrolled
 *
 * The C stays small: it checks what it must act on (the environment, the JSON shape of stdin, the
 * fields above) and forwards the rest verbatim; the agent validates everything it receives.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent-socket.h"
#include "json.h"
#include "obuf.h"
#include "protocol.h"
#include "utf8.h"

static const char *const cni_versions[] = { PCNI_CNI_VERSIONS };
#define N_VERSIONS (sizeof(cni_versions) / sizeof(cni_versions[0]))

/* A message of PCNI_MAX_MESSAGE_CHARS characters in UTF-8 (at most 4 bytes each), and its JSON
 * form (at most 6 bytes per byte, \u00XX). */
#define MESSAGE_BYTES (PCNI_MAX_MESSAGE_CHARS * 4)
#define MESSAGE_LINE_BYTES (MESSAGE_BYTES * 6 + 128)

/* Longest K8S_POD_* values: a namespace is a DNS label, a name a DNS subdomain, a UID a UUID. */
#define NAMESPACE_MAX 63
#define NAME_MAX_LEN 253
#define UID_MAX 36
#define CONTAINER_ID_MAX 256
#define IFNAME_MAX 15
#define NETNS_MAX 4096
#define CNI_ARGS_MAX 8192
#define EXCLUDED_MAX 256

struct pod {
	char namespace[NAMESPACE_MAX + 1];
	char name[NAME_MAX_LEN + 1];
	char uid[UID_MAX + 1];
};

struct config {
	struct jspan version; /* the raw JSON strings, forwarded as they are */
	struct jspan name;
	char socket[sizeof(((struct sockaddr_un *)0)->sun_path)];
	unsigned long timeout_ms;
	struct jspan exclude; /* array, or n == 0 */
	struct jspan prev;    /* object, or n == 0 */
};

static char stdin_buf[PCNI_MAX_CONFIG_BYTES + 1];
static char request_buf[PCNI_MAX_REQUEST_BYTES];
static char response_buf[PCNI_MAX_RESPONSE_BYTES + 1];
/* The version errors are reported in: the configuration's, once it is known to be a supported one. */
static const char *error_version = "1.0.0";
static int is_del;

static int write_all(int fd, const char *s, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, s, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Cut s back to a whole UTF-8 sequence (vsnprintf may have cut one in half). */
static void trim_partial_utf8(char *s)
{
	size_t n = strlen(s);

	while (n > 0 && !utf8_valid(s, n))
		s[--n] = '\0';
}

/* The one error line (`{"cniVersion","code","msg"}`) and exit 1; on DEL a note on stderr and exit 0. */
__attribute__((noreturn, format(printf, 2, 3))) static void die(int code, const char *fmt, ...)
{
	static char msg[MESSAGE_BYTES + 1], line[MESSAGE_LINE_BYTES];
	struct obuf out = { line, 0, sizeof(line), 0 };
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	trim_partial_utf8(msg);
	if (is_del) {
		fprintf(stderr, "palisade-cni: DEL: %s (DEL succeeds anyway; the agent reconciles)\n", msg);
		exit(0);
	}
	char num[32];
	snprintf(num, sizeof(num), ",\"code\":%d,\"msg\":", code);
	obuf_cstr(&out, "{\"cniVersion\":");
	obuf_jstr(&out, error_version);
	obuf_cstr(&out, num);
	obuf_jstr(&out, msg);
	obuf_cstr(&out, "}\n");
	write_all(1, out.p, out.len);
	exit(1);
}

static size_t read_stdin(void)
{
	size_t got = 0;

	for (;;) {
		ssize_t r = read(0, stdin_buf + got, sizeof(stdin_buf) - got);
		if (r == 0)
			return got;
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			die(PCNI_ERR_IO_FAILURE, "cannot read the network configuration from stdin: %s", strerror(errno));
		got += (size_t)r;
		if (got == sizeof(stdin_buf))
			die(PCNI_ERR_DECODE_FAILED, "network configuration on stdin is larger than %d bytes", PCNI_MAX_CONFIG_BYTES);
	}
}

/* A member of the configuration; dies on a duplicate or on the wrong JSON type. */
static int member(struct jspan obj, const char *where, const char *key, enum jtype type, struct jspan *out)
{
	static const char *const names[] = { "", "an object", "a list", "a string", "a number", "a literal" };
	int r = json_member(obj, key, out);

	if (r < 0)
		die(PCNI_ERR_INVALID_CONFIG, "%s\"%s\" is given twice", where, key);
	if (r > 0 && json_type(*out) != type)
		die(PCNI_ERR_INVALID_CONFIG, "%s\"%s\" must be %s", where, key, names[type]);
	return r;
}

static void read_config(struct config *c, int need_prev)
{
	size_t n = read_stdin(), where = 0;
	struct jspan root, v;
	char text[sizeof(c->socket)];

	if (n == 0)
		die(PCNI_ERR_DECODE_FAILED, "no network configuration on stdin");
	if (json_validate(stdin_buf, n, &where) < 0)
		die(PCNI_ERR_DECODE_FAILED, "network configuration on stdin is not valid JSON (at byte %zu)", where);
	root = json_root(stdin_buf, n);
	if (json_type(root) != J_OBJECT)
		die(PCNI_ERR_INVALID_CONFIG, "network configuration must be a JSON object");

	if (!member(root, "", "cniVersion", J_STRING, &c->version))
		die(PCNI_ERR_INVALID_CONFIG, "network configuration has no \"cniVersion\"");
	char version[16];
	size_t i;
	if (json_string(c->version, version, sizeof(version)) < 0)
		version[0] = '\0';
	for (i = 0; i < N_VERSIONS && strcmp(version, cni_versions[i]) != 0; i++)
		;
	if (i == N_VERSIONS)
		die(PCNI_ERR_INCOMPATIBLE_VERSION, "cniVersion \"%.15s\" is not supported (palisade-cni speaks 0.3.0, 0.3.1, 0.4.0, 1.0.0)", version);
	error_version = cni_versions[i];

	if (!member(root, "", "name", J_STRING, &c->name) || c->name.n <= 2)
		die(PCNI_ERR_INVALID_CONFIG, "network configuration has no \"name\"");

	strcpy(c->socket, PCNI_DEFAULT_SOCKET);
	if (member(root, "", "agentSocket", J_STRING, &v)) {
		if (json_string(v, text, sizeof(text)) <= 0 || text[0] != '/')
			die(PCNI_ERR_INVALID_CONFIG, "\"agentSocket\" must be an absolute path shorter than %zu bytes", sizeof(text));
		strcpy(c->socket, text);
	}
	c->timeout_ms = PCNI_DEFAULT_TIMEOUT_MS;
	if (member(root, "", "timeoutMs", J_NUMBER, &v) && (json_uint(v, 60000, &c->timeout_ms) < 0 || c->timeout_ms == 0))
		die(PCNI_ERR_INVALID_CONFIG, "\"timeoutMs\" must be a whole number of milliseconds from 1 to 60000");

	c->exclude.n = 0;
	if (member(root, "", "excludeNamespaces", J_ARRAY, &c->exclude)) {
		size_t pos = 0, count = 0;
		char ns[NAMESPACE_MAX + 1];
		while (json_next(c->exclude, &pos, &v))
			if (++count > EXCLUDED_MAX || json_string(v, ns, sizeof(ns)) <= 0)
				die(PCNI_ERR_INVALID_CONFIG, "\"excludeNamespaces\" must be a list of at most %d namespace names", EXCLUDED_MAX);
	}

	c->prev.n = 0;
	if (!member(root, "", "prevResult", J_OBJECT, &c->prev) && need_prev)
		die(PCNI_ERR_INVALID_CONFIG,
		    "no prevResult: palisade-cni is a chained plugin and must come after the plugin that gives the pod its address");
}

/* CNI_ARGS "K=V;K=V": the K8S_POD_* values (each at most once); every pair must be K=V. */
static void read_pod(struct pod *pod)
{
	const char *args = getenv("CNI_ARGS");
	char copy[CNI_ARGS_MAX + 1];
	static const struct {
		const char *key;
		size_t off, cap;
	} keys[] = {
		{ "K8S_POD_NAMESPACE", offsetof(struct pod, namespace), sizeof(pod->namespace) },
		{ "K8S_POD_NAME", offsetof(struct pod, name), sizeof(pod->name) },
		{ "K8S_POD_UID", offsetof(struct pod, uid), sizeof(pod->uid) },
	};
	int seen[3] = { 0 };

	memset(pod, 0, sizeof(*pod));
	if (args == NULL || args[0] == '\0')
		return;
	if (strlen(args) > CNI_ARGS_MAX)
		die(PCNI_ERR_INVALID_ENVIRONMENT, "CNI_ARGS is longer than %d bytes", CNI_ARGS_MAX);
	if (!utf8_valid(args, strlen(args)))
		die(PCNI_ERR_INVALID_ENVIRONMENT, "CNI_ARGS is not UTF-8");
	strcpy(copy, args);
	for (char *pair = copy, *next; pair != NULL; pair = next) {
		next = strchr(pair, ';');
		if (next != NULL)
			*next++ = '\0';
		char *eq = strchr(pair, '=');
		if (eq == NULL || eq == pair || strchr(eq + 1, '=') != NULL)
			die(PCNI_ERR_INVALID_ENVIRONMENT, "CNI_ARGS: \"%.64s\" is not KEY=VALUE", pair);
		*eq = '\0';
		for (size_t k = 0; k < 3; k++) {
			if (strcmp(pair, keys[k].key) != 0)
				continue;
			if (seen[k]++)
				die(PCNI_ERR_INVALID_ENVIRONMENT, "CNI_ARGS: %s is given twice", keys[k].key);
			if (strlen(eq + 1) >= keys[k].cap)
				die(PCNI_ERR_INVALID_ENVIRONMENT, "CNI_ARGS: %s is longer than %zu characters", keys[k].key, keys[k].cap - 1);
			strcpy((char *)pod + keys[k].off, eq + 1);
		}
	}
}

/* An environment variable, checked: required or "" when absent, at most max bytes, UTF-8. */
static const char *env(const char *name, int required, size_t max)
{
	const char *v = getenv(name);

	if (v == NULL || v[0] == '\0') {
		if (required)
			die(PCNI_ERR_INVALID_ENVIRONMENT, "%s is not set", name);
		return "";
	}
	if (strlen(v) > max || !utf8_valid(v, strlen(v)))
		die(PCNI_ERR_INVALID_ENVIRONMENT, "%s is longer than %zu bytes or not UTF-8", name, max);
	return v;
}

static int excluded(const struct config *c, const char *namespace)
{
	struct jspan v;
	size_t pos = 0;
	char ns[NAMESPACE_MAX + 1];

	while (namespace[0] != '\0' && json_next(c->exclude, &pos, &v))
		if (json_string(v, ns, sizeof(ns)) > 0 && strcmp(ns, namespace) == 0)
			return 1;
	return 0;
}

/* ADD/CHECK: prevResult must list at least one address (the agent checks which are the pod's). */
static void require_ips(const struct config *c)
{
	struct jspan ips, first;
	size_t pos = 0;

	if (!member(c->prev, "prevResult ", "ips", J_ARRAY, &ips) || !json_next(ips, &pos, &first))
		die(PCNI_ERR_INVALID_CONFIG,
		    "prevResult has no \"ips\": palisade-cni must come after the plugin that assigns the pod its address");
}

static size_t build_request(const char *command, const struct config *c, const char *container, const char *netns,
			    const char *ifname, const struct pod *pod)
{
	struct obuf b = { request_buf, 0, sizeof(request_buf), 0 };
	char version[8];

	snprintf(version, sizeof(version), "%d", PCNI_PROTOCOL_VERSION);
	obuf_cstr(&b, "{\"palisadeCni\":");
	obuf_cstr(&b, version);
	obuf_cstr(&b, ",\"command\":");
	obuf_jstr(&b, command);
	obuf_cstr(&b, ",\"cniVersion\":");
	obuf_raw(&b, c->version.p, c->version.n);
	obuf_cstr(&b, ",\"network\":");
	obuf_raw(&b, c->name.p, c->name.n);
	obuf_cstr(&b, ",\"containerId\":");
	obuf_jstr(&b, container);
	obuf_cstr(&b, ",\"netns\":");
	obuf_jstr(&b, netns);
	obuf_cstr(&b, ",\"ifName\":");
	obuf_jstr(&b, ifname);
	obuf_cstr(&b, ",\"pod\":{\"namespace\":");
	obuf_jstr(&b, pod->namespace);
	obuf_cstr(&b, ",\"name\":");
	obuf_jstr(&b, pod->name);
	obuf_cstr(&b, ",\"uid\":");
	obuf_jstr(&b, pod->uid);
	obuf_cstr(&b, "}");
	if (c->prev.n > 0) {
		obuf_cstr(&b, ",\"prevResult\":");
		obuf_raw(&b, c->prev.p, c->prev.n);
	}
	obuf_cstr(&b, "}");
	if (b.full)
		die(PCNI_ERR_INVALID_CONFIG, "the request for the agent would be larger than %d bytes", PCNI_MAX_REQUEST_BYTES);
	return b.len;
}

/* Ask the agent; returns only if it said ok (else dies with its code and message). */
static void ask_agent(const struct config *c, const char *request, size_t len)
{
	char err[PCNI_MAX_MESSAGE_CHARS], msg[MESSAGE_BYTES + 1];
	size_t got = 0, where;
	int code = 0;
	struct jspan root, v;
	unsigned long answer_code;

	if (agent_exchange(c->socket, c->timeout_ms, request, len, response_buf, sizeof(response_buf), &got, &code, err,
			   sizeof(err)) < 0)
		die(code, "%s", err);
	if (json_validate(response_buf, got, &where) < 0 || json_type(root = json_root(response_buf, got)) != J_OBJECT)
		die(PCNI_ERR_PROTOCOL, "the palisade agent's answer is not a JSON object");
	if (json_member(root, "ok", &v) == 1 && v.n == 4 && memcmp(v.p, "true", 4) == 0)
		return;
	if (json_member(root, "ok", &v) != 1 || v.n != 5 || memcmp(v.p, "false", 5) != 0 || json_member(root, "code", &v) != 1 ||
	    json_uint(v, 999, &answer_code) < 0 || answer_code == 0 || json_member(root, "msg", &v) != 1 ||
	    json_string(v, msg, sizeof(msg)) < 0)
		die(PCNI_ERR_PROTOCOL, "the palisade agent's answer is malformed (is palisade-cni from the agent's release?)");
	die((int)answer_code, "%s", msg);
}

static void print_version(void)
{
	struct obuf b = { request_buf, 0, sizeof(request_buf), 0 };

	obuf_cstr(&b, "{\"cniVersion\":\"1.0.0\",\"supportedVersions\":[");
	for (size_t i = 0; i < N_VERSIONS; i++) {
		if (i > 0)
			obuf_cstr(&b, ",");
		obuf_jstr(&b, cni_versions[i]);
	}
	obuf_cstr(&b, "]}\n");
	write_all(1, b.p, b.len);
}

int main(void)
{
	const char *command = getenv("CNI_COMMAND");
	struct config c;
	struct pod pod;

	if (command == NULL || command[0] == '\0')
		die(PCNI_ERR_INVALID_ENVIRONMENT, "CNI_COMMAND is not set");
	if (strcmp(command, "VERSION") == 0) {
		print_version();
		return 0;
	}
	int add = strcmp(command, "ADD") == 0, check = strcmp(command, "CHECK") == 0;
	is_del = strcmp(command, "DEL") == 0;
	if (!add && !check && !is_del)
		die(PCNI_ERR_INVALID_ENVIRONMENT, "CNI_COMMAND \"%.32s\" is not supported (ADD, DEL, CHECK, VERSION)", command);

	read_config(&c, !is_del);
	const char *container = env("CNI_CONTAINERID", 1, CONTAINER_ID_MAX);
	const char *ifname = env("CNI_IFNAME", 1, IFNAME_MAX);
	const char *netns = env("CNI_NETNS", !is_del, NETNS_MAX);
	read_pod(&pod);
	if (excluded(&c, pod.namespace)) {
		if (add) {
			write_all(1, c.prev.p, c.prev.n);
			write_all(1, "\n", 1);
		}
		return 0;
	}
	if (!is_del && (pod.namespace[0] == '\0' || pod.name[0] == '\0'))
		die(PCNI_ERR_INVALID_ENVIRONMENT, "CNI_ARGS has no K8S_POD_NAMESPACE and K8S_POD_NAME: palisade-cni serves Kubernetes pods only");
	if (!is_del)
		require_ips(&c);

	ask_agent(&c, request_buf, build_request(command, &c, container, netns, ifname, &pod));
	if (add && (write_all(1, c.prev.p, c.prev.n) < 0 || write_all(1, "\n", 1) < 0))
		die(PCNI_ERR_IO_FAILURE, "cannot write the result to stdout: %s", strerror(errno));
	return 0;
}
