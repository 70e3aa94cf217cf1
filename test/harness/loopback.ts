/** Loopback TCP for tests of a front: a connection once established, a server's port, its close. */
import * as http from 'node:http';
import * as net from 'node:net';

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
