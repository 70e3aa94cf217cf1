/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Maps shared by every Palisade object. Each object declares the same maps;
 * the agent pins them under /sys/fs/bpf/palisade/<node>/ and libbpf reuses
 * the pins, so all programs of one node see one set of maps.
 */
#ifndef PALISADE_MAPS_H
#define PALISADE_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "palisade.h"

/* Enrolled pods: netns cookie -> pod. Only sockets in these namespaces are touched. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PALISADE_MAX_PODS);
	__type(key, __u64);
	__type(value, struct palisade_pod);
} palisade_pods SEC(".maps");

/*
 * Original destination by socket cookie of the pod's socket; written by connect4,
 * read by getpeername4 and sockops. LRU: entries of sockets whose connect failed
 * before the TCP state machine started age out instead of leaking.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, PALISADE_MAX_CONNS);
	__type(key, __u64);
	__type(value, struct palisade_orig);
} palisade_orig_sk SEC(".maps");

/* Original destination by (pod ip, source port); read by the proxy when it accepts. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, PALISADE_MAX_CONNS);
	__type(key, struct palisade_tuple);
	__type(value, struct palisade_orig);
} palisade_conns SEC(".maps");

/* Destinations never redirected (operator-configured CIDRs). Value unused (1). */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, PALISADE_MAX_EXCL);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct palisade_lpm_key);
	__type(value, __u8);
} palisade_excl_cidr SEC(".maps");

/* Destination ports never redirected (operator-configured). Value unused (1). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, PALISADE_MAX_EXCL);
	__type(key, __u16);
	__type(value, __u8);
} palisade_excl_port SEC(".maps");

/* Counters, see enum palisade_stat; per-CPU, summed in user space. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PALISADE_STAT_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} palisade_stats SEC(".maps");

#endif /* PALISADE_MAPS_H */
