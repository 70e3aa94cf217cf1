/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Structs shared between the eBPF programs (bpf/<name>.bpf.c) and user space
 * (agent/datapath/codec.ts mirrors every layout here byte for byte).
 *
 * Rules: fixed-width types only, explicit padding, addresses always 16 bytes
 * (IPv4 stored IPv4-mapped, ::ffff:a.b.c.d) so IPv6 can follow without a
 * change of key size. Ports are host byte order unless a field says otherwise.
 */
#ifndef PALISADE_H
#define PALISADE_H

#include <linux/types.h>

/* Settings fixed by the agent before load (.rodata, `const volatile`). */
struct palisade_config {
	__u32 proxy_ip4;   /* node proxy address, network byte order */
	__u16 proxy_port;  /* outbound listener (15001), host byte order */
	__u16 dns_port;    /* DNS proxy (15053) on proxy_ip4, host byte order */
};

/* palisade_pods value: one enrolled pod, keyed by its netns cookie (__u64). */
struct palisade_pod {
	__u32 pod_id;      /* agent-assigned id, never 0 */
	__u32 flags;       /* PALISADE_POD_* */
	__u32 ip4;         /* pod address, network byte order (0 = unknown) */
	__u32 reserved;
};

#define PALISADE_POD_REDIRECT (1u << 0) /* redirect outbound TCP to the proxy */
#define PALISADE_POD_STRICT   (1u << 1) /* new inbound TCP only from proxy/loopback */

/* Original destination of a redirected connection. */
struct palisade_orig {
	__u8  dst[16];       /* address the application dialled (IPv4-mapped) */
	__u16 dst_port;      /* host byte order */
	__u16 reserved;
	__u32 pod_id;        /* palisade_pod.pod_id of the source pod */
	__u64 netns_cookie;  /* the source pod's network-namespace cookie */
};

/* palisade_conns key: the source side of a redirected connection as the proxy sees it. */
struct palisade_tuple {
	__u8  ip[16];        /* pod source address (IPv4-mapped) */
	__u16 port;          /* pod source port, host byte order */
	__u16 reserved;
	__u32 reserved2;
};

/* palisade_excl_cidr key (LPM trie): prefixlen counts bits of the 16-byte address. */
struct palisade_lpm_key {
	__u32 prefixlen;
	__u8  addr[16];
};

/* palisade_stats indexes (per-CPU counters, summed by the agent). */
enum palisade_stat {
	PALISADE_STAT_REDIRECTED = 0,     /* connects rewritten to the proxy */
	PALISADE_STAT_EXCLUDED,           /* enrolled-pod connects left alone by an exclusion */
	PALISADE_STAT_ORIG_UPDATE_FAIL,   /* could not record a destination: connect refused */
	PALISADE_STAT_TUPLE_UPDATE_FAIL,  /* could not index by source tuple: proxy will refuse */
	PALISADE_STAT_STRICT_DROP,        /* SYNs dropped by strict ingress */
	PALISADE_STAT_V6_DENIED,          /* IPv6 connects from enrolled pods refused (no v6 yet) */
	PALISADE_STAT_MAX,
};

#define PALISADE_MAX_PODS  4096
#define PALISADE_MAX_CONNS 65536
#define PALISADE_MAX_EXCL  256
#define PALISADE_MAX_DNS_PEERS 16384

#endif /* PALISADE_H */
