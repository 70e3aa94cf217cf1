import { strict as assert } from 'node:assert';
import { Writable } from 'node:stream';
import { createRootLogger, type Logger } from '../../../common/log';

/** A root logger writing into memory; returns the logger and the lines written so far. */
function capture(level = 'info'): { log: Logger; lines: () => string[] } {
  const chunks: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer | string, _enc, done): void {
      chunks.push(chunk.toString());
      done();
    },
  });
  const log = createRootLogger({ destination, level });
  return { log, lines: () => chunks.join('').split('\n').filter(Boolean) };
}

const SECRET = 's3cr3t-value-that-must-not-leak';

describe('log', () => {
  describe('createRootLogger', () => {
    const redacted: [string, (log: Logger) => void, string][] = [
      ['token', (log) => log.info({ token: SECRET }, 'joined'), 'token'],
      ['joinToken', (log) => log.info({ joinToken: SECRET }, 'joining'), 'joinToken'],
      ['privateKey', (log) => log.info({ privateKey: SECRET }, 'cert issued'), 'privateKey'],
      ['authorization', (log) => log.info({ authorization: `Bearer ${SECRET}` }, 'request'), 'authorization'],
      ['key', (log) => log.info({ key: SECRET }, 'loaded'), 'key'],
      ['token nested one level', (log) => log.info({ node: { name: 'n1', token: SECRET } }, 'joined'), 'node.token'],
      ['joinToken nested one level', (log) => log.info({ request: { joinToken: SECRET } }, 'joining'), 'request.joinToken'],
      ['privateKey nested one level', (log) => log.info({ cert: { privateKey: SECRET, subject: 'x' } }, 'issued'), 'cert.privateKey'],
      ['authorization nested one level', (log) => log.info({ upstream: { authorization: SECRET } }, 'dial'), 'upstream.authorization'],
      ['headers.authorization', (log) => log.info({ headers: { authorization: `Bearer ${SECRET}`, host: 'a' } }, 'req'), 'headers.authorization'],
      ['req.headers.authorization', (log) => log.info({ req: { headers: { authorization: SECRET } } }, 'req'), 'req.headers.authorization'],
      ['headers.cookie', (log) => log.info({ headers: { cookie: `session=${SECRET}` } }, 'req'), 'headers.cookie'],
      ['a token in child bindings', (log) => log.child({ token: SECRET }).info('child'), 'token'],
      ['a token logged through a child', (log) => log.child({ component: 'join' }).warn({ joinToken: SECRET }, 'retry'), 'joinToken'],
      ['a token on a logged error', (log) => log.error({ err: Object.assign(new Error('join failed'), { token: SECRET }) }, 'failed'), 'err.token'],
    ];
    for (const [what, write, where] of redacted) {
      it(`redacts ${what}`, () => {
        const { log, lines } = capture();
        write(log);
        const out = lines();
        assert.equal(out.length, 1, `expected one line, got ${out.length}`);
        assert.ok(!out[0]!.includes(SECRET), `secret leaked: ${out[0]}`);
        const record = JSON.parse(out[0]!) as Record<string, unknown>;
        const value = where.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown> | undefined)?.[k], record);
        assert.equal(value, '[redacted]', `${where} in ${out[0]}`);
      });
    }

    it('keeps fields that are not secrets', () => {
      const { log, lines } = capture();
      log.info({ node: { name: 'n1', token: SECRET }, headers: { host: 'web' } }, 'joined');
      const record = JSON.parse(lines()[0]!) as { node: { name: string }; headers: { host: string }; msg: string; name: string };
      assert.equal(record.node.name, 'n1');
      assert.equal(record.headers.host, 'web');
      assert.equal(record.msg, 'joined');
      assert.equal(record.name, 'palisade');
    });

    it('does not change the logged object', () => {
      const { log } = capture();
      const obj = { token: SECRET, headers: { authorization: SECRET } };
      log.info(obj, 'x');
      assert.deepEqual(obj, { token: SECRET, headers: { authorization: SECRET } });
    });

    it('honours the level', () => {
      const { log, lines } = capture('warn');
      log.info('hidden');
      log.warn('shown');
      assert.deepEqual(lines().map((l) => (JSON.parse(l) as { msg: string }).msg), ['shown']);
    });
  });
});
