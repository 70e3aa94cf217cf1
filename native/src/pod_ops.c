/*
 * Pods' interfaces: listing the links of a network namespace (rtnetlink), and tc filters
 * (clsact + cls_bpf, direct action, through libbpf) on a pod's host-side interface. Classic tc
 * rather than tcx: tcx needs Linux 6.6, Palisade runs from 6.1.
 *
 * Every call takes a netns path or null (this thread's namespace); with a path the thread enters
 * that namespace for the call only and returns before anything reaches JavaScript.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <bpf/libbpf.h>
#include "common.h"

#define POD_OPS_MAX_LINKS 4096
#define NL_BUF 32768

struct netns_scope {
	int self;  /* this thread's namespace to return to; -1: none entered */
};

/* Enter `path` (NULL: stay); 0 or an errno. */
static int netns_enter(const char *path, struct netns_scope *s)
{
	int target, err;

	s->self = -1;
	if (!path)
		return 0;
	target = open(path, O_RDONLY | O_CLOEXEC);
	if (target < 0)
		return errno;
	s->self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (s->self < 0) {
		err = errno;
		close(target);
		return err;
	}
	if (setns(target, CLONE_NEWNET) < 0) {
		err = errno;
		close(target);
		close(s->self);
		s->self = -1;
		return err;
	}
	close(target);
	return 0;
}

static void netns_leave(struct netns_scope *s)
{
	if (s->self < 0)
		return;
	if (setns(s->self, CLONE_NEWNET) < 0)
		abort(); /* cannot return to our own namespace: not safe to run on */
	close(s->self);
	s->self = -1;
}

/* Optional netns path argument: 0 with *out NULL for null/undefined, -1 on a bad argument. */
static int arg_netns(napi_env env, napi_value v, char *buf, size_t len, const char **out)
{
	napi_valuetype t;

	*out = NULL;
	napi_typeof(env, v, &t);
	if (t == napi_null || t == napi_undefined)
		return 0;
	if (arg_string(env, v, buf, len))
		return -1;
	*out = buf;
	return 0;
}

struct link {
	int ifindex;
	int link;       /* IFLA_LINK: a veth's peer ifindex; 0 when absent */
	int netnsid;    /* IFLA_LINK_NETNSID; -1 when absent */
	int has_mac;
	unsigned char mac[6];
	char name[IF_NAMESIZE];
	char kind[32];
};

static void parse_link(struct nlmsghdr *nh, struct link *l)
{
	struct ifinfomsg *ifi = NLMSG_DATA(nh);
	int len = (int)nh->nlmsg_len - NLMSG_LENGTH(sizeof(*ifi));
	struct rtattr *a;

	memset(l, 0, sizeof(*l));
	l->ifindex = ifi->ifi_index;
	l->netnsid = -1;
	for (a = IFLA_RTA(ifi); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
		switch (a->rta_type) {
		case IFLA_IFNAME:
			strncpy(l->name, RTA_DATA(a), sizeof(l->name) - 1);
			break;
		case IFLA_ADDRESS:
			if (RTA_PAYLOAD(a) == 6) {
				memcpy(l->mac, RTA_DATA(a), 6);
				l->has_mac = 1;
			}
			break;
		case IFLA_LINK:
			if (RTA_PAYLOAD(a) >= 4)
				memcpy(&l->link, RTA_DATA(a), 4);
			break;
		case IFLA_LINK_NETNSID:
			if (RTA_PAYLOAD(a) >= 4)
				memcpy(&l->netnsid, RTA_DATA(a), 4);
			break;
		case IFLA_LINKINFO: {
			struct rtattr *i;
			int ilen = RTA_PAYLOAD(a);

			for (i = RTA_DATA(a); RTA_OK(i, ilen); i = RTA_NEXT(i, ilen))
				if (i->rta_type == IFLA_INFO_KIND)
					strncpy(l->kind, RTA_DATA(i), sizeof(l->kind) - 1);
			break;
		}
		default:
			break;
		}
	}
}

