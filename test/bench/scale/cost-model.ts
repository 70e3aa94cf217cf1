/**
 * What a whole registry snapshot costs, from a real registry frame: its
 * size per workload, what it costs to encode (the collector, once per snapshot sent) and to parse and
 * check (every real agent that gets one: the simulated ones skip it), and the same scaled to a
 * mesh of `target` nodes × pods, where every agent gets a whole snapshot (after a collector
 * restart; a single change travels as a delta).
 * And what one certificate costs the collector (`certificateCost`): every join and every CSR is a
 * CSR read and checked, then a certificate signed by the mesh CA (collector/mesh-ca.ts).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CertificateAuthority } from '../../../collector/mesh-ca';
import { silentLogger } from '../../../common/log';
import { MAX_COLLECTOR_FRAME_BYTES, parseMessage } from '../../../common/mesh-protocol';
import { createCsr, readCsr, type KeyPair } from '../../../common/pki';

export interface CostModel {
  frameBytes: number;
  workloads: number;
  nodes: number;
  bytesPerWorkload: number;
  /** JSON.stringify of the snapshot (the collector's encode, once per change). */
  encodeMs: number;
  /** parseMessage of the frame: JSON.parse plus the boundary's checks (each agent, each change). */
  agentParseMs: number;
  jsonParseMs: number;
  /** The same frame at the target size, and what it costs when every agent gets one (after a collector restart). */
  target: { nodes: number; pods: number; frameBytes: number; bytesPerChange: number; agentParseMs: number; encodeMs: number };
}

function medianMs(fn: () => void, runs = 3): number {
  const times: number[] = [];
  for (let k = 0; k < runs; k++) {
    const t = performance.now();
    fn();
    times.push(performance.now() - t);
  }
  return Math.round(times.sort((a, b) => a - b)[Math.floor(runs / 2)]! * 100) / 100;
}

export function costModel(frame: Buffer, target: { nodes: number; pods: number }): CostModel {
  const parsed = JSON.parse(frame.toString('utf8')) as { workloads: unknown[]; nodes: unknown[] };
  const workloads = parsed.workloads.length;
  const nodes = parsed.nodes.length;
  const nodesBytes = Buffer.byteLength(JSON.stringify(parsed.nodes));
  const bytesPerWorkload = workloads > 0 ? (frame.length - nodesBytes) / workloads : 0;
  const bytesPerNode = nodes > 0 ? nodesBytes / nodes : 0;
  const encodeMs = medianMs(() => JSON.stringify(parsed));
  const jsonParseMs = medianMs(() => JSON.parse(frame.toString('utf8')));
  const agentParseMs = medianMs(() => parseMessage(frame, ['registry'], MAX_COLLECTOR_FRAME_BYTES));
  const targetWorkloads = target.nodes * target.pods;
  const scale = workloads > 0 ? targetWorkloads / workloads : 0;
  const targetFrame = Math.round(bytesPerWorkload * targetWorkloads + bytesPerNode * target.nodes);
  return {
    frameBytes: frame.length,
    workloads,
    nodes,
    bytesPerWorkload: Math.round(bytesPerWorkload),
    encodeMs,
    agentParseMs,
    jsonParseMs,
    target: {
      ...target,
      frameBytes: targetFrame,
      bytesPerChange: targetFrame * target.nodes,
      agentParseMs: Math.round(agentParseMs * scale),
      encodeMs: Math.round(encodeMs * scale),
    },
  };
}

export interface CertificateCost {
  /** readCsr: parse and verify the CSR's signature. */
  readCsrMs: number;
  /** CertificateAuthority.issue: build and sign a workload certificate. */
  issueMs: number;
}

/** Median of 5 reads and issues with a throw-away CA, in this process (the collector's code). */
export function certificateCost(key: KeyPair): CertificateCost {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'palisade-scale-ca-'));
  try {
    const ca = CertificateAuthority.loadOrCreate(dir, 'cluster.local', silentLogger());
    const uri = 'spiffe://cluster.local/ns/ns-0/sa/app-0';
    const csr = createCsr(key, { commonName: 'app-0', uri });
    return {
      readCsrMs: medianMs(() => readCsr(csr), 5),
      issueMs: medianMs(() => ca.issue(key.publicKeyPem, { uri, usage: 'workload', ttlSeconds: 3600 }), 5),
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
