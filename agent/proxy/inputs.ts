/** The one bundle of shared inputs each proxy listener is built from (ztunnel's ProxyInputs). */
import type * as net from 'node:net';
import type { Logger } from '../../common/log';
import type { Original } from '../datapath/datapath';
import type { MeshWorkload, ServiceTarget } from '../mesh/mesh-registry';
import type { Workload } from '../workloads';
import type { FlowSink } from '../../common/flow';
import type { DestinationAuthz } from './destination-authz';
import type { Egress } from './egress';
import type { HbonePool } from './hbone-pool';
import type { ProxyLimits } from './limits';
import type { NodeLocal } from './node-local';
import type { TrafficRouter } from '../traffic/router';

/** What the proxy needs of the kernel data path: only the original-destination lookup. */
export interface OriginalLookup {
  lookupOriginal(peerIp: string, peerPort: number): Original | undefined;
}

/** Local workloads by the key the kernel reports (netns cookie) and by IP. */
export interface WorkloadIndex {
  byNetnsCookie(cookie: bigint): Workload | undefined;
  byIp(ip: string): Workload | undefined;
}

/** The mesh side: registry of every node's workloads and services, and the HBONE connection pool. */
export interface MeshInputs {
  registry: { byIp(ip: string): MeshWorkload | undefined; byVip(ip: string, port: number): ServiceTarget | undefined };
  pool: Pick<HbonePool, 'connect'>;
}

/** The node's DNS proxy, as the outbound listener hands it a TCP connection to port 53. */
export interface DnsTcpHandoff {
  serveTcp(socket: net.Socket, pod: Workload, source: { ip: string; port: number }, resolver: { ip: string; port: number }): void;
}

export interface ProxyInputs {
  node: string;
  proxyIp: string;
  datapath: OriginalLookup;
  workloads: WorkloadIndex;
  /** Absent when the agent runs without a collector: outbound is then a pass-through. */
  mesh: MeshInputs | undefined;
  log: Logger;
  /** The destination's authorization and delivery to a local pod (shared with inbound). */
  authz: DestinationAuthz;
  /** Destinations outside the mesh: the source's egress allowlist. */
  egress: Egress;
  /** Where finished flows go. */
  flows: FlowSink;
  /** DNS over TCP (original destination port 53) is answered by the node's DNS proxy. */
  dns?: DnsTcpHandoff;
  /** Connection caps, idle timeouts, and where refusals are reported. */
  limits: ProxyLimits;
  /** The node's own addresses and the agent's ports: destinations no pod may open. */
  nodeLocal: { current(): NodeLocal };
  /** Per-request routing of connections to a Service an HTTPRoute is attached to (absent without a mesh). */
  traffic?: TrafficRouter;
}
