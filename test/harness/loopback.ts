/** Loopback TCP for tests of a front: a connection once established, a server's port, its close, a relay that stalls. */
import * as http from 'node:http';
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import { HttpFront } from '../../agent/proxy/http';
import type { Dispatch, HttpRecord, UpstreamTarget } from '../../agent/proxy/http/types';
import { silentLogger } from '../../common/log';

/** A TCP connection once it is established (rejects with the connect error). */
export function tcpConnect(port: number, host = '127.0.0.1'): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, host);
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

/** Listen on an ephemeral loopback port; resolves with it. */
export async function listenLoopback(server: net.Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as net.AddressInfo).port;
}

/**
 * A TCP relay on loopback to `port` whose `stall()` stops carrying bytes either way without closing
 * anything — as a node powered off or cut off leaves its connections (no FIN, no RST).
 */
export async function stallingRelay(port: number): Promise<{ port: number; stall(): void; close(): Promise<void> }> {
  const pairs: Array<[net.Socket, net.Socket]> = [];
  const relay = net.createServer((down) => {
    const up = net.connect(port, '127.0.0.1');
    down.pipe(up);
    up.pipe(down);
    for (const s of [down, up]) s.on('error', () => undefined);
    pairs.push([down, up]);
  });
  return {
    port: await listenLoopback(relay),
    stall: () => {
      for (const [down, up] of pairs) {
        down.unpipe(up);
        up.unpipe(down);
        down.pause();
        up.pause();
      }
    },
    close: async () => {
      for (const pair of pairs) for (const s of pair) s.destroy();
      await closeServer(relay);
    },
  };
}

/** Close a server (an HTTP server's kept-alive connections first). */
export function closeServer(server: net.Server): Promise<void> {
  if (server instanceof http.Server) server.closeAllConnections();
  return new Promise<void>((r) => server.close(() => r()));
}

/** A routed request's dispatch for a front's tests: one attempt, to `target` (a shared pool and how to connect), no retry, no deadline. */
export function oneAttempt(target: () => UpstreamTarget): Dispatch {
  let tried = false;
  return {
    timeoutMs: 0,
    attemptTimeoutMs: 0,
    replayBytes: 0,
    next: () => {
      if (tried) return undefined;
      tried = true;
      return target();
    },
    settle: () => undefined,
    finish: () => undefined,
  };
}

/**
 * One request on a new connection (the bench's no-keep-alive client sends `Connection: close`):
 * everything read until the connection closes; rejects after `timeoutMs` with what came.
 */
export function oneShot(port: number, request = 'GET / HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n', timeoutMs = 2000): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let raw = '';
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`no answer within ${timeoutMs} ms (saw ${JSON.stringify(raw)})`));
    }, timeoutMs);
    s.setEncoding('latin1');
    s.on('data', (d: string) => void (raw += d));
    s.on('error', () => undefined); // 'close' follows
    s.on('close', () => {
      clearTimeout(timer);
      resolve(raw);
    });
    s.on('connect', () => s.write(request));
  });
}

/** A routed front on a loopback port: every request one attempt to the shared pool `pool` over `connect`, its records pushed to `records`. */
export async function routedFront(pool: string, connect: () => Promise<Duplex>, records: HttpRecord[]): Promise<{ front: HttpFront; port: number; close(): Promise<void> }> {
  const front = new HttpFront({ log: silentLogger() });
  const server = net.createServer((s) =>
    front.handle(s, undefined, {
      authorize: () => ({ allowed: true, dispatch: oneAttempt(() => ({ pool, connect })) }),
      connect: () => Promise.reject(new Error('a routed request always has a dispatch')),
      onRecord: (r) => void records.push(r),
    }),
  );
  const port = await listenLoopback(server);
  return {
    front,
    port,
    close: async () => {
      front.closeAll();
      await closeServer(server);
    },
  };
}
