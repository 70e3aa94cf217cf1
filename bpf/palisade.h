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

/*
 * max_entries below are defaults: the agent sizes the pod and connection maps from its limits
 * before load (agent/datapath/map-sizes.ts), and a pinned map keeps the size it was created with.
 */

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
	__u32 ifindex;     /* its host-side interface (bpf/pod.bpf.c's filters), 0 = none */
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
	PALISADE_STAT_V6_DENIED,          /* IPv6 connects from enrolled pods refused (no v6 yet) */
	PALISADE_STAT_DROP_UNCOUNTED,     /* pod packets dropped while palisade_drops was full */
	PALISADE_STAT_HELD,               /* packets of pods refused enrollment (pod maps full), dropped */
	PALISADE_STAT_MAX,
};

/* palisade_stats has room for counters added later: a pinned map keeps its size across upgrades. */
#define PALISADE_STAT_SLOTS 32

#define PALISADE_MAX_PODS  256
#define PALISADE_MAX_CONNS 65536
#define PALISADE_MAX_EXCL  256
#define PALISADE_MAX_DNS_PEERS 16384

/* ---- Per-pod enforcement on the pod's host-side interface (bpf/pod.bpf.c) ---- */

/* palisade_ifaces value: the enrolled pod behind a host-side interface, keyed by its ifindex (__u32). */
struct palisade_iface {
	__u32 pod_id;      /* palisade_pod.pod_id */
	__u32 flags;       /* PALISADE_POD_* */
	__u32 ip4;         /* the pod's address, network byte order */
	__u8  mac[6];      /* the pod's MAC (its side of the veth) */
	__u16 reserved;
};

/* Which way a packet goes, seen from the pod. */
#define PALISADE_DIR_FROM_POD 1 /* host-side tc ingress */
#define PALISADE_DIR_TO_POD   2 /* host-side tc egress */

/* Why a packet was dropped (palisade_drop_key.reason); agent/datapath/pod-codec.ts names them. */
enum palisade_drop_reason {
	PALISADE_DROP_SPOOFED_MAC = 1,   /* Ethernet source is not the pod's MAC */
	PALISADE_DROP_SPOOFED_ARP,       /* ARP sender IP or MAC is not the pod's */
	PALISADE_DROP_SPOOFED_IP,        /* IPv4 source is not the pod's address */
	PALISADE_DROP_IPV6,              /* IPv6: enrolled pods have no IPv6 address in the mesh */
	PALISADE_DROP_NOT_IP,            /* another ethertype, or a VLAN tag */
	PALISADE_DROP_MALFORMED,         /* a header cut short or inconsistent */
	PALISADE_DROP_FRAGMENT,          /* a fragment whose first fragment was not let through */
	PALISADE_DROP_PROXY_PORT,        /* to the proxy address on a port the mesh does not serve there */
	PALISADE_DROP_TCP_NOT_REDIRECTED,/* a TCP SYN to anything but the proxy (raw sockets, unredirected) */
	PALISADE_DROP_TCP_NO_CONNECTION, /* TCP outside every connection the pod has */
	PALISADE_DROP_UDP_NOT_ALLOWED,   /* UDP no policy allows */
	PALISADE_DROP_UDP_DENIED,        /* UDP an EgressPolicy deny entry refuses */
	PALISADE_DROP_ICMP_NOT_ALLOWED,  /* ICMP no policy allows (or not a reply of an allowed echo) */
	PALISADE_DROP_ICMP_DENIED,       /* ICMP an EgressPolicy deny entry refuses */
	PALISADE_DROP_ICMP_UNRELATED,    /* an ICMP error about no flow of the pod, or oversized */
	PALISADE_DROP_PROTOCOL,          /* an IP protocol other than TCP, UDP, ICMP */
	PALISADE_DROP_STRICT_TCP,        /* a new TCP connection to a strict pod not from the agent */
	PALISADE_DROP_STRICT_UDP,        /* UDP to a strict pod no AuthorizationPolicy port allows */
	PALISADE_DROP_STRICT_ICMP,       /* ICMP to a strict pod other than errors and echo replies */
	PALISADE_DROP_IPV6_LINK_LOCAL,   /* IPv6 between link-local ends (ND, RS, MLD): counted, no flow record */
	PALISADE_DROP_MAX,
};

/* palisade_drops key: one pod, one reason, one direction. */
struct palisade_drop_key {
	__u32 pod_id;
	__u8  reason;      /* enum palisade_drop_reason */
	__u8  dir;         /* PALISADE_DIR_* */
	__u16 reserved;
};

