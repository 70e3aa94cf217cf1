/**
 * The kernel data path end to end: real eBPF attached to this suite's own cgroup
 * subtree, real agents in node namespaces, real pods (namespaces + veth + cgroup).
 */
import { strict as assert } from 'node:assert';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Datapath } from '../../../agent/datapath/datapath';
import { acquireNodeLock } from '../../../agent/lock';
import {
  cliPath,
  rawNet,
  requirePrivileges,
  runClient,
  scaled,
  startAgentProcess,
  startEchoServer,
  sweepStale,
  tempDir,
  Topology,
  waitFor,
  type AgentProcess,
  type EchoServer,
  type NodeNs,
  type PodNs,
} from '../../harness';

interface RedirectLine {
  event: 'redirect';
  source: { ip: string; port: number; workload: string; namespace: string };
  destination: { ip: string; port: number };
}

function redirects(agent: AgentProcess): RedirectLine[] {
  return agent.logs.lines.filter((l): l is RedirectLine => (l as RedirectLine)?.event === 'redirect');
}

function progIdsOfNode(pinDir: string): number[] {
  return fs
    .readdirSync(pinDir)
    .filter((n) => n.startsWith('link_'))
    .map((n) => {
      const out = execFileSync('bpftool', ['-j', 'link', 'show', 'pinned', path.join(pinDir, n)], { encoding: 'utf8' });
      return (JSON.parse(out) as { prog_id: number }).prog_id;
    });
}

function cgroupProgIds(cgroup: string): number[] {
  const out = execFileSync('bpftool', ['-j', 'cgroup', 'show', cgroup], { encoding: 'utf8' }).trim();
  return out ? (JSON.parse(out) as Array<{ id: number }>).map((p) => p.id) : [];
}

