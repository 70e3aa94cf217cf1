/**
 * `palisade agent`: the node daemon. Validates everything it was given before it
 * touches the kernel, installs (or re-adopts) the data path, enrolls the node's
 * workloads, and serves the outbound listener.
 */
import { isIPv4 } from 'node:net';
import { PalisadeError, describeCause } from '../common/errors';
import type { Logger } from '../common/log';
import { Datapath, netnsCookieOf, validateNodeName } from './datapath/datapath';
import { acquireNodeLock, type NodeLock } from './lock';
import { OutboundProxy } from './proxy/outbound';
import { LocalWorkloads } from './registry';
import { loadWorkloadsFile, type Workload } from './workloads';

export const OUTBOUND_PORT = 15001;

export interface AgentOptions {
  node: string;
  proxyIp: string;
  workloadsFile?: string;
  cgroup?: string;
  bpffs?: string;
  bpfDir?: string;
  runDir?: string;
  excludeCidrs?: string[];
  excludePorts?: number[];
  outboundPort?: number;
  connectTimeoutMs?: number;
  log: Logger;
}

export interface RunningAgent {
  node: string;
  datapath: Datapath;
  workloads: LocalWorkloads;
  outboundAddress: { address: string; port: number };
  close(): Promise<void>;
}

export const DEFAULT_RUN_DIR = '/run/palisade';

export async function startAgent(opts: AgentOptions): Promise<RunningAgent> {
  const log = opts.log.child({ node: opts.node });
  validateNodeName(opts.node);
  if (!isIPv4(opts.proxyIp)) {
    throw new PalisadeError('PALISADE_ERR_INVALID_ARGUMENT', `--proxy-address must be an IPv4 address, got ${JSON.stringify(opts.proxyIp)}`);
  }
  // Everything that can be checked without the kernel is checked first: a bad
  // file or namespace path must not leave anything half-installed.
  const config = opts.workloadsFile ? loadWorkloadsFile(opts.workloadsFile) : { trustDomain: 'cluster.local', workloads: [] };
  const cookies = config.workloads.map((w) => ({ workload: w, netnsCookie: cookieFor(w) }));

  const lock = acquireNodeLock(opts.runDir ?? DEFAULT_RUN_DIR, opts.node);
  let datapath: Datapath | undefined;
  let outbound: OutboundProxy | undefined;
  try {
    datapath = Datapath.install({
      node: opts.node,
      proxyIp: opts.proxyIp,
      proxyPort: opts.outboundPort ?? OUTBOUND_PORT,
      cgroup: opts.cgroup,
      bpffs: opts.bpffs,
      bpfDir: opts.bpfDir,
      log,
    });
    datapath.setExclusions(opts.excludeCidrs ?? [], opts.excludePorts ?? []);
    const workloads = new LocalWorkloads();
    const enrollStarted = process.hrtime.bigint();
    reconcileEnrollment(datapath, cookies, log);
    workloads.set(cookies);
    log.info(
      { workloads: cookies.length, ms: Number(process.hrtime.bigint() - enrollStarted) / 1e6 },
      'workloads enrolled',
    );

    outbound = new OutboundProxy({
      node: opts.node,
      proxyIp: opts.proxyIp,
      datapath,
      workloads,
      log,
      connectTimeoutMs: opts.connectTimeoutMs ?? 10_000,
    });
    let address;
    try {
      address = await outbound.listen(opts.outboundPort ?? OUTBOUND_PORT);
    } catch (err) {
      throw new PalisadeError(
        'PALISADE_ERR_LISTEN',
        `cannot listen on ${opts.proxyIp}:${opts.outboundPort ?? OUTBOUND_PORT}: ${describeCause(err)}`,
        { cause: err },
      );
    }
    log.info({ address: address.address, port: address.port }, 'outbound listener ready');
    const dp = datapath;
    const ob = outbound;
    return {
      node: opts.node,
      datapath: dp,
      workloads,
      outboundAddress: { address: address.address, port: address.port },
      async close(): Promise<void> {
        await ob.close();
        dp.close();
        lock.release();
        log.info('agent stopped; data path stays pinned (pods fail closed until an agent returns)');
      },
    };
  } catch (err) {
    datapath?.close();
    lock.release();
    throw err;
  }
}

function cookieFor(w: Workload): bigint {
  try {
    return netnsCookieOf(w.netns);
  } catch (err) {
    throw new PalisadeError('PALISADE_ERR_NETNS', `workload ${w.namespace}/${w.name}: ${(err as Error).message}`, { cause: err });
  }
}

/** Make the kernel's enrolled set exactly the workloads file's. */
function reconcileEnrollment(dp: Datapath, entries: Array<{ workload: Workload; netnsCookie: bigint }>, log: Logger): void {
  const want = new Set(entries.map((e) => e.netnsCookie));
  for (const pod of dp.pods()) {
    if (!want.has(pod.netnsCookie)) {
      dp.unenroll(pod.netnsCookie);
      log.info({ netnsCookie: pod.netnsCookie.toString(), podId: pod.podId }, 'unenrolled pod no longer in workloads');
    }
  }
  entries.forEach(({ workload }, i) => {
    dp.enroll(workload.netns, { podId: i + 1, strict: workload.strict, ip: workload.ip });
  });
}

/** `palisade agent uninstall`: refuses while an agent for the node is running. */
export function uninstallNode(opts: { node: string; bpffs?: string; runDir?: string; log: Logger }): string[] {
  validateNodeName(opts.node);
  const lock: NodeLock = acquireNodeLock(opts.runDir ?? DEFAULT_RUN_DIR, opts.node);
  try {
    const removed = Datapath.uninstall(opts.node, opts.bpffs);
    opts.log.info({ node: opts.node, removed: removed.length }, 'data path uninstalled');
    return removed;
  } finally {
    lock.release();
  }
}