/* palisade_drops value (per CPU): how many, and the newest one's headers (a sample for the summary). */
struct palisade_drop {
	__u64 packets;
	__u64 last_ns;     /* bpf_ktime_get_ns() of the newest: the newest sample over CPUs wins */
	__u32 saddr;       /* IPv4 source / ARP sender IP, network byte order */
	__u32 daddr;       /* IPv4 destination / ARP target IP, network byte order */
	__u16 sport;       /* host byte order; ICMP: type */
	__u16 dport;       /* host byte order; ICMP: code */
	__u8  proto;       /* IP protocol, 0 when not IPv4 */
	__u8  reserved;
	__u16 eth_proto;   /* ethertype, host byte order */
};

/* palisade_drops_v6 value: the newest dropped IPv6 packet's addresses (the sample has room for IPv4 only). */
struct palisade_drop6 {
	__u64 last_ns;
	__u8  saddr[16];
	__u8  daddr[16];
};

/* palisade_tcp_in / palisade_dgram key: a flow as the pod sees it (addresses and ports network order). */
struct palisade_flow_key {
	__u32 pod_ip;
	__u32 peer_ip;
	__u16 pod_port;    /* ICMP echo: the identifier */
	__u16 peer_port;   /* ICMP: 0 */
	__u8  proto;
	__u8  reserved[3];
};

/* palisade_tcp_in value: the pod's id and which ends have sent their FIN. */
#define PALISADE_TCP_IN_FIN_FROM_POD (1u << 31)
#define PALISADE_TCP_IN_FIN_TO_POD   (1u << 30)

/* palisade_dgram value: a UDP or ICMP echo flow let through, with its counters (atomic adds). */
struct palisade_dgram {
	__u32 pod_id;
	__u8  dir;         /* who sent its first packet: PALISADE_DIR_* */
	__u8  gen;         /* the palisade_rules generation `rule` was found in */
	__u16 reserved;
	__u32 rule;        /* palisade_rule.ref that allowed it; 0: not decided by a rule */
	__u32 reserved2;
	__u64 packets_out; /* from the pod */
	__u64 bytes_out;
	__u64 packets_in;  /* to the pod */
	__u64 bytes_in;
};

/* palisade_frags key: the first fragment of this datagram was let through. */
struct palisade_frag_key {
	__u32 saddr;
	__u32 daddr;
	__u16 id;
	__u8  proto;
	__u8  reserved;
};

/*
 * palisade_rules key (LPM trie): what policy allows or denies for UDP and ICMP. prefixlen counts
 * bits after itself: 96 for gen .. reserved2 (always whole), then address bits (96 for the
 * IPv4-mapped prefix, then the CIDR's length).
 */
struct palisade_rule_key {
	__u32 prefixlen;
	__u8  gen;         /* the rule set in force is palisade_rules_gen[0] */
	__u8  dir;         /* FROM_POD: addr is the destination; TO_POD: addr is the source */
	__u8  proto;       /* IPPROTO_UDP or IPPROTO_ICMP */
	__u8  reserved;
	__u32 pod_id;
	__u16 port;        /* FROM_POD: destination port; TO_POD: the pod's port; 0: any port */
	__u16 reserved2;
	__u8  addr[16];    /* IPv4-mapped */
};

#define PALISADE_RULE_ALLOW 1
#define PALISADE_RULE_DENY  2

struct palisade_rule {
	__u32 verdict;     /* PALISADE_RULE_* */
	__u32 ref;         /* the agent's name for the deciding policy rule (flow records), never 0 */
};

#define PALISADE_RULE_PREFIX_BITS 96 /* gen .. reserved2 of palisade_rule_key */

/* palisade_host[0]: where the per-pod filters hang (so `agent uninstall` can find them). */
struct palisade_host {
	__u64 netns_cookie; /* the network namespace of the agent that attached them */
};

/* palisade_agent_cg value. */
struct palisade_agent {
	__u32 pid;         /* the registering agent, as it sees itself */
	__u32 since;       /* registration time, seconds since the epoch (the oldest goes first when full) */
};

#define PALISADE_MAX_AGENT_CG  8
#define PALISADE_MAX_DGRAM     16384
#define PALISADE_MAX_FRAGS     4096
#define PALISADE_MAX_RULES     65536
#define PALISADE_MAX_DROP_KEYS (PALISADE_MAX_PODS * 16)

#endif /* PALISADE_H */
