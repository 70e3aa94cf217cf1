/** A real collector (in this process) and mesh agents (in node namespaces) for end-to-end tests. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { startCollector, type CollectorOptions, type RunningCollector } from '../../collector/collector';
import { ANY_SCOPE } from '../../collector/nodes/node-binding';
import { TokenStore } from '../../collector/tokens';
import { silentLogger, type Logger } from '../../common/log';
import { startAgentProcess, tempDir, type AgentProcess, type StartAgentOptions } from './agent';
import type { NodeNs, Topology } from './topology';

export interface TestCollector {
  running: RunningCollector;
  dataDir: string;
  socketPath: string;
  caFile: string;
  /** A fresh single-use join token for `node` (optionally bound to its pod range). */
  token(node: string, binding?: { nodeCidr?: string; scopes?: string[] }): string;
  stop(): Promise<void>;
  /** Stop and start again on the same data dir and socket (agents must reconnect by themselves). */
  restart(): Promise<void>;
  /** Start again after stop(), on the same data dir and socket. */
  resume(): Promise<void>;
  cleanup(): Promise<void>;
}

export async function startTestCollector(
  opts: { workloadCertTtlSeconds?: number; log?: Logger; extra?: Partial<Omit<CollectorOptions, 'dataDir' | 'log' | 'listen' | 'agentSocket'>> } = {},
): Promise<TestCollector> {
  const dir = tempDir('collector');
  const dataDir = path.join(dir, 'data');
  const socketPath = path.join(dir, 'collector.sock');
  fs.mkdirSync(dataDir, { mode: 0o700 });
  const start = (): Promise<RunningCollector> =>
    startCollector({
      dataDir,
      log: opts.log ?? silentLogger(),
      listen: '127.0.0.1:0',
      agentSocket: socketPath,
      workloadCertTtlSeconds: opts.workloadCertTtlSeconds,
      ...opts.extra,
    });
  const tc: TestCollector = {
    running: await start(),
    dataDir,
    socketPath,
    caFile: path.join(dataDir, 'ca.crt'),
    token: (node, binding = {}) => new TokenStore(dataDir).create({ node, scopes: [ANY_SCOPE], ...binding }, 10 * 60_000).token,
    async stop() {
      await tc.running.stop();
    },
    async restart() {
      await tc.running.stop();
      tc.running = await start();
    },
    async resume() {
      tc.running = await start();
    },
    async cleanup() {
      await tc.running.stop().catch(() => undefined);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  return tc;
}

/** `palisade agent` joined to the test collector; its node key/cert live in a temp dir. */
export function startMeshAgent(topo: Topology, node: NodeNs, collector: TestCollector, opts: StartAgentOptions): AgentProcess {
  const dir = tempDir(`${node.name}-mesh`);
  const tokenFile = path.join(dir, 'join-token');
  fs.writeFileSync(tokenFile, collector.token(node.name, { nodeCidr: node.podCidr }), { mode: 0o600 });
  const agent = startAgentProcess(topo, node, {
    ...opts,
    mesh: { collectorSocket: collector.socketPath, caFile: collector.caFile, tokenFile, dataDir: path.join(dir, 'data') },
  });
  void agent.exited.then(() => fs.rmSync(dir, { recursive: true, force: true }));
  return agent;
}
