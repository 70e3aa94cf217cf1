/**
 * The agent's DNS side, put together: hosts file, cache, upstream forwarder, mesh names, the
 * per-pod memory egress checks against, and the proxy's listeners. The agent creates it before
 * the egress check (which needs `names`) and starts listening once the data path is installed.
 * The per-pod memory is written to `stateFile` when the agent stops and read when it starts.
 */
import * as fs from 'node:fs';
import { writeFileAtomic } from '../../common/atomic-file';
import { describeCause, errorCode, PalisadeError } from '../../common/errors';
import type { FlowSink } from '../../common/flow';
import type { Logger } from '../../common/log';
import type { PolicyIndex } from '../../common/policy';
import type { WorkloadIndex } from '../proxy/inputs';
import { Answerer } from './answerer';
import { DnsCache, type CacheStats } from './cache';
import { DNS_PROXY_PORT, DnsProxy, type DnsProxyInputs, type DnsRefusal } from './dns-proxy';
import { HostsFile } from './hosts-file';
import { MeshNames, type MeshNameSources } from './mesh-names';
import { PodNames } from './pod-names';
import { Upstream, type UpstreamServer, type UpstreamStats } from './upstream';

export interface DnsOptions {
  node: string;
  proxyIp: string;
  /** Cluster domain of mesh names (`cluster.local`). */
  domain: string;
  upstreams: UpstreamServer[];
  hostsFile?: string;
  workloads: WorkloadIndex;
  mesh: MeshNameSources;
  policies: { readonly index: PolicyIndex };
  flows: FlowSink;
  /** The proxy's connection caps and refusal summaries (DnsProxyInputs.limits). */
  limits?: DnsProxyInputs['limits'];
  log: Logger;
  /** Per server and attempt (default 2000). */
  upstreamTimeoutMs?: number;
  /** Where the per-pod memory outlives the agent (its run directory). */
  stateFile?: string;
}

export interface DnsStats {
  cache: CacheStats;
  upstream: UpstreamStats;
  refused: Record<DnsRefusal, number>;
  rememberedNames: number;
  memoryEvicted: number;
}

export class DnsRuntime {
  readonly names = new PodNames();
  private readonly hosts: HostsFile | undefined;
  private readonly cache = new DnsCache();
  private readonly upstream: Upstream;
  private readonly answerer: Answerer;
  private proxy: DnsProxy | undefined;

  constructor(private readonly opts: DnsOptions) {
    this.hosts = opts.hostsFile ? new HostsFile(opts.hostsFile, opts.log) : undefined;
    this.upstream = new Upstream({ servers: opts.upstreams, log: opts.log, ...(opts.upstreamTimeoutMs ? { timeoutMs: opts.upstreamTimeoutMs } : {}) });
    this.answerer = new Answerer({
      mesh: new MeshNames(opts.domain, opts.mesh),
      hosts: this.hosts,
      cache: this.cache,
      upstream: this.upstream,
      names: this.names,
      policies: opts.policies,
    });
  }

  /** Serve on the proxy address: UDP and TCP `port` (15053). */
  async listen(datapath: DnsProxyInputs['datapath'], port?: number): Promise<DnsProxy> {
    this.hosts?.start();
    const o = this.opts;
    this.restoreNames();
    this.proxy = new DnsProxy({
      node: o.node,
      proxyIp: o.proxyIp,
      datapath,
      workloads: o.workloads,
      answerer: this.answerer,
      flows: o.flows,
      ...(o.limits ? { limits: o.limits } : {}),
      log: o.log,
    });
    let addr;
    try {
      addr = await this.proxy.listen(port);
    } catch (err) {
      throw new PalisadeError('PALISADE_ERR_LISTEN', `cannot listen on ${o.proxyIp}:${port ?? DNS_PROXY_PORT} for DNS: ${describeCause(err)}`, { cause: err });
    }
    o.log.info({ address: addr.udp.address, port: addr.udp.port, upstreams: o.upstreams.map((s) => `${s.ip}:${s.port}`), domain: o.domain }, 'dns proxy ready');
    return this.proxy;
  }

  stats(): DnsStats {
    return {
      cache: this.cache.stats(),
      upstream: this.upstream.stats(),
      refused: { ...(this.proxy?.refused ?? ({} as Record<DnsRefusal, number>)) },
      rememberedNames: this.names.size,
      memoryEvicted: this.names.evicted,
    };
  }

  /**
   * A successor takes the node over: stop taking queries (it shares the port) and leave it what
   * pods resolved so far, so their next connections through it are not denied.
   */
  handOver(): void {
    this.proxy?.stopAccepting();
    this.saveNames();
  }

  /** The predecessor handed over (or stopped): add what pods resolved through it. */
  takeNamesFromPredecessor(): void {
    this.restoreNames();
  }

  async close(): Promise<void> {
    this.hosts?.close();
    this.upstream.close();
    await this.proxy?.close();
    this.saveNames();
  }

  private restoreNames(): void {
    const file = this.opts.stateFile;
    if (!file || !fs.existsSync(file)) return;
    try {
      const restored = this.names.restore(JSON.parse(fs.readFileSync(file, 'utf8')));
      this.opts.log.info({ file, restored }, 'dns: what pods resolved before the restart, still valid');
    } catch (err) {
      this.opts.log.warn({ file, error: errorCode(err) }, 'dns: memory of the last agent unreadable; pods resolve again');
    }
  }

  private saveNames(): void {
    const file = this.opts.stateFile;
    if (!file) return;
    try {
      writeFileAtomic(file, JSON.stringify(this.names.snapshot()), 0o600);
    } catch (err) {
      this.opts.log.warn({ file, error: errorCode(err) }, 'dns: cannot keep what pods resolved for the next agent');
    }
  }
}
