import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { CliDeps } from '../../../cli/deps';
import { run } from '../../../cli/program';
import {
  client,
  collector,
  LogCapture,
  useCollectorSuite,
  waitFor,
} from './helpers';

interface Captured {
  deps: CliDeps;
  out: string[];
  err: string[];
  logs: LogCapture;
  stop: () => void;
}

function cli(): Captured {
  const out: string[] = [];
  const err: string[] = [];
  const logs = new LogCapture();
  let stop: () => void = () => undefined;
  const stopped = new Promise<string>((resolve) => (stop = () => resolve('SIGTERM')));
  return {
    out,
    err,
    logs,
    stop: () => stop(),
    deps: { stdout: (t) => out.push(t), stderr: (t) => err.push(t), logger: () => logs.logger, waitForStop: () => stopped },
  };
}

describe('palisade collector (CLI)', () => {
  const { dirs, stack, dataDir } = useCollectorSuite();

  it('token create prints a token once that then joins', async () => {
    const data = dataDir();
    const c = cli();
    assert.equal(await run(['collector', 'token', 'create', '--node', 'node-a', '--data', data, '--ttl', '10m'], c.deps), 0);
    assert.equal(c.out.length, 1);
    const printed = c.out[0].trim();
    assert.match(printed, /^plt_[0-9a-f]{8}\.[A-Za-z0-9_-]{32}$/);
    const file = path.join(data, 'tokens.json');
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    assert.ok(!fs.readFileSync(file, 'utf8').includes(printed.split('.')[1]), 'only a hash of the secret is stored');

    const col = await collector(stack, { dataDir: data, log: new LogCapture().logger });
    const agent = client(stack, { url: col.url, caPem: col.ca.certPem, node: 'node-a', dataDir: dirs.make(), joinToken: printed });
    await agent.start();
    assert.equal(agent.connected, true);
  });

  it('ca create makes the CA a Secret can carry (key 0600), keeps an existing one, and a collector on that directory is that CA', async () => {
    const out = dirs.make();
    const c = cli();
    assert.equal(await run(['collector', 'ca', 'create', '--out', out], c.deps), 0);
    assert.deepEqual(c.out.join('').trim().split('\n'), [path.join(out, 'ca.crt'), path.join(out, 'ca.key')]);
    assert.equal(fs.statSync(path.join(out, 'ca.key')).mode & 0o777, 0o600);
    const cert = fs.readFileSync(path.join(out, 'ca.crt'), 'utf8');
    assert.equal(await run(['collector', 'ca', 'create', '--out', out], cli().deps), 0);
    assert.equal(fs.readFileSync(path.join(out, 'ca.crt'), 'utf8'), cert, 'an existing CA is kept');
    const col = await collector(stack, { dataDir: out, log: new LogCapture().logger });
    assert.equal(col.ca.certPem, cert);
  });

  it('token create -o json gives token, id and expiry', async () => {
    const data = dataDir();
    const c = cli();
    assert.equal(await run(['collector', 'token', 'create', '--node', 'node-a', '--data', data, '-o', 'json'], c.deps), 0);
    const doc = JSON.parse(c.out.join('')) as { token: string; id: string; expiresAt: string; node: string; scopes: string[] };
    assert.equal(doc.token.slice(4, 12), doc.id);
    assert.equal(doc.node, 'node-a');
    assert.deepEqual(doc.scopes, ['*/*']);
    const hours = (Date.parse(doc.expiresAt) - Date.now()) / 3_600_000;
    assert.ok(hours > 0.99 && hours <= 1, `default ttl 1h, got ${hours}`);
  });

  it('token create --node-cidr --scope binds the token; node list shows the node once it joined', async () => {
    const data = dataDir();
    const c = cli();
    const args = ['collector', 'token', 'create', '--node', 'node-a', '--node-cidr', '10.0.1.0/24', '--scope', 'default/*', '--scope', 'prod/api', '--data', data, '-o', 'json'];
    assert.equal(await run(args, c.deps), 0);
    const doc = JSON.parse(c.out.join('')) as { token: string; node: string; nodeCidr: string; scopes: string[] };
    assert.deepEqual([doc.node, doc.nodeCidr, doc.scopes], ['node-a', '10.0.1.0/24', ['default/*', 'prod/api']]);
    const col = await collector(stack, { dataDir: data, log: new LogCapture().logger });
    await client(stack, { url: col.url, caPem: col.ca.certPem, node: 'node-a', dataDir: dirs.make(), joinToken: doc.token }).start();
    const list = cli();
    assert.equal(await run(['collector', 'node', 'list', '--data', data], list.deps), 0);
    const lines = list.out.join('').trim().split('\n');
    assert.match(lines[0]!, /^NODE +STATUS +POD RANGE +SCOPE +JOINED +CERTIFICATE EXPIRES$/);
    assert.match(lines[1]!, /^node-a +joined +10\.0\.1\.0\/24 +default\/\*, prod\/api +\d{4}-/);
  });

  it('token create without --node says a token joins one node, and writes nothing', async () => {
    const data = dataDir();
    const c = cli();
    assert.equal(await run(['collector', 'token', 'create', '--data', data], c.deps), 2);
    assert.deepEqual(c.err, ['palisade: --node is required: a token joins exactly one node (--node NAME)\n']);
    assert.ok(!fs.existsSync(path.join(data, 'tokens.json')));
  });

  for (const [args, expected] of [
    [['--ttl', 'bogus'], 'palisade: invalid --ttl "bogus": expected a duration like 30s, 10m, 24h or 30d\n'],
    [['--ttl', '0s'], 'palisade: invalid --ttl "0s": must be more than zero\n'],
    [['-o', 'yaml'], 'palisade: invalid -o "yaml": use text or json\n'],
    [['--node', 'Node_A'], `palisade: invalid --node "Node_A": lowercase letters, digits, '.', '-', '_', at most 63\n`],
    [['--scope', 'default'], 'palisade: invalid --scope "default": use namespace/serviceaccount or namespace/* (e.g. default/web, default/*)\n'],
    [['--node-cidr', '10.0.1.1/24'], 'palisade: invalid --node-cidr "10.0.1.1/24": has host bits set (did you mean 10.0.1.0/24?)\n'],
  ] as const) {
    it(`token create ${args.join(' ')} fails in one line, non-zero, writes nothing`, async () => {
      const data = dataDir();
      const c = cli();
      assert.equal(await run(['collector', 'token', 'create', '--node', 'node-a', '--data', data, ...args], c.deps), 2);
      assert.deepEqual(c.err, [expected]);
      assert.deepEqual(c.out, []);
      assert.ok(!fs.existsSync(path.join(data, 'tokens.json')));
    });
  }

  it('token create refuses a directory that is not a collector data dir and creates nothing (bug: it made one)', async () => {
    const data = path.join(dirs.make(), 'typo');
    const c = cli();
    assert.equal(await run(['collector', 'token', 'create', '--node', 'node-a', '--data', data], c.deps), 1);
    assert.equal(c.err.length, 1);
    assert.match(c.err[0]!, /^palisade: .*typo is not a collector data directory \(no ca\.crt\)/);
    assert.equal(fs.existsSync(data), false);
  });

  it('runs the collector until told to stop, logging "collector ready"', async () => {
    const data = dataDir();
    const sock = path.join(dirs.make(), 'c.sock');
    const c = cli();
    const exit = run(['collector', '--listen', '127.0.0.1:0', '--agent-socket', sock, '--data', data, '--workload-cert-ttl', '10m'], c.deps);
    stack.push(async () => {
      c.stop();
      await exit;
    });
    const ready = await waitFor(() => c.logs.find('collector ready'), 10_000, 'collector ready');
    assert.match(String(ready.address), /^127\.0\.0\.1:\d+$/);
    assert.equal(ready.socketPath, sock);
    c.stop();
    assert.equal(await exit, 0);
    assert.ok(c.logs.find('collector stopped'));
    assert.ok(!fs.existsSync(sock));
  });

  it('refuses a bad --workload-cert-ttl, --listen, --trust-domain, --replica-lease and --namespace in one line', async () => {
    for (const [args, msg] of [
      [['--workload-cert-ttl', '1 day'], 'palisade: invalid --workload-cert-ttl "1 day": expected a duration like 30s, 10m, 24h or 30d\n'],
      [['--listen', 'localhost'], 'palisade: invalid listen address "localhost": expected HOST:PORT like 127.0.0.1:15012\n'],
      [['--trust-domain', 'Bad/TD'], 'palisade: invalid --trust-domain "Bad/TD"\n'],
      [['--kubernetes', '--replica-lease', '1500ms'], 'palisade: invalid --replica-lease "1500ms": whole seconds from 1s to 1h\n'],
      [['--kubernetes', '--replica-lease', '2h'], 'palisade: invalid --replica-lease "2h": whole seconds from 1s to 1h\n'],
      [['--kubernetes', '--namespace', 'Palisade_System'], 'palisade: invalid --namespace "Palisade_System": a namespace name (lowercase letters, digits, \'-\')\n'],
    ] as const) {
      const c = cli();
      assert.equal(await run(['collector', '--data', dirs.make(), ...args], c.deps), 2);
      assert.deepEqual(c.err, [msg]);
    }
  });
});
