/**
 * The demo's pods come through the CNI chain as on a Kubernetes node, and come and go live:
 * `palisade demo pod add` creates the Pod object in the demo's Kubernetes API, the sandbox, and
 * runs Debian's bridge + host-local then palisade-cni; when it returns the agent has enrolled the
 * pod (map entry, identity, registry), it talks over HBONE and shows in `demo status` and the
 * flows. `demo pod remove` runs DEL: no map entry, pin, registry entry or certificate is left.
 * Bad input is one line and changes nothing. Prints CNI ADD → enrolled p50/p99 over 10 pods.
 * The Services web, web-v1 and web-v2 (virtual IPs) are listed by `demo status -o json` and
 * carried to their endpoints; `demo traffic` sends a steady load and tallies it per backend.
 */
import { strict as assert } from 'node:assert';
import { execFile, execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Datapath, pinDirFor } from '../../../agent/datapath/datapath';
import { readState, type DemoState } from '../../../cli/demo/demo';
import type { StatusResponse } from '../../../common/control-api';
import { cliPath, listNetnsSync, requirePrivileges, waitFor } from '../../harness';
import { demoDown, demoUp, runPalisade, type Run } from './demo-session';

interface StatusService {
  name: string;
  namespace: string;
  ips: string[];
  ports: Array<{ name: string; port: number; targetPort: number }>;
  endpoints: Array<{ pod: string; node: string; ip: string }>;
}

/** The tally line of `demo traffic`: backend -> count. */
function tallyOf(stdout: string): Map<string, number> {
  const last = stdout.trim().split('\n').at(-1) ?? '';
  return new Map([...last.matchAll(/(\S+(?: \S+)?) (\d+) \(\d+%\)/g)].map((m) => [m[1]!, Number(m[2])]));
}

