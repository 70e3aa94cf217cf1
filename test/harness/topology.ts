/**
 * Topology: an isolated multi-node network built entirely from network namespaces.
 *
 *   underlay netns (<nsPrefix>-ul): bridge br0, 172.31.0.0/24
 *     ├─ node i netns: ul0 = 172.31.0.<i>, bridge cni0 = 10.0.<i>.1/24, ip_forward=1,
 *     │    routes 10.0.<j>.0/24 via 172.31.0.<j>
 *     │    └─ pod netns: eth0 = 10.0.<i>.<10+k>/24, default via 10.0.<i>.1
 *     └─ external host netns: ul0 = 172.31.0.<100+k> (+ routes to every pod CIDR)
 *
 * Each node / pod / external host also gets its own cgroup v2 directory under a
 * per-run subtree, and spawn()/exec() place processes in that cgroup before
 * entering the namespace.
 */
import { ChildProcess } from 'child_process';
import { randomBytes } from 'crypto';
import * as path from 'path';
import { cgroup2Root, killCgroup, makeCgroup, removeCgroupTree, removeCgroupTreeSync } from './cgroup';
import { registerExitCleanup } from './cleanup';
import { addNetns, delNetns, delNetnsSync, ipBatch, netnsPath, sysctlIn } from './netns';
import { collect, ExecOptions, ExecResult, NsTarget, spawnIn, SpawnInOptions } from './proc';

export interface NodeNs {
  name: string;
  index: number;
  nsName: string;
  netnsPath: string;
  underlayIp: string;
  proxyIp: string;
  podCidr: string;
  cgroupPath: string;
}

export interface PodNs {
  name: string;
  node: NodeNs;
  nsName: string;
  netnsPath: string;
  ip: string;
  cgroupPath: string;
  /** The host side of its veth, in the node's namespace (the pod side is eth0); '' for a bare pod, whose CNI chain names it. */
  hostIf: string;
}

export interface ExternalHost {
  name: string;
  nsName: string;
  netnsPath: string;
  ip: string;
  cgroupPath: string;
}

export interface TopologyOptions {
  /** Short human label for the run; appears in netns names. */
  label: string;
  /** Number of nodes, 1..99. */
  nodes: number;
  /**
   * A topology that outlives this process (the demo): stable names (`node-<i>`,
   * netns `palisade-<label>-*`, cgroup `palisade-<label>`), no exit hook, not swept
   * as stale. Tear it down with destroyDescribed(describe()).
   */
  persistent?: boolean;
}

/** Everything needed to find and tear down a topology from another process. */
export interface TopologyDescription {
  label: string;
  cgroupPath: string;
  netns: string[];
  nodes: NodeNs[];
  pods: Array<Omit<PodNs, 'node'> & { node: string }>;
  externalHosts: ExternalHost[];
}

export const UNDERLAY_CIDR = '172.31.0.0/24';
const MAX_NODES = 99; // keeps 172.31.0.100+ free for external hosts
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$/;
const IPV4_RE = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

function sanitizeLabel(label: string): string {
  const s = label.replace(/[^A-Za-z0-9_-]/g, '-').slice(0, 24);
  return s || 'run';
}

function checkName(kind: string, name: string): void {
  if (!NAME_RE.test(name)) throw new Error(`invalid ${kind} name ${JSON.stringify(name)} (want ${NAME_RE})`);
}

function checkIpv4(ip: string): void {
  const m = IPV4_RE.exec(ip);
  if (!m || m.slice(1).some((o) => Number(o) > 255)) throw new Error(`invalid IPv4 address ${JSON.stringify(ip)}`);
}

export class Topology {
  /** Unique per run: `pl<pid>-<rand>`. Node names derive from it. */
  readonly prefix: string;
  /** Every netns of this topology is named `<nsPrefix>-...` (`palisade-<pid>-<rand>-<label>`). */
  readonly nsPrefix: string;
  /** The per-run cgroup subtree, `<cgroup2root>/palisade-test-<pid>-<rand>`. */
  readonly cgroupPath: string;
  readonly underlayNs: string;
  readonly nodes: NodeNs[] = [];
  readonly pods: PodNs[] = [];
  readonly externalHosts: ExternalHost[] = [];

