/**
 * `palisade observe` against a real collector in-process: real HTTPS and WebSocket with the
 * mesh CA on loopback, flows seeded through the collector's flow store the way an agent
 * session stores them.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { removeDemoConfig, writeDemoConfig } from '../../../cli/config';
import type { CliDeps, TerminalDeps } from '../../../cli/deps';
import { run } from '../../../cli/program';
import type { RunningCollector } from '../../../collector/collector';
import type { StoredFlow } from '../../../common/flows-api';
import { ApiClient } from '../../../common/api-client';
import type { FlowRecord } from '../../../common/flow';
import { silentLogger } from '../../../common/log';
import { CaTemplate, collector, LogCapture, Stack, TempDirs, waitFor } from '../collector/helpers';

const TD = 'cluster.local';
const id = (sa: string): string => `spiffe://${TD}/ns/default/sa/${sa}`;
const CLIENT = { ip: '10.0.1.2', port: 40000, workload: 'client', namespace: 'default', identity: id('client') };
const WEB1 = { ip: '10.0.1.3', port: 8080, workload: 'web-1', namespace: 'default', identity: id('web') };
const WEB2 = { ip: '10.0.2.2', port: 8080, workload: 'web-2', namespace: 'default', identity: id('web') };

function flow(minutesAgo: number, over: Partial<FlowRecord>): FlowRecord {
  return {
    time: new Date(Date.now() - minutesAgo * 60_000).toISOString(),
    node: 'node-1',
    direction: 'outbound',
    source: CLIENT,
    destination: WEB2,
    protocol: 'http',
    http: { method: 'GET', path: '/public', status: 200 },
    verdict: 'allowed',
    reason: 'allowed-by-policy',
    policy: 'default/web-allow',
    mtls: true,
    bytesSent: 100,
    bytesReceived: 200,
    durationMs: 2,
    ...over,
  };
}

/** Seeded once; `reason` names each flow so the tests can say which ones they expect. */
const SEED: FlowRecord[] = [
  flow(30, { reason: 'f1-public' }),
  flow(5, { reason: 'f2-admin', node: 'node-2', direction: 'inbound', http: { method: 'GET', path: '/admin', status: 403 }, verdict: 'denied', policy: 'default/deny-admin' }),
  flow(4, {
    reason: 'f3-egress',
    direction: 'egress',
    destination: { ip: '172.31.0.100', port: 443, host: 'blocked.example.test' },
    protocol: 'tls',
    http: undefined,
    verdict: 'denied',
    policy: undefined,
    mtls: false,
  }),
  flow(3, { reason: 'f4-tcp', source: WEB1, destination: WEB2, protocol: 'tcp', http: undefined, verdict: 'audit', policy: undefined, audit: { policy: 'default/audit', rule: 0 } }),
  flow(2, { reason: 'f5-api', destination: WEB1, http: { method: 'POST', path: '/api/users', status: 201 }, traffic: { route: 'default/web-canary', rule: 0, backend: 'default/web-v2', attempts: 1 } }),
  flow(1, { reason: 'f6-error', destination: { ip: '10.0.2.9', port: 9000 }, protocol: 'tcp', http: undefined, verdict: 'error', policy: undefined, mtls: false }),
];

interface Cli {
  deps: CliDeps & TerminalDeps;
  out: string[];
  err: string[];
  stop: () => void;
  stdout: () => string;
  stderr: () => string;
}

