/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Maps of the per-pod programs (bpf/pod.bpf.c), pinned next to the shared ones (maps.h) under
 * /sys/fs/bpf/palisade/<node>/. The agent writes palisade_ifaces, palisade_agent_cg,
 * palisade_rules and palisade_rules_gen; the programs learn the flow state and count drops.
 */
#ifndef PALISADE_POD_MAPS_H
#define PALISADE_POD_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "palisade.h"

/* Enrolled pods by the ifindex of their host-side interface. Other interfaces are left alone. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PALISADE_MAX_PODS);
	__type(key, __u32);
	__type(value, struct palisade_iface);
} palisade_ifaces SEC(".maps");

/*
 * cgroup v2 ids whose sockets may open TCP connections to strict pods: the agent's own (two
 * agents during a handover, each registering its cgroup).
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PALISADE_MAX_AGENT_CG);
	__type(key, __u64);
	__type(value, struct palisade_agent);
} palisade_agent_cg SEC(".maps");

/* [0]: the agent's network namespace, where the filters hang. Written and read by user space only. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct palisade_host);
} palisade_host SEC(".maps");

/*
 * TCP connections opened to a pod (learned from the SYN let in): the pod's replies may leave. The
 * value is the pod's id with PALISADE_TCP_IN_FIN_* flags; an entry leaves with its connection's
 * last packet (pod.bpf.c tcp_in_closing), so the map holds live connections, not every one since.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, PALISADE_MAX_CONNS);
	__type(key, struct palisade_flow_key);
	__type(value, __u32);
} palisade_tcp_in SEC(".maps");

/* UDP and ICMP echo flows let through either way, with their counters (flow summaries). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, PALISADE_MAX_DGRAM);
	__type(key, struct palisade_flow_key);
	__type(value, struct palisade_dgram);
} palisade_dgram SEC(".maps");

/* Datagrams whose first fragment was let through: their later fragments follow it. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, PALISADE_MAX_FRAGS);
	__type(key, struct palisade_frag_key);
	__type(value, __u8);
} palisade_frags SEC(".maps");

/*
 * UDP and ICMP policy (EgressPolicy entries from the pod, AuthorizationPolicy ports to a strict
 * pod), compiled by the agent. Two generations live side by side while a change is written; the
 * programs read only the one palisade_rules_gen names, so no packet sees half a change.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, PALISADE_MAX_RULES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct palisade_rule_key);
	__type(value, struct palisade_rule);
} palisade_rules SEC(".maps");

/* [0]: the generation of palisade_rules in force. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} palisade_rules_gen SEC(".maps");

/*
 * Dropped packets per pod, reason and direction (per CPU, summed by the agent). Preallocated and
 * never deleted: counters only grow, the agent reports differences.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, PALISADE_MAX_DROP_KEYS);
	__type(key, struct palisade_drop_key);
	__type(value, struct palisade_drop);
} palisade_drops SEC(".maps");

/* [drop key of an IPv6 drop]: the newest such packet's addresses, for the flow summary. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PALISADE_MAX_PODS * 2);
	__type(key, struct palisade_drop_key);
	__type(value, struct palisade_drop6);
} palisade_drops_v6 SEC(".maps");

/*
 * [drop key]: packets of that counter an agent has already reported, so that a restarted agent
 * reports what happened while none ran, and nothing twice. Written and read by user space only.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PALISADE_MAX_DROP_KEYS);
	__type(key, struct palisade_drop_key);
	__type(value, __u64);
} palisade_drops_seen SEC(".maps");

#endif /* PALISADE_POD_MAPS_H */
