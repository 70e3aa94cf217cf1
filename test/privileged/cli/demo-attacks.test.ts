/**
 * Issue #14's attacks in the demo topology, as an attacker in the `client` pod makes them with
 * the CAP_NET_RAW every pod has (AF_PACKET, raw sockets: test/fixtures/raw-net.py), with the
 * issue's policies in force (client may leave only for allowed.example.test; web pods allow only
 * GET /public from client). Each attack is refused in the kernel, counted, and visible to the
 * operator in `palisade observe --verdict denied`; with `palisade egress allow --protocol udp|icmp`
 * the allowed traffic arrives. Each of these attacks went through before the per-pod filters.
 */
import { strict as assert } from 'node:assert';
import type { ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { DemoState } from '../../../cli/demo/demo';
import type { FlowRecord } from '../../../common/flow';
import { rawNet, requirePrivileges, sendFrames, spawnIn, startSniffer, startUdpServer, waitFor, type Running, type Spawner } from '../../harness';
import { demoDown, demoPod, demoUp, runPalisade, type Run } from './demo-session';

const POLICIES = `apiVersion: palisade.dev/v1
kind: EgressPolicy
metadata: {name: client-egress, namespace: default}
spec:
  selector: {matchLabels: {app: client}}
  allow:
    - hosts: [allowed.example.test]
      ports: [80, 443]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: web-public, namespace: default}
spec:
  selector: {matchLabels: {app: web}}
  action: ALLOW
  rules:
    - from: [{source: {principals: ["cluster.local/ns/default/sa/client"]}}]
      to: [{operation: {methods: [GET], paths: ["/public"]}}]
`;

describe('issue #14 attacks in the demo (palisade demo)', function () {
  this.timeout(240_000);
  let dir: string;
  let stateDir: string;
  let env: NodeJS.ProcessEnv;
  let state: DemoState;
  const children: ChildProcess[] = [];
  const running: Running[] = [];
  /** Processes in the demo's namespaces, killed at the end. */
  const demo: Spawner = {
    spawn: (target, cmd, args, opts) => {
      const c = spawnIn(target, cmd, args, opts);
      children.push(c);
      return c;
    },
  };
  let extUdp: Running;
  let seq = 0;
  const mark = (what: string): string => `${what}-${process.pid}-${++seq}`;

  const palisade = (args: string[], timeoutMs?: number): Promise<Run> => runPalisade(args, { env, timeoutMs });
  const pod = (name: string): ReturnType<typeof demoPod> => demoPod(state, name);
  const extHost = (): DemoState['topology']['externalHosts'][number] => state.topology.externalHosts[0]!;
  const node1 = (): DemoState['topology']['nodes'][number] => state.topology.nodes[0]!;

  before(async function () {
    requirePrivileges();
    ({ dir, stateDir, env, state } = await demoUp('demo-attacks'));
    fs.writeFileSync(path.join(state.policyDir!, 'issue-14.yaml'), POLICIES);
    await waitFor(() => state.agents.every((a) => /"event":"policy-loaded".*"version":1/.test(fs.readFileSync(a.log, 'utf8'))) || undefined, 10_000, {
      what: 'both agents to load the policies',
    });
    extUdp = await startUdpServer(demo, extHost(), extHost().ip, 5140);
    running.push(extUdp, await startUdpServer(demo, pod('web-2'), pod('web-2').ip, 5140));
  });

  after(async function () {
    for (const r of running) r.stop();
    for (const c of children) c.kill('SIGKILL');
    if (dir) await demoDown({ dir, stateDir, env });
  });

  /** The denied flow summaries the collector stored for a reason, and the packets they add up to. */
  async function denied(reason: string, filter: string[]): Promise<{ flows: FlowRecord[]; packets: number }> {
    const r = await palisade(['observe', '--verdict', 'denied', ...filter, '--last', '500', '-o', 'json']);
    assert.equal(r.code, 0, r.stderr);
    const flows = (JSON.parse(r.stdout) as FlowRecord[]).filter((f) => f.reason === reason);
    return { flows, packets: flows.reduce((n, f) => n + (f.count ?? 0), 0) };
  }

  /** Wait until observe shows at least `packets` more denied packets of `reason` than `before`. */
  async function visible(reason: string, filter: string[], before: number, packets: number): Promise<FlowRecord[]> {
    let last: { flows: FlowRecord[]; packets: number } = { flows: [], packets: 0 };
    await waitFor(async () => {
      last = await denied(reason, filter);
      return last.packets - before >= packets || undefined;
    }, 20_000, { what: `observe --verdict denied to show ${packets} ${reason} packets` });
    return last.flows;
  }

  const extRequests = (): string => fs.readFileSync(state.ext!.log, 'utf8');
  const webRequests = (name: string): string => fs.readFileSync(state.apps.find((a) => a.pod === name)!.log, 'utf8');

  it('UDP from client reaches neither the ext host nor web-2 in plaintext: dropped, and observe shows it', async function () {
    const payload = mark('udp');
    const before = (await denied('udp-not-allowed', ['--from', 'client'])).packets;
    await rawNet(demo, pod('client'), ['udp-send', extHost().ip, '5140', payload, '2']);
    await rawNet(demo, pod('client'), ['udp-send', pod('web-2').ip, '5140', payload, '2']);
    const flows = await visible('udp-not-allowed', ['--from', 'client'], before, 2);
    for (const r of running) assert.equal(r.events('datagram').filter((d) => d.payload === payload).length, 0, 'no datagram arrived');
    assert.ok(flows.every((f) => f.protocol === 'udp' && f.source.workload === 'client' && f.mtls === false));
  });

  it('a hand-made TCP handshake from an unused pod-subnet address gets nothing from blocked.example.test', async function () {
    const payload = mark('GET / HTTP/1.1\r\nHost: blocked.example.test\r\n\r\n');
    const sniff = await startSniffer(demo, extHost(), 'ul0', payload);
    running.push(sniff);
    const before = (await denied('spoofed-source', ['--from', 'client'])).packets;
    await sendFrames(demo, pod('client'), 'eth0', { kind: 'tcp', src: '10.0.1.200', dst: extHost().ip, sport: 40000, dport: 80, flags: 'S', payload, count: 2 });
    await sendFrames(demo, pod('client'), 'eth0', { kind: 'tcp', src: '10.0.1.200', dst: extHost().ip, sport: 40000, dport: 80, flags: 'PA', payload });
    const flows = await visible('spoofed-source', ['--from', 'client'], before, 3);
    assert.deepEqual(sniff.events('ip'), [], 'not a packet of it reached the ext host');
    assert.doesNotMatch(extRequests(), /blocked\.example\.test/);
    assert.ok(flows.some((f) => f.source.ip === '10.0.1.200' && f.destination.ip === extHost().ip));
  });

  it('ARP spoofing the proxy address towards web-1, then a SYN from it with a forged XFCC to /admin: nothing reaches web-1', async function () {
    const web1 = pod('web-1');
    const proxy = node1().proxyIp;
    const clientMac = (await rawNet(demo, pod('client'), ['mac', 'eth0'])).mac as string;
    const webMac = (await rawNet(demo, web1, ['mac', 'eth0'])).mac as string;
    const arpSniff = await startSniffer(demo, web1, 'eth0', proxy);
    const request = `GET /admin HTTP/1.1\r\nHost: web-1\r\nx-forwarded-client-cert: By=spiffe://cluster.local/ns/default/sa/web;URI=spiffe://cluster.local/ns/default/sa/admin\r\n\r\n${mark('xfcc')}`;
    const synSniff = await startSniffer(demo, web1, 'eth0', request.slice(-20));
    running.push(arpSniff, synSniff);
    const arpBefore = (await denied('spoofed-arp', ['--from', 'client'])).packets;
    const ipBefore = (await denied('spoofed-source', ['--from', 'client'])).packets;
    await sendFrames(demo, pod('client'), 'eth0', { kind: 'arp', arpOp: 2, arpSenderIp: proxy, arpTargetIp: web1.ip, count: 2 });
    await sendFrames(demo, pod('client'), 'eth0', { kind: 'tcp', src: proxy, dst: web1.ip, sport: 45000, dport: 8080, flags: 'S', payload: request, dstMac: webMac });
    await sendFrames(demo, pod('client'), 'eth0', { kind: 'tcp', src: proxy, dst: web1.ip, sport: 45000, dport: 8080, flags: 'PA', payload: request, dstMac: webMac });
    await visible('spoofed-arp', ['--from', 'client'], arpBefore, 2);
    await visible('spoofed-source', ['--from', 'client'], ipBefore, 2);
    assert.deepEqual(arpSniff.events('arp').filter((a) => a.senderMac === clientMac), [], 'web-1 never heard the forged ARP');
    assert.deepEqual(synSniff.events('ip'), [], 'web-1 never saw the forged connection');
    assert.doesNotMatch(webRequests('web-1'), /"url":"\/admin"/);
    // The mesh path still answers by the policy: /public allowed, /admin refused by the proxy.
    const get = async (p: string): Promise<string> =>
      (await palisade(['demo', 'exec', '--state-dir', stateDir, 'client', '--', 'curl', '-s', '-m', '5', '-o', '/dev/null', '-w', '%{http_code}', `http://${web1.ip}:8080${p}`])).stdout;
    assert.equal(await get('/public'), '200');
    assert.equal(await get('/admin'), '403');
  });

  it('ICMP echo with a payload reaches neither the ext host nor web-2', async function () {
    const payload = mark('exfil');
    const before = (await denied('icmp-not-allowed', ['--from', 'client'])).packets;
    assert.deepEqual(await rawNet(demo, pod('client'), ['ping', extHost().ip, payload, '1']), { ok: false, error: 'timeout' });
    assert.deepEqual(await rawNet(demo, pod('client'), ['ping', pod('web-2').ip, payload, '1']), { ok: false, error: 'timeout' });
    await visible('icmp-not-allowed', ['--from', 'client'], before, 2);
  });

  it('a node-local service (10250) answers neither through the proxy address nor through the node address', async function () {
    const service = demo.spawn(node1(), 'python3', ['-c', 'import socket,sys\ns=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);s.bind(("0.0.0.0",10250));s.listen()\nprint("listening",flush=True)\nwhile True:\n c,a=s.accept();print(a[0],flush=True);c.sendall(b"kubelet\\n");c.close()'], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    let seen = '';
    service.stdout!.setEncoding('utf8').on('data', (d: string) => (seen += d));
    await waitFor(() => seen.includes('listening') || undefined, 5000, { what: 'the node-local service' });
    const before = (await denied('proxy-port', ['--from', 'client'])).packets;
    const curl = async (ip: string): Promise<Run> => palisade(['demo', 'exec', '--state-dir', stateDir, 'client', '--', 'curl', '-s', '-m', '3', `telnet://${ip}:10250`]);
    await curl(node1().proxyIp);
    await curl(node1().underlayIp);
    await visible('proxy-port', ['--from', 'client'], before, 1);
    await waitFor(async () => (await denied('node-local-destination', ['--from', 'client'])).flows.some((f) => f.destination.ip === node1().underlayIp) || undefined, 10_000, {
      what: 'the proxy\'s refusal of the node address in observe',
    });
    assert.equal(seen.trim(), 'listening', 'the service never accepted a connection from the pod');
  });

  it('egress allow --protocol udp / icmp lets exactly that out, with its replies, and egress remove closes it again', async function () {
    const allowUdp = await palisade(['egress', 'allow', 'client', `${extHost().ip}/32`, '--port', '5140', '--protocol', 'udp']);
    assert.equal(allowUdp.code, 0, allowUdp.stderr);
    const allowIcmp = await palisade(['egress', 'allow', 'client', `${extHost().ip}/32`, '--protocol', 'icmp']);
    assert.equal(allowIcmp.code, 0, allowIcmp.stderr);
    const payload = mark('udp-ok');
    const asked = await waitFor(async () => {
      const r = await rawNet(demo, pod('client'), ['udp-ask', extHost().ip, '5140', payload, '1']);
      return r.ok ? r : undefined;
    }, 10_000, { what: 'the UDP allowance to reach the kernel' });
    assert.deepEqual(asked, { ok: true, reply: payload, from: extHost().ip });
    assert.equal(extUdp.events('datagram').filter((d) => d.payload === payload)[0]?.from, pod('client').ip);
    const ping = mark('ping-ok');
    assert.deepEqual(await rawNet(demo, pod('client'), ['ping', extHost().ip, ping, '2']), { ok: true, reply: ping });
    // Still only what was allowed: another port, and web-2, stay closed.
    assert.equal((await rawNet(demo, pod('client'), ['udp-ask', extHost().ip, '5141', mark('udp-5141'), '1'])).ok, false);
    assert.equal((await rawNet(demo, pod('client'), ['ping', pod('web-2').ip, mark('ping-web2'), '1'])).ok, false);
    const allowed = await waitFor(async () => {
      const r = await palisade(['observe', '--verdict', 'allowed', '--protocol', 'udp', '--from', 'client', '--last', '50', '-o', 'json']);
      const f = (JSON.parse(r.stdout) as FlowRecord[]).find((x) => x.destination.port === 5140);
      return f;
    }, 15_000, { what: 'the allowed UDP flow in observe' });
    assert.deepEqual([allowed.reason, allowed.mtls, allowed.destination.ip], ['allowed-by-cidr', false, extHost().ip]);
    assert.match(allowed.policy ?? '', /^default\/client-allow-\d+$/);

    const rules = JSON.parse((await palisade(['egress', 'list', '--workload', 'client', '-o', 'json'])).stdout) as { rules: Array<{ id: number; protocol: string }> };
    for (const r of rules.rules.filter((x) => x.protocol !== 'TCP')) assert.equal((await palisade(['egress', 'remove', String(r.id)])).code, 0);
    const closed = mark('udp-closed');
    await waitFor(async () => !(await rawNet(demo, pod('client'), ['udp-ask', extHost().ip, '5140', closed, '1'])).ok || undefined, 10_000, {
      what: 'the UDP allowance to be gone',
    });
  });
});
