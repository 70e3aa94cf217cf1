/**
 * The coordinator's side of the agent processes: `AgentProcesses` forks K agent-worker.ts
 * children and speaks to them (worker-messages.ts); an `AgentProxy` is one simulated agent as the
 * scenarios see it — its registry and policies arrivals (streamed from its process, CLOCK_MONOTONIC
 * times) and the calls that act on it. Agent i lives in process i % K.
 */
import { fork, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import type { CostModel } from './cost-model';
import { processUsage } from './collector-process';
import type { Arrival } from './sim-agent';
import { KIND_REGISTRY, type Replaced, type WorkerMessage, type WorkerRequest, type WorkerTotals } from './worker-messages';

interface Waiter {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
}

class AgentProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;

  constructor(onMessage: (m: WorkerMessage) => void) {
    this.child = fork(path.join(__dirname, 'agent-worker.js'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'advanced' });
    this.child.on('message', onMessage);
    this.exited = new Promise((resolve) => this.child.once('exit', (code) => resolve(code)));
  }
}

export class AgentProcesses {
  private readonly processes: AgentProcess[] = [];
  private readonly waiters = new Map<number, Waiter>();
  private nextId = 0;
  readonly proxies: AgentProxy[] = [];

  constructor(readonly count: number) {
    for (let k = 0; k < count; k++) this.processes.push(new AgentProcess((m) => this.onMessage(m)));
    for (const p of this.processes) {
      void p.exited.then((code) => {
        for (const w of this.waiters.values()) w.reject(new Error(`agent process ${p.child.pid} exited (${code})`));
        this.waiters.clear();
      });
    }
  }

  get pids(): number[] {
    return this.processes.map((p) => p.child.pid!);
  }

  /** CPU seconds of every agent process so far (utime + stime), by process. */
  cpuSeconds(): number[] {
    return this.processes.map((p) => {
      try {
        return processUsage(p.child.pid!).cpuSeconds;
      } catch {
        return 0;
      }
    });
  }

  /** A fresh request id for a reply the caller waits for itself (`replace`). */
  expect<T>(): { id: number; reply: Promise<T> } {
    const id = ++this.nextId;
    const reply = new Promise<T>((resolve, reject) => this.waiters.set(id, { resolve: resolve as (v: unknown) => void, reject }));
    reply.catch(() => undefined); // a process gone fails its callers' awaits, not the whole run (unhandled)
    return { id, reply };
  }

  call<T>(k: number, request: WorkerRequest): Promise<T> {
    const { id, reply } = this.expect<T>();
    this.processes[k]!.child.send({ id, request });
    return reply;
  }

  /** The same request to every process, its replies in process order. */
  all<T>(request: WorkerRequest): Promise<T[]> {
    return Promise.all(this.processes.map((_, k) => this.call<T>(k, request)));
  }

  processOf(i: number): number {
    return i % this.count;
  }

  async add(i: number): Promise<AgentProxy> {
    await this.call(this.processOf(i), { op: 'add', i });
    const proxy = new AgentProxy(this, i);
    this.proxies[i] = proxy;
    return proxy;
  }

  async totals(): Promise<WorkerTotals> {
    const each = await this.all<WorkerTotals>({ op: 'totals' });
    const sum = { ...each[0]! };
    for (const t of each.slice(1)) for (const k of Object.keys(sum) as Array<keyof WorkerTotals>) sum[k] += t[k];
    return sum;
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.processes.map(async (p, k) => {
        if (p.child.exitCode !== null) return;
        const killer = setTimeout(() => p.child.kill('SIGKILL'), 20_000);
        await this.call(k, { op: 'stop' }).catch(() => undefined);
        await p.exited;
        clearTimeout(killer);
      }),
    );
  }

  private onMessage(m: WorkerMessage): void {
    if (m.type === 'arrivals') {
      const f = m.flat;
      for (let k = 0; k + 3 < f.length; k += 4) {
        const proxy = this.proxies[f[k]!];
        if (proxy) (f[k + 1] === KIND_REGISTRY ? proxy.registry : proxy.policies).push({ version: f[k + 2]!, t: f[k + 3]! });
      }
      return;
    }
    const w = this.waiters.get(m.id);
    if (!w) return;
    this.waiters.delete(m.id);
    if (m.error !== undefined) w.reject(new Error(m.error));
    else w.resolve(m.result);
  }
}

/** One simulated agent, in whichever process holds it. */
export class AgentProxy {
  readonly registry: Arrival[] = [];
  readonly policies: Arrival[] = [];

  constructor(
    private readonly processes: AgentProcesses,
    readonly index: number,
  ) {}

  private call<T>(request: WorkerRequest): Promise<T> {
    return this.processes.call<T>(this.processes.processOf(this.index), request);
  }

  join(token: string): Promise<void> {
    return this.call({ op: 'join', i: this.index, token });
  }

  /** Open the node session; resolves at its first registry frame (already in `registry`). */
  connect(): Promise<void> {
    return this.call({ op: 'connect', i: this.index });
  }

  disconnect(): Promise<void> {
    return this.call({ op: 'disconnect', i: this.index });
  }

  requestCertificates(): Promise<void> {
    return this.call({ op: 'certificates', i: this.index });
  }

  /** A whole snapshot (registry-sync); its size, and with `model` the cost model read from it. */
  requestSnapshot(model: boolean): Promise<{ registryBytes: number; model: CostModel | null }> {
    return this.call({ op: 'snapshot', i: this.index, costModel: model });
  }

  /** The first registry frame from now on that holds a pod at `ip`. */
  watchFor(ip: string): Promise<Arrival> {
    return this.call({ op: 'watch', i: this.index, ip });
  }

  /** After a collector stop: the agent's first registry frame on its next session. */
  whenBack(): Promise<Arrival> {
    return this.call({ op: 'back', i: this.index });
  }

  /** Replace the pods at `positions` (the caller's NodePods did the same) and register; per pod, when it was sent and the frame that carried it. */
  /** Replace the pods at `positions`; one promise for each of those `watched` says, in order: when its register went out and the frame that carried it here. */
  replacePods(positions: number[], watched: boolean[]): Array<Promise<Replaced>> {
    const expected = positions.filter((_, k) => watched[k]).map(() => this.processes.expect<Replaced>());
    void this.processes.call(this.processes.processOf(this.index), { op: 'replace', i: this.index, positions, watched, ids: expected.map((e) => e.id) }).catch(() => undefined);
    return expected.map((e) => e.reply);
  }
}
