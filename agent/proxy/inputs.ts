/** The one bundle of shared inputs each proxy listener is built from (ztunnel's ProxyInputs). */
import type { Logger } from '../../common/log';
import type { Original } from '../datapath/datapath';
import type { Workload } from '../workloads';

/** What the proxy needs of the kernel data path: only the original-destination lookup. */
export interface OriginalLookup {
  lookupOriginal(peerIp: string, peerPort: number): Original | undefined;
}

/** Local workloads by the key the kernel reports (netns cookie) and by IP. */
export interface WorkloadIndex {
  byNetnsCookie(cookie: bigint): Workload | undefined;
  byIp(ip: string): Workload | undefined;
}

export interface ProxyInputs {
  node: string;
  proxyIp: string;
  datapath: OriginalLookup;
  workloads: WorkloadIndex;
  log: Logger;
  /** Upstream connect timeout (ms). */
  connectTimeoutMs: number;
}
