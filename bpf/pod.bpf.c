// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Per-pod enforcement on the wire: two tc programs (clsact, direct action) on every enrolled
 * pod's host-side interface, found by its ifindex in palisade_ifaces; other interfaces pass.
 *
 * From the pod (tc ingress of the host side): the Ethernet source, the ARP sender and the IPv4
 * source must be the pod's own; nothing else leaves but
 *   - TCP to the proxy address on the mesh's ports (connect4 redirected it there; DNS on 15053),
 *     and TCP within connections opened to the pod (palisade_tcp_in);
 *   - UDP to the DNS proxy, UDP and ICMP echo an EgressPolicy allows (palisade_rules), their
 *     replies, and ICMP errors about flows the pod has;
 *   - anything to the operator's exclusions (palisade_excl_*).
 * To the pod (tc egress): a strict pod takes new TCP connections only from sockets of the agent's
 * cgroup (palisade_agent_cg), never because of a source address, and UDP only where an
 * AuthorizationPolicy's ports allow it; replies of flows the pod opened pass.
 * Everything refused is dropped and counted per pod, reason and direction (palisade_drops).
 *
 * Helpers used exist for sched_cls on Linux 6.1: skb_load_bytes, map lookup/update/delete,
 * ktime_get_ns, skb_cgroup_id.
 */
#include "pod-packet.h"

#define FROM PALISADE_DIR_FROM_POD
#define TO   PALISADE_DIR_TO_POD

static __always_inline int ipv4_frame(struct __sk_buff *skb, const struct palisade_iface *pod, struct pkt *p, __u8 dir);

/*
 * IPv6 either way: enrolled pods have no IPv6 in the mesh, so all of it is dropped. The kernel's
 * own link-local chatter (router and neighbour solicitations, MLD) is counted as its own reason,
 * which the agent counts without a flow record; any other IPv6 packet keeps its addresses in
 * palisade_drops_v6 so the summary names them.
 */
static __always_inline int ipv6_frame(struct __sk_buff *skb, const struct palisade_iface *pod, struct pkt *p, __u8 dir)
{
	struct ipv6_head h;
	struct palisade_drop_key key = { .pod_id = pod->pod_id, .reason = PALISADE_DROP_IPV6, .dir = dir };
	struct palisade_drop6 s = {};

	if (bpf_skb_load_bytes(skb, PALISADE_ETH_HLEN, &h, sizeof(h)) < 0)
		return drop(pod, dir, PALISADE_DROP_MALFORMED, p);
	if (is_link_local6(h.saddr) && is_link_scope6(h.daddr))
		return drop(pod, dir, PALISADE_DROP_IPV6_LINK_LOCAL, p);
	p->proto = h.nexthdr;
	if (h.nexthdr == IPPROTO_TCP || h.nexthdr == IPPROTO_UDP) {
		__u16 ports[2];

		if (bpf_skb_load_bytes(skb, PALISADE_ETH_HLEN + sizeof(h), ports, sizeof(ports)) == 0) {
			p->sport = ports[0];
			p->dport = ports[1];
		}
	}
	s.last_ns = bpf_ktime_get_ns();
	__builtin_memcpy(s.saddr, h.saddr, 16);
	__builtin_memcpy(s.daddr, h.daddr, 16);
	bpf_map_update_elem(&palisade_drops_v6, &key, &s, BPF_ANY);
	return drop(pod, dir, PALISADE_DROP_IPV6, p);
}

/*
 * A packet of a connection opened to the pod, let through: the entry leaves with the last packet
 * that needs it, so short connections do not crowd the live ones out of the LRU map (an idle
 * connection pooled into the pod lost its entry, and with it every reply, after ~map-size short
 * ones). The last packet from the pod is its RST, its FIN when the peer closed first, or its ACK of
 * the peer's FIN when it closed first. A retransmission lost after that is dropped and counted
 * (the peer or the pod gives up its last state, as after any loss), never let out. A RST to the
 * pod leaves the entry: the pod's stack may refuse it (blind resets), and its challenge ACK must pass.
 */