  private readonly netnsNames: string[] = [];
  private readonly cgroups: string[] = [];
  private readonly children = new Set<ChildProcess>();
  private readonly podsPerNode = new Map<NodeNs, number>();
  private readonly unregisterExit: () => void;
  private destroying: Promise<void> | undefined;

  private readonly label: string;
  private readonly nodePrefix: string;

  private constructor(label: string, cgroupRoot: string, persistent: boolean) {
    this.label = sanitizeLabel(label);
    if (persistent) {
      this.prefix = this.label;
      this.nodePrefix = '';
      this.nsPrefix = `palisade-${this.label}`;
      this.cgroupPath = path.join(cgroupRoot, `palisade-${this.label}`);
      this.unregisterExit = () => undefined;
    } else {
      const rand = randomBytes(3).toString('hex');
      this.prefix = `pl${process.pid}-${rand}`;
      this.nodePrefix = `${this.prefix}-`;
      this.nsPrefix = `palisade-${process.pid}-${rand}-${this.label}`;
      this.cgroupPath = path.join(cgroupRoot, `palisade-test-${process.pid}-${rand}`);
      this.unregisterExit = registerExitCleanup(() => this.destroySync());
    }
    this.underlayNs = `${this.nsPrefix}-ul`;
  }

  static async create(opts: TopologyOptions): Promise<Topology> {
    if (!Number.isInteger(opts.nodes) || opts.nodes < 1 || opts.nodes > MAX_NODES) {
      throw new Error(`Topology.create: nodes must be an integer in 1..${MAX_NODES}, got ${opts.nodes}`);
    }
    const topo = new Topology(opts.label, cgroup2Root(), opts.persistent === true);
    try {
      await topo.build(opts.nodes);
      return topo;
    } catch (err) {
      await topo.destroy();
      throw err;
    }
  }

  /**
   * A persistent topology (the demo's) again, in another process, from its description: pods can
   * be added and removed (addBarePod, removePod) and describe() gives what to save. Its
   * processes are not this process's children: destroyDescribed() tears it down.
   */
  static attach(d: TopologyDescription): Topology {
    const topo = new Topology(d.label, path.dirname(d.cgroupPath), true);
    if (topo.cgroupPath !== d.cgroupPath) throw new Error(`Topology.attach: ${d.cgroupPath} is not a persistent topology's cgroup`);
    topo.netnsNames.push(...d.netns);
    topo.cgroups.push(d.cgroupPath, ...d.nodes.map((n) => n.cgroupPath), ...d.externalHosts.map((h) => h.cgroupPath));
    for (const described of d.nodes) {
      const node = { ...described };
      topo.nodes.push(node);
      topo.podsPerNode.set(node, 0);
    }
    for (const p of d.pods) {
      const node = topo.nodes.find((n) => n.name === p.node);
      if (!node) throw new Error(`Topology.attach: pod ${p.name} is on unknown node ${p.node}`);
      topo.pods.push({ ...p, node });
      topo.cgroups.push(p.cgroupPath);
      if (p.hostIf) topo.podsPerNode.set(node, topo.podsPerNode.get(node)! + 1);
    }
    topo.externalHosts.push(...d.externalHosts.map((h) => ({ ...h })));
    return topo;
  }

  private async build(nodeCount: number): Promise<void> {
    makeCgroup(this.cgroupPath);
    this.cgroups.push(this.cgroupPath);

    await this.newNetns(this.underlayNs);
    await ipBatch(this.underlayNs, ['link add br0 type bridge', 'link set br0 up']);

    for (let i = 1; i <= nodeCount; i++) this.nodes.push(await this.buildNode(i));

    for (const node of this.nodes) {
      const routes = this.nodes
        .filter((other) => other !== node)
        .map((other) => `route add ${other.podCidr} via ${other.underlayIp} dev ul0`);
      if (routes.length) await ipBatch(node.nsName, routes);
    }
  }