describe('palisade observe (CLI against a real collector)', function () {
  this.timeout(60_000);
  const dirs = new TempDirs();
  const stack = new Stack();
  let col: RunningCollector;
  let dataDir = '';
  let xdg = '';
  let seq = 0;

  /** Store `flows` as their node's agent session would. */
  async function ingest(...flows: FlowRecord[]): Promise<void> {
    for (const f of flows) await col.flows.ingest(f.node, { session: `s-${f.node}`, seq: ++seq, lost: 0, flows: [f] });
  }

  function cli(env: Record<string, string> = {}, stdoutIsTTY = false): Cli {
    const out: string[] = [];
    const err: string[] = [];
    let stop: () => void = () => undefined;
    const stopped = new Promise<string>((resolve) => (stop = () => resolve('SIGINT')));
    return {
      out,
      err,
      stop: () => stop(),
      stdout: () => out.join(''),
      stderr: () => err.join(''),
      deps: {
        stdout: (t) => out.push(t),
        stderr: (t) => err.push(t),
        logger: () => silentLogger(),
        waitForStop: () => stopped,
        env: { XDG_CONFIG_HOME: xdg, HOME: xdg, ...env },
        stdoutIsTTY,
      },
    };
  }

  /** The collector settings as flags. */
  const conn = (): string[] => ['--collector', col.apiUrl, '--token-file', path.join(dataDir, 'admin.token'), '--ca', path.join(dataDir, 'ca.crt')];

  async function observe(argv: string[], env?: Record<string, string>): Promise<{ code: number; out: string; err: string }> {
    const c = cli(env);
    const code = await run(['observe', ...conn(), ...argv], c.deps);
    return { code, out: c.stdout(), err: c.stderr() };
  }

  /** Which seeded flows `observe ARGS -o jsonl` printed, in printed order. */
  async function printed(argv: string[]): Promise<string[]> {
    const r = await observe([...argv, '-o', 'jsonl']);
    assert.equal(r.code, 0, r.err);
    return r.out
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => (JSON.parse(l) as StoredFlow).reason);
  }

  before(async () => {
    const template = new CaTemplate(dirs);
    dataDir = template.dataDir(dirs);
    xdg = dirs.make('palisade-xdg-');
    col = await collector(stack, { dataDir, log: new LogCapture().logger });
    await ingest(...SEED);
  });
  after(async () => {
    await stack.unwind();
    dirs.cleanup();
  });

  describe('a page of flows', () => {
    it('prints a table, oldest first, with every column and no colour when stdout is not a terminal', async () => {
      const r = await observe([]);
      assert.equal(r.code, 0, r.err);
      assert.equal(r.err, '');
      const lines = r.out.trimEnd().split('\n');
      assert.match(lines[0]!, /^TIME +NODE +DIRECTION +SOURCE +DESTINATION +PROTO +REQUEST +VERDICT +REASON\/POLICY +MTLS +BYTES$/);
      assert.deepEqual(
        lines.slice(1).map((l) => /f\d-\w+/.exec(l)?.[0]),
        SEED.map((f) => f.reason),
      );
      assert.ok(!r.out.includes('\x1b'), 'no colour');
      const denied = lines.find((l) => l.includes('f2-admin'))!;
      for (const cell of ['node-2', 'inbound', 'default/client', 'default/web-2:8080', 'GET /admin 403', 'denied', 'f2-admin (default/deny-admin)', 'yes', '100B/200B']) {
        assert.ok(denied.includes(cell), `${cell} in ${denied}`);
      }
      // every column starts at the same place on every line
      const starts = ['NODE', 'SOURCE', 'VERDICT', 'MTLS', 'BYTES'].map((h) => lines[0]!.indexOf(h));
      for (const line of lines.slice(1)) for (const at of starts) assert.equal(line.slice(at - 2, at + 1).trim().length, 1, `${at} in ${line}`);
    });

    it('colours verdicts on a terminal, and not with NO_COLOR', async () => {
      const tty = cli({}, true);
      assert.equal(await run(['observe', ...conn(), '--verdict', 'denied'], tty.deps), 0);
      assert.match(tty.stdout(), /\x1b\[31mdenied\x1b\[0m/);
      const noColor = cli({ NO_COLOR: '1' }, true);
      assert.equal(await run(['observe', ...conn()], noColor.deps), 0);
      assert.ok(!noColor.stdout().includes('\x1b'));
    });

    const narrowing: [string[], string[]][] = [
      [['--from', 'client'], ['f1-public', 'f2-admin', 'f3-egress', 'f5-api', 'f6-error']],
      [['--from', 'default/web-1'], ['f4-tcp']],
      [['--from', id('web')], ['f4-tcp']],
      [['--from', '10.0.1.3'], ['f4-tcp']],
      [['--to', 'web-2'], ['f1-public', 'f2-admin', 'f4-tcp']],
      [['--to', '172.31.0.100'], ['f3-egress']],
      [['--verdict', 'denied'], ['f2-admin', 'f3-egress']],
      [['--verdict', 'audit'], ['f4-tcp']],
      [['--verdict', 'error'], ['f6-error']],
      [['--protocol', 'tcp'], ['f4-tcp', 'f6-error']],
      [['--protocol', 'tls'], ['f3-egress']],
      [['--http-path', '/admin'], ['f2-admin']],
      [['--http-path', '/api/*'], ['f5-api']],
      [['--since', '10m'], ['f2-admin', 'f3-egress', 'f4-tcp', 'f5-api', 'f6-error']],
      [['--last', '2'], ['f5-api', 'f6-error']],
      [['--node', 'node-2'], ['f2-admin']],
      [['--direction', 'egress'], ['f3-egress']],
      [['--route', 'web-canary'], ['f5-api']],
      [['--route', 'default/web-canary'], ['f5-api']],
      [['--route', 'other/web-canary'], []],
      [['--from', 'client', '--verdict', 'denied', '--protocol', 'http'], ['f2-admin']],
      [['--to', 'nobody'], []],
    ];
    for (const [argv, expected] of narrowing) {
      it(`${argv.join(' ')} prints ${expected.length ? expected.join(', ') : 'nothing'}`, async () => {
        assert.deepEqual(await printed(argv), expected);
      });
    }

    it('-o json prints one array of the flows, oldest first', async () => {
      const r = await observe(['-o', 'json', '--verdict', 'denied']);
      assert.equal(r.code, 0, r.err);
      const flows = JSON.parse(r.out) as StoredFlow[];
      assert.ok(Array.isArray(flows));
      assert.deepEqual(flows.map((f) => f.reason), ['f2-admin', 'f3-egress']);
      assert.ok(flows[0]!.id > 0 && flows[0]!.id < flows[1]!.id);
      assert.match(flows[0]!.origin ?? '', /^[A-Za-z0-9._-]+\/\d+\/\d+$/, 'the batch it came in');
      assert.deepEqual({ ...flows[0], id: undefined, origin: undefined }, { ...SEED[1], id: undefined, origin: undefined });
    });

    it('says "no flows match" on stderr (not stdout) for an empty table', async () => {
      const r = await observe(['--to', 'nobody']);
      assert.deepEqual([r.code, r.out, r.err], [0, '', 'no flows match\n']);
    });
  });

  describe('-f', () => {
    it('prints the last page, then each new matching flow within 1 s, until stopped', async () => {
      const c = cli();
      const done = run(['observe', ...conn(), '-f', '--verdict', 'denied'], c.deps);
      await waitFor(() => c.stdout().includes('f3-egress'), 5_000, 'the page');
      assert.match(c.stdout(), /f2-admin[^]*f3-egress/);
      const before = c.out.length;
      await ingest(flow(0, { reason: 'new-allowed' })); // does not match: never printed
      const t0 = Date.now();
      await ingest(flow(0, { reason: 'new-denied', verdict: 'denied', http: { method: 'DELETE', path: '/admin', status: 403 } }));
      await waitFor(() => c.stdout().includes('new-denied'), 1_000, 'the new flow');
      assert.ok(Date.now() - t0 < 1_000);
      const later = c.out.slice(before).join('');
      assert.ok(!later.includes('new-allowed'), later);
      assert.ok(!later.includes('TIME'), 'no second header');
      assert.match(later, /^\S+ +node-1 +outbound +default\/client +default\/web-2:8080 +http +DELETE \/admin 403 +denied +new-denied/);
      c.stop();
      assert.equal(await done, 0);
      assert.equal(c.stderr(), '');
    });

    it('-f -o jsonl --last 0 prints only flows stored after it started, one per line', async () => {
      const c = cli();
      const done = run(['observe', ...conn(), '-f', '-o', 'jsonl', '--last', '0', '--from', 'web-1'], c.deps);
      // the stream is subscribed once the collector counts a follower; until then, keep storing
      await waitFor(
        () => {
          void ingest(flow(0, { reason: 'probe', source: WEB1 }));
          return c.stdout().includes('probe');
        },
        5_000,
        'the stream to be live',
      );
      await ingest(flow(0, { reason: 'live-1', source: WEB1 }), flow(0, { reason: 'not-web-1' }));
      await waitFor(() => c.stdout().includes('live-1'), 1_000, 'live-1');
      c.stop();
      assert.equal(await done, 0);
      const reasons: string[] = c.stdout().trim().split('\n').map((l) => (JSON.parse(l) as StoredFlow).reason);
      assert.ok(!reasons.includes('f4-tcp'), 'no page');
      assert.deepEqual(reasons.filter((r) => r !== 'probe' && r !== 'live-1'), [], 'only new flows from web-1');
    });

    it('ends with one line and exit 1 when the collector goes away', async () => {
      const data = new CaTemplate(dirs).dataDir(dirs);
      const own = await collector(new Stack(), { dataDir: data, log: new LogCapture().logger });
      const c = cli();
      const done = run(
        ['observe', '--collector', own.apiUrl, '--token-file', path.join(data, 'admin.token'), '--ca', path.join(data, 'ca.crt'), '-f'],
        c.deps,
      );
      await waitFor(() => c.stdout().includes('TIME'), 5_000, 'the header');
      await own.stop();
      assert.equal(await done, 1);
      assert.match(c.stderr(), /^palisade: the collector at https:\/\/127\.0\.0\.1:\d+ ended the flow stream \(1001: collector stopping\)\n$/);
    });
  });

  describe('failures', () => {
    async function freePort(): Promise<number> {
      const s = net.createServer();
      await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
      const { port } = s.address() as net.AddressInfo;
      await new Promise((resolve) => s.close(resolve));
      return port;
    }

    for (const follow of [false, true]) {
      const f = follow ? ['-f'] : [];
      it(`a collector URL that refuses is one line, exit 1${follow ? ' (-f)' : ''}`, async () => {
        const port = await freePort();
        const c = cli();
        // --collector is repeatable (replicas): the refusing one alone, not after conn()'s
        const code = await run(['observe', ...conn().slice(2), '--collector', `https://127.0.0.1:${port}`, ...f], c.deps);
        assert.deepEqual([code, c.stderr(), c.stdout()], [1, `palisade: cannot reach the collector at https://127.0.0.1:${port}: ECONNREFUSED\n`, '']);
      });

      it(`a wrong token is one line, exit 1${follow ? ' (-f)' : ''}`, async () => {
        const c = cli();
        const code = await run(['observe', '--collector', col.apiUrl, '--ca', path.join(dataDir, 'ca.crt'), '--token', 'pla_wrong', ...f], c.deps);
        assert.equal(code, 1);
        assert.match(c.stderr(), /^palisade: the collector at https:\/\/127\.0\.0\.1:\d+ refused the token \(401\): authentication required \(wrong token\)[^\n]*\n$/);
        assert.equal(c.stdout(), '');
      });
    }

    it('a collector whose certificate does not chain to --ca is one line naming the CA file, exit 1', async () => {
      const otherCa = path.join(new CaTemplate(dirs).dataDir(dirs), 'ca.crt');
      const c = cli();
      const code = await run(['observe', ...conn(), '--ca', otherCa], c.deps);
      assert.equal(code, 1);
      assert.equal(c.stderr().split('\n').length, 2);
      assert.match(c.stderr(), new RegExp(`^palisade: the collector at https://127\\.0\\.0\\.1:\\d+ is not trusted: its certificate does not verify with the CA in ${otherCa} \\(\\w+\\)\\n$`));
    });

    it('stats() reads what the collector stored, per node', async () => {
      const client = new ApiClient({ url: col.apiUrl, token: col.adminToken, caPem: col.ca.certPem });
      const stats = await client.stats();
      assert.ok(stats.stored >= SEED.length, JSON.stringify(stats));
      assert.ok(stats.nodes['node-2']!.stored >= 1, JSON.stringify(stats));
    });

    it('a request the collector refuses (400) is INVALID_ARGUMENT with its message', async () => {
      const client = new ApiClient({ url: col.apiUrl, token: col.adminToken, caPem: col.ca.certPem });
      await assert.rejects(client.flows({ limit: 0 }), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'PALISADE_ERR_INVALID_ARGUMENT');
        assert.match(err.message, /^invalid limit: /);
        return true;
      });
    });
  });

  describe('the config file', () => {
    it('after the demo writes it, observe needs no flags; after demo down it is gone', async () => {
      const env = { XDG_CONFIG_HOME: xdg };
      assert.equal(writeDemoConfig({ collectorDir: dataDir, listen: col.address, env }), true);
      const c = cli();
      assert.equal(await run(['observe', '--verdict', 'error'], c.deps), 0, c.stderr());
      assert.match(c.stdout(), /f6-error/);
      assert.equal(removeDemoConfig({ collectorDir: dataDir, listen: col.address, env }), true);
      assert.ok(!fs.existsSync(path.join(xdg, 'palisade', 'config.yaml')));
    });

    it('env settings are used when there are no flags', async () => {
      const c = cli({ PALISADE_COLLECTOR: col.apiUrl, PALISADE_TOKEN: col.adminToken, PALISADE_CA: path.join(dataDir, 'ca.crt') });
      assert.equal(await run(['observe', '--verdict', 'audit', '-o', 'jsonl'], c.deps), 0, c.stderr());
      assert.equal((JSON.parse(c.stdout()) as StoredFlow).reason, 'f4-tcp');
    });
  });
});
