/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
#ifndef PALISADE_HELPERS_H
#define PALISADE_HELPERS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "palisade.h"
#include "maps.h"

/* Verdicts of cgroup programs. */
#define PALISADE_ALLOW 1
#define PALISADE_DENY  0

#ifndef SOCK_STREAM
#define SOCK_STREAM 1
#endif
#ifndef IPPROTO_TCP
#define IPPROTO_TCP 6
#endif
#ifndef IPPROTO_MPTCP
#define IPPROTO_MPTCP 262
#endif

/* Fixed by the agent before load. */
const volatile struct palisade_config palisade_cfg = {};

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&palisade_stats, &idx);

	if (v)
		*v += 1;
}

/* Write an IPv4 address (network order) as IPv4-mapped IPv6 into 16 bytes. */
static __always_inline void v4_mapped(__u8 out[16], __u32 ip4)
{
	__builtin_memset(out, 0, 10);
	out[10] = 0xff;
	out[11] = 0xff;
	__builtin_memcpy(&out[12], &ip4, 4);
}

static __always_inline int is_loopback4(__u32 ip4)
{
	/* 127.0.0.0/8 and 0.0.0.0 (connect to "any" means this host) */
	return (bpf_ntohl(ip4) >> 24) == 127 || ip4 == 0;
}

/* An operator exclusion (CIDR or port) keeps this destination out of the proxy. */
static __always_inline int is_excluded4(__u32 ip4, __u16 port)
{
	struct palisade_lpm_key key = { .prefixlen = 128 };

	if (bpf_map_lookup_elem(&palisade_excl_port, &port))
		return 1;
	v4_mapped(key.addr, ip4);
	return bpf_map_lookup_elem(&palisade_excl_cidr, &key) != NULL;
}

/*
 * Show an application the IPv4 destination it dialled (orig) instead of the proxy's address: in
 * user_ip4, or in the last word of an IPv4-mapped user_ip6 (getpeername, recvmsg).
 */
static __always_inline void show_orig(struct bpf_sock_addr *ctx, const struct palisade_orig *orig, int v6)
{
	__u32 dst4;

	__builtin_memcpy(&dst4, &orig->dst[12], 4);
	if (v6)
		ctx->user_ip6[3] = dst4;
	else
		ctx->user_ip4 = dst4;
	ctx->user_port = bpf_htons(orig->dst_port);
}

#endif /* PALISADE_HELPERS_H */
