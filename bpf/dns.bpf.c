// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * DNS capture: enrolled pods' DNS (port 53 of any address) goes to the agent's DNS proxy at
 * palisade_cfg.proxy_ip4:dns_port, and the pod still sees its resolver answer.
 *
 *   UDP  connect4/6 (connected sockets: glibc, c-ares) and sendmsg4 (unconnected sends) rewrite
 *        the destination and keep the resolver the socket dialled in its socket storage;
 *        recvmsg4/6 and getpeername4/6 show that resolver instead of the proxy; egress indexes the
 *        datagram's (source address, source port) in palisade_dns_peers, which is how the proxy
 *        learns which pod (netns cookie) a query came from. The port is only known once the
 *        kernel has bound the socket, after connect4 returns: so the index is written from the
 *        datagram itself, for connected and unconnected sockets alike.
 *   TCP  connect4/6 rewrite to the same address and record the original destination in
 *        palisade_orig_sk, exactly as redirect.bpf.c does for the outbound port: its sockops
 *        indexes it for the proxy, its getpeername shows what the application dialled. Whichever
 *        connect4 runs first wins (redirect's sends port 53 to the outbound listener, which hands
 *        it to the DNS proxy; this one sends it to the DNS proxy's own TCP listener): the other
 *        then sees the proxy's address and leaves it alone.
 *
 * Native IPv6 DNS from an enrolled pod is refused (IPv6 is not meshed yet); IPv4-mapped
 * addresses on IPv6 sockets are IPv4. Operator exclusions (palisade_excl_*) are respected.
 * Needs Linux 5.8+ helpers only (netns cookie in sock_addr, socket storage, cgroup_skb sk).
 */
#include <stddef.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include "helpers.h"

#define DNS_PORT 53
#define IP_OFFSET 0x1fff /* fragment offset bits of iphdr.frag_off */

#ifndef SOCK_DGRAM
#define SOCK_DGRAM 2
#endif
#ifndef IPPROTO_UDP
#define IPPROTO_UDP 17
#endif

/* palisade_dns_stats indexes (per-CPU counters, summed by the agent: agent/datapath/codec.ts). */
enum palisade_dns_stat {
	PALISADE_DNS_STAT_UDP = 0,        /* UDP sockets/datagrams sent to the DNS proxy */
	PALISADE_DNS_STAT_TCP,            /* TCP connects sent to the DNS proxy */
	PALISADE_DNS_STAT_STORAGE_FAIL,   /* no room to remember a socket's resolver: send refused */
	PALISADE_DNS_STAT_PEER_FAIL,      /* could not index a query's source: the proxy will refuse it */
	PALISADE_DNS_STAT_ORIG_FAIL,      /* could not record a TCP connect's destination: refused */
	PALISADE_DNS_STAT_V6_DENIED,      /* native IPv6 DNS from an enrolled pod refused */
	PALISADE_DNS_STAT_MAX,
};

/* The resolver a pod's UDP socket dialled; lives and dies with the socket. */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct palisade_orig);
} palisade_dns_sk SEC(".maps");

/*
 * (pod source address, source port) of a DNS datagram sent to the proxy -> its pod and resolver.
 * Read by the proxy for every query; LRU, rewritten by every datagram, so a reused port is
 * always attributed to the socket that sent last.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, PALISADE_MAX_DNS_PEERS);
	__type(key, struct palisade_tuple);
	__type(value, struct palisade_orig);
} palisade_dns_peers SEC(".maps");

/* Counters, see enum palisade_dns_stat. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PALISADE_DNS_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} palisade_dns_stats SEC(".maps");

static __always_inline void dns_count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&palisade_dns_stats, &idx);

	if (v)
		*v += 1;
}

/* The enrolled pod a socket belongs to (netns cookie in *netns), or NULL: everything else is left alone. */
static __always_inline const struct palisade_pod *dns_pod(struct bpf_sock_addr *ctx, __u64 *netns)
{
	const struct palisade_pod *pod;

	*netns = bpf_get_netns_cookie(ctx);
	pod = bpf_map_lookup_elem(&palisade_pods, netns);
	if (!pod || !(pod->flags & PALISADE_POD_REDIRECT))
		return NULL;
	return pod;
}

