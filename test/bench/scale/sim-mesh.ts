/**
 * The simulated mesh: the collector process, the simulated agents, their keys and CSRs, the flow
 * ticker and the collector usage sampler. Scenarios (scenarios.ts) act on it; everything here is
 * set up once (`start`) and torn down once (`stop`).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ANY_SCOPE } from '../../../collector/nodes/node-binding';
import { TokenStore } from '../../../collector/tokens';
import { ApiClient } from '../../../common/api-client';
import { createCsr, generateKeyPair, type KeyPair } from '../../../common/pki';
import { encodeFlow } from '../../../agent/flows/wire';
import { realisticFlow } from '../flow-ingest';
import { CollectorProcess } from './collector-process';
import { NodePods, identityUri, nodeAddress, nodeName, podCidr } from './mesh-shape';
import type { SimOptions } from './options';
import { SimAgent } from './sim-agent';
import { inBatches, sleep, within } from './timing';

/** Distinct keys the simulated nodes and workloads share (the collector keeps no key unique to a node). */
const KEY_POOL = 8;
const FLOW_TEXTS = 64;
/** Sessions not all registered by then: the run stops (a mass connect the collector does not get through). */
const SETUP_DEADLINE_MS = 600_000;
/** Bring-up moves every agent a whole registry: past 60,000 workloads, 10 ms more per workload. */
export const setupDeadlineMs = (workloads: number): number => Math.max(SETUP_DEADLINE_MS, workloads * 10);

export interface SetupFigures {
  joinSeconds: number;
  connectSeconds: number;
  /** CPU seconds of the collector and of this process (the simulated agents) while the sessions opened. */
  connectCpuSeconds: { collector: number; agents: number };
  certificateSeconds: number;
  csrFailed: number;
  /** Registry frame size once every node registered, and the workloads it holds. */
  registryFrameBytes: number;
  /** The collector's warning lines during the setup, by reason (e.g. sessions cut for no pong). */
  collectorWarnings: Record<string, number>;
}

const round1 = (x: number): number => Math.round(x * 10) / 10;

export class SimMesh {
  readonly agents: SimAgent[] = [];
  readonly pods: NodePods[] = [];
  readonly collector: CollectorProcess;
  readonly dir: string;
  private keys: KeyPair[] = [];
  private csrs: Array<Array<{ identity: string; csr: string }>> = [];
  private flowTimer: NodeJS.Timeout | undefined;
  private sampler: NodeJS.Timeout | undefined;
  private flowCarry = 0;
  /** Highest collector RSS seen since `resetRss`. */
  maxRssMb = 0;
  private caPem = '';

