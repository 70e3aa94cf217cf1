/**
 * Where the time and bytes of one registry change go today, from a real registry frame: its
 * size per workload, what it costs to encode (the collector, once per change) and to parse and
 * check (every real agent, per change: the simulated ones skip it), and the same scaled to a
 * mesh of `target` nodes × pods, where every change sends the whole registry to every agent.
 */
import { MAX_COLLECTOR_FRAME_BYTES, parseMessage } from '../../../common/mesh-protocol';

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
  /** The same frame at the target size, and what one change then costs over every agent. */
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
