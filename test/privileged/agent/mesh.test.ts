/**
 * The mesh end to end: a real collector (CA, tokens, registry), two agents in node
 * namespaces joined with join tokens, pods on real eBPF redirect, HBONE between
 * the nodes, and a capture on the underlay.
 */
import { strict as assert } from 'node:assert';
import { execFile, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Datapath } from '../../../agent/datapath/datapath';
import { joinOnce } from '../../../agent/mesh/join';
import { parseCollectorUrl } from '../../../agent/mesh/transport';
import { sniFor } from '../../../agent/proxy/hbone';
import { spiffeId } from '../../../common/identity';
import { generateKeyPair } from '../../../common/pki';
import { CertificateAuthority } from '../../../collector/mesh-ca';
import {
  cliPath,
  fixturePath,
  requirePrivileges,
  runClient,
  startEchoServer,
  startMeshAgent,
  startTestCollector,
  sweepStale,
  tempDir,
  Topology,
  waitFor,
  type AgentProcess,
  type EchoServer,
  type NodeNs,
  type PodNs,
  type TestCollector,
} from '../../harness';

const MARKER = 'PALISADE-PLAINTEXT-MARKER-7f3a';
const CLIENT_ID = spiffeId('cluster.local', 'default', 'client');
const WEB_ID = spiffeId('cluster.local', 'default', 'web');

function execFileAsync(cmd: string, args: string[], timeoutMs: number): Promise<{ status: number | null; stderr: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { encoding: 'utf8', timeout: timeoutMs }, (err, _stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : null) : 0;
      resolve({ status: code, stderr });
    });
  });
}

function count(agent: AgentProcess, pred: (l: any) => boolean): number {
  return agent.logs.lines.filter(pred).length;
}

