/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * What bpf/pod.bpf.c needs around its decisions: reading a frame's headers (bounds-checked
 * copies through bpf_skb_load_bytes, so non-linear packets read the same), counting a drop per
 * pod and reason, the learned flow state and the UDP/ICMP rule lookup.
 */
#ifndef PALISADE_POD_PACKET_H
#define PALISADE_POD_PACKET_H

#include <linux/in.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include "helpers.h"
#include "pod-maps.h"

/* ICMP types (linux/icmp.h pulls in libc headers). */
#define ICMP_ECHOREPLY      0
#define ICMP_DEST_UNREACH   3
#define ICMP_ECHO           8
#define ICMP_TIME_EXCEEDED  11
#define ICMP_PARAMETERPROB  12

#define PALISADE_ETH_HLEN 14
#define PALISADE_IP_MF 0x2000
#define PALISADE_IP_OFFSET 0x1fff
#define PALISADE_TCP_FIN 0x01
#define PALISADE_TCP_SYN 0x02
#define PALISADE_TCP_RST 0x04
#define PALISADE_TCP_ACK 0x10
/* Linux never sends an ICMP error longer than this (RFC 1812 4.3.2.3); longer ones are made up. */
#define PALISADE_ICMP_ERROR_MAX 576

/* The headers of one frame, as far as the decisions need them. */
struct pkt {
	__u16 eth_proto;   /* host byte order */
	__u8  proto;       /* IP protocol */
	__u8  tcp_flags;
	__u32 saddr;       /* network byte order (ARP: sender IP) */
	__u32 daddr;       /* network byte order (ARP: target IP) */
	__u16 sport;       /* network byte order; ICMP: the echo identifier */
	__u16 dport;       /* network byte order */
	__u16 frag;        /* IPv4 flags and fragment offset, host byte order */
	__u16 ip_id;
	__u32 ip_len;      /* IPv4 total length */
	__u32 l4;          /* offset of the transport header */
	__u32 len;         /* bytes after the Ethernet header */
	__u8  icmp_type;
	__u8  icmp_code;
	__u16 reserved;
};

/* The fixed IPv6 header (linux/ipv6.h pulls in libc headers). */
struct ipv6_head {
	__be32 vtc_flow;
	__be16 payload_len;
	__u8   nexthdr;
	__u8   hop_limit;
	__u8   saddr[16];
	__u8   daddr[16];
};

/* fe80::/10, or :: (a node probing its address before it has one). */
static __always_inline int is_link_local6(const __u8 *a)
{
	__u32 w[4];

	__builtin_memcpy(w, a, 16);
	if ((w[0] | w[1] | w[2] | w[3]) == 0)
		return 1;
	return a[0] == 0xfe && (a[1] & 0xc0) == 0x80;
}

/* fe80::/10, or link-scope multicast ff02::/16. */
static __always_inline int is_link_scope6(const __u8 *a)
{
	return (a[0] == 0xfe && (a[1] & 0xc0) == 0x80) || (a[0] == 0xff && a[1] == 0x02);
}

/* ARP for IPv4 over Ethernet (linux/if_arp.h pulls in libc headers, so it is spelled out here). */
#define PALISADE_ARPHRD_ETHER 1
struct arp_ipv4 {
	__be16 hrd;
	__be16 pro;
	__u8   hln;
	__u8   pln;
	__be16 op;
	__u8 sha[6];
	__u8 sip[4];
	__u8 tha[6];
	__u8 tip[4];
} __attribute__((packed));

static __always_inline int same_mac(const __u8 *a, const __u8 *b)
{
	return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3] && a[4] == b[4] && a[5] == b[5];
}

static __always_inline int is_later_fragment(const struct pkt *p)
{
	return (p->frag & PALISADE_IP_OFFSET) != 0;
}

static __always_inline int is_icmp_error(__u8 type)
{
	return type == ICMP_DEST_UNREACH || type == ICMP_TIME_EXCEEDED || type == ICMP_PARAMETERPROB;
}

static __always_inline int is_mesh_port(__u16 port)
{
	return port == palisade_cfg.proxy_port || port == palisade_cfg.dns_port;
}

