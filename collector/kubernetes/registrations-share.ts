/**
 * Workload registrations shared by collector replicas through the Kubernetes API: one
 * cluster-scoped PalisadeRegistration object (palisade.dev/v1, deploy/kubernetes/crds) per node,
 * whose `spec` is the node's registration as the replica holding its session admitted it
 * (../nodes/registration-share.ts: node address, online, workloads, declared services, and the
 * session's stamp). The replica whose session changes a node's state writes the object (create,
 * or update at the resourceVersion it last saw; a 409 waits for the watch); every replica watches
 * the objects and applies the newest into its registry (WorkloadRegistry.applyShared), which
 * pushes the change to its agents as any registration does. So agents connected to different
 * replicas see one registry, and a replica an agent fails over to already knows every workload.
 *
 * Trust: a shared registration is decided again here against the node's join binding (scope, pod
 * range; the node records are shared too: ./node-records-share.ts) and the registry's own checks
 * (trust domain, an IP two nodes claim); the pod authority was asked by the replica that took the
 * registration. A node without a join record here waits until its record arrives. A deleted
 * object removes the node from the registry (the holder deletes it when the node is revoked);
 * ours is written again if our session still holds the node.
 */
import type { KubeClient } from '../../common/kube/client';
import { statusOf } from '../../common/kube/client';
import { Informer } from '../../common/kube/informer';
import type { Logger } from '../../common/log';
import { canonicalJson } from '../audit/audit-log';
import type { NodeRecords } from '../nodes/node-records';
import { checkRegistration, newer, type RegistrationShare } from '../nodes/registration-share';
import { registrationRefusal } from '../nodes/workload-admission';
import type { WorkloadRegistry } from '../registry';
import { DirtyWrites } from './dirty-writes';
import { NODE_GROUP, NODE_VERSION } from './node-records-share';

export const REGISTRATION_PLURAL = 'palisaderegistrations';
/** How long after a failed write the dirty nodes are written again. */
const RETRY_MS = 2_000;

interface RegistrationObject {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; resourceVersion?: string };
  spec?: unknown;
}

export interface RegistrationsShareOptions {
  client: KubeClient;
  registry: WorkloadRegistry;
  records: NodeRecords;
  log: Logger;
}

export class RegistrationsShare {
  private readonly informer: Informer<RegistrationObject>;
  private readonly objects = new Map<string, RegistrationObject>();
  /** Each node's share as last seen in its object (checked). */
  private readonly shares = new Map<string, RegistrationShare>();
  private readonly pending = new DirtyWrites((node) => this.write(node), () => this.informer.hasSynced, RETRY_MS);
  private readonly stopLocal: () => void;
  private readonly log: Logger;
  /** Objects written, writes another replica's won (409), writes that failed, objects refused, registrations applied. */
  writes = 0;
  conflicts = 0;
  failures = 0;
  refused = 0;
  applied = 0;

  constructor(private readonly opts: RegistrationsShareOptions) {
    const { client } = opts;
    this.log = opts.log.child({ component: 'kubernetes-registrations' });
    this.informer = new Informer<RegistrationObject>(
      {
        client,
        what: `workload registrations (${REGISTRATION_PLURAL}.${NODE_GROUP})`,
        path: `/apis/${NODE_GROUP}/${NODE_VERSION}/${REGISTRATION_PLURAL}`,
        list: () => client.custom.listClusterCustomObject({ group: NODE_GROUP, version: NODE_VERSION, plural: REGISTRATION_PLURAL }) as never,
        log: this.log,
      },
      { add: (o) => this.seen(o), update: (o) => this.seen(o), delete: (o) => this.gone(o) },
    );
    this.stopLocal = opts.registry.onLocalChange((node) => this.publish([node]));
  }

  start(): void {
    this.informer.start();
    void this.informer.synced().then(() => this.publish(this.opts.registry.localNodes()));
  }

  synced(): Promise<void> {
    return this.informer.synced();
  }

  /** The node records of `nodes` (default: all) changed — a join record arrived: apply the shares that waited for one. */
  recordsChanged(nodes: Iterable<string> = this.shares.keys()): void {
    for (const node of [...nodes]) this.apply(node);
  }

