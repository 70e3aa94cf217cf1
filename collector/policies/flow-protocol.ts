/**
 * Which EgressPolicy protocol a flow record's connection was (pure): what the proxy carried —
 * `tcp`, `tls`, `http` — is TCP; the per-pod filters' `udp` and `icmp` records are UDP and ICMP.
 * Anything else (`dns` is the DNS proxy's own record, `arp`, `other`) is no protocol an egress
 * entry can name: undefined. `egress learn` and `policy test` read records through it.
 */
import type { FlowProtocol } from '../../common/flow';
import type { EgressProtocol } from '../../common/policy/types';

const BY_FLOW: Partial<Record<FlowProtocol, EgressProtocol>> = { tcp: 'TCP', tls: 'TCP', http: 'TCP', udp: 'UDP', icmp: 'ICMP' };

export function egressProtocolOf(protocol: FlowProtocol): EgressProtocol | undefined {
  return BY_FLOW[protocol];
}
