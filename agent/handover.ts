/**
 * Agent handover: how a new agent takes a node over from the running one without dropping a
 * connection (docs/architecture.md, "Restart and upgrade").
 *
 * The agent that holds the node lock serves `<runDir>/<node>.handover.sock` (0600, in the
 * root-only run dir). A newcomer that finds the lock held asks `hello`; if the holder is serving,
 * the newcomer starts as its successor: it adopts the pinned data path, joins the mesh and binds
 * the same listening ports (SO_REUSEPORT), then sends `take-over`. The holder stops accepting
 * (its pending connections migrate to the successor's listeners: net.ipv4.tcp_migrate_req),
 * answers `released`, drains its established connections up to its deadline and exits, which
 * releases the lock; the successor then takes the lock and serves the socket itself.
 *
 * One request per connection, one JSON line each way, 4 KiB at most, 2 s to say it.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { PalisadeError, describeCause } from '../common/errors';
import type { Logger } from '../common/log';
import { isRecord } from '../common/record';

export type HandoverRequest = { type: 'hello' } | { type: 'take-over'; pid: number };
export type HolderState = 'serving' | 'draining';
export type HandoverAnswer =
  | { type: 'hello'; pid: number; state: HolderState }
  | { type: 'released'; pid: number; drainDeadline: string }
  | { type: 'refused'; reason: string };

const MAX_LINE = 4096;
const IO_TIMEOUT_MS = 2000;

export function handoverSocketPath(runDir: string, node: string): string {
  return path.join(runDir, `${node}.handover.sock`);
}

/** The one check of a request line (hostile input refused with a reason, never thrown past here). */
export function parseHandoverRequest(line: string): HandoverRequest | { error: string } {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return { error: 'not JSON' };
  }
  if (!isRecord(v)) return { error: 'not a JSON object' };
  const keys = Object.keys(v);
  if (v.type === 'hello' && keys.length === 1) return { type: 'hello' };
  if (v.type === 'take-over' && keys.length === 2 && Number.isSafeInteger(v.pid) && (v.pid as number) > 0) {
    return { type: 'take-over', pid: v.pid as number };
  }
  return { error: 'unknown request' };
}

function parseAnswer(line: string): HandoverAnswer {
  const bad = (): never => {
    throw new PalisadeError('PALISADE_ERR_PROTOCOL', 'the running agent gave an unreadable handover answer');
  };
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return bad();
  }
  if (!isRecord(v)) return bad();
  if (v.type === 'hello' && Number.isSafeInteger(v.pid) && (v.state === 'serving' || v.state === 'draining')) {
    return { type: 'hello', pid: v.pid as number, state: v.state };
  }
  if (v.type === 'released' && Number.isSafeInteger(v.pid) && typeof v.drainDeadline === 'string') {
    return { type: 'released', pid: v.pid as number, drainDeadline: v.drainDeadline };
  }
  if (v.type === 'refused' && typeof v.reason === 'string') return { type: 'refused', reason: v.reason.slice(0, 200) };
  return bad();
}

/** Read one line (bounded in size and time) from a socket. */
function readLine(sock: net.Socket): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const done = (err: Error | undefined, line?: string): void => {
      clearTimeout(timer);
      sock.off('data', onData);
      sock.off('error', onError);
      sock.off('end', onEnd);
      if (err) reject(err);
      else resolve(line as string);
    };
    const onData = (chunk: Buffer): void => {
      buf += chunk.toString('utf8');
      const nl = buf.indexOf('\n');
      if (nl >= 0) done(undefined, buf.slice(0, nl));
      else if (buf.length > MAX_LINE) done(new PalisadeError('PALISADE_ERR_PROTOCOL', 'handover line too long'));
    };
    const onError = (err: Error): void => done(err);
    const onEnd = (): void => done(new PalisadeError('PALISADE_ERR_PROTOCOL', 'handover peer closed before answering'));
    const timer = setTimeout(() => done(new PalisadeError('PALISADE_ERR_PROTOCOL', `no handover answer within ${IO_TIMEOUT_MS} ms`)), IO_TIMEOUT_MS);
    sock.on('data', onData);
    sock.on('error', onError);
    sock.on('end', onEnd);
  });
}

/** One request to the lock holder; rejects when nobody answers (no holder serving handovers). */
export async function askHolder(runDir: string, node: string, req: HandoverRequest): Promise<HandoverAnswer> {
  const sock = net.connect(handoverSocketPath(runDir, node));
  try {
    await new Promise<void>((resolve, reject) => {
      sock.once('connect', resolve);
      sock.once('error', reject);
    });
    sock.write(`${JSON.stringify(req)}\n`);
    return parseAnswer(await readLine(sock));
  } finally {
    sock.destroy();
  }
}

export interface HandoverServerOptions {
  runDir: string;
  node: string;
  log: Logger;
  /** Stop accepting (close the listeners) and start draining; resolves once no listener is open. */
  takeOver: (successorPid: number) => Promise<{ drainDeadline: Date }>;
  /** Whether this agent is still serving (not already draining). */
  state: () => HolderState;
}

/** Served by the agent that holds the node lock. */
export class HandoverServer {
  private readonly server: net.Server;
  private readonly file: string;
  private readonly log: Logger;

  private constructor(private readonly opts: HandoverServerOptions) {
    this.file = handoverSocketPath(opts.runDir, opts.node);
    this.log = opts.log.child({ component: 'handover' });
    this.server = net.createServer((sock) => void this.onConnection(sock));
  }

  /** Call only while holding the node lock: a stale socket file of a dead holder is replaced. */
  static async listen(opts: HandoverServerOptions): Promise<HandoverServer> {
    const s = new HandoverServer(opts);
    fs.rmSync(s.file, { force: true });
    await new Promise<void>((resolve, reject) => {
      s.server.once('error', reject);
      s.server.listen(s.file, () => {
        s.server.off('error', reject);
        resolve();
      });
    });
    fs.chmodSync(s.file, 0o600);
    return s;
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    fs.rmSync(this.file, { force: true });
  }

  private async onConnection(sock: net.Socket): Promise<void> {
    sock.on('error', () => undefined);
    const answer = (a: HandoverAnswer): void => {
      sock.end(`${JSON.stringify(a)}\n`);
    };
    let line: string;
    try {
      line = await readLine(sock);
    } catch (err) {
      this.log.warn({ reason: describeCause(err) }, 'handover request refused');
      sock.destroy();
      return;
    }
    const req = parseHandoverRequest(line);
    if ('error' in req) {
      this.log.warn({ reason: req.error }, 'handover request refused');
      return answer({ type: 'refused', reason: req.error });
    }
    if (req.type === 'hello') return answer({ type: 'hello', pid: process.pid, state: this.opts.state() });
    if (this.opts.state() !== 'serving') return answer({ type: 'refused', reason: 'this agent is already handing over' });
    this.log.info({ successor: req.pid }, 'a successor takes over: no longer accepting, draining');
    try {
      const { drainDeadline } = await this.opts.takeOver(req.pid);
      answer({ type: 'released', pid: process.pid, drainDeadline: drainDeadline.toISOString() });
    } catch (err) {
      this.log.error({ reason: describeCause(err) }, 'handover failed');
      answer({ type: 'refused', reason: `handover failed: ${describeCause(err)}` });
    }
  }
}
