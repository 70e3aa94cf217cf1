/**
 * Packets the pod filters (bpf/pod.bpf.c) dropped on the bench's nodes, by reason and direction:
 * read before and after every run, so a run whose traffic the kernel dropped says so instead of
 * showing as a slow or silent proxy (the s4 bench's hang: nginx's answers on pooled connections
 * dropped once their palisade_tcp_in records were evicted). IPv6 link-local chatter is the pods'
 * own kernels talking, not the bench's traffic: left out. The arithmetic and wording are report.ts's.
 */
import { Datapath } from '../../../agent/datapath/datapath';
import type { DropTotals } from './report';

/** Totals over the nodes' drop counters, keyed "reason direction". */
export function readFilterDrops(nodes: readonly string[]): DropTotals {
  const out: DropTotals = {};
  for (const node of nodes) {
    const dp = Datapath.open(node);
    try {
      for (const d of dp.drops()) {
        if (d.reason === 'ipv6-link-local') continue;
        const k = `${d.reason} ${d.direction}`;
        out[k] = (out[k] ?? 0) + Number(d.packets);
      }
    } finally {
      dp.close();
    }
  }
  return out;
}