interface StatusPod {
  name: string;
  node: string;
  ip: string;
  identity: string;
  strict: boolean;
  labels: Record<string, string>;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

describe('palisade demo: pods through the CNI chain, added and removed live', function () {
  this.timeout(300_000);
  let dir: string;
  let stateDir: string;
  let env: NodeJS.ProcessEnv;
  let state: DemoState;

  const palisade = (args: string[], timeoutMs?: number): Promise<Run> => runPalisade(args, { env, timeoutMs });
  const inDemo = (args: string[]): string[] => [...args, '--state-dir', stateDir];
  /** `demo exec POD -- CMD…` (the options before the pod: what follows -- is the command's). */
  const execIn = (pod: string, cmd: string[]): Promise<Run> => palisade(['demo', 'exec', '--state-dir', stateDir, pod, '--', ...cmd]);
  const podIps = (node: string): string[] => Datapath.open(node).pods().map((p) => p.ip ?? '').sort();
  const agentLog = (node: string): string => fs.readFileSync(path.join(stateDir, 'logs', `agent-${node}.log`), 'utf8');
  async function statusPods(): Promise<StatusPod[]> {
    const r = await palisade(inDemo(['demo', 'status', '-o', 'json']));
    assert.equal(r.code, 0, r.stderr);
    return (JSON.parse(r.stdout) as { pods: StatusPod[] }).pods;
  }
  async function registered(node: string): Promise<number> {
    const r = await palisade(['status', '-o', 'json']);
    assert.equal(r.code, 0, r.stderr);
    return (JSON.parse(r.stdout) as StatusResponse).nodes.find((n) => n.node === node)?.workloads ?? -1;
  }
  function metrics(node: string): string {
    const n = state.topology.nodes.find((x) => x.name === node)!;
    return execFileSync('nsenter', [`--net=${n.netnsPath}`, 'curl', '-s', '-m', '5', `http://${n.underlayIp}:15020/metrics`], { encoding: 'utf8' });
  }

  before(async function () {
    requirePrivileges();
    ({ dir, stateDir, env, state } = await demoUp('demo-pods'));
  });

  after(async function () {
    if (dir) await demoDown({ dir, stateDir, env });
  });

  it('demo up made its pods through the CNI chain: each enrolled by its agent from a CNI ADD and the Kubernetes API, none from a workloads file', () => {
    for (const [pod, node] of [['client', 'node-1'], ['web-1', 'node-1'], ['web-2', 'node-2']] as const) {
      const log = agentLog(node);
      assert.match(log, new RegExp(`"pod":"default/${pod}".*"msg":"CNI ADD done"`), `${node}'s agent answered ${pod}'s ADD`);
      assert.match(log, new RegExp(`"event":"enrolled","entry":"kubernetes:[0-9a-f-]+","workload":"default/${pod}"`), `${pod} enrolled by the Kubernetes source`);
      assert.equal(fs.readFileSync(path.join(stateDir, `${node}-workloads.yaml`), 'utf8').includes(pod), false, 'not in the workloads file');
    }
    assert.deepEqual(
      state.pods?.map((p) => [p.name, p.node, state.topology.pods.find((t) => t.name === p.name)?.ip]),
      [['client', 'node-1', '10.0.1.10'], ['web-1', 'node-1', '10.0.1.11'], ['web-2', 'node-2', '10.0.2.10']],
      'host-local gave the addresses the demo always had',
    );
  });

  it('pod add: enrolled when it returns, with its identity; it talks over HBONE and shows in status and flows; pod remove leaves nothing', async function () {
    const pinsBefore = fs.readdirSync(pinDirFor('node-2')).sort();
    const mapBefore = podIps('node-2');
    const registryBefore = await registered('node-2');
    const add = await palisade(inDemo(['demo', 'pod', 'add', 'web-3', '--node', 'node-2', '--label', 'app=web', '--label', 'version=v3', '--service-account', 'web3', '--web']));
    assert.equal(add.code, 0, add.stderr);
    const m = /^pod web-3 on node-2: (10\.0\.2\.\d+), spiffe:\/\/cluster\.local\/ns\/default\/sa\/web3, enrolled \(CNI ADD \d+ ms, of which palisade-cni waiting for the agent \d+ ms\)\n$/.exec(add.stdout);
    assert.ok(m, add.stdout);
    const ip = m[1]!;
    console.log(`      the first pod of a new identity (key + CSR before ADD returns): ${add.stdout.trim().replace(/^.*enrolled /, '')}`);
    // Before anything else: the map entry is there when the command has returned.
    assert.deepEqual(podIps('node-2'), [...mapBefore, ip].sort(), 'enrolled in node-2\'s map before pod add returned');
    const certOfWeb3 = /^palisade_workload_certificate_expiry_seconds\{identity="spiffe:\/\/cluster\.local\/ns\/default\/sa\/web3"\} \d+/m;
    assert.match(metrics('node-2'), certOfWeb3, 'its certificate is issued');
    await waitFor(async () => (await registered('node-2')) === registryBefore + 1 || undefined, 5000, { what: 'the collector\'s registry to list web-3' });

    const st = (await statusPods()).find((p) => p.name === 'web-3');
    assert.deepEqual(st && [st.node, st.ip, st.identity, st.strict, st.labels.app, st.labels.version], ['node-2', ip, 'spiffe://cluster.local/ns/default/sa/web3', false, 'web', 'v3']);

    const curl = await execIn('client', ['curl', '-s', '-m', '5', `http://${ip}:8080/`]);
    assert.equal(curl.stdout, 'hello from web-3\n', curl.stderr);
    const inbound = (): boolean =>
      agentLog('node-2')
        .split('\n')
        .filter((l) => l.includes('"event":"flow"'))
        .map((l) => JSON.parse(l) as { direction: string; mtls?: boolean; source: { identity?: string }; destination: { ip: string } })
        .some((f) => f.direction === 'inbound' && f.destination.ip === ip && f.source.identity === 'spiffe://cluster.local/ns/default/sa/client' && f.mtls === true);
    await waitFor(() => inbound() || undefined, 5000, { what: 'node-2\'s agent to log the inbound flow to web-3 from client, over mTLS' });

    const rm = await palisade(inDemo(['demo', 'pod', 'remove', 'web-3']));
    assert.equal(rm.code, 0, rm.stderr);
    assert.equal(rm.stdout, 'pod web-3 removed from node-2\n');
    assert.deepEqual(podIps('node-2'), mapBefore, 'no map entry left when pod remove returned');
    assert.deepEqual(fs.readdirSync(pinDirFor('node-2')).sort(), pinsBefore, 'no pin left');
    assert.equal(listNetnsSync().includes('palisade-demo-p-web-3'), false, 'the sandbox is gone');
    await waitFor(async () => (await registered('node-2')) === registryBefore || undefined, 5000, { what: 'the registry without web-3' });
    await waitFor(() => !certOfWeb3.test(metrics('node-2')) || undefined, 15_000, { what: 'web3\'s certificate dropped (--identity-linger 5s)' });
    assert.equal((await statusPods()).some((p) => p.name === 'web-3'), false);
    assert.equal(readState(stateDir)!.apps.some((a) => a.pod === 'web-3'), false, 'its app is no longer a demo process');
  });

  it('bad input: one line each, nothing changed (no pod, no sandbox, no Pod object)', async function () {
    const stateBefore = fs.readFileSync(path.join(stateDir, 'state.json'), 'utf8');
    const demoNetns = (): string[] => listNetnsSync().filter((n) => n.startsWith('palisade-demo-')).sort();
    const netnsBefore = demoNetns();
    const cases: Array<[string[], RegExp]> = [
      [['demo', 'pod', 'add', 'Web_3'], /pod name "Web_3": lowercase letters/],
      [['demo', 'pod', 'add', 'web-1'], /the demo already has a pod or host named web-1/],
      [['demo', 'pod', 'add', 'web-4', '--node', 'node-9'], /--node "node-9": the demo's nodes are node-1, node-2/],
      [['demo', 'pod', 'add', 'web-4', '--label', 'app'], /--label "app": want KEY=VALUE/],
      [['demo', 'pod', 'add', 'web-4', '--service-account', 'Bad_SA'], /--service-account "Bad_SA"/],
      [['demo', 'pod', 'remove', 'nope'], /no demo pod "nope" \(pods: client, web-1, web-2\)/],
    ];
    for (const [args, want] of cases) {
      const r = await palisade(inDemo(args));
      assert.notEqual(r.code, 0, args.join(' '));
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, want);
      assert.equal(r.stdout, '');
    }
    assert.equal(fs.readFileSync(path.join(stateDir, 'state.json'), 'utf8'), stateBefore);
    assert.deepEqual(demoNetns(), netnsBefore);
    assert.equal(fs.existsSync(path.join(stateDir, 'state.lock')), false, 'the lock is released');
  });

  it('CNI ADD → enrolled over 10 pods of a running identity added and removed live (figures)', async function () {
    const enroll: number[] = [];
    const whole: number[] = [];
    const mapBefore = podIps('node-1');
    for (let i = 0; i < 10; i++) {
      const add = await palisade(inDemo(['demo', 'pod', 'add', `churn-${i}`, '--node', 'node-1', '--service-account', 'web']));
      assert.equal(add.code, 0, add.stderr);
      const m = /\(CNI ADD (\d+) ms, of which palisade-cni waiting for the agent (\d+) ms\)/.exec(add.stdout)!;
      whole.push(Number(m[1]));
      enroll.push(Number(m[2]));
      const rm = await palisade(inDemo(['demo', 'pod', 'remove', `churn-${i}`]));
      assert.equal(rm.code, 0, rm.stderr);
    }
    assert.deepEqual(podIps('node-1'), mapBefore);
    enroll.sort((a, b) => a - b);
    whole.sort((a, b) => a - b);
    console.log(
      `      demo pod add: palisade-cni ADD → enrolled p50 ${percentile(enroll, 50)} ms p99 ${percentile(enroll, 99)} ms (10 pods of service account web, whose certificate the agent has);` +
        ` whole chain p50 ${percentile(whole, 50)} ms p99 ${percentile(whole, 99)} ms`,
    );
  });
  it('demo status -o json lists the Services web, web-v1 and web-v2 with virtual IPs, ports and endpoints', async function () {
    const r = await palisade(inDemo(['demo', 'status', '-o', 'json']));
    const services = (JSON.parse(r.stdout) as { services: StatusService[] }).services;
    assert.deepEqual(
      services.map((x) => [x.name, x.namespace, x.ips, x.ports, x.endpoints.map((e) => [e.pod, e.node, e.ip])]),
      [
        ['web', 'default', ['10.96.0.10'], [{ name: 'http', port: 80, targetPort: 8080 }], [['web-1', 'node-1', '10.0.1.11'], ['web-2', 'node-2', '10.0.2.10']]],
        ['web-v1', 'default', ['10.96.0.11'], [{ name: 'http', port: 80, targetPort: 8080 }], [['web-1', 'node-1', '10.0.1.11']]],
        ['web-v2', 'default', ['10.96.0.12'], [{ name: 'http', port: 80, targetPort: 8080 }], [['web-2', 'node-2', '10.0.2.10']]],
      ],
    );
    const curl = await execIn('client', ['curl', '-s', '-m', '5', 'http://10.96.0.12/']);
    assert.equal(curl.stdout, 'hello from web-2\n', 'the virtual IP of web-v2 reaches web-2');
  });

  it('demo traffic: a steady load to web spreads over v1 and v2, to web-v1 reaches web-1 only; a line a second and the tally', async function () {
    const all = await palisade(inDemo(['demo', 'traffic', '--to', 'web', '--rate', '20', '--duration', '4s']));
    assert.equal(all.code, 0, all.stderr);
    assert.match(all.stdout, /^client -> http:\/\/10\.96\.0\.10:80\/, 20\/s for 4s/);
    assert.ok(all.stdout.split('\n').filter((l) => /^ +\d+s {2}/.test(l)).length >= 3, `a line a second:\n${all.stdout}`);
    const t = tallyOf(all.stdout);
    const answers = Number(/(\d+) answers in/.exec(all.stdout)?.[1]);
    assert.ok(answers >= 60 && answers <= 90, `about 80 answers in 4 s at 20/s: ${answers}`);
    assert.deepEqual([...t.keys()].sort(), ['web-1', 'web-2'], all.stdout);
    assert.ok(t.get('web-1')! >= 10 && t.get('web-2')! >= 10, `both versions answer: ${all.stdout}`);
    const v1 = await palisade(inDemo(['demo', 'traffic', '--to', 'web-v1', '--rate', '20', '--duration', '2s']));
    assert.equal(v1.code, 0, v1.stderr);
    assert.deepEqual([...tallyOf(v1.stdout).keys()], ['web-1'], v1.stdout);
  });

  it('a canary is one file away: the example HTTPRoute in the policy directory sends about 10 % of web\'s requests to v2', async function () {
    const status = async (): Promise<StatusResponse> => JSON.parse((await palisade(['status', '-o', 'json'])).stdout) as StatusResponse;
    const before = (await status()).policyVersion ?? 0;
    const file = path.join(state.policyDir!, 'web-canary.yaml');
    fs.copyFileSync(path.join(__dirname, '../../../../deploy/examples/routes/web-canary.yaml'), file);
    try {
      await waitFor(
        async () => {
          const st = await status();
          return (st.policyVersion ?? 0) > before && st.nodes.every((n) => n.policyVersion === st.policyVersion) ? true : undefined;
        },
        10_000,
        { what: 'both agents on the policy version with the route' },
      );
      const r = await palisade(inDemo(['demo', 'traffic', '--to', 'web', '--rate', '50', '--duration', '5s']));
      assert.equal(r.code, 0, r.stderr);
      const t = tallyOf(r.stdout);
      const v1 = t.get('web-1') ?? 0;
      const v2 = t.get('web-2') ?? 0;
      assert.equal(v1 + v2, [...t.values()].reduce((a, b) => a + b, 0), `only web-1 and web-2 answer: ${r.stdout}`);
      const share = v2 / (v1 + v2);
      assert.ok(v1 + v2 >= 100 && share > 0.02 && share < 0.2, `about 10 % to v2 over ${v1 + v2} requests: ${(100 * share).toFixed(1)} %`);
    } finally {
      fs.rmSync(file, { force: true });
    }
  });

  it('demo traffic runs until Ctrl-C, then prints the tally; a pod added live with version v2 joins web-v2', async function () {
    const add = await palisade(inDemo(['demo', 'pod', 'add', 'web-v2b', '--node', 'node-1', '--label', 'app=web', '--label', 'version=v2', '--service-account', 'web', '--web']));
    assert.equal(add.code, 0, add.stderr);
    const r = await new Promise<Run>((resolve) => {
      const child = execFile(process.execPath, [cliPath(), ...inDemo(['demo', 'traffic', '--to', 'web-v2', '--rate', '20'])], { env, encoding: 'utf8' }, (err, stdout, stderr) =>
        resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
      );
      setTimeout(() => child.kill('SIGINT'), 4000);
    });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /until Ctrl-C/);
    const t = tallyOf(r.stdout);
    assert.deepEqual([...t.keys()].sort(), ['web-2', 'web-v2b'], r.stdout);
    const st = JSON.parse((await palisade(inDemo(['demo', 'status', '-o', 'json']))).stdout) as { services: StatusService[] };
    assert.deepEqual(st.services.find((x) => x.name === 'web-v2')!.endpoints.map((e) => e.pod), ['web-v2b', 'web-2'], 'by address: node-1\'s 10.0.1.x first');
    assert.equal((await palisade(inDemo(['demo', 'pod', 'remove', 'web-v2b']))).code, 0);
  });

  it('demo traffic: bad input is one line', async function () {
    for (const [args, want] of [
      [['--to', 'nope'], /--to "nope": a demo Service/],
      [['--rate', '0'], /--rate "0"/],
      [['--from', 'ghost'], /--from "ghost": no such demo pod/],
      [['--duration', 'soon'], /--duration/],
    ] as Array<[string[], RegExp]>) {
      const r = await palisade(inDemo(['demo', 'traffic', ...args]));
      assert.notEqual(r.code, 0);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, want);
    }
  });
});
