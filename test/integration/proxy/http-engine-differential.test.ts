/**
 * The lean engine against the front it replaced (test/oracle/node-http-front/, Node's http.Server
 * and a ClientRequest per request): generated connections — valid, borderline and hostile
 * framing, targets, versions, header lines, bodies, pipelining, writes cut at random points —
 * go through both, in memory, and must give the same decisions (the statuses the client reads,
 * each record's status, refusal reason and verdict) and the same bytes to the upstream.
 */
import { strict as assert } from 'node:assert';
import { HttpFront, type HttpDecision, type NormalizedRequest } from '../../../agent/proxy/http';
import { silentLogger } from '../../../common/log';
import { Rng } from '../../harness/random';
import { HttpFront as NodeHttpFront } from '../../oracle/node-http-front/front';
import { generate, type Case } from './http-differential/generate';
import { runCase, type Front, type Outcome } from './http-differential/run';

const SEED = Number(process.env.PALISADE_DIFF_SEED ?? 1717);
const REQUESTS = Number(process.env.PALISADE_DIFF_REQUESTS ?? 100_000);
/**
 * Connections in flight at once. A case settles a few ms after its connection closes (stragglers),
 * so with 64 in flight the run waited on those timers (32 s wall, 24 s CPU); 256 keep the thread busy.
 */
const PARALLEL = 256;

/** The policy: nothing under /admin, no DELETE. */
function authorize(r: NormalizedRequest): HttpDecision {
  return { allowed: !(r.path === '/admin' || r.path.startsWith('/admin/') || r.method === 'DELETE') };
}

function fronts(): { engine: Front; oracle: Front } {
  const opts = { stripHeaders: ['x-palisade-*'], log: silentLogger() };
  return { engine: new HttpFront(opts), oracle: new NodeHttpFront(opts) };
}

describe('HTTP engine vs the Node http.Server front (differential)', function () {
  this.timeout(1_800_000);

  it(`gives ${REQUESTS} generated requests the same decisions and the same upstream bytes (seed ${SEED})`, async function () {
    const { engine, oracle } = fronts();
    const rng = new Rng(SEED);
    let requests = 0;
    let cases = 0;
    const mismatches: string[] = [];
    const reasons = new Map<string, number>();
    let forwarded = 0;
    let denied = 0;
    let upstreamBytes = 0;
    let hung = 0;
    const started = Date.now();
    const check = (c: Case, want: Outcome, got: Outcome): void => {
      cases += 1;
      if (!same(want, got) && mismatches.length < 20) {
        mismatches.push(`case ${cases}: ${JSON.stringify(Buffer.concat(c.pieces).toString('latin1').slice(0, 400))} (${c.pieces.length} pieces)\n  oracle: ${JSON.stringify(want)}\n  engine: ${JSON.stringify(got)}`);
      }
      if (want.hung) hung += 1;
      for (const r of want.records) {
        if (r.rejected !== undefined) reasons.set(r.rejected, (reasons.get(r.rejected) ?? 0) + 1);
        if (r.allowed === false) denied += 1;
      }
      forwarded += want.upstream.length > 0 ? 1 : 0;
      upstreamBytes += want.upstream.reduce((n, u) => n + u.length, 0);
    };
    // PARALLEL connections in flight at all times (a case that lingers does not hold up the rest).
    const worker = async (): Promise<void> => {
      while (requests < REQUESTS) {
        const c = generate(rng);
        requests += c.requests;
        const [want, got] = await Promise.all([runCase(oracle, c, authorize, 5000), runCase(engine, c, authorize, 5000)]);
        check(c, want, got);
      }
    };
    await Promise.all(Array.from({ length: PARALLEL }, worker));
    const seconds = (Date.now() - started) / 1000;
    process.stdout.write(
      `      ${requests} requests in ${cases} connections, ${seconds.toFixed(0)} s: ${forwarded} connections forwarded (${upstreamBytes} bytes upstream), ${denied} denied, ` +
        `${[...reasons.values()].reduce((a, b) => a + b, 0)} refused for ${reasons.size} reasons, ${hung} hung in the oracle\n`,
    );
    assert.deepEqual(mismatches, [], `${mismatches.length} connections differ:\n${mismatches.join('\n')}`);
    // The set must exercise both sides of every decision, or agreeing proves little.
    assert.ok(requests >= REQUESTS);
    assert.ok(forwarded > cases * 0.25, `only ${forwarded} of ${cases} connections reached the upstream`);
    assert.ok(denied > cases * 0.05, `only ${denied} denials`);
    assert.ok(reasons.size >= 20, `refusal reasons seen: ${[...reasons.keys()].join(', ')}`);
  });
});

/**
 * Everything must match but one count: when a framing error in a read refuses a request, the
 * oracle's record counted the body bytes of that read as sent although its ClientRequest was
 * already destroyed (the upstream got none of them, which the upstream bytes show); the engine
 * counts what reached the upstream. So a refused request's bytesSent is left out.
 */
function same(a: Outcome, b: Outcome): boolean {
  return JSON.stringify(comparable(a)) === JSON.stringify(comparable(b));
}

function comparable(o: Outcome): Outcome {
  return { ...o, records: o.records.map((r) => (r.rejected === undefined ? r : { ...r, bytesSent: -1 })) };
}