/* RTM_GETLINK dump of this thread's namespace into links[]; the count, or -errno. */
static int dump_links(struct link *links, int max)
{
	struct {
		struct nlmsghdr nh;
		struct ifinfomsg ifi;
	} req;
	char *buf;
	int fd, n = 0, done = 0, err = 0;

	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (fd < 0)
		return -errno;
	memset(&req, 0, sizeof(req));
	req.nh.nlmsg_len = NLMSG_LENGTH(sizeof(req.ifi));
	req.nh.nlmsg_type = RTM_GETLINK;
	req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	req.nh.nlmsg_seq = 1;
	req.ifi.ifi_family = AF_UNSPEC;
	if (send(fd, &req, req.nh.nlmsg_len, 0) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	buf = malloc(NL_BUF);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	while (!done && !err) {
		ssize_t got = recv(fd, buf, NL_BUF, 0);
		struct nlmsghdr *nh;
		int len;

		if (got < 0) {
			if (errno == EINTR)
				continue;
			err = -errno;
			break;
		}
		len = (int)got;
		for (nh = (struct nlmsghdr *)buf; NLMSG_OK(nh, len); nh = NLMSG_NEXT(nh, len)) {
			if (nh->nlmsg_type == NLMSG_DONE) {
				done = 1;
				break;
			}
			if (nh->nlmsg_type == NLMSG_ERROR) {
				struct nlmsgerr *e = NLMSG_DATA(nh);
				err = e->error ? e->error : -EIO;
				break;
			}
			if (nh->nlmsg_type == RTM_NEWLINK && n < max)
				parse_link(nh, &links[n++]);
		}
		if (got == 0)
			break;
	}
	free(buf);
	close(fd);
	return err ? err : n;
}

/* netLinks(netnsPath|null) -> [{ ifindex, name, mac (Buffer|null), link, netnsId, kind }] */
static napi_value net_links(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value argv[1], arr, item, v;
	char pathbuf[4096];
	const char *path;
	struct netns_scope scope;
	struct link *links;
	int n, i, err;

	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (arg_netns(env, argv[0], pathbuf, sizeof(pathbuf), &path))
		return throw_plain(env, "netLinks: bad arguments");
	links = calloc(POD_OPS_MAX_LINKS, sizeof(*links));
	if (!links)
		return throw_errno(env, ENOMEM, "malloc", NULL);
	err = netns_enter(path, &scope);
	if (err) {
		free(links);
		return throw_errno(env, err, "setns", path);
	}
	n = dump_links(links, POD_OPS_MAX_LINKS);
	netns_leave(&scope);
	if (n < 0) {
		free(links);
		return throw_errno(env, -n, "RTM_GETLINK", path);
	}
	napi_create_array(env, &arr);
	for (i = 0; i < n; i++) {
		napi_create_object(env, &item);
		napi_set_named_property(env, item, "ifindex", make_int(env, links[i].ifindex));
		napi_create_string_utf8(env, links[i].name, NAPI_AUTO_LENGTH, &v);
		napi_set_named_property(env, item, "name", v);
		if (links[i].has_mac)
			v = make_buffer_copy(env, links[i].mac, 6);
		else
			napi_get_null(env, &v);
		napi_set_named_property(env, item, "mac", v);
		napi_set_named_property(env, item, "link", make_int(env, links[i].link));
		napi_set_named_property(env, item, "netnsId", make_int(env, links[i].netnsid));
		napi_create_string_utf8(env, links[i].kind, NAPI_AUTO_LENGTH, &v);
		napi_set_named_property(env, item, "kind", v);
		napi_set_element(env, arr, i, item);
	}
	free(links);
	return arr;
}

/* Arguments of every tc call: netns, ifindex, egress (0|1), handle, priority. */
struct tc_args {
	char pathbuf[4096];
	const char *path;
	int32_t ifindex, egress, handle, priority;
};

static int tc_args(napi_env env, napi_value *argv, struct tc_args *a)
{
	return arg_netns(env, argv[0], a->pathbuf, sizeof(a->pathbuf), &a->path) || arg_int32(env, argv[1], &a->ifindex) ||
	       arg_int32(env, argv[2], &a->egress) || arg_int32(env, argv[3], &a->handle) || arg_int32(env, argv[4], &a->priority)
		       ? -1
		       : 0;
}

/*
 * tcAttach(netns|null, ifindex, egress, handle, priority, progFd) -> id of the attached program.
 * Creates the clsact qdisc when missing; replaces a filter already at (handle, priority).
 */
static napi_value tc_attach(napi_env env, napi_callback_info info)
{
	size_t argc = 6;
	napi_value argv[6];
	struct tc_args a;
	struct netns_scope scope;
	int32_t prog_fd;
	int err;
	const char *failed = NULL;

	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (tc_args(env, argv, &a) || arg_int32(env, argv[5], &prog_fd))
		return throw_plain(env, "tcAttach: bad arguments");
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = a.ifindex, .attach_point = a.egress ? BPF_TC_EGRESS : BPF_TC_INGRESS);
	LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = prog_fd, .handle = (__u32)a.handle, .priority = (__u32)a.priority,
		    .flags = BPF_TC_F_REPLACE);
	err = netns_enter(a.path, &scope);
	if (err)
		return throw_errno(env, err, "setns", a.path);
	libbpf_clear_log();
	err = bpf_tc_hook_create(&hook);
	if (err == -EEXIST)
		err = 0;
	if (err)
		failed = "bpf_tc_hook_create";
	else if ((err = bpf_tc_attach(&hook, &opts)))
		failed = "bpf_tc_attach";
	netns_leave(&scope);
	if (failed)
		return throw_errno(env, -err, failed, NULL);
	return make_int(env, opts.prog_id);
}

