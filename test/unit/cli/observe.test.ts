import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { DEFAULT_LAST, observeRequest, parseEndpointFilter, type ObserveFlags } from '../../../cli/commands/observe';
import type { CliDeps, TerminalDeps } from '../../../cli/deps';
import { run } from '../../../cli/program';
import { silentLogger } from '../../../common/log';
import { CertificateAuthority } from '../../../collector/mesh-ca';

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

const NOW = Date.parse('2024-05-01T12:00:00Z');
const flags = (over: Partial<ObserveFlags> = {}): ObserveFlags => ({ last: String(DEFAULT_LAST), output: 'table', ...over });

describe('palisade observe (flags)', () => {
  let root = '';
  let caFile = '';
  /** Stands where the collector would be and counts who knocks. */
  let server: net.Server;
  let connections = 0;
  let url = '';

  before(async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'palisade-observe-'));
    caFile = path.join(root, 'ca.crt');
    fs.writeFileSync(caFile, CertificateAuthority.loadOrCreate(path.join(root, 'ca'), 'cluster.local').certPem);
    server = net.createServer((s) => {
      connections++;
      s.destroy();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `https://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  });
  after(async () => {
    await new Promise((resolve) => server.close(resolve));
    fs.rmSync(root, { recursive: true, force: true });
  });
  beforeEach(() => {
    connections = 0;
  });

  /** `palisade observe ARGS` with the collector settings in the env and an empty config dir. */
  async function observe(argv: string[], env: Record<string, string> = {}): Promise<Result> {
    let stdout = '';
    let stderr = '';
    const deps: CliDeps & TerminalDeps = {
      stdout: (t) => void (stdout += t),
      stderr: (t) => void (stderr += t),
      logger: () => silentLogger(),
      waitForStop: () => new Promise<string>(() => undefined),
      env: { XDG_CONFIG_HOME: path.join(root, 'xdg'), HOME: root, PALISADE_COLLECTOR: url, PALISADE_TOKEN: 'tok', PALISADE_CA: caFile, ...env },
      stdoutIsTTY: false,
    };
    const code = await run(['observe', ...argv], deps);
    return { code, stdout, stderr };
  }

  describe('run', () => {
    it('sends the request when the flags are good (the control for the cases below)', async () => {
      const r = await observe(['--verdict', 'denied', '--since', '10m', '--last', '5']);
      assert.equal(connections, 1);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /^palisade: cannot reach the collector at https:\/\/127\.0\.0\.1:\d+: \S+\n$/);
    });

    const bad: [string[], string][] = [
      [['--verdict', 'maybe'], 'invalid --verdict "maybe": use allowed, denied, audit or error'],
      [['--verdict', 'ALLOWED'], 'invalid --verdict "ALLOWED": use allowed, denied, audit or error'],
      [['--protocol', 'sctp'], 'invalid --protocol "sctp": use tcp, tls, http, dns, udp, icmp, arp or other'],
      [['--direction', 'sideways'], 'invalid --direction "sideways": use outbound, inbound or egress'],
      [['--from', 'Web 1'], 'invalid --from "Web 1": expected a workload (web-1 or default/web-1), a SPIFFE ID (spiffe://…) or an IP address'],
      [['--from', 'a/b/c'], 'invalid --from "a/b/c": expected a workload (web-1 or default/web-1), a SPIFFE ID (spiffe://…) or an IP address'],
      [['--to', 'default/'], 'invalid --to "default/": expected a workload (web-1 or default/web-1), a SPIFFE ID (spiffe://…) or an IP address'],
      [['--to', ''], 'invalid --to "": expected a workload (web-1 or default/web-1), a SPIFFE ID (spiffe://…) or an IP address'],
      [['--http-path', 'api'], 'invalid --http-path "api": expected a path like /api/users, or a prefix like /api/*'],
      [['--http-path', '/a*/b'], 'invalid --http-path "/a*/b": expected a path like /api/users, or a prefix like /api/*'],
      [['--http-path', '/a b'], 'invalid --http-path "/a b": expected a path like /api/users, or a prefix like /api/*'],
      [['--node', 'a\tb'], 'invalid --node "a\\tb": not a node name'],
      [['--route', 'Web Canary'], 'invalid --route "Web Canary": expected a route name (web-canary) or namespace/name (shop/web-canary)'],
      [['--route', 'shop/'], 'invalid --route "shop/": expected a route name (web-canary) or namespace/name (shop/web-canary)'],
      [['--route', 'a/b/c'], 'invalid --route "a/b/c": expected a route name (web-canary) or namespace/name (shop/web-canary)'],
      [['--since', '10 minutes'], 'invalid --since "10 minutes": expected a duration like 30s, 10m or 24h, or a time like 2024-05-01T12:00:00Z'],
      [['--since', '0s'], 'invalid --since "0s": expected a duration like 30s, 10m or 24h, or a time like 2024-05-01T12:00:00Z'],
      [['--since', '-5m'], 'invalid --since "-5m": expected a duration like 30s, 10m or 24h, or a time like 2024-05-01T12:00:00Z'],
      [['--since', '2024-13-45T00:00:00Z'], 'invalid --since "2024-13-45T00:00:00Z": not a time like 2024-05-01T12:00:00Z'],
      [['--last', '0'], 'invalid --last "0": expected a whole number from 1 to 10000'],
      [['--last', 'ten'], 'invalid --last "ten": expected a whole number from 1 to 10000'],
      [['--last', '10001'], 'invalid --last "10001": expected a whole number from 1 to 10000'],
      [['--last', '2.5'], 'invalid --last "2.5": expected a whole number from 1 to 10000'],
      [['-f', '--last', '-1'], 'invalid --last "-1": expected a whole number from 0 to 10000'],
      [['-o', 'yaml'], 'invalid -o "yaml": use table, json or jsonl'],
      [['-f', '-o', 'json'], '-o json prints one array and cannot follow: use -o jsonl with -f'],
      [['--collector', 'http://127.0.0.1:15012'], 'invalid --collector "http://127.0.0.1:15012": the collector API is HTTPS only (expected https://HOST:PORT like https://127.0.0.1:15012)'],
      [['--token', 'a', '--token-file', '/b'], 'give --token or --token-file, not both'],
      [['-f', '--collector', 'https://127.0.0.1:1', '--collector', 'https://127.0.0.1:2'], '-f follows one collector: give one --collector (without -f, several are merged)'],
      [['--collector', 'https://127.0.0.1:1', '--collector', 'http://127.0.0.1:2'], 'invalid --collector "http://127.0.0.1:2": the collector API is HTTPS only (expected https://HOST:PORT like https://127.0.0.1:15012)'],
    ];
    for (const [argv, message] of bad) {
      it(`refuses ${argv.join(' ')} in one line, exit 2, before sending anything`, async () => {
        const r = await observe(argv);
        assert.deepEqual([r.code, r.stderr, r.stdout], [2, `palisade: ${message}\n`, '']);
        assert.equal(connections, 0, 'no request was sent');
      });
    }

    it('asks every collector given (replicas); when none answers, fails with the first one\'s reason', async () => {
      const r = await observe(['--collector', url, '--collector', url, '--last', '5']);
      assert.equal(connections, 2, 'both were asked');
      assert.equal(r.code, 1);
      assert.match(r.stderr, /^palisade: cannot reach the collector at https:\/\/127\.0\.0\.1:\d+: \S+\n$/);
    });

    it('refuses an unknown flag the commander way (exit 2), nothing sent', async () => {
      const r = await observe(['--colour']);
      assert.equal(r.code, 2);
      assert.match(r.stderr, /^palisade: unknown option '--colour'/);
      assert.equal(connections, 0);
    });

    it('names a malformed config file in one line, exit 2, nothing sent', async () => {
      const xdg = path.join(root, 'bad-xdg');
      fs.mkdirSync(path.join(xdg, 'palisade'), { recursive: true });
      fs.writeFileSync(path.join(xdg, 'palisade', 'config.yaml'), 'collector: https://127.0.0.1:1\ntoken: [\n');
      const r = await observe([], { XDG_CONFIG_HOME: xdg, PALISADE_TOKEN: '', PALISADE_COLLECTOR: '' });
      assert.equal(r.code, 2);
      assert.match(r.stderr, new RegExp(`^palisade: invalid config file ${path.join(xdg, 'palisade', 'config.yaml')}:\\d+: [^\\n]+\\n$`));
      assert.equal(connections, 0);
    });

    it('says how to give a token when there is none, nothing sent', async () => {
      const r = await observe([], { PALISADE_TOKEN: '' });
      assert.equal(r.code, 2);
      assert.match(r.stderr, /^palisade: no collector token: pass --token-file FILE/);
      assert.equal(connections, 0);
    });
  });

  describe('observeRequest', () => {
    it('asks for the newest 20 flows by default, as a table', () => {
      assert.deepEqual(observeRequest(flags(), NOW), { filters: { limit: 20 }, output: 'table', follow: false, last: 20 });
    });

    it('turns every flag into its filter', () => {
      const req = observeRequest(
        flags({
          from: 'default/client',
          to: 'spiffe://cluster.local/ns/default/sa/web',
          verdict: 'denied',
          protocol: 'http',
          httpPath: '/admin/*',
          route: 'shop/web-canary',
          node: 'node-2',
          direction: 'inbound',
          since: '10m',
          last: '5',
          output: 'jsonl',
        }),
        NOW,
      );
      assert.deepEqual(req.filters, {
        from: 'default/client',
        to: 'spiffe://cluster.local/ns/default/sa/web',
        verdict: 'denied',
        protocol: 'http',
        httpPath: '/admin/*',
        route: 'shop/web-canary',
        node: 'node-2',
        direction: 'inbound',
        since: NOW - 600_000,
        limit: 5,
      });
      assert.equal(req.output, 'jsonl');
    });

    it('takes --since as a time too', () => {
      assert.equal(observeRequest(flags({ since: '2024-05-01T11:00:00Z' }), NOW).filters.since, NOW - 3_600_000);
    });

    it('with -f --last 0 asks for no page, only new flows', () => {
      const req = observeRequest(flags({ follow: true, last: '0' }), NOW);
      assert.deepEqual([req.follow, req.last, req.filters.limit], [true, 0, undefined]);
    });
  });

  describe('parseEndpointFilter', () => {
    for (const v of ['web-1', 'default/web-1', 'kube-system/coredns.v2', 'spiffe://cluster.local/ns/default/sa/web', '10.0.1.2', 'fd00::2']) {
      it(`accepts ${v}`, () => assert.equal(parseEndpointFilter('--from', v), v));
    }
    for (const v of ['Web', 'default/', '/web', 'a/b/c', 'spiffe://', 'web 1', `${'a'.repeat(254)}`, 'web\u009b']) {
      it(`refuses ${JSON.stringify(v.slice(0, 20))}`, () => assert.throws(() => parseEndpointFilter('--from', v), /^PalisadeError: invalid --from /));
    }
  });
});
