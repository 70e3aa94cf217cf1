/**
 * The real CNI chain as a container runtime runs it: Debian's `bridge` (with `host-local` IPAM)
 * and then palisade-cni, each binary started with the CNI_* environment and its configuration on
 * stdin, inside a "node" network namespace, for pods that are network namespaces of their own.
 * The agent side is the real CNI endpoint with a fake enroller (the agent's enrollment is wired in
 * later). Everything the test creates is removed, also on failure.
 */
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CniErrorCode } from '../../../agent/cni/protocol';
import { registerExitCleanup, requirePrivileges, sweepStale, tempDir } from '../../harness';
import { CniChain, type CniSandboxSpec, type Conflist } from '../../harness/cni-runtime';
import { addNetns, delNetns, delNetnsSync, netnsPath } from '../../harness/netns';
import { POD_UID, startEndpoint, type TestEndpoint } from '../../harness/cni-endpoint';

const SUBNET = '10.250.7.0/24';

interface IpAddrJson {
  ifname: string;
  addr_info: Array<{ family: string; local: string; prefixlen: number }>;
}

/** The IPv4 addresses configured on `ifname` inside a netns, as `a.b.c.d/len`. */
function addressesIn(ns: string, ifname: string): string[] {
  const out = execFileSync('ip', ['-n', ns, '-j', 'addr', 'show', 'dev', ifname], { encoding: 'utf8' });
  return (JSON.parse(out) as IpAddrJson[]).flatMap((l) => l.addr_info.filter((a) => a.family === 'inet').map((a) => `${a.local}/${a.prefixlen}`));
}

