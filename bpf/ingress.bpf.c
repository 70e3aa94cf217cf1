// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Strict ingress: a pod enrolled with PALISADE_POD_STRICT accepts new inbound TCP
 * connections (SYN without ACK) only from the node proxy, loopback or itself, so
 * nothing can reach it around the mesh. Established flows and non-TCP pass.
 */
#include "helpers.h"

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD

struct ipv4_min {
	__u8 ver_ihl;
	__u8 tos;
	__u16 tot_len;
	__u16 id;
	__u16 frag_off;
	__u8 ttl;
	__u8 protocol;
	__u16 check;
	__u32 saddr;
	__u32 daddr;
};

#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_ACK 0x10

SEC("cgroup_skb/ingress")
int palisade_ingress(struct __sk_buff *skb)
{
	__u64 netns = bpf_get_netns_cookie(skb);
	struct palisade_pod *pod = bpf_map_lookup_elem(&palisade_pods, &netns);
	struct ipv4_min iph;
	__u8 tcp_flags;
	__u32 ihl;

	if (!pod || !(pod->flags & PALISADE_POD_STRICT))
		return PALISADE_ALLOW;
	if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		/* Not meshed yet: a strict pod takes no IPv6 except loopback. */
		if (skb->ifindex == 1)
			return PALISADE_ALLOW;
		count(PALISADE_STAT_STRICT_DROP);
		return PALISADE_DENY;
	}
	if (skb->protocol != bpf_htons(ETH_P_IP))
		return PALISADE_ALLOW;
	if (bpf_skb_load_bytes(skb, 0, &iph, sizeof(iph)) < 0)
		return PALISADE_DENY;
	if (iph.protocol != IPPROTO_TCP)
		return PALISADE_ALLOW;
	ihl = (iph.ver_ihl & 0x0f) * 4;
	if (ihl < 20 || ihl > 60)
		return PALISADE_DENY;
	if (bpf_skb_load_bytes(skb, ihl + 13, &tcp_flags, 1) < 0)
		return PALISADE_DENY;
	if (!(tcp_flags & TCP_FLAG_SYN) || (tcp_flags & TCP_FLAG_ACK))
		return PALISADE_ALLOW;
	if (iph.saddr == palisade_cfg.proxy_ip4 || is_loopback4(iph.saddr) ||
	    (pod->ip4 && iph.saddr == pod->ip4))
		return PALISADE_ALLOW;
	count(PALISADE_STAT_STRICT_DROP);
	return PALISADE_DENY;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