  private async buildNode(i: number): Promise<NodeNs> {
    const name = `${this.nodePrefix}node-${i}`;
    const nsName = `${this.nsPrefix}-n${i}`;
    const node: NodeNs = {
      name,
      index: i,
      nsName,
      netnsPath: netnsPath(nsName),
      underlayIp: `172.31.0.${i}`,
      proxyIp: `10.0.${i}.1`,
      podCidr: `10.0.${i}.0/24`,
      cgroupPath: this.newCgroup(`node-${name}`),
    };
    await this.newNetns(nsName);
    await this.attachToUnderlay(nsName, `n${i}`, node.underlayIp);
    await ipBatch(nsName, ['link add cni0 type bridge', `addr add ${node.proxyIp}/24 dev cni0`, 'link set cni0 up']);
    await sysctlIn(nsName, 'net.ipv4.ip_forward=1');
    this.podsPerNode.set(node, 0);
    return node;
  }

  /** veth `ul0` in `nsName`, its peer `peerName` enslaved to the underlay bridge. */
  private async attachToUnderlay(nsName: string, peerName: string, ip: string): Promise<void> {
    await ipBatch(nsName, [`link add ul0 type veth peer name ${peerName} netns ${this.underlayNs}`]);
    await ipBatch(this.underlayNs, [`link set ${peerName} master br0`, `link set ${peerName} up`]);
    await ipBatch(nsName, [`addr add ${ip}/24 dev ul0`, 'link set ul0 up']);
  }

  async addPod(node: NodeNs, name: string, opts: { ip?: string } = {}): Promise<PodNs> {
    this.assertAlive();
    checkName('pod', name);
    const k = this.podsPerNode.get(node);
    if (k === undefined) throw new Error(`addPod: node ${node.name} does not belong to this topology`);
    if (this.pods.some((p) => p.name === name)) throw new Error(`addPod: duplicate pod name ${name}`);
    if (!opts.ip && k + 10 > 254) throw new Error(`addPod: node ${node.name} is out of pod addresses`);
    const ip = opts.ip ?? `10.0.${node.index}.${10 + k}`;
    checkIpv4(ip);
    this.podsPerNode.set(node, k + 1);

    const nsName = `${this.nsPrefix}-p-${name}`;
    const hostSide = `v${k}`;
    const pod: PodNs = { name, node, nsName, netnsPath: netnsPath(nsName), ip, cgroupPath: this.newCgroup(`pod-${name}`), hostIf: hostSide };
    await this.newNetns(nsName);
    await ipBatch(node.nsName, [
      `link add ${hostSide} type veth peer name eth0 netns ${nsName}`,
      `link set ${hostSide} master cni0`,
      `link set ${hostSide} up`,
    ]);
    await ipBatch(nsName, [`addr add ${ip}/24 dev eth0`, 'link set eth0 up', `route add default via ${node.proxyIp} dev eth0`]);
    this.pods.push(pod);
    return pod;
  }

  /**
   * A pod's network namespace and cgroup with no network at all: a container runtime's CNI
   * chain (test/harness/kubelet.ts) gives it its interface and address. `ip` is '' until then.
   */
  async addBarePod(node: NodeNs, name: string): Promise<PodNs> {
    this.assertAlive();
    checkName('pod', name);
    if (!this.podsPerNode.has(node)) throw new Error(`addBarePod: node ${node.name} does not belong to this topology`);
    if (this.pods.some((p) => p.name === name)) throw new Error(`addBarePod: duplicate pod name ${name}`);
    const nsName = `${this.nsPrefix}-p-${name}`;
    const pod: PodNs = { name, node, nsName, netnsPath: netnsPath(nsName), ip: '', cgroupPath: this.newCgroup(`pod-${name}`), hostIf: '' };
    await this.newNetns(nsName);
    this.pods.push(pod);
    return pod;
  }

  /** Remove a pod: kill its processes, delete its netns and cgroup (a deleted pod's sandbox going away). */
  async removePod(pod: PodNs): Promise<void> {
    const i = this.pods.indexOf(pod);
    if (i === -1) return;
    this.pods.splice(i, 1);
    killCgroup(pod.cgroupPath);
    await delNetns(pod.nsName);
    const n = this.netnsNames.indexOf(pod.nsName);
    if (n !== -1) this.netnsNames.splice(n, 1);
    await removeCgroupTree(pod.cgroupPath);
    const c = this.cgroups.indexOf(pod.cgroupPath);
    if (c !== -1) this.cgroups.splice(c, 1);
  }