function linksIn(ns: string): string[] {
  const out = execFileSync('ip', ['-n', ns, '-j', 'link', 'show'], { encoding: 'utf8' });
  return (JSON.parse(out) as Array<{ ifname: string }>).map((l) => l.ifname);
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

describe('CNI chain: Debian bridge + host-local, then palisade-cni (real plugins, real netns)', function () {
  this.timeout(120_000);
  const prefix = `palisade-${process.pid}-cni`;
  const nodeNs = `${prefix}-node`;
  const podNames: string[] = [];
  let ep: TestEndpoint;
  let ipamDir: string;
  let chain: CniChain;
  let unregister: () => void;

  async function newPod(i: number): Promise<CniSandboxSpec & { ns: string }> {
    const ns = `${prefix}-pod${i}`;
    podNames.push(ns);
    await addNetns(ns);
    return {
      ns,
      containerId: `sandbox${i}${process.pid}`,
      netns: netnsPath(ns),
      ifName: 'eth0',
      args: { IgnoreUnknown: '1', K8S_POD_NAMESPACE: 'shop', K8S_POD_NAME: `web-${i}`, K8S_POD_INFRA_CONTAINER_ID: `sandbox${i}`, K8S_POD_UID: POD_UID },
    };
  }

  function conflist(extra: Record<string, unknown> = {}): Conflist {
    return {
      cniVersion: '1.0.0',
      name: 'palisade-chain',
      plugins: [
        {
          type: 'bridge',
          bridge: `pcni${process.pid % 100000}`,
          isGateway: true,
          ipMasq: false,
          ipam: { type: 'host-local', ranges: [[{ subnet: SUBNET }]], dataDir: ipamDir },
        },
        { type: 'palisade-cni', agentSocket: ep.socket, timeoutMs: 1000, excludeNamespaces: ['palisade-system'], ...extra },
      ],
    };
  }

  before(async () => {
    requirePrivileges();
    sweepStale();
    unregister = registerExitCleanup(() => {
      for (const ns of [...podNames, nodeNs]) delNetnsSync(ns);
    });
    await addNetns(nodeNs);
    ep = await startEndpoint();
    ipamDir = tempDir('cni-ipam');
    chain = new CniChain(conflist(), { netns: netnsPath(nodeNs) });
  });

  after(async () => {
    for (const ns of [...podNames, nodeNs]) await delNetns(ns);
    unregister?.();
    await ep?.close();
    if (ipamDir) fs.rmSync(ipamDir, { recursive: true, force: true });
  });

  it('ADD: the pod gets its address from bridge + host-local, the agent enrolls it before ADD returns, the result is bridge\'s', async () => {
    const pod = await newPod(1);
    ep.enroller.delayMs = 50;
    const r = await chain.add(pod);
    ep.enroller.delayMs = 0;
    assert.ok(r.ok, JSON.stringify(r.steps.map((s) => [s.type, s.run.code, s.run.stdout, s.run.stderr])));
    const [bridge, ours] = r.steps;
    assert.deepEqual(ours!.run.json, bridge!.run.json, 'prevResult passed through unchanged');

    const [sandbox, ...more] = ep.enroller.of('enroll');
    assert.equal(more.length, 0);
    assert.deepEqual(sandbox!.pod, { namespace: 'shop', name: 'web-1', uid: POD_UID });
    assert.equal(sandbox!.netns, netnsPath(pod.ns));
    assert.equal(sandbox!.containerId, pod.containerId);
    assert.equal(sandbox!.ifName, 'eth0');
    // The address the agent was told is the one actually on the pod's eth0.
    const onEth0 = addressesIn(pod.ns, 'eth0');
    assert.equal(onEth0.length, 1);
    assert.deepEqual(sandbox!.ips.map((ip) => `${ip.address}/${ip.prefixLength}`), onEth0);
    assert.equal(sandbox!.ips[0]!.interface, 'eth0');
    assert.equal(sandbox!.ips[0]!.gateway, '10.250.7.1');
    assert.ok(ep.enroller.calls[0]!.settled! <= Date.now());
    assert.ok(ours!.run.ms >= 50, `palisade-cni returned after the enrollment (${ours!.run.ms.toFixed(1)} ms)`);

    const check = await chain.check(pod);
    assert.ok(check.ok, JSON.stringify(check.steps.map((s) => [s.type, s.run.stdout])));
    assert.equal(ep.enroller.of('check').length, 1);

    const del = await chain.del(pod);
    assert.ok(del.ok);
    assert.equal(ep.enroller.of('unenroll')[0]?.containerId, pod.containerId);
    assert.deepEqual(linksIn(pod.ns), ['lo'], 'bridge removed the pod interface');
    assert.equal(fs.readdirSync(path.join(ipamDir, 'palisade-chain')).filter((f) => f.startsWith('10.')).length, 0, 'host-local released the address');
  });

  it('agent down: ADD fails with the one-line CNI error (the pod does not start), and the runtime\'s DEL succeeds', async () => {
    await ep.server.close();
    const pod = await newPod(2);
    const calls = ep.enroller.calls.length;
    const r = await chain.add(pod);
    assert.equal(r.ok, false);
    const ours = r.steps.find((s) => s.type === 'palisade-cni')!;
    assert.equal(ours.run.code, 1);
    assert.ok(!ours.run.stdout.trimEnd().includes('\n'), 'one line');
    assert.equal((ours.run.json as { code: number }).code, CniErrorCode.TRY_AGAIN_LATER);
    assert.match((ours.run.json as { msg: string }).msg, /the palisade agent is not running/);
    // The runtime tears the failed sandbox down with DEL: every plugin succeeds.
    const del = await chain.del(pod);
    assert.ok(del.ok, JSON.stringify(del.steps.map((s) => [s.type, s.run.code, s.run.stdout, s.run.stderr])));
    assert.match(del.steps.find((s) => s.type === 'palisade-cni')!.run.stderr, /DEL succeeds anyway/);
    assert.deepEqual(linksIn(pod.ns), ['lo']);
    assert.equal(ep.enroller.calls.length, calls, 'nothing reached the agent');
  });

  it('an excluded namespace (the agent\'s own) starts with the agent down', async () => {
    const pod = await newPod(3);
    pod.args = { IgnoreUnknown: '1', K8S_POD_NAMESPACE: 'palisade-system', K8S_POD_NAME: 'palisade-agent-7xk2q', K8S_POD_UID: POD_UID };
    const r = await chain.add(pod);
    assert.ok(r.ok, JSON.stringify(r.steps.map((s) => [s.type, s.run.stdout])));
    assert.equal(addressesIn(pod.ns, 'eth0').length, 1);
    assert.ok((await chain.del(pod)).ok);
  });

  it('ADD of 30 pods through the chain: palisade-cni round trip figures', async () => {
    await ep.close();
    ep = await startEndpoint();
    chain = new CniChain(conflist(), { netns: netnsPath(nodeNs) });
    const ours: number[] = [];
    const whole: number[] = [];
    const pods = [];
    for (let i = 0; i < 30; i++) {
      const pod = await newPod(100 + i);
      const r = await chain.add(pod);
      assert.ok(r.ok);
      ours.push(r.steps[1]!.run.ms);
      whole.push(r.steps.reduce((a, s) => a + s.run.ms, 0));
      pods.push(pod);
    }
    assert.equal(ep.enroller.enrolled.size, 30);
    for (const pod of pods) assert.ok((await chain.del(pod)).ok);
    assert.equal(ep.enroller.enrolled.size, 0);
    ours.sort((a, b) => a - b);
    whole.sort((a, b) => a - b);
    console.log(
      `      palisade-cni ADD (nsenter + plugin + agent answer) p50 ${percentile(ours, 50).toFixed(1)} ms p99 ${percentile(ours, 99).toFixed(1)} ms;` +
        ` whole chain p50 ${percentile(whole, 50).toFixed(1)} ms p99 ${percentile(whole, 99).toFixed(1)} ms`,
    );
  });
});