/* IPv4 and transport headers into *p; 0, or the drop reason for a malformed packet. */
static __always_inline int parse_ipv4(struct __sk_buff *skb, struct pkt *p)
{
	struct iphdr ip;
	__u8 l4[14];

	if (bpf_skb_load_bytes(skb, PALISADE_ETH_HLEN, &ip, sizeof(ip)) < 0)
		return PALISADE_DROP_MALFORMED;
	if (ip.version != 4 || ip.ihl < 5)
		return PALISADE_DROP_MALFORMED;
	p->saddr = ip.saddr;
	p->daddr = ip.daddr;
	p->proto = ip.protocol;
	p->frag = bpf_ntohs(ip.frag_off);
	p->ip_id = ip.id;
	p->ip_len = bpf_ntohs(ip.tot_len);
	p->l4 = PALISADE_ETH_HLEN + ip.ihl * 4;
	if (p->ip_len < ip.ihl * 4)
		return PALISADE_DROP_MALFORMED;
	if (is_later_fragment(p))
		return 0; /* no transport header: judged by its first fragment */
	switch (p->proto) {
	case IPPROTO_TCP:
		/* ports, sequence and acknowledgment numbers, data offset, flags */
		if (bpf_skb_load_bytes(skb, p->l4, l4, 14) < 0)
			return PALISADE_DROP_MALFORMED;
		p->tcp_flags = l4[13];
		break;
	case IPPROTO_UDP:
		if (bpf_skb_load_bytes(skb, p->l4, l4, 4) < 0)
			return PALISADE_DROP_MALFORMED;
		break;
	case IPPROTO_ICMP:
		/* type, code, checksum, identifier (echo) */
		if (bpf_skb_load_bytes(skb, p->l4, l4, 6) < 0)
			return PALISADE_DROP_MALFORMED;
		p->icmp_type = l4[0];
		p->icmp_code = l4[1];
		__builtin_memcpy(&p->sport, &l4[4], 2);
		p->dport = 0;
		return 0;
	default:
		return 0;
	}
	__builtin_memcpy(&p->sport, &l4[0], 2);
	__builtin_memcpy(&p->dport, &l4[2], 2);
	return 0;
}

/* Count a dropped packet for its pod, reason and direction (keeping it as the newest sample), and drop it. */
static __attribute__((noinline)) int drop(const struct palisade_iface *pod, __u8 dir, __u8 reason, const struct pkt *p)
{
	struct palisade_drop_key key = { .pod_id = pod->pod_id, .reason = reason, .dir = dir };
	struct palisade_drop *d = bpf_map_lookup_elem(&palisade_drops, &key);

	if (!d) {
		struct palisade_drop zero = {};

		bpf_map_update_elem(&palisade_drops, &key, &zero, BPF_NOEXIST);
		d = bpf_map_lookup_elem(&palisade_drops, &key);
		if (!d) {
			count(PALISADE_STAT_DROP_UNCOUNTED);
			return TC_ACT_SHOT;
		}
	}
	d->packets += 1;
	d->last_ns = bpf_ktime_get_ns();
	d->saddr = p->saddr;
	d->daddr = p->daddr;
	if (p->proto == IPPROTO_ICMP) {
		d->sport = p->icmp_type;
		d->dport = p->icmp_code;
	} else {
		d->sport = bpf_ntohs(p->sport);
		d->dport = bpf_ntohs(p->dport);
	}
	d->proto = p->proto;
	d->eth_proto = p->eth_proto;
	return TC_ACT_SHOT;
}

static __always_inline __u8 rules_gen(void)
{
	__u32 zero = 0;
	__u32 *gen = bpf_map_lookup_elem(&palisade_rules_gen, &zero);

	return gen ? (__u8)*gen : 0;
}

/* The UDP/ICMP rule of the generation in force for this pod, direction, port and address; NULL: none. */
static __always_inline const struct palisade_rule *find_rule(__u8 gen, __u8 dir, __u8 proto, __u32 pod_id, __u16 port,
							     __u32 addr)
{
	struct palisade_rule_key k = {
		.prefixlen = PALISADE_RULE_PREFIX_BITS + 128,
		.gen = gen,
		.dir = dir,
		.proto = proto,
		.pod_id = pod_id,
		.port = port,
	};
	const struct palisade_rule *r;

	v4_mapped(k.addr, addr);
	r = bpf_map_lookup_elem(&palisade_rules, &k);
	if (r || port == 0)
		return r;
	k.port = 0; /* rules for any port */
	return bpf_map_lookup_elem(&palisade_rules, &k);
}

