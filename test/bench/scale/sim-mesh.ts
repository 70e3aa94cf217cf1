/**
 * The simulated mesh, as the coordinator holds it: the collector process, the agent processes
 * (agent-proxy.ts; each runs a share of the simulated agents), the keys and CSRs they share, and
 * the collector usage sampler. Scenarios (scenarios.ts) act on it; everything here is set up once
 * (`start`) and torn down once (`stop`).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ANY_SCOPE } from '../../../collector/nodes/node-binding';
import { TokenStore } from '../../../collector/tokens';
import { ApiClient } from '../../../common/api-client';
import { createCsr, generateKeyPair, type KeyPair } from '../../../common/pki';
import { AgentProcesses, type AgentProxy } from './agent-proxy';
import { CollectorProcess } from './collector-process';
import { NodePods, identityUri, nodeName, podCidr } from './mesh-shape';
import type { SimOptions } from './options';
import { inBatches, now, sleep, within } from './timing';
import type { WorkerTotals } from './worker-messages';

/** Distinct keys the simulated nodes and workloads share (the collector keeps no key unique to a node). */
const KEY_POOL = 8;
/** Sessions not all registered by then: the run stops (a mass connect the collector does not get through). */
const SETUP_DEADLINE_MS = 600_000;
/** Bring-up moves every agent a whole registry: past 60,000 workloads, 10 ms more per workload. */
export const setupDeadlineMs = (workloads: number): number => Math.max(SETUP_DEADLINE_MS, workloads * 10);

export interface SetupFigures {
  joinSeconds: number;
  connectSeconds: number;
  /** CPU seconds of the collector and of the agent processes (all of them) while the sessions opened. */
  connectCpuSeconds: { collector: number; agents: number };
  certificateSeconds: number;
  csrFailed: number;
  /** Registry frame size once every node registered, and the workloads it holds. */
  registryFrameBytes: number;
  /** The collector's warning lines during the setup, by reason (e.g. sessions cut for no pong). */
  collectorWarnings: Record<string, number>;
}

const round1 = (x: number): number => Math.round(x * 10) / 10;
const sum = (xs: readonly number[]): number => xs.reduce((s, x) => s + x, 0);

export class SimMesh {
  readonly pods: NodePods[] = [];
  readonly collector: CollectorProcess;
  readonly processes: AgentProcesses;
  readonly dir: string;
  private keys: KeyPair[] = [];

  /** The simulated agents, by node index (the agent processes' proxies). */
  get agents(): readonly AgentProxy[] {
    return this.processes.proxies;
  }
  private csrs: Array<Array<{ identity: string; csr: string }>> = [];
  private sampler: NodeJS.Timeout | undefined;
  /** Highest collector RSS seen since `resetRss`. */
  maxRssMb = 0;
  private caPem = '';

  constructor(readonly opts: SimOptions) {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'palisade-scale-'));
    fs.mkdirSync(path.join(this.dir, 'collector'), { mode: 0o700 });
    this.collector = new CollectorProcess(path.join(this.dir, 'collector'), path.join(this.dir, 'collector.log'));
    this.processes = new AgentProcesses(Math.min(opts.processes, opts.nodes));
  }

  get collectorLog(): string {
    return path.join(this.dir, 'collector.log');
  }

  /** CPU seconds of the simulator so far: the agent processes and this coordinator. */
  simulatorCpuSeconds(): number {
    const own = process.cpuUsage();
    return sum(this.processes.cpuSeconds()) + (own.user + own.system) / 1e6;
  }

  /** Start the collector and the agent processes, join and connect `nodes` agents, get their certificates. */
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
    await this.processes.all({ op: 'init', opts: this.opts, caPem: this.caPem, port: this.collector.port, keys: this.keys, csrs: this.csrs });
    log(`  ${this.processes.count} agent processes (pids ${this.processes.pids.join(', ')}), agent i in process i mod ${this.processes.count}`);
    let t = now();
    const tokens = this.createTokens(0, this.opts.nodes);
    await inBatches(Array.from({ length: this.opts.nodes }, (_, i) => i), 64, async (i) => void (await this.addAgent(i)));
    await inBatches(this.agents, 16, (a, i) => a.join(tokens[i]!));
    const joinSeconds = (now() - t) / 1000;
    log(`  ${this.opts.nodes} nodes joined in ${joinSeconds.toFixed(1)} s`);
    t = now();
    const cpu0 = { collector: this.collector.usage().cpuSeconds, agents: sum(this.processes.cpuSeconds()) };
    const deadlineMs = setupDeadlineMs(this.opts.nodes * this.opts.podsPerNode);
    const connected = await within(
      inBatches(this.agents, 32, (a) => a.connect()).then(() => true),
      deadlineMs,
    );
    if (connected === undefined) {
      const { ready } = await this.totals();
      throw new Error(`only ${ready} of ${this.agents.length} sessions registered after ${deadlineMs / 1000} s; collector warnings: ${JSON.stringify(this.collector.warnings())}, RSS ${Math.round(this.collector.usage().rssMb)} MB`);
    }
    const connectSeconds = (now() - t) / 1000;
    const connectCpuSeconds = { collector: round1(this.collector.usage().cpuSeconds - cpu0.collector), agents: round1(sum(this.processes.cpuSeconds()) - cpu0.agents) };
    log(`  ${this.opts.nodes} sessions open and registered in ${connectSeconds.toFixed(1)} s (CPU: collector ${connectCpuSeconds.collector} s, agent processes ${connectCpuSeconds.agents} s)`);
    t = now();
    await inBatches(this.agents, 8, (a) => a.requestCertificates());
    const certificateSeconds = (now() - t) / 1000;
    const { csrOk, csrFailed } = await this.totals();
    log(`  ${csrOk} workload certificates in ${certificateSeconds.toFixed(1)} s (${csrFailed} failed)`);
    await this.settled();
    return {
      joinSeconds,
      connectSeconds,
      connectCpuSeconds,
      certificateSeconds,
      csrFailed,
      registryFrameBytes: 0,
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

  /** A new (not yet joined) agent for node index i, with its pods, in process i mod K. */
  async addAgent(i: number): Promise<AgentProxy> {
    this.pods[i] = new NodePods(i, this.opts.podsPerNode, this.opts.identitiesPerNode);
    return this.processes.add(i);
  }

  keyFor(i: number): KeyPair {
    return this.keys[i % KEY_POOL]!;
  }

  /** Sums over every agent, from every agent process. */
  totals(): Promise<WorkerTotals> {
    return this.processes.totals();
  }

  api(): ApiClient {
    return new ApiClient({ url: `https://127.0.0.1:${this.collector.port}`, token: this.collector.adminToken, caPem: this.caPem });
  }

  /** Every agent, every `flushMs`, sends its share of `flowRate` (flows/s over the whole mesh); each process gets its agents' share. */
  async startFlows(): Promise<void> {
    const total = this.agents.length;
    await Promise.all(
      Array.from({ length: this.processes.count }, (_, k) => {
        const mine = this.agents.filter((a) => this.processes.processOf(a.index) === k).length;
        return this.processes.call(k, { op: 'flows', rate: (this.opts.flowRate * mine) / total });
      }),
    );
  }

  /** Wait until the collector has been quiet: every agent's newest registry frame is the same version. */
  async settled(timeoutMs = 120_000): Promise<void> {
    const until = now() + timeoutMs;
    while (now() < until) {
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
    clearInterval(this.sampler);
    await this.processes.stop();
    await this.collector.stop();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