/*
 * tcDetach(netns|null, ifindex, egress, handle, priority) -> true if a filter was removed;
 * tcQuery(same) -> the id of the program attached there, or null. Gone already (no filter there,
 * no clsact qdisc, no such interface any more) is false / null, not an error.
 */
static napi_value tc_lookup(napi_env env, napi_callback_info info, int detach)
{
	size_t argc = 5;
	napi_value argv[5], out;
	struct tc_args a;
	struct netns_scope scope;
	int err;

	NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
	if (tc_args(env, argv, &a))
		return throw_plain(env, detach ? "tcDetach: bad arguments" : "tcQuery: bad arguments");
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = a.ifindex, .attach_point = a.egress ? BPF_TC_EGRESS : BPF_TC_INGRESS);
	LIBBPF_OPTS(bpf_tc_opts, opts, .handle = (__u32)a.handle, .priority = (__u32)a.priority);
	err = netns_enter(a.path, &scope);
	if (err)
		return throw_errno(env, err, "setns", a.path);
	err = detach ? bpf_tc_detach(&hook, &opts) : bpf_tc_query(&hook, &opts);
	netns_leave(&scope);
	if (err == -ENOENT || err == -EINVAL || err == -ENODEV) {
		if (detach)
			napi_get_boolean(env, false, &out);
		else
			napi_get_null(env, &out);
		return out;
	}
	if (err)
		return throw_errno(env, -err, detach ? "bpf_tc_detach" : "bpf_tc_query", NULL);
	if (detach)
		napi_get_boolean(env, true, &out);
	else
		out = make_int(env, opts.prog_id);
	return out;
}

static napi_value tc_detach(napi_env env, napi_callback_info info)
{
	return tc_lookup(env, info, 1);
}

static napi_value tc_query(napi_env env, napi_callback_info info)
{
	return tc_lookup(env, info, 0);
}

void register_pod_ops(napi_env env, napi_value exports)
{
	napi_property_descriptor props[] = {
		{ "netLinks", NULL, net_links, NULL, NULL, NULL, napi_default, NULL },
		{ "tcAttach", NULL, tc_attach, NULL, NULL, NULL, napi_default, NULL },
		{ "tcDetach", NULL, tc_detach, NULL, NULL, NULL, napi_default, NULL },
		{ "tcQuery", NULL, tc_query, NULL, NULL, NULL, napi_default, NULL },
	};

	napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
}