static __always_inline void tcp_in_from_pod(const struct palisade_flow_key *k, __u32 *v, __u8 flags)
{
	__u32 seen = *v;

	if (flags & PALISADE_TCP_RST) {
		bpf_map_delete_elem(&palisade_tcp_in, k);
	} else if (flags & PALISADE_TCP_FIN) {
		if (seen & PALISADE_TCP_IN_FIN_FROM_POD)
			return; /* its FIN again (a retransmission): the close goes on */
		if (seen & PALISADE_TCP_IN_FIN_TO_POD)
			bpf_map_delete_elem(&palisade_tcp_in, k);
		else
			*v = seen | PALISADE_TCP_IN_FIN_FROM_POD;
	} else if ((seen & (PALISADE_TCP_IN_FIN_FROM_POD | PALISADE_TCP_IN_FIN_TO_POD)) ==
		   (PALISADE_TCP_IN_FIN_FROM_POD | PALISADE_TCP_IN_FIN_TO_POD)) {
		bpf_map_delete_elem(&palisade_tcp_in, k);
	}
}

static __always_inline int from_pod_tcp(const struct palisade_iface *pod, const struct pkt *p)
{
	int to_proxy = p->daddr == palisade_cfg.proxy_ip4;
	__u16 dport = bpf_ntohs(p->dport);
	struct palisade_flow_key k = {};
	__u32 *conn;

	if (to_proxy && is_mesh_port(dport))
		return TC_ACT_OK;
	if ((p->tcp_flags & (PALISADE_TCP_SYN | PALISADE_TCP_ACK)) == PALISADE_TCP_SYN) {
		if (!to_proxy && is_excluded4(p->daddr, dport))
			return TC_ACT_OK;
		return drop(pod, FROM, to_proxy ? PALISADE_DROP_PROXY_PORT : PALISADE_DROP_TCP_NOT_REDIRECTED, p);
	}
	flow_key(&k, pod, p, 1);
	conn = bpf_map_lookup_elem(&palisade_tcp_in, &k);
	if (conn) {
		tcp_in_from_pod(&k, conn, p->tcp_flags);
		return TC_ACT_OK;
	}
	if (!to_proxy && is_excluded4(p->daddr, dport))
		return TC_ACT_OK;
	return drop(pod, FROM, to_proxy ? PALISADE_DROP_PROXY_PORT : PALISADE_DROP_TCP_NO_CONNECTION, p);
}

/* UDP and ICMP echo requests from the pod: a flow it has, else the rules. */
static __always_inline int from_pod_dgram(const struct palisade_iface *pod, const struct pkt *p, __u16 port, __u8 not_allowed,
					  __u8 denied)
{
	struct palisade_flow_key k = {};
	struct palisade_dgram *f;
	const struct palisade_rule *r;
	__u8 gen = rules_gen();

	flow_key(&k, pod, p, 1);
	f = bpf_map_lookup_elem(&palisade_dgram, &k);
	if (f && still_allowed(f, &k, gen)) {
		account(f, FROM, p->len);
		return TC_ACT_OK;
	}
	if (is_excluded4(p->daddr, port)) {
		learn_dgram(&k, pod->pod_id, FROM, gen, 0, p->len); /* outside the mesh; its replies follow */
		return TC_ACT_OK;
	}
	r = find_rule(gen, FROM, p->proto, pod->pod_id, port, p->daddr);
	if (!r)
		return drop(pod, FROM, not_allowed, p);
	if (r->verdict != PALISADE_RULE_ALLOW)
		return drop(pod, FROM, denied, p);
	learn_dgram(&k, pod->pod_id, FROM, gen, r->ref, p->len);
	return TC_ACT_OK;
}

static __always_inline int from_pod_udp(const struct palisade_iface *pod, const struct pkt *p)
{
	__u16 dport = bpf_ntohs(p->dport);

	if (p->daddr == palisade_cfg.proxy_ip4)
		return dport == palisade_cfg.dns_port ? TC_ACT_OK : drop(pod, FROM, PALISADE_DROP_PROXY_PORT, p);
	return from_pod_dgram(pod, p, dport, PALISADE_DROP_UDP_NOT_ALLOWED, PALISADE_DROP_UDP_DENIED);
}

/*
 * An ICMP error from the pod passes only about a packet its peer sent it within a flow the pod
 * has, and only as long as Linux makes them: the rest would be a channel out.
 */
