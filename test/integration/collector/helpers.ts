/** Shared pieces of the collector suites: temp dirs, a collector in-process, captured logs, agents. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import type WebSocket from 'ws';
import { CollectorClient, type CollectorClientOptions } from '../../../agent/mesh/collector-client';
import { nodeCertPath, nodeKeyPath } from '../../../agent/mesh/node-identity';
import { openCollectorSocket, parseCollectorUrl } from '../../../agent/mesh/transport';
import { startCollector, type CollectorOptions, type RunningCollector } from '../../../collector/collector';
import { ANY_SCOPE } from '../../../collector/nodes/node-binding';
import { TokenStore } from '../../../collector/tokens';
import type { Logger } from '../../../common/log';
import { CertificateAuthority } from '../../../collector/mesh-ca';
import type { RegistrySnapshot, WorkloadRegistration } from '../../../common/mesh-protocol';

export type LogLine = Record<string, unknown> & { msg?: string; level?: number };

/** A logger whose lines tests can search. */
export class LogCapture {
  readonly lines: LogLine[] = [];
  readonly text: string[] = [];
  readonly logger: Logger;

  constructor() {
    const sink = new Writable({
      write: (chunk: Buffer, _enc, cb) => {
        for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) {
          this.text.push(line);
          this.lines.push(JSON.parse(line) as LogLine);
        }
        cb();
      },
    });
    this.logger = pino({ level: 'debug', redact: ['token', '*.token', 'joinToken'] }, sink);
  }

  find(msg: string, fields: Record<string, unknown> = {}): LogLine | undefined {
    return this.lines.find((l) => l.msg === msg && Object.entries(fields).every(([k, v]) => l[k] === v));
  }
}

/** Temp directories removed by `cleanup()`. */
export class TempDirs {
  private readonly dirs: string[] = [];

  make(prefix = 'palisade-collector-'): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
    this.dirs.push(dir);
    return dir;
  }

  cleanup(): void {
    for (const d of this.dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
  }
}

/** Things to stop after each test, in reverse order of creation. */
export class Stack {
  private readonly items: Array<() => Promise<void> | void> = [];

  push(fn: () => Promise<void> | void): void {
    this.items.push(fn);
  }

  async unwind(): Promise<void> {
    for (const fn of this.items.splice(0).reverse()) await Promise.resolve(fn()).catch(() => undefined);
  }
}