static __always_inline void account(struct palisade_dgram *f, __u8 dir, __u32 len)
{
	if (dir == PALISADE_DIR_FROM_POD) {
		__sync_fetch_and_add(&f->packets_out, 1);
		__sync_fetch_and_add(&f->bytes_out, len);
	} else {
		__sync_fetch_and_add(&f->packets_in, 1);
		__sync_fetch_and_add(&f->bytes_in, len);
	}
}

/*
 * A learned UDP/ICMP flow still stands: nothing decided it, or the rule set in force still allows
 * it (checked again once per rule change). A flow policy no longer allows is forgotten.
 */
static __always_inline int still_allowed(struct palisade_dgram *f, const struct palisade_flow_key *k, __u8 gen)
{
	const struct palisade_rule *r;

	if (f->rule == 0 || f->gen == gen)
		return 1;
	if (f->dir == PALISADE_DIR_FROM_POD)
		r = find_rule(gen, PALISADE_DIR_FROM_POD, k->proto, f->pod_id, bpf_ntohs(k->peer_port), k->peer_ip);
	else
		r = find_rule(gen, PALISADE_DIR_TO_POD, k->proto, f->pod_id, bpf_ntohs(k->pod_port), k->peer_ip);
	if (r && r->verdict == PALISADE_RULE_ALLOW) {
		f->gen = gen;
		f->rule = r->ref;
		return 1;
	}
	bpf_map_delete_elem(&palisade_dgram, k);
	return 0;
}

/* Remember (and count) a UDP/ICMP flow let through; its replies follow it. */
static __always_inline void learn_dgram(const struct palisade_flow_key *k, __u32 pod_id, __u8 dir, __u8 gen,
					__u32 rule, __u32 len)
{
	struct palisade_dgram n = { .pod_id = pod_id, .dir = dir, .gen = gen, .rule = rule };
	struct palisade_dgram *f;

	if (dir == PALISADE_DIR_FROM_POD) {
		n.packets_out = 1;
		n.bytes_out = len;
	} else {
		n.packets_in = 1;
		n.bytes_in = len;
	}
	if (bpf_map_update_elem(&palisade_dgram, k, &n, BPF_NOEXIST) == 0)
		return;
	f = bpf_map_lookup_elem(&palisade_dgram, k); /* another CPU learned it first */
	if (f)
		account(f, dir, len);
}

/* The key of a flow from the pod's side: `pod_first` when the pod's address is the source. */
static __always_inline void flow_key(struct palisade_flow_key *k, const struct palisade_iface *pod, const struct pkt *p,
				     int pod_first)
{
	k->pod_ip = pod->ip4;
	k->proto = p->proto;
	if (pod_first) {
		k->peer_ip = p->daddr;
		k->pod_port = p->sport;
		k->peer_port = p->dport;
	} else {
		k->peer_ip = p->saddr;
		k->pod_port = p->dport;
		k->peer_port = p->sport;
	}
	if (p->proto == IPPROTO_ICMP) {
		/* echo request and reply carry the identifier where parse_ipv4 put sport */
		k->pod_port = p->sport;
		k->peer_port = 0;
	}
}

/* Fragments: later ones follow their first; a first one let through lets its later ones through. */
static __always_inline int later_fragment(const struct palisade_iface *pod, __u8 dir, const struct pkt *p)
{
	struct palisade_frag_key k = { .saddr = p->saddr, .daddr = p->daddr, .id = p->ip_id, .proto = p->proto };

	if (bpf_map_lookup_elem(&palisade_frags, &k))
		return TC_ACT_OK;
	return drop(pod, dir, PALISADE_DROP_FRAGMENT, p);
}

static __always_inline int with_fragments(int verdict, const struct pkt *p)
{
	struct palisade_frag_key k = { .saddr = p->saddr, .daddr = p->daddr, .id = p->ip_id, .proto = p->proto };
	__u8 one = 1;

	if (verdict == TC_ACT_OK && (p->frag & PALISADE_IP_MF))
		bpf_map_update_elem(&palisade_frags, &k, &one, BPF_ANY);
	return verdict;
}

#endif /* PALISADE_POD_PACKET_H */
