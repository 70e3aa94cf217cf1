/**
 * The collector's watch of policy objects: Istio AuthorizationPolicy (security.istio.io, v1, else
 * v1beta1 where only that is served), Palisade EgressPolicy and FaultInjection (palisade.dev/v1) and
 * the Gateway API's HTTPRoute and GRPCRoute (gateway.networking.k8s.io/v1), all namespaces.
 * Each object is checked alone as a policy file (./policy-objects.ts); a refused object is
 * reported where kubectl users look (./policy-report.ts) and its previous accepted version stays.
 * A route attached to no Service is a gateway's: ignored (counted, never reported or refused).
 * The accepted set goes to the policy store (versions authored `kubernetes`) once every kind has
 * listed — or is known not to be installed — and again after every change (coalesced). A kind whose
 * CRD is not installed is looked for again every `rediscoverMs`; an API outage changes nothing.
 * A change this replica wrote (./policy-writes.ts) waits on `whenInForce` until a publish has
 * handed the resourceVersion it wrote to the store (or the object is gone).
 */
import { describeCause, PalisadeError } from '../../common/errors';
import type { KubeClient } from '../../common/kube/client';
import { Informer } from '../../common/kube/informer';
import type { Logger } from '../../common/log';
import { parsePolicies } from '../../common/policy';
import type { PolicyFile } from '../../common/policy-files';
import { meshRouteOf, policyFileOf, POLICY_RESOURCES, type PolicyObject, type PolicyResource } from './policy-objects';
import { PolicyReporter } from './policy-report';

export interface PolicyWatchOptions {
  client: KubeClient;
  log: Logger;
  /** The accepted objects as policy files. */
  onPolicies: (files: PolicyFile[]) => void;
  debounceMs?: number;
  rediscoverMs?: number;
}

/** resourceVersions of an accepted object kept for writes waiting to be in force. */
const MAX_RVS_KEPT = 8;

interface Entry {
  resource: PolicyResource;
  object: PolicyObject;
  /** The last version of the object that was accepted. */
  accepted: PolicyFile | undefined;
  /** The resourceVersions accepted since the object was last published (a write's may be followed at once by a status update's). */
  acceptedRvs: string[];
  /** Why its current version was refused (undefined: accepted). */
  problems: readonly string[] | undefined;
}

/** A write of this replica waiting to be in force here: source → the resourceVersion written (undefined: deleted). */
interface Waiter {
  pending: Map<string, string | undefined>;
  resolve: () => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

export interface PolicyWatchStatus {
  synced: boolean;
  kinds: Record<string, string>;
  inForce: number;
  refused: Array<{ object: string; problems: string[]; previousInForce: boolean }>;
  /** Routes attached to no Service (a gateway's): left alone. */
  ignoredRoutes: number;
}

export class PolicyWatch {
  private readonly entries = new Map<string, Entry>();
  /** Sources of the routes attached to no Service. */
  private readonly ignored = new Set<string>();
  private readonly informers: Array<Informer<PolicyObject & { metadata?: object }>> = [];
  private readonly settled = new Set<string>();
  private readonly kinds = new Map<string, string>(POLICY_RESOURCES.map((r) => [r.kind, 'looking']));
  private readonly reporter: PolicyReporter;
  private readonly log: Logger;
  private readonly timers = new Set<NodeJS.Timeout>();
  private debounce: NodeJS.Timeout | undefined;
  /** What the publishes handed over: source → the resourceVersions of the object accepted up to the last one. */
  private published = new Map<string, ReadonlySet<string>>();
  private readonly waiters = new Set<Waiter>();
  private stopped = false;
  private resolveSettled!: () => void;
  private readonly allSettled = new Promise<void>((resolve) => (this.resolveSettled = resolve));

  constructor(private readonly opts: PolicyWatchOptions) {
    this.log = opts.log.child({ component: 'kubernetes-policies' });
    this.reporter = new PolicyReporter(opts.client, this.log);
  }

  start(): void {
    for (const r of POLICY_RESOURCES) void this.follow(r);
  }

