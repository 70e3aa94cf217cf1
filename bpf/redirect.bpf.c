// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Outbound redirect: TCP connects from enrolled pods go to the node proxy
 * (palisade_cfg.proxy_ip4:proxy_port); the original destination is recorded so
 * that the proxy can ask for it by (pod ip, source port) and the application's
 * getpeername() still shows what it dialled.
 *
 * Acts only on sockets whose network namespace is in palisade_pods: the host,
 * the agent and unenrolled pods are never touched (this is also the loop guard).
 */
#include "helpers.h"

/* Record one IPv4 destination for the proxy (fails closed: the connect is refused). */
static __always_inline int record_orig4(__u64 sk_cookie, __u64 netns, const struct palisade_pod *pod,
					__u32 dst4, __u16 dport)
{
	struct palisade_orig orig = {};

	v4_mapped(orig.dst, dst4);
	orig.dst_port = dport;
	orig.pod_id = pod->pod_id;
	orig.netns_cookie = netns;
	if (bpf_map_update_elem(&palisade_orig_sk, &sk_cookie, &orig, BPF_ANY) != 0) {
		/* Fail closed: a connection the proxy could not attribute must not start. */
		count(PALISADE_STAT_ORIG_UPDATE_FAIL);
		return -1;
	}
	count(PALISADE_STAT_REDIRECTED);
	return 0;
}

/* Whether an IPv4 destination of an enrolled pod stays outside the proxy. */
static __always_inline int keep_direct4(const struct palisade_pod *pod, __u32 dst4, __u16 dport)
{
	if (is_loopback4(dst4) || dst4 == palisade_cfg.proxy_ip4 || (pod->ip4 && dst4 == pod->ip4))
		return 1;
	if (is_excluded4(dst4, dport)) {
		count(PALISADE_STAT_EXCLUDED);
		return 1;
	}
	return 0;
}

/*
 * The pod a TCP connect comes from, when it is enrolled for redirection (its netns cookie in
 * *netns); NULL for every other socket, which is left alone. Shared by connect4 and connect6.
 */
static __always_inline const struct palisade_pod *redirected_pod(struct bpf_sock_addr *ctx, __u64 *netns)
{
	const struct palisade_pod *pod;

	/*
	 * MPTCP: Linux runs the hook for the first subflow (a TCP socket) and that is what is
	 * redirected; should a kernel run it for the MPTCP socket itself, it is redirected too and the
	 * proxy, finding no record for its subflow, refuses it: never a bypass.
	 */
	if (ctx->type != SOCK_STREAM || (ctx->protocol != IPPROTO_TCP && ctx->protocol != IPPROTO_MPTCP))
		return NULL;
	*netns = bpf_get_netns_cookie(ctx);
	pod = bpf_map_lookup_elem(&palisade_pods, netns);
	if (!pod || !(pod->flags & PALISADE_POD_REDIRECT))
		return NULL;
	return pod;
}

/*
 * An IPv4 destination of an enrolled pod: kept direct, or recorded and rewritten to the proxy
 * (in user_ip4, or in the last word of an IPv4-mapped user_ip6 when v6). Returns the verdict.
 */
static __always_inline int redirect4(struct bpf_sock_addr *ctx, __u64 netns, const struct palisade_pod *pod,
				     __u32 dst4, int v6)
{
	__u16 dport = bpf_ntohs((__u16)ctx->user_port);

	if (keep_direct4(pod, dst4, dport))
		return PALISADE_ALLOW;
	if (record_orig4(bpf_get_socket_cookie(ctx), netns, pod, dst4, dport))
		return PALISADE_DENY;
	if (v6)
		ctx->user_ip6[3] = palisade_cfg.proxy_ip4;
	else
		ctx->user_ip4 = palisade_cfg.proxy_ip4;
	ctx->user_port = bpf_htons(palisade_cfg.proxy_port);
	return PALISADE_ALLOW;
}

SEC("cgroup/connect4")
int palisade_connect4(struct bpf_sock_addr *ctx)
{
	__u64 netns;
	const struct palisade_pod *pod = redirected_pod(ctx, &netns);

	if (!pod)
		return PALISADE_ALLOW;
	return redirect4(ctx, netns, pod, ctx->user_ip4, 0);
}

/*
 * Dual-stack sockets: an AF_INET6 socket dialling ::ffff:a.b.c.d is IPv4 on the
 * wire and must not bypass the proxy. Native IPv6 is not meshed yet, so enrolled
 * pods may only use it for loopback (fail closed, counted).
 */