static __always_inline int from_pod_icmp_error(struct __sk_buff *skb, const struct palisade_iface *pod, const struct pkt *p)
{
	struct iphdr in;
	__u16 ports[2];
	struct palisade_flow_key k = {};

	if (p->ip_len > PALISADE_ICMP_ERROR_MAX)
		return drop(pod, FROM, PALISADE_DROP_ICMP_UNRELATED, p);
	if (bpf_skb_load_bytes(skb, p->l4 + 8, &in, sizeof(in)) < 0 || in.version != 4 || in.ihl < 5)
		return drop(pod, FROM, PALISADE_DROP_ICMP_UNRELATED, p);
	if (in.daddr != p->saddr || in.saddr != p->daddr)
		return drop(pod, FROM, PALISADE_DROP_ICMP_UNRELATED, p);
	if (bpf_skb_load_bytes(skb, p->l4 + 8 + in.ihl * 4, ports, sizeof(ports)) < 0)
		return drop(pod, FROM, PALISADE_DROP_ICMP_UNRELATED, p);
	k.pod_ip = pod->ip4;
	k.peer_ip = in.saddr;
	k.peer_port = ports[0];
	k.pod_port = ports[1];
	k.proto = in.protocol;
	if (in.protocol == IPPROTO_TCP && bpf_map_lookup_elem(&palisade_tcp_in, &k))
		return TC_ACT_OK;
	if (in.protocol == IPPROTO_UDP && bpf_map_lookup_elem(&palisade_dgram, &k))
		return TC_ACT_OK;
	return drop(pod, FROM, PALISADE_DROP_ICMP_UNRELATED, p);
}

static __always_inline int from_pod_icmp(struct __sk_buff *skb, const struct palisade_iface *pod, const struct pkt *p)
{
	struct palisade_flow_key k = {};
	struct palisade_dgram *f;

	if (p->icmp_type == ICMP_ECHO) {
		if (p->daddr == palisade_cfg.proxy_ip4)
			return drop(pod, FROM, PALISADE_DROP_PROXY_PORT, p);
		return from_pod_dgram(pod, p, 0, PALISADE_DROP_ICMP_NOT_ALLOWED, PALISADE_DROP_ICMP_DENIED);
	}
	if (p->icmp_type == ICMP_ECHOREPLY) {
		/* only the answer to an echo request that came in */
		flow_key(&k, pod, p, 1);
		f = bpf_map_lookup_elem(&palisade_dgram, &k);
		if (f && f->dir == TO) {
			account(f, FROM, p->len);
			return TC_ACT_OK;
		}
		return drop(pod, FROM, PALISADE_DROP_ICMP_NOT_ALLOWED, p);
	}
	if (is_icmp_error(p->icmp_type))
		return from_pod_icmp_error(skb, pod, p);
	return drop(pod, FROM, PALISADE_DROP_ICMP_NOT_ALLOWED, p);
}

static __always_inline int from_pod_ip(struct __sk_buff *skb, const struct palisade_iface *pod, const struct pkt *p)
{
	switch (p->proto) {
	case IPPROTO_TCP:
		return from_pod_tcp(pod, p);
	case IPPROTO_UDP:
		return from_pod_udp(pod, p);
	case IPPROTO_ICMP:
		return from_pod_icmp(skb, pod, p);
	default:
		return drop(pod, FROM, PALISADE_DROP_PROTOCOL, p);
	}
}

static __always_inline int from_pod_arp(struct __sk_buff *skb, const struct palisade_iface *pod, struct pkt *p)
{
	struct arp_ipv4 a;

	if (bpf_skb_load_bytes(skb, PALISADE_ETH_HLEN, &a, sizeof(a)) < 0)
		return drop(pod, FROM, PALISADE_DROP_MALFORMED, p);
	if (a.hrd != bpf_htons(PALISADE_ARPHRD_ETHER) || a.pro != bpf_htons(ETH_P_IP) || a.hln != 6 || a.pln != 4)
		return drop(pod, FROM, PALISADE_DROP_MALFORMED, p);
	__builtin_memcpy(&p->saddr, a.sip, 4);
	__builtin_memcpy(&p->daddr, a.tip, 4);
	if (!same_mac(a.sha, pod->mac) || p->saddr != pod->ip4)
		return drop(pod, FROM, PALISADE_DROP_SPOOFED_ARP, p);
	return TC_ACT_OK;
}

