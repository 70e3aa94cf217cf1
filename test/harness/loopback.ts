/** Loopback TCP for tests of a front: a connection once established, a server's port, its close. */
import * as http from 'node:http';
import * as net from 'node:net';
import type { Dispatch, UpstreamTarget } from '../../agent/proxy/http/types';

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
