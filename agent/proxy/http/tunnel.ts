/**
 * A WebSocket the upstream accepted: its 101 goes to the client, the bytes each side sent after
 * its head go across, and the two connections are spliced until both are closed.
 */
import type { Duplex } from 'node:stream';
import { splice, type PipeResult } from '../pipe';
import { rawResponseHead, relayedResponseHeaders } from './headers';

export interface TunnelEnds {
  /** the client's connection, and how to write to it (latin1 for strings) */
  client: Duplex;
  writeClient(data: Buffer | string): boolean;
  upstream: Duplex;
  /** what followed the upstream's 101 head */
  upstreamHead: Buffer;
  /** what followed the client's upgrade request head */
  clientHead: Buffer | undefined;
}

/** `done` gets the bytes each way, the heads included. */
export function openTunnel(t: TunnelEnds, message: string, rawHeaders: string[], done: (r: PipeResult) => void): void {
  t.writeClient(rawResponseHead(101, message, relayedResponseHeaders(rawHeaders, true), false));
  if (t.upstreamHead.length > 0) t.writeClient(t.upstreamHead);
  const clientHead = t.clientHead?.length ?? 0;
  if (clientHead > 0) t.upstream.write(t.clientHead);
  splice(t.client, t.upstream, (r) => done({ ...r, bytesSent: clientHead + r.bytesSent, bytesReceived: t.upstreamHead.length + r.bytesReceived }));
}
