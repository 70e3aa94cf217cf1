/**
 * The flow record of a pod refused enrollment (the node's pod maps full): denied, from the pod to
 * everywhere (`*`, the convention of summaries that fold endpoints), since it gets no network
 * through the node until it is enrolled. Pure.
 */
import { flowRecord, type FlowRecord } from '../../common/flow';
import type { Workload } from '../workloads';

export function refusalFlow(node: string, w: Workload, reason: string): FlowRecord {
  return flowRecord({
    node,
    direction: 'outbound',
    source: { ip: w.ip, workload: w.name, namespace: w.namespace, identity: w.identity },
    destination: { ip: '*' },
    protocol: 'other',
    verdict: 'denied',
    reason,
    mtls: false,
    bytesSent: 0,
    bytesReceived: 0,
    durationMs: 0,
  });
}