SEC("cgroup/connect6")
int palisade_connect6(struct bpf_sock_addr *ctx)
{
	__u64 netns;
	const struct palisade_pod *pod = redirected_pod(ctx, &netns);
	__u32 w0, w1, w2, w3;

	if (!pod)
		return PALISADE_ALLOW;
	w0 = ctx->user_ip6[0];
	w1 = ctx->user_ip6[1];
	w2 = ctx->user_ip6[2];
	w3 = ctx->user_ip6[3];
	if (w0 == 0 && w1 == 0 && w2 == bpf_htonl(0x0000ffff))
		return redirect4(ctx, netns, pod, w3, 1);
	if (w0 == 0 && w1 == 0 && w2 == 0 && (w3 == bpf_htonl(1) || w3 == 0))
		return PALISADE_ALLOW; /* ::1 and :: stay on the pod's loopback */
	count(PALISADE_STAT_V6_DENIED);
	return PALISADE_DENY;
}

/*
 * An MPTCP socket's record is its first subflow's, under that subflow's cookie; the MPTCP socket
 * carries the subflow's local address and port (mptcp_copy_inaddrs), which index palisade_conns.
 */
static __always_inline struct palisade_orig *mptcp_orig(struct bpf_sock_addr *ctx)
{
	struct bpf_sock *sk = ctx->sk;
	struct palisade_tuple tuple = {};
	struct palisade_orig *orig;

	if (!sk)
		return NULL;
	v4_mapped(tuple.ip, sk->src_ip4);
	tuple.port = (__u16)sk->src_port;
	orig = bpf_map_lookup_elem(&palisade_conns, &tuple);
	if (!orig || orig->netns_cookie != bpf_get_netns_cookie(ctx))
		return NULL;
	return orig;
}

/* Applications see the address they dialled, not the proxy's. */
static __always_inline void restore_peer(struct bpf_sock_addr *ctx, int v6)
{
	__u64 cookie = bpf_get_socket_cookie(ctx);
	struct palisade_orig *orig = bpf_map_lookup_elem(&palisade_orig_sk, &cookie);

	if (!orig && ctx->protocol == IPPROTO_MPTCP)
		orig = mptcp_orig(ctx);
	if (orig)
		show_orig(ctx, orig, v6);
}

SEC("cgroup/getpeername4")
int palisade_getpeername4(struct bpf_sock_addr *ctx)
{
	restore_peer(ctx, 0);
	return PALISADE_ALLOW;
}

SEC("cgroup/getpeername6")
int palisade_getpeername6(struct bpf_sock_addr *ctx)
{
	restore_peer(ctx, 1);
	return PALISADE_ALLOW;
}

/*
 * Once the source port exists (TCP_CONNECT_CB runs before the SYN leaves), index
 * the original destination by (pod ip, source port) for the proxy; drop both
 * entries when the socket closes.
 */
SEC("sockops")
int palisade_sockops(struct bpf_sock_ops *skops)
{
	__u64 cookie;
	struct palisade_orig *orig;
	struct palisade_tuple tuple = {};

	switch (skops->op) {
	case BPF_SOCK_OPS_TCP_CONNECT_CB:
		cookie = bpf_get_socket_cookie(skops);
		orig = bpf_map_lookup_elem(&palisade_orig_sk, &cookie);
		if (!orig)
			return 1;
		v4_mapped(tuple.ip, skops->local_ip4);
		tuple.port = (__u16)skops->local_port;
		if (bpf_map_update_elem(&palisade_conns, &tuple, orig, BPF_ANY) != 0)
			count(PALISADE_STAT_TUPLE_UPDATE_FAIL);
		bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG);
		return 1;
	case BPF_SOCK_OPS_STATE_CB:
		if (skops->args[1] != BPF_TCP_CLOSE)
			return 1;
		cookie = bpf_get_socket_cookie(skops);
		if (!bpf_map_lookup_elem(&palisade_orig_sk, &cookie))
			return 1;
		v4_mapped(tuple.ip, skops->local_ip4);
		tuple.port = (__u16)skops->local_port;
		bpf_map_delete_elem(&palisade_conns, &tuple);
		bpf_map_delete_elem(&palisade_orig_sk, &cookie);
		return 1;
	default:
		return 1;
	}
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