static __always_inline int is_udp(struct bpf_sock_addr *ctx)
{
	return ctx->type == SOCK_DGRAM && ctx->protocol == IPPROTO_UDP;
}

static __always_inline int is_tcp(struct bpf_sock_addr *ctx)
{
	return ctx->type == SOCK_STREAM && ctx->protocol == IPPROTO_TCP;
}

/* Point the call at the proxy: user_ip4, or the last word of an IPv4-mapped user_ip6. */
static __always_inline void to_proxy(struct bpf_sock_addr *ctx, int v6)
{
	if (v6) {
		ctx->user_ip6[0] = 0;
		ctx->user_ip6[1] = 0;
		ctx->user_ip6[2] = bpf_htonl(0x0000ffff);
		ctx->user_ip6[3] = palisade_cfg.proxy_ip4;
	} else {
		ctx->user_ip4 = palisade_cfg.proxy_ip4;
	}
	ctx->user_port = bpf_htons(palisade_cfg.dns_port);
}

/*
 * A DNS destination (IPv4 dst4, port 53) of an enrolled pod's socket: remembered (socket storage
 * for UDP, palisade_orig_sk for TCP) and rewritten to the proxy. Returns the verdict.
 */
static __always_inline int capture4(struct bpf_sock_addr *ctx, __u64 netns, const struct palisade_pod *pod, __u32 dst4, int v6)
{
	struct palisade_orig orig = {};
	struct palisade_orig *slot;
	__u64 cookie;

	if (is_excluded4(dst4, DNS_PORT))
		return PALISADE_ALLOW;
	v4_mapped(orig.dst, dst4);
	orig.dst_port = DNS_PORT;
	orig.pod_id = pod->pod_id;
	orig.netns_cookie = netns;
	if (is_udp(ctx)) {
		slot = bpf_sk_storage_get(&palisade_dns_sk, ctx->sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
		if (!slot) {
			dns_count(PALISADE_DNS_STAT_STORAGE_FAIL);
			return PALISADE_DENY;
		}
		*slot = orig;
		dns_count(PALISADE_DNS_STAT_UDP);
	} else {
		cookie = bpf_get_socket_cookie(ctx);
		if (bpf_map_update_elem(&palisade_orig_sk, &cookie, &orig, BPF_ANY) != 0) {
			dns_count(PALISADE_DNS_STAT_ORIG_FAIL);
			return PALISADE_DENY;
		}
		dns_count(PALISADE_DNS_STAT_TCP);
	}
	to_proxy(ctx, v6);
	return PALISADE_ALLOW;
}

/* A connect (UDP or TCP) or an unconnected UDP send of an enrolled pod to port 53 of an IPv4 address. */
static __always_inline int capture_call4(struct bpf_sock_addr *ctx, int tcp_too)
{
	const struct palisade_pod *pod;
	__u64 netns;

	if (ctx->user_port != bpf_htons(DNS_PORT) || !(is_udp(ctx) || (tcp_too && is_tcp(ctx))))
		return PALISADE_ALLOW;
	pod = dns_pod(ctx, &netns);
	if (!pod)
		return PALISADE_ALLOW;
	return capture4(ctx, netns, pod, ctx->user_ip4, 0);
}

SEC("cgroup/connect4")
int palisade_dns_connect4(struct bpf_sock_addr *ctx)
{
	return capture_call4(ctx, 1);
}

/* Unconnected UDP: every datagram names its destination (connected sockets never come here). */
SEC("cgroup/sendmsg4")
int palisade_dns_sendmsg4(struct bpf_sock_addr *ctx)
{
	return capture_call4(ctx, 0);
}

/* IPv6 sockets: IPv4-mapped resolvers are captured like IPv4; native IPv6 DNS is refused. */
static __always_inline int capture6(struct bpf_sock_addr *ctx)
{
	const struct palisade_pod *pod;
	__u64 netns;

	if (ctx->user_port != bpf_htons(DNS_PORT) || !(is_udp(ctx) || is_tcp(ctx)))
		return PALISADE_ALLOW;
	pod = dns_pod(ctx, &netns);
	if (!pod)
		return PALISADE_ALLOW;
	if (ctx->user_ip6[0] == 0 && ctx->user_ip6[1] == 0 && ctx->user_ip6[2] == bpf_htonl(0x0000ffff))
		return capture4(ctx, netns, pod, ctx->user_ip6[3], 1);
	dns_count(PALISADE_DNS_STAT_V6_DENIED);
	return PALISADE_DENY;
}

SEC("cgroup/connect6")
int palisade_dns_connect6(struct bpf_sock_addr *ctx)
{
	return capture6(ctx);
}

/* IPv4-mapped destinations of IPv6 sockets run sendmsg4; only native IPv6 comes here. */
SEC("cgroup/sendmsg6")
int palisade_dns_sendmsg6(struct bpf_sock_addr *ctx)
{
	return capture6(ctx);
}

/* The resolver a captured UDP socket dialled, when the address the call shows is the proxy's. */
static __always_inline const struct palisade_orig *shown_as_proxy(struct bpf_sock_addr *ctx, int v6)
{
	if (ctx->user_port != bpf_htons(palisade_cfg.dns_port))
		return NULL;
	if (v6) {
		if (ctx->user_ip6[0] != 0 || ctx->user_ip6[1] != 0 || ctx->user_ip6[2] != bpf_htonl(0x0000ffff) ||
		    ctx->user_ip6[3] != palisade_cfg.proxy_ip4)
			return NULL;
	} else if (ctx->user_ip4 != palisade_cfg.proxy_ip4) {
		return NULL;
	}
	if (!is_udp(ctx))
		return NULL;
	return bpf_sk_storage_get(&palisade_dns_sk, ctx->sk, 0, 0);
}

/* Answers appear to come from the resolver the pod asked (stub resolvers check the source). */
static __always_inline void show_resolver(struct bpf_sock_addr *ctx, int v6)
{
	const struct palisade_orig *orig = shown_as_proxy(ctx, v6);

	if (orig)
		show_orig(ctx, orig, v6);
}

/* One entry point per hook that shows the resolver (recvmsg: the answer's source; getpeername). */
#define SHOW_RESOLVER(hook, name, v6)                          \
	SEC("cgroup/" hook)                                    \
	int name(struct bpf_sock_addr *ctx)                    \
	{                                                      \
		show_resolver(ctx, v6);                        \
		return PALISADE_ALLOW;                         \
	}

SHOW_RESOLVER("recvmsg4", palisade_dns_recvmsg4, 0)
SHOW_RESOLVER("recvmsg6", palisade_dns_recvmsg6, 1)
SHOW_RESOLVER("getpeername4", palisade_dns_getpeername4, 0)
SHOW_RESOLVER("getpeername6", palisade_dns_getpeername6, 1)

/*
 * Every datagram a captured socket sends to the proxy: index its source (address and port, as
 * the proxy will see them) with the pod and resolver. Other packets cost one storage lookup.
 */
SEC("cgroup_skb/egress")
int palisade_dns_egress(struct __sk_buff *skb)
{
	struct bpf_sock *sk = skb->sk;
	struct palisade_orig *orig;
	struct palisade_tuple key = {};
	struct iphdr iph;
	struct udphdr udph;
	__u32 ihl;

	if (!sk || skb->protocol != bpf_htons(ETH_P_IP))
		return PALISADE_ALLOW;
	sk = bpf_sk_fullsock(sk);
	if (!sk || sk->protocol != IPPROTO_UDP)
		return PALISADE_ALLOW;
	orig = bpf_sk_storage_get(&palisade_dns_sk, sk, 0, 0);
	if (!orig)
		return PALISADE_ALLOW;
	if (bpf_skb_load_bytes(skb, 0, &iph, sizeof(iph)) < 0 || iph.protocol != IPPROTO_UDP ||
	    iph.daddr != palisade_cfg.proxy_ip4 || (iph.frag_off & bpf_htons(IP_OFFSET)))
		return PALISADE_ALLOW;
	ihl = iph.ihl * 4;
	if (ihl < 20 || ihl > 60 || bpf_skb_load_bytes(skb, ihl, &udph, sizeof(udph)) < 0 ||
	    udph.dest != bpf_htons(palisade_cfg.dns_port))
		return PALISADE_ALLOW;
	v4_mapped(key.ip, iph.saddr);
	key.port = bpf_ntohs(udph.source);
	if (bpf_map_update_elem(&palisade_dns_peers, &key, orig, BPF_ANY) != 0)
		dns_count(PALISADE_DNS_STAT_PEER_FAIL);
	return PALISADE_ALLOW;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
