/**
 * Big frames to an agent go out in slices (collector/send-queue.ts) through session-io's sendTo:
 * none of a big frame is written in the turn it is sent; over a real WebSocket, the agent receives the big frame whole, what was sent after it after it,
 * and a close only after both.
 */
import { strict as assert } from 'node:assert';
import type { AddressInfo, Socket } from 'node:net';
import pino from 'pino';
import WebSocket, { WebSocketServer } from 'ws';
import { BULK_BYTES, bulkSlotsInUse, HIGH_WATER_BYTES, MAX_BULK, pullFrom, queuedBytes, SLICE_BYTES, wake } from '../../../collector/send-queue';
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

/** A server and one client whose reading can be paused; `server` is the server side's WebSocket. */
async function pair(): Promise<{ wss: WebSocketServer; server: WebSocket; client: WebSocket; got: string[]; clientSocket: Socket }> {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', maxPayload: 64 * 1024 * 1024 });
  await new Promise((r) => wss.once('listening', r));
  const connected = new Promise<WebSocket>((resolve) => wss.once('connection', resolve));
  const client = new WebSocket(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}`, { maxPayload: 64 * 1024 * 1024 });
  const got: string[] = [];
  client.on('message', (d: Buffer) => got.push(d.length > 100 ? `${String.fromCharCode(d[0]!)}:${d.length}` : String(d)));
  await new Promise((r) => client.once('open', r));
  return { wss, server: await connected, client, got, clientSocket: (client as unknown as { _socket: Socket })._socket };
}

const socketOf = (ws: WebSocket): Socket => (ws as unknown as { _socket: Socket })._socket;
const silent = pino({ level: 'silent' });

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('send queue: at the pace the socket drains', () => {
  it('an agent that does not read gets at most the high-water mark handed to its socket; the rest waits unsent, then arrives whole', async () => {
    const { wss, server, client, got, clientSocket } = await pair();
    try {
      clientSocket.pause();
      const big = Buffer.alloc(24 * 1024 * 1024, 0x61);
      sendTo(server, big, silent);
      sendTo(server, 'after', silent);
      const socket = socketOf(server);
      // wait until the kernel's buffers are full and the socket stops taking more
      let last = -1;
      await until(() => {
        const now = socket.bytesWritten;
        const still = now === last;
        last = now;
        return still && socket.writableLength > 0;
      }, 10_000, 'the socket to fill');
      await new Promise((r) => setTimeout(r, 300));
      assert.ok(socket.writableLength <= HIGH_WATER_BYTES + SLICE_BYTES, `${socket.writableLength} bytes waiting in the socket`);
      assert.ok(queuedBytes(server) > 10 * 1024 * 1024, `${queuedBytes(server)} bytes still queued, not handed over`);
      clientSocket.resume();
      await until(() => got.length === 2, 20_000, 'both frames');
      assert.deepEqual(got, [`a:${big.length}`, 'after']);
    } finally {
      client.terminate();
      wss.close();
    }
  });

  it('a source is asked for its frame when the socket can take it: an agent that is behind gets the newest, and answers go before it', async () => {
    const { wss, server, client, got, clientSocket } = await pair();
    try {
      let want = 1;
      let have = 0;
      // frame n: a fragmented message of 3 MB of letter n (a, b, c, ...)
      const frameOf = (n: number): Buffer => Buffer.alloc(3 * 1024 * 1024, 0x60 + n);
      pullFrom(server, {
        peek: () => (want > have ? frameOf(want) : undefined),
        take: () => {
          have = want;
        },
      });
      clientSocket.pause();
      wake(server);
      await until(() => have === 1, 5_000, 'the first frame to start');
      for (want = 2; want <= 9; want++) wake(server); // eight changes while the agent reads nothing
      want = 9;
      sendTo(server, 'answer', silent);
      clientSocket.resume();
      await until(() => got.length === 3, 20_000, 'three frames');
      assert.deepEqual(got, [`a:${3 * 1024 * 1024}`, 'answer', `i:${3 * 1024 * 1024}`], 'the frame under way, the answer, then only the newest');
    } finally {
      client.terminate();
      wss.close();
    }
  });

  it(`at most ${MAX_BULK} sessions send a bulk frame at once; the others start as slots free`, async () => {
    const pairs = await Promise.all(Array.from({ length: MAX_BULK + 2 }, () => pair()));
    try {
      const started: number[] = [];
      // big enough that the kernel's buffers of a paused socket do not take it all
      const size = BULK_BYTES * 16;
      pairs.forEach((p, k) => {
        let sent = false;
        const frame = Buffer.alloc(size, 0x61 + k);
        pullFrom(p.server, {
          peek: () => (sent ? undefined : frame),
          take: () => {
            sent = true;
            started.push(k);
          },
        });
        p.clientSocket.pause();
        wake(p.server);
      });
      await until(() => started.length >= MAX_BULK, 5_000, 'the first bulk frames to start');
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(started.length, MAX_BULK, `${started.length} bulk frames under way at once`);
      assert.equal(bulkSlotsInUse(), MAX_BULK);
      for (const p of pairs) p.clientSocket.resume();
      await until(() => pairs.every((p) => p.got.length === 1), 20_000, 'every bulk frame');
      pairs.forEach((p, k) => assert.deepEqual(p.got, [`${String.fromCharCode(0x61 + k)}:${size}`]));
      assert.equal(bulkSlotsInUse(), 0, 'every slot given back');
    } finally {
      for (const p of pairs) {
        p.client.terminate();
        p.wss.close();
      }
    }
  });
});