describe('Mesh: identities and HBONE between nodes (real eBPF, real TLS)', function () {
  this.timeout(240_000);

  let topo: Topology;
  let collector: TestCollector;
  let node1: NodeNs;
  let node2: NodeNs;
  let client: PodNs;
  let stranger: PodNs;
  let web2: PodNs;
  let agent1: AgentProcess;
  let agent2: AgentProcess;
  let echo: EchoServer;
  let dir: string;
  /** The rotation test's stream of requests, started before the identity tests (see there). */
  let rotation: { stream: Promise<any>; issuedBefore: [number, number] };
  const issued = (a: AgentProcess): number => count(a, (l) => l?.msg === 'workload certificate issued');

  async function exec(target: PodNs | NodeNs, args: string[], timeoutMs = 20_000): Promise<any> {
    const r = await topo.exec(target, args[0]!, args.slice(1), { timeoutMs });
    const last = r.stdout.trim().split('\n').pop() ?? '';
    try {
      return JSON.parse(last);
    } catch {
      throw new Error(`no JSON from ${args.join(' ')} (code ${r.code}): ${r.stdout} ${r.stderr}`);
    }
  }

  before(async function () {
    requirePrivileges();
    sweepStale();
    dir = tempDir('mesh');
    collector = await startTestCollector({ workloadCertTtlSeconds: 30 });
    topo = await Topology.create({ label: 'mesh', nodes: 2 });
    [node1, node2] = topo.nodes as [NodeNs, NodeNs];
    client = await topo.addPod(node1, 'client');
    stranger = await topo.addPod(node1, 'stranger');
    web2 = await topo.addPod(node2, 'web2');
    echo = await startEchoServer(topo, web2, web2.ip, 7000);
    const web = topo.spawn(web2, process.execPath, [path.resolve(cliPath(), '..', 'demo', 'web-app.js'), 'web-2', web2.ip, '8080'], {
      stdio: ['ignore', 'ignore', 'ignore'],
    });
    assert.ok(web.pid);
    agent1 = startMeshAgent(topo, node1, collector, { pods: [{ pod: client, serviceAccount: 'client' }] });
    agent2 = startMeshAgent(topo, node2, collector, { pods: [{ pod: web2, serviceAccount: 'web', strict: true }] });
    await Promise.all([agent1.ready, agent2.ready]);
  });

  after(async function () {
    await agent1?.stop('SIGKILL');
    await agent2?.stop('SIGKILL');
    for (const n of topo?.nodes ?? []) Datapath.uninstall(n.name);
    await topo?.destroy();
    await collector?.cleanup();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  describe('data', function () {
    it('carries HTTP and a 10 MiB transfer across nodes byte-exact, as TLS 1.3 on the underlay and never in plaintext', async function () {
      const pcap = path.join(dir, 'underlay.pcap');
      const underlay = { netnsPath: `/var/run/netns/${topo.underlayNs}`, cgroupPath: topo.cgroupPath };
      const cap = topo.spawn(underlay, 'tshark', ['-i', 'br0', '-f', 'tcp port 15008', '-w', pcap, '-q'], { stdio: ['ignore', 'ignore', 'pipe'] });
      let capErr = '';
      cap.stderr!.on('data', (d: Buffer) => (capErr += d.toString()));
      await waitFor(() => capErr.includes('Capturing on') || undefined, 15_000, { what: 'tshark to start' });

      const http = await topo.exec(client, 'curl', ['-s', '-m', '10', '--data-binary', MARKER, `http://${web2.ip}:8080/echo`]);
      assert.equal(http.code, 0, http.stderr);
      const body = JSON.parse(http.stdout) as { pod: string; body: string; peer: string };
      assert.equal(body.pod, 'web-2');
      assert.equal(body.body, MARKER);
      const big = await runClient(topo, client, web2.ip, 7000, 10 << 20, 30_000);
      assert.ok(big.ok && big.sha256Match, JSON.stringify(big));
      assert.equal(big.received, 10 << 20);

      await new Promise((r) => setTimeout(r, 500));
      cap.kill('SIGINT');
      await new Promise((r) => cap.once('exit', r));
      const bytes = fs.readFileSync(pcap);
      assert.ok(bytes.length > 10 << 20, `the capture saw the transfer (${bytes.length} bytes)`);
      assert.equal(bytes.indexOf(MARKER), -1, 'the plaintext marker never crossed the underlay');
      assert.equal(bytes.indexOf('POST /echo'), -1, 'nor did the HTTP request line');
      const versions = execFileSync(
        'tshark',
        ['-r', pcap, '-d', 'tcp.port==15008,tls', '-Y', 'tls.handshake.type == 2', '-T', 'fields', '-e', 'tls.handshake.extensions.supported_version'],
        { encoding: 'utf8' },
      );
      const seen = versions.split(/\s+/).filter(Boolean);
      assert.ok(seen.length > 0, 'ServerHello captured');
      assert.ok(seen.every((v) => v === '0x0304'), `every handshake negotiated TLS 1.3: ${seen.join(',')}`);
    });

    it('delivers to the server pod from its own node\'s proxy address', async function () {
      const res = await runClient(topo, client, web2.ip, 7000, 100, 5000);
      assert.ok(res.ok, JSON.stringify(res));
      assert.equal(echo.accepts().at(-1)!.remoteAddress, node2.proxyIp);
      assert.equal(res.remoteAddress, web2.ip, 'the client still sees what it dialled');
    });

    it('refuses a direct connection from a pod to a strict pod on another node', async function () {
      const before = echo.accepts().length;
      const res = await runClient(topo, stranger, web2.ip, 7000, 100, 1500);
      assert.equal(res.ok, false);
      assert.equal(echo.accepts().length, before);
    });
  });

  describe('collector restart', function () {
    it('does not break established traffic, and agents reconnect by themselves', async function () {
      const hold = topo.spawn(client, process.execPath, [fixturePath('tcp-hold.js'), web2.ip, '7000', '8'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      hold.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      // Listened for from the start: on a slow machine the client may finish before the agents are back.
      const finished = new Promise((r) => hold.once('close', r));
      await waitFor(() => out.includes('connected') || undefined, 5000, { what: 'long-lived connection' });
      await collector.stop();
      await new Promise((r) => setTimeout(r, 1500));
      const during = await runClient(topo, client, web2.ip, 7000, 1000, 5000);
      assert.ok(during.ok, `new connections work while the collector is down: ${JSON.stringify(during)}`);
      await collector.restart();
      await waitFor(
        () => {
          const snap = collector.running.snapshot();
          return snap.workloads.length === 2 && (snap.nodes ?? []).filter((n) => n.online).length === 2 ? true : undefined;
        },
        15_000,
        { what: 'both agents to reconnect and re-register' },
      );
      await finished;
      const result = JSON.parse(out.trim().split('\n').pop()!) as { ok: boolean; rounds: number };
      assert.ok(result.ok, out);
      assert.ok(result.rounds > 40, out);
    });
  });

  describe('identities on :15008', function () {
    let files: Record<string, string>;

    before(async function () {
      // Two minutes of requests across 30-second certificates (#3, rotation): the stream runs from
      // here, beside every test below, and the rotation test at the end awaits it, so the file takes
      // two minutes instead of two minutes plus these tests. It starts after the capture above
      // (which must see a first HBONE handshake) and after the collector restart.
      rotation = {
        stream: exec(client, [process.execPath, fixturePath('http-loop.js'), `http://${web2.ip}:8080/`, '120'], 160_000),
        issuedBefore: [issued(agent1), issued(agent2)],
      };
      rotation.stream.catch(() => undefined); // awaited (and reported) by the rotation test
      const ca = collector.running.ca;
      const other = CertificateAuthority.loadOrCreate(tempDir('otherca'), 'cluster.local');
      const key = await generateKeyPair();
      const write = (name: string, text: string): string => {
        const f = path.join(dir, name);
        fs.writeFileSync(f, text, { mode: 0o600 });
        return f;
      };
      files = {
        key: write('client.key', key.privateKeyPem),
        ca: collector.caFile,
        good: write('good.crt', ca.issue(key.publicKeyPem, { uri: CLIENT_ID, ttlSeconds: 600, usage: 'workload' })),
        otherCa: write('other.crt', other.issue(key.publicKeyPem, { uri: CLIENT_ID, ttlSeconds: 600, usage: 'workload' })),
        wrongId: write('wrong.crt', ca.issue(key.publicKeyPem, { uri: spiffeId('cluster.local', 'default', 'evil'), ttlSeconds: 600, usage: 'workload' })),
        expired: write(
          'expired.crt',
          ca.issue(key.publicKeyPem, { uri: CLIENT_ID, ttlSeconds: 1, usage: 'workload', notBefore: new Date(Date.now() - 3_600_000) }),
        ),
      };
      await new Promise((r) => setTimeout(r, 1500)); // let the expired one expire
    });

    async function hbone(opts: { cert?: string; authority?: string; forwarded?: string }): Promise<any> {
      return exec(node1, [
        process.execPath,
        fixturePath('hbone-client.js'),
        JSON.stringify({
          host: node2.underlayIp,
          port: 15008,
          servername: sniFor(WEB_ID),
          authority: opts.authority ?? `${web2.ip}:7000`,
          forwarded: opts.forwarded ?? `for="${client.ip}"`,
          caFile: files.ca,
          ...(opts.cert ? { certFile: opts.cert, keyFile: files.key } : {}),
          payload: 'hello',
        }),
      ]);
    }

    it('accepts a valid client certificate of the source workload (the control case)', async function () {
      const before = echo.accepts().length;
      const r = await hbone({ cert: files.good });
      assert.equal(r.status, 200, JSON.stringify(r));
      assert.equal(r.received, 5);
      assert.equal(echo.accepts().length, before + 1);
    });

    const refusals: Array<[string, string | undefined, (r: any) => void]> = [
      ['a certificate from another CA', 'otherCa', (r) => assert.notEqual(r.status, 200)],
      ['an expired certificate', 'expired', (r) => assert.notEqual(r.status, 200)],
      ['a valid certificate with the wrong SPIFFE ID', 'wrongId', (r) => assert.equal(r.status, 403)],
      ['no certificate', undefined, (r) => assert.notEqual(r.status, 200)],
    ];
    for (const [what, which, check] of refusals) {
      it(`refuses ${what} with zero application bytes delivered`, async function () {
        const before = echo.accepts().length;
        const refusedBefore = count(agent2, (l) => l?.event === 'refused');
        const r = await hbone({ cert: which ? files[which] : undefined });
        check(r);
        assert.ok(!r.received, JSON.stringify(r));
        assert.equal(echo.accepts().length, before, 'the server pod never saw a connection');
        await agent2.logs.waitFor((l) => l?.event === 'refused' && count(agent2, (x) => x?.event === 'refused') > refusedBefore, 3000);
      });
    }

    it('refuses a CONNECT to an address that is not a local workload, and says why', async function () {
      const r = await hbone({ cert: files.good, authority: `${client.ip}:7000` });
      assert.equal(r.status, 404);
      await agent2.logs.waitFor((l) => l?.reason === 'not-a-local-workload', 3000);
    });

    it('refuses a source address that belongs to another identity', async function () {
      const r = await hbone({ cert: files.good, forwarded: `for="${web2.ip}"` });
      assert.equal(r.status, 403);
    });

    it('refuses garbage on :15008 and keeps serving everyone else', async function () {
      const r = await topo.exec(node1, process.execPath, [
        '-e',
        `const s=require('net').connect(15008,'${node2.underlayIp}',()=>s.end(Buffer.from('GET / HTTP/1.1\\r\\n\\r\\n'+'\\x00'.repeat(500))));s.on('error',()=>{});s.on('close',()=>process.exit(0));setTimeout(()=>process.exit(0),3000)`,
      ]);
      assert.equal(r.code, 0);
      await agent2.logs.waitFor((l) => l?.reason === 'tls', 3000);
      const ok = await runClient(topo, client, web2.ip, 7000, 1000, 5000);
      assert.ok(ok.ok, JSON.stringify(ok));
    });
  });

  describe('pooling', function () {
    it('uses at most a handful of TLS handshakes for 200 sequential connections', async function () {
      const before = count(agent1, (l) => l?.msg === 'hbone connection established');
      const r = await exec(client, [process.execPath, fixturePath('tcp-many.js'), web2.ip, '7000', '200'], 60_000);
      assert.ok(r.ok, JSON.stringify(r));
      const handshakes = count(agent1, (l) => l?.msg === 'hbone connection established') - before;
      assert.ok(handshakes <= 3, `${handshakes} handshakes for 200 connections`);
    });
  });

  describe('join (bad input)', function () {
    // Async on purpose: the collector runs in this process and must keep answering.
    async function agentWithToken(token: string): Promise<{ status: number | null; stderr: string }> {
      const d = tempDir('jointest');
      try {
        fs.writeFileSync(path.join(d, 'token'), token);
        const r = await execFileAsync(
          process.execPath,
          [
            cliPath(), 'agent', '--node', `${topo.prefix}-node-9`, '--proxy-address', '10.0.9.1', '--cgroup', topo.cgroupPath,
            '--run-dir', path.join(d, 'run'), '--collector', `unix:${collector.socketPath}`, '--collector-ca', collector.caFile,
            '--join-token-file', path.join(d, 'token'), '--data-dir', path.join(d, 'data'), '--node-address', '127.0.0.1',
          ],
          20_000,
        );
        assert.equal(fs.existsSync(`/sys/fs/bpf/palisade/${topo.prefix}-node-9`), false, 'nothing installed for a refused join');
        return r;
      } finally {
        Datapath.uninstall(`${topo.prefix}-node-9`);
        fs.rmSync(d, { recursive: true, force: true });
      }
    }

    it('refuses a reused join token with a one-line reason', async function () {
      const token = collector.token('used-once');
      await joinOnce(parseCollectorUrl(`unix:${collector.socketPath}`), fs.readFileSync(collector.caFile, 'utf8'), 'used-once', token);
      const r = await agentWithToken(token);
      assert.notEqual(r.status, 0);
      const lines = r.stderr.trim().split('\n');
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0]!, /^palisade: .*join refused.*used/);
    });

    it('refuses a wrong join token with a one-line reason', async function () {
      const r = await agentWithToken('plt_00000000.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA');
      assert.notEqual(r.status, 0);
      const lines = r.stderr.trim().split('\n');
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0]!, /^palisade: .*join refused/);
    });
  });

  describe('rotation', function () {
    it('runs two minutes of requests across several 30-second certificate renewals with zero failures', async function () {
      this.timeout(200_000);
      // The stream started before the identity tests and ran through every test since; it ends
      // two minutes after it started.
      const r = await rotation.stream;
      assert.equal(r.failures, 0, JSON.stringify(r));
      assert.ok(r.requests > 500, JSON.stringify(r));
      const [before1, before2] = rotation.issuedBefore;
      assert.ok(issued(agent1) - before1 >= 3, `client identity renewed ${issued(agent1) - before1} times`);
      assert.ok(issued(agent2) - before2 >= 3, `web identity renewed ${issued(agent2) - before2} times`);
    });
  });
});
