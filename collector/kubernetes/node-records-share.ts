/**
 * The node records shared by collector replicas through the Kubernetes API: one cluster-scoped
 * PalisadeNode object (palisade.dev/v1, deploy/kubernetes/crds) per node, whose `spec` is the
 * node's share of the records (../nodes/node-share.ts: its join record and its revoked
 * certificates). The replica that joins a node, renews its node certificate or revokes it writes
 * the object (create, or update at the resourceVersion it last saw; a 409 waits for the watch to
 * bring the newer object, merges it and writes again); every replica watches the objects and
 * merges each into its own records (`<data>/nodes.json`, the cache every decision reads), so an
 * agent that joined through replica A is accepted by replica B without joining again, and a node
 * revoked on one is refused by all. An API outage changes nothing: records stay as they are and
 * writes are retried when the watch is back. A deleted object removes nothing (revoke instead).
 */
import type { KubeClient } from '../../common/kube/client';
import { statusOf } from '../../common/kube/client';
import { Informer } from '../../common/kube/informer';
import type { Logger } from '../../common/log';
import { canonicalJson } from '../audit/audit-log';
import type { NodeRecords } from '../nodes/node-records';
import { checkShare, nodesOf, shareOf, type NodeShare } from '../nodes/node-share';
import { DirtyWrites } from './dirty-writes';

export const NODE_GROUP = 'palisade.dev';
export const NODE_VERSION = 'v1';
export const NODE_PLURAL = 'palisadenodes';
/** How long after a failed write the dirty nodes are written again. */
const RETRY_MS = 2_000;

interface NodeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; resourceVersion?: string };
  spec?: NodeShare;
}

export interface NodeRecordsShareOptions {
  client: KubeClient;
  records: NodeRecords;
  log: Logger;
  /** A node's records changed by another replica's share (its join record may have arrived). */
  merged?: (node: string) => void;
}

export class NodeRecordsShare {
  private readonly informer: Informer<NodeObject>;
  /** Each node's object as last seen (from the watch or our own write). */
  private readonly objects = new Map<string, NodeObject>();
  private readonly pending = new DirtyWrites((node) => this.write(node), () => this.informer.hasSynced, RETRY_MS);
  private readonly stopWrites: () => void;
  private readonly log: Logger;
  /** Objects written, writes another replica's won (409), and writes that failed (for tests and logs). */
  writes = 0;
  conflicts = 0;
  failures = 0;
  /** Objects that are not a node's records (refused, nothing merged). */
  refused = 0;

  constructor(private readonly opts: NodeRecordsShareOptions) {
    const { client } = opts;
    this.log = opts.log.child({ component: 'kubernetes-nodes' });
    this.informer = new Informer<NodeObject>(
      {
        client,
        what: 'node records (palisadenodes.palisade.dev)',
        path: `/apis/${NODE_GROUP}/${NODE_VERSION}/${NODE_PLURAL}`,
        list: () => client.custom.listClusterCustomObject({ group: NODE_GROUP, version: NODE_VERSION, plural: NODE_PLURAL }) as never,
        log: this.log,
      },
      { add: (o) => this.seen(o), update: (o) => this.seen(o), delete: (o) => void this.objects.delete(o.metadata?.name ?? '') },
    );
    this.stopWrites = opts.records.onWrite((node) => this.publish([node]));
  }

  start(): void {
    this.informer.start();
    // What this replica holds that the API does not have yet (records from before --kubernetes, a
    // revocation made offline): published once the objects are known.
    void this.informer.synced().then(() => this.publish(nodesOf(this.opts.records.current())));
  }

  synced(): Promise<void> {
    return this.informer.synced();
  }

  get hasSynced(): boolean {
    return this.informer.hasSynced;
  }

  /** The records changed outside this process (the offline CLI): publish every node. */
  recordsChanged(): void {
    this.publish(nodesOf(this.opts.records.current()));
  }

  async stop(): Promise<void> {
    this.stopWrites();
    await this.informer.stop();
    await this.pending.stop();
  }

  private seen(o: NodeObject): void {
    const node = o.metadata?.name;
    if (!node) return;
    this.objects.set(node, o);
    const share = checkShare(node, o.spec);
    if (typeof share === 'string') {
      this.refused += 1;
      this.log.warn({ node, problem: share }, 'PalisadeNode object refused: not a node record; nothing merged');
      return;
    }
    try {
      if (this.opts.records.merge(node, share)) {
        this.log.info({ node }, 'node record merged from another collector replica');
        this.opts.merged?.(node);
      }
    } catch (err) {
      this.log.error({ err, node }, 'cannot merge a shared node record into the node records');
      return;
    }
    // Our records may hold more than the object (a write of ours lost to a 409): write the merge.
    this.publish([node]);
  }

  private publish(nodes: Iterable<string>): void {
    this.pending.add(nodes);
  }

  /** Write `node`'s object; false when the write failed (retried later). */
  private async write(node: string): Promise<boolean> {
    const share = shareOf(this.opts.records.current(), node);
    const object = this.objects.get(node);
    if (object && canonicalJson(normal(object.spec)) === canonicalJson(share)) return true;
    const body: NodeObject = {
      apiVersion: `${NODE_GROUP}/${NODE_VERSION}`,
      kind: 'PalisadeNode',
      metadata: { name: node, ...(object?.metadata?.resourceVersion ? { resourceVersion: object.metadata.resourceVersion } : {}) },
      spec: share,
    };
    const { client } = this.opts;
    const params = { group: NODE_GROUP, version: NODE_VERSION, plural: NODE_PLURAL };
    try {
      const written = (await client.call(`${object ? 'update' : 'create'} palisadenode ${node}`, () =>
        object ? client.custom.replaceClusterCustomObject({ ...params, name: node, body }) : client.custom.createClusterCustomObject({ ...params, body }),
      )) as NodeObject;
      this.writes += 1;
      if (written?.metadata?.resourceVersion) this.objects.set(node, written);
    } catch (err) {
      const code = statusOf((err as { cause?: unknown }).cause)?.code;
      // 409: another replica wrote first; its object comes through the watch, is merged, and written again.
      if (code === 409) {
        this.conflicts += 1;
        return true;
      }
      this.failures += 1;
      this.log.warn({ err, node }, `cannot write the shared node record; other collector replicas do not know this change yet (retried in ${RETRY_MS / 1000} s)`);
      return false;
    }
    return true;
  }
}

/** A spec as shareOf writes it (a missing `revoked` is none). */
function normal(spec: NodeShare | undefined): NodeShare {
  return { ...(spec?.record ? { record: spec.record } : {}), revoked: spec?.revoked ?? [] };
}
