/** Helpers around the plain-JS fixture apps in test/fixtures. */
import { ChildProcess } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import type { NsTarget, SpawnInOptions } from './proc';
import { scaled } from './time';
import type { Topology } from './topology';

/** Starts processes in a namespace (a Topology, or spawnIn for the demo's pods). */
export interface Spawner {
  spawn(target: NsTarget, cmd: string, args: readonly string[], opts?: SpawnInOptions): ChildProcess;
}

export interface ClientResult {
  ok: boolean;
  sent: number;
  received: number;
  sha256Match: boolean;
  remoteAddress?: string;
  remotePort?: number;
  localAddress?: string;
  localPort?: number;
  error?: string;
}

export interface AcceptEvent {
  event: 'accept';
  remoteAddress: string;
  remotePort: number;
  localAddress: string;
  localPort: number;
}

/** Absolute path of a fixture; works from both test/harness (ts) and dist/test/harness (compiled). */
export function fixturePath(name: string): string {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'test', 'fixtures', name);
    if (fs.existsSync(candidate)) return candidate;
    if (path.dirname(dir) === dir) throw new Error(`fixture ${name} not found above ${__dirname}`);
  }
}

/** Collects newline-delimited JSON from a stream; non-JSON lines are kept in `other`. */
export class JsonLines {
  readonly lines: unknown[] = [];
  readonly other: string[] = [];
  private buf = '';
  private readonly waiters = new Set<() => void>();

  constructor(stream: NodeJS.ReadableStream) {
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      this.buf += chunk;
      let nl: number;
      while ((nl = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, nl).trim();
        this.buf = this.buf.slice(nl + 1);
        if (!line) continue;
        try {
          this.lines.push(JSON.parse(line));
        } catch {
          this.other.push(line);
        }
      }
      for (const w of this.waiters) w();
    });
  }

  /** Resolve with the first line (already seen or future) matching `pred`. */
  waitFor<T>(pred: (line: any) => boolean, timeoutMs: number): Promise<T> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const hit = this.lines.find(pred);
        if (hit === undefined) return false;
        cleanup();
        resolve(hit as T);
        return true;
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`timed out after ${scaled(timeoutMs)} ms waiting for JSON line; saw ${JSON.stringify(this.lines)}`));
      }, scaled(timeoutMs));
      const cleanup = (): void => {
        clearTimeout(timer);
        this.waiters.delete(waiter);
      };
      const waiter = (): void => void check();
      this.waiters.add(waiter);
      check();
    });
  }
}

/** A fixture process that said it is ready: its JSON lines on stdout. */
export interface Fixture {
  child: ChildProcess;
  lines: JsonLines;
}

export interface FixtureOptions {
  /** The line that says it is ready: an `event` name (default 'listening'), or a test of the line. */
  ready?: string | ((line: any) => boolean);
  timeoutMs?: number;
  /** What the errors call it (default: the script's file name). */
  name?: string;
}

/**
 * Spawn `cmd args` in `target` (stdout JSON lines, stderr kept) and wait for its ready line.
 * Rejects with the end of its stderr if it exits first or is not ready in time.
 */
export async function startFixture(s: Spawner, target: NsTarget, cmd: string, args: readonly string[], o: FixtureOptions = {}): Promise<Fixture> {
  const name = o.name ?? path.basename(args[0] ?? cmd);
  const ready = typeof o.ready === 'function' ? o.ready : (l: any): boolean => l?.event === (o.ready ?? 'listening');
  const child = s.spawn(target, cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-4000)));
  const lines = new JsonLines(child.stdout!);
  const exited = new Promise<never>((_, reject) =>
    child.once('exit', (code, sig) => reject(new Error(`${name} exited before it was ready (${code ?? sig}): ${stderr.trim()}`))),
  );
  exited.catch(() => undefined);
  await Promise.race([
    lines.waitFor(ready, o.timeoutMs ?? 10_000).catch((err: Error) => {
      throw new Error(`${name}: ${err.message}; stderr: ${stderr.trim()}`);
    }),
    exited,
  ]);
  return { child, lines };
}

export interface EchoServer {
  child: ChildProcess;
  events: JsonLines;
  accepts(): AcceptEvent[];
}

/** Start tcp-echo-server.js in `target` and wait for its {"event":"listening"} line. */
export async function startEchoServer(topo: Topology, target: NsTarget, ip: string, port: number, timeoutMs = 5000): Promise<EchoServer> {
  const { child, lines: events } = await startFixture(topo, target, process.execPath, [fixturePath('tcp-echo-server.js'), ip, String(port)], { timeoutMs, name: 'echo server' });
  return {
    child,
    events,
    accepts: () => events.lines.filter((l): l is AcceptEvent => (l as AcceptEvent)?.event === 'accept'),
  };
}

/** Run tcp-client.js in `target` and parse its JSON result line. */
export async function runClient(
  topo: Topology,
  target: NsTarget,
  ip: string,
  port: number,
  bytes: number,
  timeoutMs = 5000,
): Promise<ClientResult> {
  const r = await topo.exec(target, process.execPath, [fixturePath('tcp-client.js'), ip, String(port), String(bytes), String(scaled(timeoutMs))], {
    timeoutMs: timeoutMs + 5000,
  });
  const last = r.stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(last) as ClientResult;
  } catch {
    throw new Error(`tcp-client produced no JSON (code ${r.code}, signal ${r.signal}): ${r.stdout} ${r.stderr}`);
  }
}