describe('Datapath (real eBPF)', function () {
  this.timeout(60_000);

  let topo: Topology;
  let node1: NodeNs;
  let node2: NodeNs;
  let client: PodNs; // node-1, enrolled
  let web: PodNs; // node-1, enrolled, strict
  let stranger: PodNs; // node-1, not enrolled
  let web2: PodNs; // node-2, enrolled by the other agent, not strict
  let client2: PodNs; // node-2, enrolled by the other agent
  let agent1: AgentProcess;
  let agent2: AgentProcess;
  let webServer: EchoServer;
  let web2Server: EchoServer;

  // The per-connection 'redirect' line these tests read is a debug log.
  const DEBUG = ['--log-level', 'debug'];
  const agent1Pods = (): Parameters<typeof startAgentProcess>[2] => ({
    extraArgs: DEBUG,
    pods: [
      { pod: client, serviceAccount: 'client' },
      { pod: web, serviceAccount: 'web', strict: true },
    ],
  });

  before(async function () {
    requirePrivileges();
    sweepStale();
    topo = await Topology.create({ label: 'datapath', nodes: 2 });
    [node1, node2] = topo.nodes as [NodeNs, NodeNs];
    client = await topo.addPod(node1, 'client');
    web = await topo.addPod(node1, 'web');
    stranger = await topo.addPod(node1, 'stranger');
    web2 = await topo.addPod(node2, 'web2');
    client2 = await topo.addPod(node2, 'client2');
    webServer = await startEchoServer(topo, web, web.ip, 7000);
    web2Server = await startEchoServer(topo, web2, web2.ip, 7000);
    agent1 = startAgentProcess(topo, node1, agent1Pods());
    agent2 = startAgentProcess(topo, node2, { pods: [{ pod: web2 }, { pod: client2 }], extraArgs: DEBUG });
    await Promise.all([agent1.ready, agent2.ready]);
  });

  after(async function () {
    await agent1?.stop('SIGKILL');
    await agent2?.stop('SIGKILL');
    for (const n of topo?.nodes ?? []) Datapath.uninstall(n.name);
    await topo?.destroy();
  });

  describe('connect4 redirect', function () {
    it('brings a connection to an address with no listener to the agent, with the exact original destination and pod', async function () {
      const before = redirects(agent1).length;
      const res = await runClient(topo, client, '10.77.0.9', 4444, 16, 3000);
      assert.equal(res.ok, false, 'nothing listens at 10.77.0.9:4444, the connection cannot succeed');
      const line = await agent1.logs.waitFor<RedirectLine>(
        (l) => l?.event === 'redirect' && l.destination?.ip === '10.77.0.9',
        5000,
      );
      assert.equal(line.destination.ip, '10.77.0.9');
      assert.equal(line.destination.port, 4444);
      assert.equal(line.source.workload, 'client');
      assert.equal(line.source.ip, client.ip);
      assert.equal(redirects(agent1).length, before + 1);
    });

    it('passes a 1 MiB echo through the agent to a pod on the other node, byte-exact', async function () {
      const res = await runClient(topo, client, web2.ip, 7000, 1 << 20, 10_000);
      assert.ok(res.ok && res.sha256Match, JSON.stringify(res));
      assert.equal(res.received, 1 << 20);
      // It went through node-1's agent: web2 saw node-1's address, not the client pod's.
      const accept = web2Server.accepts().at(-1)!;
      assert.equal(accept.remoteAddress, node1.underlayIp);
      const line = redirects(agent1).find((l) => l.source.port === res.localPort);
      assert.ok(line, 'agent-1 logged the redirect');
      assert.equal(line.destination.ip, web2.ip);
    });

    it('passes a 1 MiB echo to a strict pod on the same node, which sees the proxy address', async function () {
      const res = await runClient(topo, client, web.ip, 7000, 1 << 20, 10_000);
      assert.ok(res.ok && res.sha256Match, JSON.stringify(res));
      assert.equal(webServer.accepts().at(-1)!.remoteAddress, node1.proxyIp);
    });
  });

  describe('connect6 (dual-stack sockets)', function () {
    it('brings an IPv4-mapped destination to the agent like connect4, and getpeername6 shows what was dialled', async function () {
      const res = await runClient(topo, client, `::ffff:${web2.ip}`, 7000, 64 * 1024, 10_000);
      assert.ok(res.ok && res.sha256Match, JSON.stringify(res));
      assert.equal(web2Server.accepts().at(-1)!.remoteAddress, node1.underlayIp, 'it went through node-1\'s agent');
      assert.equal(res.remoteAddress, `::ffff:${web2.ip}`);
      assert.equal(res.remotePort, 7000);
      const line = redirects(agent1).find((l) => l.source.port === res.localPort);
      assert.ok(line, 'agent-1 logged the redirect');
      assert.deepEqual([line.destination.ip, line.destination.port], [web2.ip, 7000]);
    });

    it('refuses native IPv6 from an enrolled pod and counts it', async function () {
      const dp = Datapath.open(node1.name);
      try {
        const denied = dp.stats().v6Denied;
        const res = await runClient(topo, client, 'fd00:77::9', 7000, 1, 2000);
        assert.deepEqual([res.ok, res.error], [false, 'EPERM'], JSON.stringify(res));
        assert.equal(dp.stats().v6Denied, denied + 1);
      } finally {
        dp.close();
      }
    });

    it('leaves ::1 on the pod\'s loopback', async function () {
      const res = await runClient(topo, client, '::1', 9, 1, 2000);
      assert.deepEqual([res.ok, res.error], [false, 'ECONNREFUSED'], 'the pod\'s own loopback answered (nothing listens on port 9)');
    });
  });

  describe('getpeername4', function () {
    it('shows the application the address it dialled, not the proxy', async function () {
      const res = await runClient(topo, client, web2.ip, 7000, 10, 5000);
      assert.ok(res.ok, JSON.stringify(res));
      assert.equal(res.remoteAddress, web2.ip);
      assert.equal(res.remotePort, 7000);
    });
  });

  describe('MPTCP', function () {
    it('regression (getpeername of an MPTCP socket showed the proxy): it is redirected like TCP and sees the address it dialled', async function () {
      const r = await rawNet(topo, client, ['mptcp', web2.ip, '7000', 'mptcp-hello']);
      assert.deepEqual(r, { ok: true, peer: web2.ip, peerPort: 7000 });
      assert.equal(web2Server.accepts().at(-1)!.remoteAddress, node1.underlayIp, 'it went through node-1\'s agent');
    });
  });

  describe('scope', function () {
    it('leaves an unenrolled pod alone', async function () {
      const before = redirects(agent1).length;
      const res = await runClient(topo, stranger, web2.ip, 7000, 1000, 5000);
      assert.ok(res.ok, JSON.stringify(res));
      assert.equal(web2Server.accepts().at(-1)!.remoteAddress, stranger.ip, 'arrived straight from the pod');
      assert.equal(redirects(agent1).length, before);
    });

    it('leaves the node itself alone', async function () {
      const before = redirects(agent1).length;
      const res = await runClient(topo, node1, web2.ip, 7000, 1000, 5000);
      assert.ok(res.ok, JSON.stringify(res));
      assert.equal(web2Server.accepts().at(-1)!.remoteAddress, node1.underlayIp);
      assert.equal(res.remotePort, 7000);
      assert.equal(redirects(agent1).length, before);
    });

    it('does not redirect the agent\'s own connections (the agent runs inside the attached subtree)', async function () {
      const agentCgroup = fs.readFileSync(`/proc/${agent1.child.pid}/cgroup`, 'utf8');
      assert.match(agentCgroup, new RegExp(path.basename(topo.cgroupPath)));
      const before = redirects(agent1).length;
      const res = await runClient(topo, client, web2.ip, 7000, 4096, 5000);
      assert.ok(res.ok, JSON.stringify(res));
      // One pod connection, one redirect: the agent's upstream connection was not redirected back to itself.
      assert.equal(redirects(agent1).length, before + 1);
    });

    it('keeps two agents on one host to their own pods', async function () {
      const res = await runClient(topo, client2, web2.ip, 7000, 100, 5000);
      assert.ok(res.ok, JSON.stringify(res));
      assert.ok(redirects(agent2).some((l) => l.source.workload === 'client2' && l.source.port === res.localPort));
      assert.ok(!redirects(agent1).some((l) => l.source.ip === client2.ip), 'agent-1 never saw node-2 pods');
      assert.ok(!redirects(agent2).some((l) => l.source.ip === client.ip), 'agent-2 never saw node-1 pods');
      const dp1 = Datapath.open(node1.name);
      const dp2 = Datapath.open(node2.name);
      try {
        assert.deepEqual(dp1.pods().map((p) => p.ip).sort(), [client.ip, web.ip].sort());
        assert.deepEqual(dp2.pods().map((p) => p.ip).sort(), [client2.ip, web2.ip].sort());
      } finally {
        dp1.close();
        dp2.close();
      }
    });
  });

  describe('strict ingress', function () {
    it('refuses a direct connection from another pod and counts the drop', async function () {
      const dp = Datapath.open(node1.name);
      try {
        const strictDrops = (): bigint =>
          dp.drops().filter((d) => d.reason === 'strict-not-from-agent').reduce((n, d) => n + d.packets, 0n);
        const drops = strictDrops();
        const accepts = webServer.accepts().length;
        const res = await runClient(topo, stranger, web.ip, 7000, 100, 1500);
        assert.equal(res.ok, false, JSON.stringify(res));
        assert.equal(webServer.accepts().length, accepts, 'the server never accepted it');
        assert.ok(strictDrops() > drops);
      } finally {
        dp.close();
      }
    });

    it('refuses a direct connection from a pod on another node', async function () {
      const accepts = webServer.accepts().length;
      // From node-2 itself (and equally from agent-2's pass-through, which leaves from
      // node-2's address): not node-1's proxy, so it is dropped.
      const res = await runClient(topo, node2, web.ip, 7000, 100, 1500);
      assert.equal(res.ok, false, JSON.stringify(res));
      assert.equal(webServer.accepts().length, accepts);
    });

    it('accepts the same connection through the agent', async function () {
      const res = await runClient(topo, client, web.ip, 7000, 100, 5000);
      assert.ok(res.ok, JSON.stringify(res));
    });
  });

  describe('agent restart and uninstall', function () {
    it('fails closed while the agent is dead and recovers from the pins', async function () {
      const attached = cgroupProgIds(topo.cgroupPath).length;
      assert.equal(attached, 2 * progIdsOfNode(`/sys/fs/bpf/palisade/${node1.name}`).length, 'each node\'s programs attached once');
      await agent1.stop('SIGKILL');
      const accepts = web2Server.accepts().length;
      const res = await runClient(topo, client, web2.ip, 7000, 100, 2000);
      assert.equal(res.ok, false, 'refused, not a bypass');
      assert.equal(res.error, 'ECONNREFUSED');
      assert.equal(web2Server.accepts().length, accepts, 'nothing reached the server around the dead proxy');
      assert.ok(fs.existsSync(`/sys/fs/bpf/palisade/${node1.name}/link_palisade_connect4`));

      agent1 = startAgentProcess(topo, node1, agent1Pods());
      await agent1.ready;
      const installed = await agent1.logs.waitFor<{ reused: boolean }>((l) => l?.msg === 'datapath installed', 1000);
      assert.equal(installed.reused, true);
      const again = await runClient(topo, client, web2.ip, 7000, 64 * 1024, 5000);
      assert.ok(again.ok && again.sha256Match, JSON.stringify(again));
      assert.equal(cgroupProgIds(topo.cgroupPath).length, attached, 'still exactly the same programs attached, none twice');
    });

    it('uninstall leaves no pin, link or attachment of the node', async function () {
      await agent1.stop('SIGTERM');
      assert.equal((await agent1.exited).code, 0);
      const pinDir = `/sys/fs/bpf/palisade/${node1.name}`;
      const ids = progIdsOfNode(pinDir);
      const pins = fs.readdirSync(pinDir).length;
      assert.equal(ids.length, fs.readdirSync(pinDir).filter((n) => n.startsWith('link_')).length);
      const r = spawnSync(process.execPath, [cliPath(), 'agent', 'uninstall', '--node', node1.name, '--run-dir', tempDir('uninstall'), '-o', 'json'], {
        encoding: 'utf8',
      });
      assert.equal(r.status, 0, r.stderr);
      const removed = JSON.parse(r.stdout).removed as string[];
      assert.equal(removed.filter((n) => n.startsWith('tc/')).length, 2, `the filters of both pods: ${removed.join(' ')}`);
      assert.equal(removed.filter((n) => !n.startsWith('tc/')).length, pins, 'every pin, links and maps');
      assert.deepEqual(removed.filter((n) => n.startsWith('prog_')).sort(), ['prog_palisade_from_pod', 'prog_palisade_hold', 'prog_palisade_to_pod']);
      assert.equal(fs.existsSync(pinDir), false);
      await waitFor(() => ids.every((id) => !cgroupProgIds(topo.cgroupPath).includes(id)) || undefined, 3000, {
        what: 'programs detached',
      });
      const all = execFileSync('bpftool', ['-j', 'prog', 'show'], { encoding: 'utf8' });
      const live = (JSON.parse(all) as Array<{ id: number }>).map((p) => p.id);
      assert.ok(ids.every((id) => !live.includes(id)), 'programs are gone from the kernel');
      // node-2 is untouched.
      const res = await runClient(topo, client2, web2.ip, 7000, 100, 5000);
      assert.ok(res.ok, JSON.stringify(res));
      // and node-1's pods are no longer redirected: a plain connection works.
      const direct = await runClient(topo, client, web2.ip, 7000, 100, 5000);
      assert.ok(direct.ok, JSON.stringify(direct));
      assert.equal(web2Server.accepts().at(-1)!.remoteAddress, client.ip);
    });
  });
});

