/** A Pod as the agent sees it (PodView), for the workload-sources tests. */
import type { PodView } from '../../../../agent/workload-sources/kubernetes/pod-workload';

export const POD_UID = '6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b';

export function podFixture(over: Partial<PodView> = {}): PodView {
  return {
    uid: POD_UID,
    namespace: 'shop',
    name: 'web-1',
    nodeName: 'node-1',
    serviceAccount: 'web',
    labels: { app: 'web' },
    annotations: {},
    hostNetwork: false,
    podIp: '10.22.0.5',
    phase: 'Running',
    ...over,
  };
}
