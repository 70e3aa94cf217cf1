/** Sending and closing on an agent's WebSocket, the same way for join and node sessions. */
import type WebSocket from 'ws';
import type { PalisadeError } from '../common/errors';
import type { Logger } from '../common/log';
import { CloseCode, encodeMessage, type MeshMessage } from '../common/mesh-protocol';
import { afterQueued, enqueue, queuedBytes } from './send-queue';

/** An agent that lets this much pile up unread is cut off rather than growing our memory. */
export const MAX_BUFFERED_BYTES = 64 * 1024 * 1024;

/**
 * Send one message (or pre-encoded frame, as text or its UTF-8 bytes) as a text frame; false when
 * the socket is gone or was cut off. It goes at once when nothing waits for the agent and its
 * socket takes it, else behind what waits (send-queue.ts: big frames in slices, at the pace
 * the socket drains).
 */
export function sendTo(ws: WebSocket, message: MeshMessage | string | Buffer, log: Logger): boolean {
  if (ws.readyState !== ws.OPEN) return false;
  const waiting = queuedBytes(ws);
  if (waiting > MAX_BUFFERED_BYTES) {
    log.warn({ reason: 'agent is not reading', bufferedBytes: waiting }, 'session terminated');
    ws.terminate();
    return false;
  }
  enqueue(ws, Buffer.isBuffer(message) ? message : typeof message === 'string' ? message : encodeMessage(message));
  return true;
}

/** Close after what is queued for `ws` was sent; close reasons are at most 123 bytes on the wire. */
export function closeWith(ws: WebSocket, code: number, reason: string): void {
  afterQueued(ws, () => {
    if (ws.readyState === ws.CLOSED || ws.readyState === ws.CLOSING) return;
    ws.close(code, Buffer.from(reason).subarray(0, 123).toString());
  });
}

/** How long a stopping collector waits for WebSocket peers to answer its close. */
const CLOSE_GRACE_MS = 1_000;

/** Close every client of `wss` with 1001, wait briefly for their answers, then cut off the rest. */
export async function closeAllGracefully(wss: WebSocket.Server, reason: string): Promise<void> {
  const open = [...wss.clients];
  await new Promise<void>((resolve) => {
    if (open.length === 0) return resolve();
    let left = open.length;
    const timer = setTimeout(resolve, CLOSE_GRACE_MS);
    for (const ws of open) {
      ws.once('close', () => {
        if (--left === 0) {
          clearTimeout(timer);
          resolve();
        }
      });
      closeWith(ws, CloseCode.GOING_AWAY, reason);
    }
  });
  for (const ws of wss.clients) ws.terminate();
  wss.close();
}

/** Hostile or broken input: log the reason, tell the agent once, close with 4400. */
export function refuseFrame(ws: WebSocket, err: PalisadeError, log: Logger): void {
  log.warn({ reason: err.message }, 'frame refused, closing session');
  sendTo(ws, { type: 'error', code: 'PALISADE_ERR_PROTOCOL', message: err.message.slice(0, 1024) }, log);
  closeWith(ws, CloseCode.PROTOCOL, 'protocol error');
}