static __always_inline int from_pod_frame(struct __sk_buff *skb, const struct palisade_iface *pod, struct pkt *p,
					  const struct ethhdr *eth)
{
	if (!same_mac(eth->h_source, pod->mac))
		return drop(pod, FROM, PALISADE_DROP_SPOOFED_MAC, p);
	if (skb->vlan_present)
		return drop(pod, FROM, PALISADE_DROP_NOT_IP, p);
	if (p->eth_proto == ETH_P_ARP)
		return from_pod_arp(skb, pod, p);
	if (p->eth_proto == ETH_P_IPV6)
		return ipv6_frame(skb, pod, p, FROM);
	if (p->eth_proto != ETH_P_IP)
		return drop(pod, FROM, PALISADE_DROP_NOT_IP, p);
	return ipv4_frame(skb, pod, p, FROM);
}

/* ---- to the pod ---- */

static __always_inline int from_agent(struct __sk_buff *skb)
{
	__u64 cg = bpf_skb_cgroup_id(skb);

	return cg != 0 && bpf_map_lookup_elem(&palisade_agent_cg, &cg) != NULL;
}

static __always_inline int strict(const struct palisade_iface *pod)
{
	return (pod->flags & PALISADE_POD_STRICT) != 0;
}

static __always_inline int to_pod_tcp(struct __sk_buff *skb, const struct palisade_iface *pod, const struct pkt *p)
{
	struct palisade_flow_key k = {};
	__u32 id = pod->pod_id;
	__u32 *conn;

	if ((p->tcp_flags & (PALISADE_TCP_SYN | PALISADE_TCP_ACK)) != PALISADE_TCP_SYN) {
		/* within a connection; the pod's stack answers anything else with a reset */
		if (p->tcp_flags & PALISADE_TCP_FIN) {
			flow_key(&k, pod, p, 0);
			conn = bpf_map_lookup_elem(&palisade_tcp_in, &k);
			if (conn)
				*conn |= PALISADE_TCP_IN_FIN_TO_POD;
		}
		return TC_ACT_OK;
	}
	if (strict(pod) && !from_agent(skb))
		return drop(pod, TO, PALISADE_DROP_STRICT_TCP, p);
	flow_key(&k, pod, p, 0);
	bpf_map_update_elem(&palisade_tcp_in, &k, &id, BPF_ANY);
	return TC_ACT_OK;
}

/* UDP and ICMP echo requests to the pod: a flow it has, else a strict pod's rules; others learn the flow. */
static __always_inline int to_pod_dgram(const struct palisade_iface *pod, const struct pkt *p, __u8 refused)
{
	struct palisade_flow_key k = {};
	struct palisade_dgram *f;
	const struct palisade_rule *r;
	__u8 gen = rules_gen();

	flow_key(&k, pod, p, 0);
	f = bpf_map_lookup_elem(&palisade_dgram, &k);
	if (f && still_allowed(f, &k, gen)) {
		account(f, TO, p->len);
		return TC_ACT_OK;
	}
	if (!strict(pod)) {
		learn_dgram(&k, pod->pod_id, TO, gen, 0, p->len);
		return TC_ACT_OK;
	}
	if (p->proto != IPPROTO_UDP)
		return drop(pod, TO, refused, p);
	r = find_rule(gen, TO, IPPROTO_UDP, pod->pod_id, bpf_ntohs(p->dport), p->saddr);
	if (!r || r->verdict != PALISADE_RULE_ALLOW)
		return drop(pod, TO, refused, p);
	learn_dgram(&k, pod->pod_id, TO, gen, r->ref, p->len);
	return TC_ACT_OK;
}