describe('palisade agent (bad input)', function () {
  this.timeout(60_000);
  let topo: Topology;
  let node: NodeNs;
  let pod: PodNs;
  let dir: string;

  before(async function () {
    requirePrivileges();
    topo = await Topology.create({ label: 'badinput', nodes: 1 });
    node = topo.nodes[0]!;
    pod = await topo.addPod(node, 'p');
    dir = tempDir('badinput');
  });

  after(async function () {
    Datapath.uninstall(node?.name ?? 'none');
    await topo?.destroy();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  function runAgent(args: string[]): { status: number | null; stderr: string } {
    const r = spawnSync(
      process.execPath,
      [cliPath(), 'agent', '--node', node.name, '--proxy-address', node.proxyIp, '--cgroup', topo.cgroupPath, '--run-dir', path.join(dir, 'run'), ...args],
      { encoding: 'utf8', timeout: scaled(20_000) },
    );
    return { status: r.status, stderr: r.stderr };
  }

  function assertOneLineError(r: { status: number | null; stderr: string }, pattern: RegExp): void {
    assert.notEqual(r.status, 0);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, `one line, got: ${r.stderr}`);
    assert.match(lines[0]!, pattern);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    assert.equal(fs.existsSync(`/sys/fs/bpf/palisade/${node.name}`), false, 'nothing half-installed');
  }

  function writeWorkloads(name: string, text: string): string {
    const file = path.join(dir, name);
    fs.writeFileSync(file, text);
    return file;
  }

  it('rejects a netns path that does not exist', function () {
    const file = writeWorkloads(
      'nonetns.yaml',
      `workloads:\n  - {name: a, namespace: default, serviceAccount: a, netns: /var/run/netns/palisade-nope-${process.pid}, ip: 10.0.1.50}\n`,
    );
    assertOneLineError(runAgent(['--workloads', file]), /^palisade: workload default\/a: netns \/var\/run\/netns\/palisade-nope-\d+ does not exist$/);
  });

  it('rejects a workloads file with a missing field, naming file and line', function () {
    const file = writeWorkloads('missing.yaml', `workloads:\n  - name: a\n    namespace: default\n    netns: ${pod.netnsPath}\n    ip: ${pod.ip}\n`);
    assertOneLineError(runAgent(['--workloads', file]), /missing\.yaml:2: .*"serviceAccount"/);
  });

  it('rejects bpffs that cannot be mounted', function () {
    const notADir = writeWorkloads('not-a-dir', 'x');
    assertOneLineError(runAgent(['--bpffs', notADir]), /^palisade: cannot mount bpffs at .*not-a-dir: ENOTDIR/);
    assert.equal(fs.existsSync(path.join(dir, 'not-a-dir', 'palisade')), false);
  });

  it('rejects a second agent while the node is held by something that does not hand over (an uninstall)', function () {
    const file = writeWorkloads('ok.yaml', `workloads:\n  - {name: p, namespace: default, serviceAccount: p, netns: ${pod.netnsPath}, ip: ${pod.ip}}\n`);
    const runDir = path.join(dir, 'run-held');
    const held = acquireNodeLock(runDir, node.name);
    try {
      const r = spawnSync(
        process.execPath,
        [cliPath(), 'agent', '--node', node.name, '--proxy-address', node.proxyIp, '--workloads', file, '--cgroup', topo.cgroupPath, '--run-dir', runDir],
        { encoding: 'utf8', timeout: scaled(20_000) },
      );
      assert.notEqual(r.status, 0);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, new RegExp(`^palisade: another agent for node ${node.name} is already running \\(pid ${process.pid}\\)`));
      assert.equal(fs.existsSync(path.join(runDir, `${node.name}.handover.sock`)), false);
    } finally {
      held.release();
    }
  });

  it('a second agent that cannot serve never takes the node over: one error line, and the first one keeps serving', async function () {
    const file = writeWorkloads('ok.yaml', `workloads:\n  - {name: p, namespace: default, serviceAccount: p, netns: ${pod.netnsPath}, ip: ${pod.ip}}\n`);
    const first = startAgentProcess(topo, node, { pods: [{ pod }], runDir: path.join(dir, 'run'), extraArgs: ['--log-level', 'debug'] });
    try {
      await first.ready;
      // Started outside the node's network namespace: the proxy address is not there to listen on.
      const r = spawnSync(
        process.execPath,
        [cliPath(), 'agent', '--node', node.name, '--proxy-address', node.proxyIp, '--workloads', file, '--cgroup', topo.cgroupPath, '--run-dir', path.join(dir, 'run'), '--log-level', 'warn'],
        { encoding: 'utf8', timeout: scaled(20_000) },
      );
      assert.notEqual(r.status, 0);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      // Its first listener on the proxy address says so (the DNS proxy's, :15053, binds first).
      assert.match(r.stderr, new RegExp(`^palisade: cannot listen on ${node.proxyIp.replace(/\./g, '\\.')}:15053 for DNS: EADDRNOTAVAIL`));
      assert.equal(first.logs.lines.some((l) => (l as { msg?: string }).msg === 'a successor takes over: no longer accepting, draining'), false);
      // The first agent still redirects and serves: the pod reaches a closed port through it.
      const res = await runClient(topo, pod, '10.77.0.1', 9, 1, 2000);
      assert.equal(res.ok, false);
      await first.logs.waitFor((l) => l?.event === 'redirect', 3000);
    } finally {
      await first.stop('SIGTERM');
      Datapath.uninstall(node.name);
    }
  });
});