  async stop(): Promise<void> {
    this.stopLocal();
    await this.informer.stop();
    await this.pending.stop();
  }

  private seen(o: RegistrationObject): void {
    const node = o.metadata?.name;
    if (!node) return;
    this.objects.set(node, o);
    const share = checkRegistration(o.spec);
    if (typeof share === 'string') {
      this.refused += 1;
      this.log.warn({ node, problem: share }, 'PalisadeRegistration object refused: not a node registration; nothing applied');
      return;
    }
    this.shares.set(node, share);
    this.apply(node);
  }

  private gone(o: RegistrationObject): void {
    const node = o.metadata?.name ?? '';
    this.objects.delete(node);
    this.shares.delete(node);
    if (this.opts.registry.shared(node)) return this.publish([node]); // ours: written again
    if (this.opts.registry.hasNode(node)) this.opts.registry.removeNode(node);
  }

  private apply(node: string): void {
    const share = this.shares.get(node);
    if (!share) return;
    const ours = this.opts.registry.shared(node);
    if (ours && !newer(share.stamp, ours.stamp)) {
      // Our session is newer (or the object is ours): make sure the object says what we hold.
      if (canonicalJson(ours) !== canonicalJson(share)) this.publish([node]);
      return;
    }
    const binding = this.opts.records.record(node);
    if (!binding) return; // waits for the node's join record (recordsChanged)
    let result;
    try {
      result = this.opts.registry.applyShared(node, share, (w) => registrationRefusal(binding, w, undefined));
    } catch (err) {
      this.log.error({ err, node }, 'cannot apply a shared registration');
      return;
    }
    if (!result.applied) return;
    this.applied += 1;
    if (result.changed) this.log.debug({ node, workloads: result.accepted, refused: result.refused.length }, 'registration applied from another collector replica');
    if (result.refused.length > 0) this.log.warn({ node, refused: result.refused.slice(0, 20) }, 'workloads of a shared registration refused here');
    if (result.tookOver) this.log.info({ node }, 'the node\'s newer session is at another collector replica: its registration is that replica\'s from now on');
  }

  private publish(nodes: Iterable<string>): void {
    this.pending.add(nodes);
  }

  /** Write (or delete) `node`'s object; false when the write failed (retried later). */
  private async write(node: string): Promise<boolean> {
    const { client, registry } = this.opts;
    const params = { group: NODE_GROUP, version: NODE_VERSION, plural: REGISTRATION_PLURAL };
    const share = registry.shared(node);
    const object = this.objects.get(node);
    const seen = this.shares.get(node);
    try {
      if (!share) {
        // Our node left the registry (revoked): its object goes, unless another replica's session wrote it since.
        if (!object || seen?.stamp.replica !== registry.replica || registry.hasNode(node)) return true;
        await client.call(`delete palisaderegistration ${node}`, () => client.custom.deleteClusterCustomObject({ ...params, name: node }));
        return true;
      }
      if (seen && (canonicalJson(seen) === canonicalJson(share) || newer(seen.stamp, share.stamp))) return true;
      const body: RegistrationObject = {
        apiVersion: `${NODE_GROUP}/${NODE_VERSION}`,
        kind: 'PalisadeRegistration',
        metadata: { name: node, ...(object?.metadata?.resourceVersion ? { resourceVersion: object.metadata.resourceVersion } : {}) },
        spec: share,
      };
      const written = (await client.call(`${object ? 'update' : 'create'} palisaderegistration ${node}`, () =>
        object ? client.custom.replaceClusterCustomObject({ ...params, name: node, body }) : client.custom.createClusterCustomObject({ ...params, body }),
      )) as RegistrationObject;
      this.writes += 1;
      if (written?.metadata?.resourceVersion) {
        this.objects.set(node, written);
        this.shares.set(node, share);
      }
    } catch (err) {
      const code = statusOf((err as { cause?: unknown }).cause)?.code;
      // 409: another replica wrote first (its object comes through the watch); 404: already deleted.
      if (code === 409 || code === 404) {
        if (code === 409) this.conflicts += 1;
        return true;
      }
      this.failures += 1;
      this.log.warn({ err, node }, `cannot write the shared registration; other collector replicas do not know this change yet (retried in ${RETRY_MS / 1000} s)`);
      return false;
    }
    return true;
  }
}