  /**
   * A host outside the mesh, directly on the underlay (default 172.31.0.<100+k>).
   * It also gets a route to every node's pod CIDR via that node, so un-proxied pod
   * traffic can get replies (lets tests tell "blocked by mesh" from "unroutable").
   */
  async addExternalHost(name: string, ip?: string): Promise<ExternalHost> {
    this.assertAlive();
    checkName('external host', name);
    if (this.externalHosts.some((h) => h.name === name)) throw new Error(`addExternalHost: duplicate name ${name}`);
    const k = this.externalHosts.length;
    const hostIp = ip ?? `172.31.0.${100 + k}`;
    checkIpv4(hostIp);
    const nsName = `${this.nsPrefix}-x-${name}`;
    const host: ExternalHost = { name, nsName, netnsPath: netnsPath(nsName), ip: hostIp, cgroupPath: this.newCgroup(`ext-${name}`) };
    await this.newNetns(nsName);
    await this.attachToUnderlay(nsName, `x${k}`, hostIp);
    const routes = this.nodes.map((n) => `route add ${n.podCidr} via ${n.underlayIp} dev ul0`);
    if (routes.length) await ipBatch(nsName, routes);
    this.externalHosts.push(host);
    return host;
  }

  /** Start a process in the target's cgroup and netns (cgroup joined first). Tracked; killed by destroy(). */
  spawn(target: NsTarget, cmd: string, args: readonly string[], opts: SpawnInOptions = {}): ChildProcess {
    this.assertAlive();
    const child = spawnIn(target, cmd, args, opts);
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    child.once('error', () => this.children.delete(child));
    return child;
  }

  /** Run to completion with a hard timeout (default 10 s, SIGKILL). Never rejects for non-zero exit. */
  async exec(target: NsTarget, cmd: string, args: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
    const child = this.spawn(target, cmd, args, { env: opts.env, stdio: ['pipe', 'pipe', 'pipe'] });
    return collect(child, opts);
  }

  /** A plain description another process can use to find or tear down this topology. */
  describe(): TopologyDescription {
    return {
      label: this.label,
      cgroupPath: this.cgroupPath,
      netns: [...this.netnsNames],
      nodes: [...this.nodes],
      pods: this.pods.map((p) => ({ ...p, node: p.node.name })),
      externalHosts: [...this.externalHosts],
    };
  }

  /** Tear down a described topology from any process: kill its cgroups, delete its netns. */
  static async destroyDescribed(d: TopologyDescription): Promise<void> {
    killCgroup(d.cgroupPath);
    await Promise.all(d.netns.map((ns) => delNetns(ns)));
    await removeCgroupTree(d.cgroupPath);
  }

  /** Idempotent, never throws. Kills processes, deletes netns, removes cgroups. */
  destroy(): Promise<void> {
    if (!this.destroying) this.destroying = this.teardown().catch(() => undefined);
    return this.destroying;
  }

  private async teardown(): Promise<void> {
    const exited = [...this.children].map(
      (c) => new Promise<void>((resolve) => (c.exitCode !== null || c.signalCode !== null ? resolve() : c.once('exit', () => resolve()))),
    );
    this.killAll();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(exited), new Promise((r) => (timer = setTimeout(r, 2000)))]);
    clearTimeout(timer);
    await Promise.all(this.netnsNames.map((ns) => delNetns(ns)));
    if (this.cgroups.length) await removeCgroupTree(this.cgroupPath);
    this.unregisterExit();
  }

  /** Synchronous teardown for the process 'exit' hook. */
  private destroySync(): void {
    this.killAll();
    for (const ns of this.netnsNames) delNetnsSync(ns);
    if (this.cgroups.length) removeCgroupTreeSync(this.cgroupPath);
  }

  private killAll(): void {
    for (const child of this.children) {
      try {
        child.kill('SIGKILL');
      } catch {
        /* already gone */
      }
    }
    for (const cg of [...this.cgroups].reverse()) killCgroup(cg);
  }

  private newCgroup(leaf: string): string {
    const dir = path.join(this.cgroupPath, leaf);
    makeCgroup(dir);
    this.cgroups.push(dir);
    return dir;
  }

  private async newNetns(nsName: string): Promise<void> {
    this.netnsNames.push(nsName); // recorded first so a half-created netns is still cleaned up
    await addNetns(nsName);
  }

  private assertAlive(): void {
    if (this.destroying) throw new Error('Topology has been destroyed');
  }
}