static __always_inline int to_pod_icmp(const struct palisade_iface *pod, const struct pkt *p)
{
	struct palisade_flow_key k = {};
	struct palisade_dgram *f;

	if (is_icmp_error(p->icmp_type))
		return TC_ACT_OK;
	if (p->icmp_type == ICMP_ECHO)
		return to_pod_dgram(pod, p, PALISADE_DROP_STRICT_ICMP);
	if (p->icmp_type == ICMP_ECHOREPLY) {
		flow_key(&k, pod, p, 0);
		f = bpf_map_lookup_elem(&palisade_dgram, &k);
		if (f && f->dir == FROM) {
			account(f, TO, p->len);
			return TC_ACT_OK;
		}
	}
	return strict(pod) ? drop(pod, TO, PALISADE_DROP_STRICT_ICMP, p) : TC_ACT_OK;
}

static __always_inline int to_pod_ip(struct __sk_buff *skb, const struct palisade_iface *pod, const struct pkt *p)
{
	switch (p->proto) {
	case IPPROTO_TCP:
		return to_pod_tcp(skb, pod, p);
	case IPPROTO_UDP:
		/* the DNS proxy's answers, from the agent's own socket */
		if (p->saddr == palisade_cfg.proxy_ip4 && bpf_ntohs(p->sport) == palisade_cfg.dns_port && from_agent(skb))
			return TC_ACT_OK;
		return to_pod_dgram(pod, p, PALISADE_DROP_STRICT_UDP);
	case IPPROTO_ICMP:
		return to_pod_icmp(pod, p);
	default:
		return strict(pod) ? drop(pod, TO, PALISADE_DROP_PROTOCOL, p) : TC_ACT_OK;
	}
}

static __always_inline int to_pod_frame(struct __sk_buff *skb, const struct palisade_iface *pod, struct pkt *p)
{
	if (p->eth_proto == ETH_P_ARP)
		return TC_ACT_OK;
	if (p->eth_proto == ETH_P_IPV6)
		return ipv6_frame(skb, pod, p, TO);
	if (p->eth_proto != ETH_P_IP || skb->vlan_present)
		return strict(pod) ? drop(pod, TO, PALISADE_DROP_NOT_IP, p) : TC_ACT_OK;
	return ipv4_frame(skb, pod, p, TO);
}

/* An IPv4 packet either way: well formed, from the pod's own address, its fragments following the first. */
static __always_inline int ipv4_frame(struct __sk_buff *skb, const struct palisade_iface *pod, struct pkt *p, __u8 dir)
{
	int reason = parse_ipv4(skb, p);

	if (reason)
		return drop(pod, dir, reason, p);
	if (dir == FROM && p->saddr != pod->ip4)
		return drop(pod, FROM, PALISADE_DROP_SPOOFED_IP, p);
	if (is_later_fragment(p))
		return later_fragment(pod, dir, p);
	return with_fragments(dir == FROM ? from_pod_ip(skb, pod, p) : to_pod_ip(skb, pod, p), p);
}

/* Every frame on an enrolled pod's host-side interface; other interfaces' frames pass untouched. */
static __always_inline int on_frame(struct __sk_buff *skb, __u8 dir)
{
	__u32 ifindex = skb->ifindex;
	const struct palisade_iface *pod = bpf_map_lookup_elem(&palisade_ifaces, &ifindex);
	struct ethhdr eth;
	struct pkt p = {};

	if (!pod)
		return TC_ACT_OK;
	p.len = skb->len > PALISADE_ETH_HLEN ? skb->len - PALISADE_ETH_HLEN : 0;
	if (bpf_skb_load_bytes(skb, 0, &eth, sizeof(eth)) < 0)
		return drop(pod, dir, PALISADE_DROP_MALFORMED, &p);
	p.eth_proto = bpf_ntohs(eth.h_proto);
	return dir == FROM ? from_pod_frame(skb, pod, &p, &eth) : to_pod_frame(skb, pod, &p);
}

SEC("tc")
int palisade_from_pod(struct __sk_buff *skb)
{
	return on_frame(skb, FROM);
}

SEC("tc")
int palisade_to_pod(struct __sk_buff *skb)
{
	return on_frame(skb, TO);
}

/*
 * A pod refused enrollment because the node's pod maps are full: nothing passes its host-side
 * interface either way until it is enrolled (which replaces this filter) or leaves. Counted.
 */
SEC("tc")
int palisade_hold(struct __sk_buff *skb)
{
	count(PALISADE_STAT_HELD);
	return TC_ACT_SHOT;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
