/**
 * One agent process of the simulator (`--processes K`): a child forked by agent-proxy.ts that runs
 * its share of the simulated agents (sim-agent.ts) and their pods (mesh-shape.ts), does what the
 * coordinator asks over IPC (worker-messages.ts) and streams every registry and policies frame's
 * arrival (agent, kind, version, CLOCK_MONOTONIC time) back, flushed before every reply so a
 * reply never overtakes the arrivals that came before it.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { encodeFlow } from '../../../agent/flows/wire';
import { realisticFlow } from '../flow-ingest';
import { costModel } from './cost-model';
import { NodePods, nodeAddress, nodeName } from './mesh-shape';
import type { SimOptions } from './options';
import { SimAgent, type Arrival } from './sim-agent';
import { now, sleep } from './timing';
import { KIND_POLICIES, KIND_REGISTRY, type LoopDelay, type Replaced, type WorkerMessage, type WorkerRequest, type WorkerTotals } from './worker-messages';

const FLOW_TEXTS = 64;
/** Arrivals wait at most this long before they go to the coordinator. */
const FLUSH_MS = 20;

type Init = Extract<WorkerRequest, { op: 'init' }>;

let init: Init | undefined;
const agents = new Map<number, SimAgent>();
const pods = new Map<number, NodePods>();
let pending: number[] = [];
let flushTimer: NodeJS.Timeout | undefined;
let flowTimer: NodeJS.Timeout | undefined;
let flowCarry = 0;
const loopDelay = monitorEventLoopDelay({ resolution: 10 });
loopDelay.enable();

function send(message: WorkerMessage): void {
  process.send!(message);
}

function flush(): void {
  clearTimeout(flushTimer);
  flushTimer = undefined;
  if (pending.length === 0) return;
  send({ type: 'arrivals', flat: pending });
  pending = [];
}

function agent(i: number): SimAgent {
  const a = agents.get(i);
  if (!a) throw new Error(`agent ${i} is not in this process`);
  return a;
}

function add(i: number): void {
  const { opts, caPem, port } = init!;
  const node = nodeName(i);
  const flowTexts = Array.from({ length: FLOW_TEXTS }, (_, k) => {
    const encoded = encodeFlow(realisticFlow(i * FLOW_TEXTS + k, node, Date.now()));
    if (encoded.json === undefined) throw new Error(`simulated flow refused: ${encoded.problem}`);
    return encoded.json;
  });
  const a = new SimAgent({ node, nodeAddress: nodeAddress(i), endpoint: { kind: 'tcp', hostPort: `127.0.0.1:${port}` }, caPem, flowTexts });
  const p = new NodePods(i, opts.podsPerNode, opts.identitiesPerNode);
  a.setPods(p.registrations());
  a.onArrival = (kind, arrival) => {
    pending.push(i, kind === 'registry' ? KIND_REGISTRY : KIND_POLICIES, arrival.version, arrival.t);
    flushTimer ??= setTimeout(flush, FLUSH_MS);
  };
  agents.set(i, a);
  pods.set(i, p);
}

/** Every flushMs, this process's share of the mesh's flows over its agents (as the one-process simulator did). */
function startFlows(rate: number, opts: SimOptions): void {
  clearInterval(flowTimer);
  if (rate <= 0) return;
  flowTimer = setInterval(() => {
    const live = [...agents.values()];
    flowCarry += (rate * opts.flushMs) / 1000;
    const each = Math.floor(flowCarry / live.length);
    let extra = Math.floor(flowCarry - each * live.length);
    flowCarry -= each * live.length + extra;
    for (const a of live) a.sendFlows(Math.min(1000, each + (extra-- > 0 ? 1 : 0)));
  }, opts.flushMs);
}

function totals(): WorkerTotals {
  const t: WorkerTotals = { bytesIn: 0, pushBytes: 0, flowsAcked: 0, flowsHeld: 0, csrOk: 0, csrFailed: 0, ready: 0, frames: 0, searched: 0 };
  for (const a of agents.values()) {
    t.bytesIn += a.bytesIn;
    t.pushBytes += a.pushBytes;
    t.flowsAcked += a.flowsAcked;
    t.flowsHeld += a.flowsHeld;
    t.csrOk += a.csrOk;
    t.csrFailed += a.csrFailed;
    t.ready += a.isReady ? 1 : 0;
    t.frames += a.frames;
    t.searched += a.searched;
  }
  return t;
}

function replied(id: number, result: unknown): void {
  flush();
  send({ type: 'reply', id, result });
}

async function handle(r: WorkerRequest): Promise<unknown> {
  switch (r.op) {
    case 'init':
      init = r;
      return process.pid;
    case 'add':
      return add(r.i);
    case 'join':
      return agent(r.i).join(r.token, init!.keys[r.i % init!.keys.length]!);
    case 'connect':
      return agent(r.i).connect();
    case 'disconnect':
      return agent(r.i).disconnect();
    case 'certificates':
      return agent(r.i).requestCertificates(init!.csrs[r.i % init!.csrs.length]!);
    case 'snapshot': {
      const a = agent(r.i);
      a.keepFrame = r.costModel;
      await a.requestSnapshot();
      const frame = a.lastRegistryFrame;
      a.keepFrame = false;
      a.lastRegistryFrame = undefined;
      return { registryBytes: a.lastRegistryBytes, model: r.costModel && frame ? costModel(frame, { nodes: 1000, pods: 100 }) : null };
    }
    case 'watch':
      return agent(r.i).watchFor(r.ip);
    case 'back': {
      const a = agent(r.i);
      while (a.isReady) await sleep(20); // this process may not have seen the close yet
      await a.whenReady();
      return a.registry.at(-1);
    }
    case 'replace': {
      const a = agent(r.i);
      const p = pods.get(r.i)!;
      const landed: Array<Promise<Arrival>> = [];
      r.positions.forEach((position, k) => {
        const ip = p.replace(position);
        if (r.watched[k]) landed.push(a.watchFor(ip));
      });
      // the clock is read before the register goes out: the collector (another process, the other
      // core) can have it to every agent before this process runs its next line
      const sent = now();
      a.setPods(p.registrations());
      landed.forEach((l, k) => void l.then((arrival) => replied(r.ids[k]!, { sent, version: arrival.version, t: arrival.t } satisfies Replaced)));
      return sent;
    }
    case 'flows':
      return startFlows(r.rate, init!.opts);
    case 'totals':
      return totals();
    case 'take-acks': {
      const out: number[] = [];
      for (const a of agents.values()) out.push(...a.ackLatencies.splice(0));
      return out;
    }
    case 'loop-delay': {
      const delay: LoopDelay = { p99Ms: Math.round(loopDelay.percentile(99) / 1e5) / 10, maxMs: Math.round(loopDelay.max / 1e5) / 10 };
      loopDelay.reset();
      return delay;
    }
    case 'stop':
      clearInterval(flowTimer);
      await Promise.all([...agents.values()].map((a) => a.disconnect()));
      return undefined;
  }
}

process.on('message', (message: { id: number; request: WorkerRequest }) => {
  const { id, request } = message;
  handle(request).then(
    (result) => {
      replied(id, result);
      if (request.op === 'stop') setImmediate(() => process.exit(0));
    },
    (err: unknown) => {
      flush();
      send({ type: 'reply', id, error: (err as Error).message });
    },
  );
});
process.on('disconnect', () => process.exit(0));
