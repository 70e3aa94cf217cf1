// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Strict ingress: a pod enrolled with PALISADE_POD_STRICT accepts new inbound TCP
 * connections (SYN without ACK) only from the node proxy, loopback or itself, so
 * nothing can reach it around the mesh. Established flows and non-TCP pass.
 */
#include <stddef.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include "helpers.h"

/* The TCP header up to and including its flags (a cut-short header is judged as far as this). */
#define TCP_THROUGH_FLAGS offsetof(struct tcphdr, window)

SEC("cgroup_skb/ingress")
int palisade_ingress(struct __sk_buff *skb)
{
	__u64 netns = bpf_get_netns_cookie(skb);
	struct palisade_pod *pod = bpf_map_lookup_elem(&palisade_pods, &netns);
	struct iphdr iph;
	struct tcphdr tcph = {};
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
	ihl = iph.ihl * 4;
	if (ihl < 20 || ihl > 60)
		return PALISADE_DENY;
	if (bpf_skb_load_bytes(skb, ihl, &tcph, TCP_THROUGH_FLAGS) < 0)
		return PALISADE_DENY;
	if (!tcph.syn || tcph.ack)
		return PALISADE_ALLOW;
	if (iph.saddr == palisade_cfg.proxy_ip4 || is_loopback4(iph.saddr) ||
	    (pod->ip4 && iph.saddr == pod->ip4))
		return PALISADE_ALLOW;
	count(PALISADE_STAT_STRICT_DROP);
	return PALISADE_DENY;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
