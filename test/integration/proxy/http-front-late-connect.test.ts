/**
 * A routed attempt that timed out while its connection was still being opened (real loopback
 * sockets): the retry goes to the next endpoint, and the late connection, when it comes, is closed
 * unused — it belonged to an attempt that is over. Before, it was taken as the current attempt's
 * (the request was sent on it too, a second upstream relayed to the same exchange), and a late
 * connect failure failed the attempt in progress.
 */
import { strict as assert } from 'node:assert';
import * as http from 'node:http';
import * as net from 'node:net';
import type { Duplex } from 'node:stream';
import { HttpFront, type HttpRecord } from '../../../agent/proxy/http';
import type { AttemptOutcome, Dispatch } from '../../../agent/proxy/http/types';
import { silentLogger } from '../../../common/log';
import { closeServer, listenLoopback, oneShot, tcpConnect } from '../../harness/loopback';

/** the per-attempt deadline */
const ATTEMPT_MS = 200;
/** how long the first endpoint's connect takes: past its deadline, while the retry waits for its answer */
const LATE_MS = ATTEMPT_MS + 50;
/** how long the second endpoint takes to answer (within its deadline, after the late connect) */
const ANSWER_MS = 150;

describe('HttpFront: a connection that comes after its attempt timed out', function () {
  const servers: http.Server[] = [];
  const ports: number[] = [];
  /** requests each upstream got */
  const got = [0, 0];
  let front: HttpFront;
  let tcp: net.Server;
  let port = 0;
  const records: HttpRecord[] = [];
  const settled: AttemptOutcome[] = [];
  /** the first attempt's connect: late, then a connection or a failure */
  let late: () => Promise<Duplex>;

  /** Two endpoints: the first's connect is late; the second answers at once. Retried once on a timeout. */
  const dispatch = (): Dispatch => {
    let n = 0;
    return {
      timeoutMs: 0,
      attemptTimeoutMs: ATTEMPT_MS,
      replayBytes: 0,
      next: () => {
        n++;
        if (n === 1) return { pool: 'a', connect: () => late() };
        if (n === 2) return { pool: 'b', connect: () => tcpConnect(ports[1]!) };
        return undefined;
      },
      settle: (o) => {
        settled.push(o);
        return o.error === 'backend-timeout' && settled.length === 1 ? 0 : undefined;
      },
      finish: () => undefined,
    };
  };

  before(async function () {
    for (const i of [0, 1]) {
      const s = http.createServer((_req, res) => {
        got[i]!++;
        setTimeout(() => res.end(`endpoint ${i}`), i === 1 ? ANSWER_MS : 0);
      });
      servers.push(s);
      ports.push(await listenLoopback(s));
    }
    front = new HttpFront({ log: silentLogger() });
    tcp = net.createServer((s) =>
      front.handle(s, undefined, {
        authorize: () => ({ allowed: true, dispatch: dispatch() }),
        connect: () => Promise.reject(new Error('a routed request always has a dispatch')),
        onRecord: (r) => void records.push(r),
      }),
    );
    port = await listenLoopback(tcp);
  });

  after(async function () {
    front.closeAll();
    await closeServer(tcp);
    for (const s of servers) await closeServer(s);
  });

  beforeEach(function () {
    got[0] = got[1] = 0;
    settled.length = 0;
    records.length = 0;
  });

  const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

  it('a late connection: the answer is the retry\'s, and nothing is sent on the late one', async function () {
    late = () => sleep(LATE_MS).then(() => tcpConnect(ports[0]!));
    const raw = await oneShot(port);
    assert.match(raw, /^HTTP\/1\.1 200 [^]*endpoint 1$/);
    await sleep(100);
    assert.deepEqual(got, [0, 1], 'requests each endpoint got');
    assert.deepEqual(settled.map((o) => o.error ?? o.status), ['backend-timeout', 200]);
  });

  it('a late connect failure: the attempt in progress is not failed by it', async function () {
    late = () => sleep(LATE_MS).then(() => Promise.reject(Object.assign(new Error('refused'), { code: 'ECONNREFUSED' })));
    const raw = await oneShot(port);
    assert.match(raw, /^HTTP\/1\.1 200 [^]*endpoint 1$/);
    assert.deepEqual(settled.map((o) => o.error ?? o.status), ['backend-timeout', 200]);
  });
});