  constructor(readonly opts: SimOptions) {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'palisade-scale-'));
    fs.mkdirSync(path.join(this.dir, 'collector'), { mode: 0o700 });
    this.collector = new CollectorProcess(path.join(this.dir, 'collector'), path.join(this.dir, 'collector.log'));
  }

  get collectorLog(): string {
    return path.join(this.dir, 'collector.log');
  }

  /** Start the collector, join and connect `nodes` agents, get their certificates. */
  async start(log: (line: string) => void): Promise<SetupFigures> {
    await this.collector.start();
    this.caPem = fs.readFileSync(this.collector.caFile, 'utf8');
    this.sampler = setInterval(() => {
      const rss = this.collector.usage().rssMb;
      if (rss > this.maxRssMb) this.maxRssMb = rss;
    }, 250);
    this.keys = await Promise.all(Array.from({ length: KEY_POOL }, () => generateKeyPair()));
    const identities = Array.from({ length: Math.min(this.opts.identitiesPerNode, this.opts.podsPerNode) }, (_, j) => identityUri(j, this.opts.identitiesPerNode));
    // one CSR per identity per pooled key: agents differ by key, the collector checks each anyway
    this.csrs = this.keys.map((key) => identities.map((identity) => ({ identity, csr: createCsr(key, { commonName: identity.split('/').pop()!, uri: identity }) })));
    let t = performance.now();
    const tokens = this.createTokens(0, this.opts.nodes);
    for (let i = 0; i < this.opts.nodes; i++) this.addAgent(i);
    await inBatches(this.agents, 16, (a, i) => a.join(tokens[i]!, this.keys[i % KEY_POOL]!));
    const joinSeconds = (performance.now() - t) / 1000;
    log(`  ${this.opts.nodes} nodes joined in ${joinSeconds.toFixed(1)} s`);
    t = performance.now();
    const cpu0 = { collector: this.collector.usage().cpuSeconds, agents: process.cpuUsage() };
    const deadlineMs = setupDeadlineMs(this.opts.nodes * this.opts.podsPerNode);
    const connected = await within(
      inBatches(this.agents, 32, (a) => a.connect()).then(() => true),
      deadlineMs,
    );
    if (connected === undefined) {
      const ready = this.agents.filter((a) => a.isReady).length;
      throw new Error(`only ${ready} of ${this.agents.length} sessions registered after ${deadlineMs / 1000} s; collector warnings: ${JSON.stringify(this.collector.warnings())}, RSS ${Math.round(this.collector.usage().rssMb)} MB`);
    }
    const connectSeconds = (performance.now() - t) / 1000;
    const agentsCpu = process.cpuUsage(cpu0.agents);
    const connectCpuSeconds = { collector: round1(this.collector.usage().cpuSeconds - cpu0.collector), agents: round1((agentsCpu.user + agentsCpu.system) / 1e6) };
    log(`  ${this.opts.nodes} sessions open and registered in ${connectSeconds.toFixed(1)} s (CPU: collector ${connectCpuSeconds.collector} s, agents ${connectCpuSeconds.agents} s)`);
    t = performance.now();
    await inBatches(this.agents, 8, (a, i) => a.requestCertificates(this.csrsFor(i)));
    const certificateSeconds = (performance.now() - t) / 1000;
    const csrFailed = this.agents.reduce((s, a) => s + a.csrFailed, 0);
    log(`  ${this.agents.reduce((s, a) => s + a.csrOk, 0)} workload certificates in ${certificateSeconds.toFixed(1)} s (${csrFailed} failed)`);
    await this.settled();
    return {
      joinSeconds,
      connectSeconds,
      connectCpuSeconds,
      certificateSeconds,
      csrFailed,
      registryFrameBytes: this.agents[0]?.lastRegistryBytes ?? 0,
      collectorWarnings: this.collector.warnings(),
    };
  }

  /** Single-use join tokens for nodes [from, to), bound to each node and its pod range. */
  createTokens(from: number, to: number): string[] {
    const store = new TokenStore(this.collector.dataDir);
    const out: string[] = [];
    for (let i = from; i < to; i++) out.push(store.create({ node: nodeName(i), nodeCidr: podCidr(i), scopes: [ANY_SCOPE] }, 60 * 60_000).token);
    return out;
  }

  /** A new (not yet joined) agent for node index i, with its pods. */
  addAgent(i: number): SimAgent {
    const pods = new NodePods(i, this.opts.podsPerNode, this.opts.identitiesPerNode);
    const node = nodeName(i);
    const flowTexts = Array.from({ length: FLOW_TEXTS }, (_, k) => {
      const encoded = encodeFlow(realisticFlow(i * FLOW_TEXTS + k, node, Date.now()));
      if (encoded.json === undefined) throw new Error(`simulated flow refused: ${encoded.problem}`);
      return encoded.json;
    });
    const agent = new SimAgent({ node, nodeAddress: nodeAddress(i), endpoint: { kind: 'tcp', hostPort: `127.0.0.1:${this.collector.port}` }, caPem: this.caPem, flowTexts });
    agent.setPods(pods.registrations());
    agent.keepFrame = i === 0; // the cost model reads one whole registry frame
    this.agents[i] = agent;
    this.pods[i] = pods;
    return agent;
  }

  keyFor(i: number): KeyPair {
    return this.keys[i % KEY_POOL]!;
  }

  csrsFor(i: number): Array<{ identity: string; csr: string }> {
    return this.csrs[i % KEY_POOL]!;
  }

  api(): ApiClient {
    return new ApiClient({ url: `https://127.0.0.1:${this.collector.port}`, token: this.collector.adminToken, caPem: this.caPem });
  }

  /** Every agent, every `flushMs`, sends what `flowRate` (flows/s over the whole mesh) gives it. */
  startFlows(): void {
    const { flowRate, flushMs } = this.opts;
    if (flowRate <= 0) return;
    this.flowTimer = setInterval(() => {
      const live = this.agents.filter((a) => a !== undefined);
      this.flowCarry += (flowRate * flushMs) / 1000;
      const each = Math.floor(this.flowCarry / live.length);
      let extra = Math.floor(this.flowCarry - each * live.length);
      this.flowCarry -= each * live.length + extra;
      for (const a of live) a.sendFlows(Math.min(1000, each + (extra-- > 0 ? 1 : 0)));
    }, flushMs);
  }

  /** Wait until the collector has been quiet: every agent's newest registry frame is the same version. */
  async settled(timeoutMs = 120_000): Promise<void> {
    const until = performance.now() + timeoutMs;
    while (performance.now() < until) {
      const versions = new Set(this.agents.map((a) => a.registry.at(-1)?.version));
      if (versions.size === 1) {
        await sleep(300);
        if (new Set(this.agents.map((a) => a.registry.at(-1)?.version)).size === 1) return;
      }
      await sleep(100);
    }
  }

  resetRss(): void {
    this.maxRssMb = this.collector.usage().rssMb || 0;
  }

  async stop(): Promise<void> {
    clearInterval(this.flowTimer);
    clearInterval(this.sampler);
    await inBatches(this.agents, 64, (a) => a.disconnect());
    await this.collector.stop();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