  /** Resolves once every kind has listed (or is known not to be installed). */
  synced(): Promise<void> {
    return this.allSettled;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    if (this.debounce) clearTimeout(this.debounce);
    for (const w of [...this.waiters]) this.settleWaiter(w, new PalisadeError('PALISADE_ERR_COLLECTOR_UNAVAILABLE', 'the collector is stopping'));
    await Promise.all(this.informers.map((i) => i.stop()));
  }

  /** The version of `kind` the cluster serves (`group/version`), 'not installed', or undefined while still looking. */
  servedVersion(kind: string): string | undefined {
    const v = this.kinds.get(kind);
    return v === 'looking' ? undefined : v;
  }

  /** The object named `source` (`Kind namespace/name`) as last seen, refused or not. */
  object(source: string): PolicyObject | undefined {
    return this.entries.get(source)?.object;
  }

  /**
   * Resolves once every written object of `expect` is in force here — handed to the policy store
   * at the resourceVersion written, or gone (resourceVersion undefined: a delete) — or rejects:
   * when the watch refuses the version written, or after `timeoutMs`.
   */
  whenInForce(expect: ReadonlyArray<{ source: string; resourceVersion: string | undefined }>, timeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const pending = new Map(expect.map((e) => [e.source, e.resourceVersion]));
      const timer = setTimeout(() => {
        this.settleWaiter(w, new PalisadeError('PALISADE_ERR_KUBERNETES', `written to the Kubernetes API but not in force at this collector within ${timeoutMs} ms (its watch is behind?): ${[...w.pending.keys()].join(', ')}; palisade policy list shows when it is`));
      }, timeoutMs);
      const w: Waiter = { pending, resolve, reject, timer };
      this.waiters.add(w);
      this.checkWaiter(w);
    });
  }

  private checkWaiter(w: Waiter): void {
    for (const [source, rv] of w.pending) {
      const e = this.entries.get(source);
      if (rv !== undefined && e?.problems && e.object.metadata?.resourceVersion === rv) {
        return this.settleWaiter(w, new PalisadeError('PALISADE_ERR_POLICY_INVALID', `written to the Kubernetes API but refused by this collector's watch: ${e.problems[0] ?? source}`));
      }
      if (rv === undefined ? !this.published.has(source) : this.published.get(source)?.has(rv)) w.pending.delete(source);
    }
    if (w.pending.size === 0) this.settleWaiter(w);
  }

  private settleWaiter(w: Waiter, err?: Error): void {
    if (!this.waiters.delete(w)) return;
    clearTimeout(w.timer);
    if (err) w.reject(err);
    else w.resolve();
  }

  status(): PolicyWatchStatus {
    const entries = [...this.entries.entries()].sort(([a], [b]) => (a < b ? -1 : 1));
    return {
      synced: this.settled.size === POLICY_RESOURCES.length,
      kinds: Object.fromEntries(this.kinds),
      inForce: entries.filter(([, e]) => e.accepted).length,
      refused: entries.flatMap(([object, e]) => (e.problems ? [{ object, problems: [...e.problems], previousInForce: e.accepted !== undefined }] : [])),
      ignoredRoutes: this.ignored.size,
    };
  }

  /** Find the version the API serves, then list + watch it. */
  private async follow(resource: PolicyResource): Promise<void> {
    if (this.stopped) return;
    const { client } = this.opts;
    let version: string | undefined;
    try {
      for (const v of resource.versions) {
        const found = await client.call(`list ${resource.plural}.${resource.group}/${v}`, () => client.custom.listClusterCustomObject({ group: resource.group, version: v, plural: resource.plural, limit: 1 }), { notFound: 'undefined' });
        if (found !== undefined) {
          version = v;
          break;
        }
      }
    } catch (err) {
      this.log.warn({ kind: resource.kind, reason: describeCause(err) }, 'cannot look for a policy kind in the Kubernetes API; trying again');
      return this.later(resource, 5_000);
    }
    if (version === undefined) {
      this.log.info({ kind: resource.kind, group: resource.group, versions: resource.versions }, 'this policy kind is not installed in the cluster (no CRD); looking again later');
      this.kinds.set(resource.kind, 'not installed');
      this.settle(resource);
      return this.later(resource, this.opts.rediscoverMs ?? 30_000);
    }
    const v = version;
    const informer = new Informer<PolicyObject & { metadata?: object }>(
      {
        client,
        what: `${resource.plural}.${resource.group}/${v}`,
        path: `/apis/${resource.group}/${v}/${resource.plural}`,
        list: () => client.custom.listClusterCustomObject({ group: resource.group, version: v, plural: resource.plural }) as never,
        log: this.log,
      },
      { add: (o) => this.put(resource, o), update: (o) => this.put(resource, o), delete: (o) => this.drop(resource, o) },
    );
    this.informers.push(informer);
    informer.start();
    await informer.synced();
    this.log.info({ kind: resource.kind, version: `${resource.group}/${v}` }, 'watching policy objects');
    this.kinds.set(resource.kind, `${resource.group}/${v}`);
    this.settle(resource);
  }

  private later(resource: PolicyResource, ms: number): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      void this.follow(resource);
    }, ms);
    t.unref();
    this.timers.add(t);
  }

  private settle(resource: PolicyResource): void {
    if (this.settled.has(resource.kind)) return;
    this.settled.add(resource.kind);
    if (this.settled.size === POLICY_RESOURCES.length) {
      this.resolveSettled();
      this.publish();
    }
  }

  private put(resource: PolicyResource, o: PolicyObject): void {
    const mesh = meshRouteOf(o, resource);
    const file = policyFileOf(mesh ?? o, resource);
    if (!file) return;
    if (!mesh) {
      // A gateway's route (or one that stopped being the mesh's): out of the set, nothing reported.
      if (!this.ignored.has(file.source)) this.log.debug({ object: file.source }, 'route attached to no Service: a gateway\'s, left alone');
      this.ignored.add(file.source);
      if (this.entries.delete(file.source)) {
        this.reporter.forget(o);
        this.changed();
      }
      return;
    }
    this.ignored.delete(file.source);
    const entry: Entry = this.entries.get(file.source) ?? { resource, object: o, accepted: undefined, acceptedRvs: [], problems: undefined };
    entry.object = o;
    this.entries.set(file.source, entry);
    const r = parsePolicies(file.text, file.source);
    if (r.problems.length > 0) {
      const keeps = entry.accepted ? 'its previous version stays in force' : 'it is not in force';
      this.log.error({ event: 'policy-rejected', object: file.source, problems: r.problems }, `policy object refused; ${keeps}`);
      this.reporter.rejected(resource, o, r.problems);
      entry.problems = r.problems;
      for (const w of [...this.waiters]) this.checkWaiter(w);
    } else {
      entry.accepted = file;
      const rv = o.metadata?.resourceVersion;
      if (rv !== undefined) entry.acceptedRvs = [...entry.acceptedRvs.slice(-(MAX_RVS_KEPT - 1)), rv];
      entry.problems = undefined;
      this.reporter.accepted(resource, o);
    }
    this.changed();
  }

  private drop(resource: PolicyResource, o: PolicyObject): void {
    const file = policyFileOf(o, resource);
    if (!file) return;
    this.ignored.delete(file.source);
    this.entries.delete(file.source);
    this.reporter.forget(o);
    this.changed();
  }

  private changed(): void {
    if (this.debounce || this.stopped || this.settled.size < POLICY_RESOURCES.length) return;
    this.debounce = setTimeout(() => {
      this.debounce = undefined;
      this.publish();
    }, this.opts.debounceMs ?? 100);
  }

  private publish(): void {
    if (this.stopped) return;
    const files = [...this.entries.values()].flatMap((e) => (e.accepted ? [e.accepted] : [])).sort((a, b) => (a.source < b.source ? -1 : 1));
    try {
      this.opts.onPolicies(files);
    } finally {
      this.published = new Map([...this.entries].flatMap(([source, e]) => (e.accepted ? [[source, new Set(e.acceptedRvs)] as const] : [])));
      for (const w of [...this.waiters]) this.checkWaiter(w);
    }
  }
}
