/**
 * Big frames to an agent go out in slices (collector/send-queue.ts) through session-io's sendTo:
 * none of a big frame is written in the turn it is sent; over a real WebSocket, the agent receives the big frame whole, what was sent after it after it,
 * and a close only after both.
 */
import { strict as assert } from 'node:assert';
import type { AddressInfo, Socket } from 'node:net';
import pino from 'pino';
import WebSocket, { WebSocketServer } from 'ws';
import { SLICE_BYTES } from '../../../collector/send-queue';
import { closeWith, sendTo } from '../../../collector/session-io';

describe('send queue: big frames in slices', () => {
  it('a frame of 40 slices arrives whole, the small frames sent after it arrive after it, then the close', async () => {
    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
    try {
      const big = Buffer.from('x'.repeat(SLICE_BYTES * 40 + 17));
      let handedOver = -1;
      wss.on('connection', (ws) => {
        // ws's own socket: what was written to it in this event-loop turn
        const socket = (ws as unknown as { _socket: Socket })._socket;
        sendTo(ws, 'first', pino({ level: 'silent' }));
        const before = socket.bytesWritten + socket.writableLength;
        sendTo(ws, big, pino({ level: 'silent' }));
        handedOver = socket.bytesWritten + socket.writableLength - before;
        sendTo(ws, 'after', pino({ level: 'silent' }));
        closeWith(ws, 4000, 'done');
      });
      await new Promise((r) => wss.once('listening', r));
      const client = new WebSocket(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}`);
      const got: string[] = [];
      client.on('message', (d: Buffer) => got.push(d.length > 100 ? `big:${d.length}:${d.every((b) => b === 0x78)}` : String(d)));
      const code = await new Promise<number>((resolve) => client.once('close', (c) => resolve(c)));
      assert.deepEqual(got, ['first', `big:${big.length}:true`, 'after']);
      assert.equal(code, 4000);
      assert.ok(handedOver >= 0 && handedOver < SLICE_BYTES, `${handedOver} bytes of the big frame written in the turn it was sent`);
    } finally {
      wss.close();
    }
  });
});