/** The same CSR with one bit of its signature flipped. */
export function tamper(csrPem: string): string {
  const der = Buffer.from(csrPem.replace(/-----[A-Z ]+-----|\s/g, ''), 'base64');
  der[der.length - 1] ^= 0x01;
  return `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
}

/**
 * A data directory with a ready-made mesh CA in it: RSA key generation is slow on small
 * machines, so suites make one CA in `before()` and copy it into each test's data directory.
 */
export class CaTemplate {
  private readonly dir: string;

  constructor(dirs: TempDirs) {
    this.dir = dirs.make('palisade-ca-template-');
    CertificateAuthority.loadOrCreate(this.dir, 'cluster.local');
  }

  /** A new data directory holding a copy of the template CA. */
  dataDir(dirs: TempDirs): string {
    const dir = dirs.make();
    for (const f of ['ca.key', 'ca.crt']) fs.copyFileSync(path.join(this.dir, f), path.join(dir, f));
    return dir;
  }
}

/** Per-suite scaffolding: one template CA per suite, temp dirs and a stop-stack per test. */
export interface CollectorSuite {
  readonly dirs: TempDirs;
  readonly stack: Stack;
  /** A fresh data directory holding the suite's CA. */
  dataDir(): string;
}

/** Call inside `describe()`: registers the before/after hooks every collector suite needs. */
export function useCollectorSuite(): CollectorSuite {
  const suiteDirs = new TempDirs();
  const dirs = new TempDirs();
  const stack = new Stack();
  let template: CaTemplate | undefined;
  before(() => {
    template = new CaTemplate(suiteDirs);
  });
  after(() => suiteDirs.cleanup());
  afterEach(async () => {
    await stack.unwind();
    dirs.cleanup();
  });
  return { dirs, stack, dataDir: () => template!.dataDir(dirs) };
}

export async function collector(stack: Stack, opts: Partial<CollectorOptions> & { dataDir: string; log: Logger }): Promise<RunningCollector> {
  const running = await startCollector({ listen: '127.0.0.1:0', ...opts });
  stack.push(() => running.stop());
  return running;
}

/** A join token for `node`; any scope and address unless `binding` narrows them. */
export function token(dataDir: string, node: string, binding: { nodeCidr?: string; scopes?: string[] } = {}, ttlMs = 3_600_000): string {
  return new TokenStore(dataDir).create({ node, scopes: [ANY_SCOPE], ...binding }, ttlMs).token;
}

export function client(stack: Stack, opts: Omit<CollectorClientOptions, 'log' | 'nodeAddress'> & { log?: Logger; nodeAddress?: string }): CollectorClient {
  const c = new CollectorClient({
    nodeAddress: '192.168.50.1',
    log: pino({ level: 'silent' }),
    backoff: { initialMs: 50, maxMs: 500 },
    ...opts,
  });
  stack.push(() => c.close());
  return c;
}

export function workload(name: string, ip: string, serviceAccount = name): WorkloadRegistration {
  return { name, namespace: 'default', serviceAccount, ip, labels: { app: name } };
}

/** Poll until `fn` returns something truthy. */
export async function waitFor<T>(fn: () => T | undefined | false, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The next registry snapshot `c` receives that satisfies `pred` (or the latest, if it already does). */
export function snapshotWhere(c: CollectorClient, pred: (s: RegistrySnapshot) => boolean, timeoutMs = 5_000): Promise<RegistrySnapshot> {
  const now = c.latest();
  if (now && pred(now)) return Promise.resolve(now);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      c.off('registry', on);
      reject(new Error(`no matching snapshot within ${timeoutMs} ms; latest: ${JSON.stringify(c.latest())}`));
    }, timeoutMs);
    const on = (s: RegistrySnapshot): void => {
      if (!pred(s)) return;
      clearTimeout(timer);
      c.off('registry', on);
      resolve(s);
    };
    c.on('registry', on);
  });
}

/** A raw WebSocket to the collector as `node`, using the node credentials an earlier join left in `dataDir`. */
export function rawNodeSocket(stack: Stack, url: string, caPem: string, dataDir: string): WebSocket {
  const ws = openCollectorSocket({
    endpoint: parseCollectorUrl(url),
    caPem,
    cert: { certPem: fs.readFileSync(nodeCertPath(dataDir), 'utf8'), keyPem: fs.readFileSync(nodeKeyPath(dataDir), 'utf8') },
  });
  ws.on('error', () => undefined);
  stack.push(() => ws.terminate());
  return ws;
}

export function opened(ws: WebSocket): Promise<void> {
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
}

export function closed(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
}

/** Status and JSON body of a refused upgrade. */
export function refusal(ws: WebSocket): Promise<{ status: number; body: { code?: string; message?: string } }> {
  ws.on('error', () => undefined); // terminate() while connecting reports an error too
  return new Promise((resolve, reject) => {
    ws.once('open', () => reject(new Error('upgrade was accepted')));
    ws.once('unexpected-response', (_req, res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => {
        ws.terminate();
        resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as { code?: string; message?: string } });
      });
    });
  });
}

/** Join `node` once (key generation is the slow part) and return the agent data dir it left behind. */
export async function joinedNodeDir(
  dirs: TempDirs,
  col: RunningCollector,
  collectorDataDir: string,
  node: string,
  binding: { nodeCidr?: string; scopes?: string[] } = {},
): Promise<string> {
  const agentDir = dirs.make('palisade-agent-');
  const c = new CollectorClient({
    url: col.url,
    caPem: col.ca.certPem,
    node,
    nodeAddress: '192.168.50.1',
    dataDir: agentDir,
    joinToken: token(collectorDataDir, node, binding),
    log: pino({ level: 'silent' }),
  });
  try {
    await c.start();
  } finally {
    await c.close();
  }
  return agentDir;
}
