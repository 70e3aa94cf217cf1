/**
 * Kubernetes as a workload source: the Pods of this node (list + watch by field selector
 * spec.nodeName) and the namespaces' labels, joined by pod UID with the pod sandboxes palisade-cni
 * announces (ADD, DEL, CHECK over the agent's CNI socket: this class is the socket's enroller).
 *
 *   - CNI ADD: the pod is looked up (the cache, else one GET), its sandbox recorded, and — when it
 *     is in the mesh — enrolled with its certificate ready before the answer, so its first connect
 *     is redirected. The API away or slow: "try again later" (the pod does not start unmeshed).
 *   - CNI DEL, or the Pod deleted: unenrolled. A DEL may carry nothing but the container id.
 *   - labels, service account, annotations or the namespace's label change: applied live.
 *   - start: what the previous agent had enrolled is enrolled again from the run directory's
 *     record (./sandbox-store.ts) before the API answers; once pods and namespaces are listed,
 *     pods gone meanwhile are unenrolled and running members without a sandbox are found in /proc.
 * The API being away never unenrolls anything: only its answers (a delete, a relist) do.
 */
import { describeCause, isPalisadeError } from '../../../common/errors';
import { KeyedQueue } from '../../../common/keyed-queue';
import type { KubeClient } from '../../../common/kube/client';
import { Informer } from '../../../common/kube/informer';
import type { Logger } from '../../../common/log';
import { hostInterfaceOf } from '../../cni/host-interface';
import { CniErrorCode, CniRefusal, type CniEnroller, type CniPodRef, type CniSandbox } from '../../cni/protocol';
import { netnsCookieOf } from '../../datapath/datapath';
import type { NodeEnrollment, PutOptions } from '../node-enrollment';
import type { WorkloadSource } from '../source';
import { desiredFor, NodePods, type Desired } from './node-pods';
import { podView, type PodObject, type PodView } from './pod-workload';
import { scanProcNetns } from './proc-netns';
import { sandboxStateFile, SandboxStore, type SandboxRecord } from './sandbox-store';

export interface KubernetesSourceOptions {
  node: string;
  client: KubeClient;
  trustDomain: string;
  /** The agent's run directory (the sandbox record lives there). */
  runDir: string;
  log: Logger;
  /** How long a CNI ADD may wait for the API to name a pod it has not seen (default 1.5 s). */
  lookupTimeoutMs?: number;
  cookieOf?: (netnsPath: string) => bigint;
  procRoot?: string;
}

export class KubernetesSource implements WorkloadSource, CniEnroller {
  readonly name = 'kubernetes';
  isSynced = false;
  private readonly log: Logger;
  private readonly state = new NodePods();
  private readonly queue = new KeyedQueue();
  private readonly store: SandboxStore;
  private readonly cookieOf: (netnsPath: string) => bigint;
  private readonly informers: Array<Informer<PodObject & { metadata?: object }>> = [];
  private enrollment: NodeEnrollment | undefined;
  private saveTimer: NodeJS.Immediate | undefined;
  private resolveSynced!: () => void;
  private readonly firstSync = new Promise<void>((resolve) => (this.resolveSynced = resolve));
  private closed = false;

  constructor(private readonly opts: KubernetesSourceOptions) {
    this.log = opts.log.child({ component: 'kubernetes' });
    this.store = new SandboxStore(sandboxStateFile(opts.runDir, opts.node), this.log);
    this.cookieOf = opts.cookieOf ?? netnsCookieOf;
  }

  async start(enrollment: NodeEnrollment): Promise<void> {
    this.enrollment = enrollment;
    await this.restore();
    const { client, node } = this.opts;
    const pods = new Informer<PodObject & { metadata?: object }>(
      {
        client,
        what: `pods of node ${node}`,
        path: '/api/v1/pods',
        fieldSelector: `spec.nodeName=${node}`,
        list: () => client.core.listPodForAllNamespaces({ fieldSelector: `spec.nodeName=${node}` }),
        log: this.log,
      },
      { add: (o) => this.podChanged(o), update: (o) => this.podChanged(o), delete: (o) => this.podDeleted(o) },
    );
    const namespaces = new Informer<{ metadata?: { name?: string; labels?: Record<string, string> } }>(
      { client, what: 'namespaces', path: '/api/v1/namespaces', list: () => client.core.listNamespace(), log: this.log },
      { add: (o) => this.namespaceChanged(o), update: (o) => this.namespaceChanged(o), delete: (o) => this.namespaceDeleted(o) },
    );
    this.informers.push(pods, namespaces as unknown as Informer<PodObject & { metadata?: object }>);
    pods.start();
    namespaces.start();
    void Promise.all([pods.synced(), namespaces.synced()]).then(() => this.reconcile());
    this.log.info({ node, server: client.server, restored: enrollment.size }, 'watching this node\'s pods');
  }

  synced(): Promise<void> {
    return this.firstSync;
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.informers.map((i) => i.stop()));
    // Only a change not yet written: during a handover the successor owns the record already.
    const pending = this.saveTimer !== undefined;
    if (this.saveTimer) clearImmediate(this.saveTimer);
    this.saveTimer = undefined;
    if (pending) this.save();
  }

  // ---- CNI ------------------------------------------------------------------------------------

  async enroll(sandbox: CniSandbox): Promise<void> {
    const ref = sandbox.pod;
    if (!ref) throw new CniRefusal(CniErrorCode.INVALID_ENVIRONMENT, 'ADD without K8S_POD_NAMESPACE and K8S_POD_NAME');
    const pod = await this.lookupPod(ref);
    if (pod.nodeName !== this.opts.node) {
      throw new CniRefusal(CniErrorCode.ENROLL_FAILED, `pod ${pod.namespace}/${pod.name} is scheduled on node ${pod.nodeName ?? '(none)'}, not on ${this.opts.node}`);
    }
    await this.lookupNamespace(pod.namespace);
    this.state.setSandbox({
      containerId: sandbox.containerId,
      uid: pod.uid,
      namespace: pod.namespace,
      name: pod.name,
      netns: sandbox.netns,
      ip: sandbox.ips.find((ip) => ip.family === 4)?.address,
      ...(hostInterfaceOf(sandbox) ? { hostInterface: hostInterfaceOf(sandbox)! } : {}),
    });
    let d: Desired;
    try {
      d = await this.sync(pod.uid, { awaitIdentity: true });
    } catch (err) {
      const later = isPalisadeError(err) && err.code === 'PALISADE_ERR_IDENTITY';
      throw new CniRefusal(later ? CniErrorCode.TRY_AGAIN_LATER : CniErrorCode.ENROLL_FAILED, `pod ${pod.namespace}/${pod.name}: ${describeCause(err)}`);
    } finally {
      this.save();
    }
    if (d.kind === 'refuse') throw new CniRefusal(CniErrorCode.ENROLL_FAILED, d.problem);
    if (d.kind === 'wait') throw new CniRefusal(CniErrorCode.TRY_AGAIN_LATER, `pod ${pod.namespace}/${pod.name}: ${d.why}`);
  }

  async unenroll(sandbox: CniSandbox): Promise<void> {
    const uid = this.state.uidOfContainer(sandbox.containerId) ?? this.uidOfRef(sandbox.pod);
    if (uid === undefined) return; // never enrolled, or already gone with its Pod
    const current = this.state.sandboxes.get(uid);
    // A DEL of an older sandbox of the pod leaves the current one alone.
    if (current && (current.containerId === sandbox.containerId || current.discovered)) {
      this.state.deleteSandbox(uid);
      await this.sync(uid);
    }
    this.save();
  }

  async check(sandbox: CniSandbox): Promise<void> {
    const uid = this.state.uidOfContainer(sandbox.containerId) ?? this.uidOfRef(sandbox.pod);
    if (uid === undefined) throw new Error(`sandbox ${sandbox.containerId} is not known to the agent`);
    const d = this.desired(uid);
    if (d.kind === 'leave') return;
    if (d.kind !== 'enroll') throw new Error(d.kind === 'refuse' ? d.problem : d.why);
    const e = this.enrollment!.get(keyOf(uid));
    if (!e) throw new Error(`pod ${d.desired.workload.namespace}/${d.desired.workload.name} is in the mesh but not enrolled`);
    if (this.cookieOf(sandbox.netns) !== e.netnsCookie) throw new Error(`pod ${d.desired.workload.namespace}/${d.desired.workload.name} is enrolled with another network namespace`);
  }

  // ---- API events -------------------------------------------------------------------------------

  private podChanged(o: PodObject): void {
    const view = podView(o);
    if (!view || view.nodeName !== this.opts.node) return;
    const replaced = this.state.setPod(view);
    if (replaced !== undefined) this.podGone(replaced, 'a new pod of the same name replaced it');
    if (this.state.sandboxes.has(view.uid)) this.syncLater(view.uid);
  }

  private podDeleted(o: PodObject): void {
    const view = podView(o);
    if (view) this.podGone(view.uid, 'the pod was deleted');
  }

  private podGone(uid: string, why: string): void {
    this.state.deletePod(uid);
    if (!this.state.deleteSandbox(uid)) return;
    void this.queue.run(uid, () => this.enrollment!.remove(keyOf(uid), why)).catch((err: unknown) => this.log.error({ uid, err }, 'unenroll failed'));
    this.saveSoon();
  }

  private namespaceChanged(o: { metadata?: { name?: string; labels?: Record<string, string> } }): void {
    const name = o.metadata?.name;
    if (!name) return;
    this.state.namespaces.set(name, { ...(o.metadata?.labels ?? {}) });
    for (const uid of this.state.sandboxesIn(name)) this.syncLater(uid);
  }

  private namespaceDeleted(o: { metadata?: { name?: string } }): void {
    if (o.metadata?.name) this.state.namespaces.delete(o.metadata.name);
  }

  // ---- reconciling ------------------------------------------------------------------------------

  private desired(uid: string): Desired {
    const pod = this.state.pods.get(uid);
    return desiredFor(pod, this.state.sandboxes.get(uid), pod ? this.state.namespaces.get(pod.namespace) : undefined, this.opts.trustDomain);
  }

  /** Make the enrollment of `uid` what the current state says (run in order per pod). */
  private sync(uid: string, opts: PutOptions = {}): Promise<Desired> {
    return this.queue.run(uid, async () => {
      const d = this.desired(uid);
      const enrollment = this.enrollment!;
      const key = keyOf(uid);
      const sandbox = this.state.sandboxes.get(uid);
      if (d.kind === 'enroll') {
        const e = await enrollment.put(key, d.desired, opts);
        if (sandbox === this.state.sandboxes.get(uid) && sandbox) sandbox.enrolled = { workload: e.workload, netnsCookie: e.netnsCookie.toString() };
      } else if (d.kind === 'leave') {
        await enrollment.remove(key, d.why);
        if (sandbox) delete sandbox.enrolled;
      } else if (d.kind === 'refuse') {
        const kept = enrollment.get(key) !== undefined;
        this.log.error({ event: 'pod-refused', uid, problem: d.problem, kept }, kept ? 'pod change refused; its previous enrollment stays' : 'pod refused');
      }
      this.saveSoon();
      return d;
    });
  }

  private syncLater(uid: string): void {
    void this.sync(uid).catch((err: unknown) => this.log.error({ event: 'pod-refused', uid, reason: describeCause(err) }, 'pod enrollment failed'));
  }

  /** Enroll again what the previous agent had enrolled, if its network namespace is still the same. */
  private async restore(): Promise<void> {
    for (const r of this.store.load()) {
      let cookie: bigint;
      try {
        cookie = this.cookieOf(r.netns);
      } catch {
        continue; // the sandbox is gone
      }
      if (r.enrolled && r.enrolled.netnsCookie !== cookie.toString()) continue; // another namespace at that path
      this.state.setSandbox(r);
      if (!r.enrolled) continue;
      try {
        await this.enrollment!.put(keyOf(r.uid), { workload: r.enrolled.workload, ...(r.hostInterface ? { hostInterface: r.hostInterface } : {}) });
      } catch (err) {
        delete r.enrolled;
        this.log.warn({ uid: r.uid, pod: `${r.namespace}/${r.name}`, reason: describeCause(err) }, 'cannot enroll a recorded pod again');
      }
    }
  }

  /** After the first lists: pods gone meanwhile leave, running members without a sandbox are found. */
  private async reconcile(): Promise<void> {
    if (this.closed) return;
    for (const uid of [...this.state.sandboxes.keys()]) {
      if (!this.state.pods.has(uid)) this.podGone(uid, 'the pod no longer exists');
    }
    await this.discover();
    if (this.closed) return;
    const results = await Promise.allSettled([...this.state.sandboxes.keys()].map((uid) => this.sync(uid)));
    const failed = results.filter((r) => r.status === 'rejected').length;
    this.isSynced = true;
    this.save();
    this.log.info({ pods: this.state.pods.size, sandboxes: this.state.sandboxes.size, enrolled: this.enrollment!.size, failed }, 'node reconciled with the Kubernetes API');
    this.resolveSynced();
  }

  /** Running members with an IP and no known sandbox (started before the agent ever ran): their netns from /proc. */
  private async discover(): Promise<void> {
    const undiscovered = (p: PodView): boolean => !this.state.sandboxes.has(p.uid) && p.podIp !== undefined && !p.hostNetwork && p.phase === 'Running';
    const wanted = [...this.state.pods.values()].filter((p) => undiscovered(p) && this.wouldBeMember(p));
    if (wanted.length === 0) return;
    const found = await scanProcNetns(this.opts.procRoot);
    for (const asked of wanted) {
      // The scan yielded: the pod may have gone, changed, or been given a sandbox by a CNI ADD meanwhile.
      const pod = this.state.pods.get(asked.uid);
      if (!pod || !undiscovered(pod) || pod.podIp !== asked.podIp || !this.wouldBeMember(pod)) continue;
      const c = found.get(pod.podIp!);
      if (!c || c.ambiguous) {
        this.log.warn({ pod: `${pod.namespace}/${pod.name}`, ip: pod.podIp, reason: c ? 'several network namespaces have its address' : 'no process has its address' }, 'cannot find the network namespace of a running pod: restart it to enroll it');
        continue;
      }
      this.state.setSandbox({ containerId: `discovered-${pod.uid}`, uid: pod.uid, namespace: pod.namespace, name: pod.name, netns: c.netns, ip: pod.podIp, discovered: true });
      this.log.info({ pod: `${pod.namespace}/${pod.name}`, netns: c.netns }, 'found a running pod\'s network namespace');
    }
  }

  private wouldBeMember(pod: PodView): boolean {
    const somewhere: SandboxRecord = { containerId: '-', uid: pod.uid, namespace: pod.namespace, name: pod.name, netns: '/', ip: pod.podIp };
    const d = desiredFor(pod, somewhere, this.state.namespaces.get(pod.namespace), this.opts.trustDomain);
    return d.kind === 'enroll' || d.kind === 'refuse';
  }

  // ---- lookups for CNI ------------------------------------------------------------------------

  private uidOfRef(ref: CniPodRef | undefined): string | undefined {
    if (!ref) return undefined;
    return ref.uid ?? this.state.podByName(ref.namespace, ref.name)?.uid;
  }

  private async lookupPod(ref: CniPodRef): Promise<PodView> {
    const cached = this.state.podByName(ref.namespace, ref.name);
    if (cached && (ref.uid === undefined || cached.uid === ref.uid)) return cached;
    const what = `get pod ${ref.namespace}/${ref.name}`;
    let obj: PodObject | undefined;
    try {
      obj = await this.opts.client.call(what, () => this.opts.client.core.readNamespacedPod({ namespace: ref.namespace, name: ref.name }), {
        notFound: 'undefined',
        timeoutMs: this.opts.lookupTimeoutMs ?? 1500,
      });
    } catch (err) {
      throw new CniRefusal(CniErrorCode.TRY_AGAIN_LATER, describeCause(err));
    }
    const view = obj && podView(obj);
    if (!view) throw new CniRefusal(CniErrorCode.ENROLL_FAILED, `pod ${ref.namespace}/${ref.name} does not exist in the Kubernetes API`);
    if (ref.uid !== undefined && view.uid !== ref.uid) {
      throw new CniRefusal(CniErrorCode.ENROLL_FAILED, `pod ${ref.namespace}/${ref.name} in the Kubernetes API has uid ${view.uid}, not the ${ref.uid} the runtime gave (the pod was replaced)`);
    }
    if (!this.state.pods.has(view.uid)) this.state.setPod(view);
    return view;
  }

  private async lookupNamespace(name: string): Promise<void> {
    if (this.state.namespaces.has(name)) return;
    const what = `get namespace ${name}`;
    let obj: { metadata?: { labels?: Record<string, string> } } | undefined;
    try {
      obj = await this.opts.client.call(what, () => this.opts.client.core.readNamespace({ name }), { notFound: 'undefined', timeoutMs: this.opts.lookupTimeoutMs ?? 1500 });
    } catch (err) {
      throw new CniRefusal(CniErrorCode.TRY_AGAIN_LATER, describeCause(err));
    }
    if (!obj) throw new CniRefusal(CniErrorCode.ENROLL_FAILED, `namespace ${name} does not exist in the Kubernetes API`);
    if (!this.state.namespaces.has(name)) this.state.namespaces.set(name, { ...(obj.metadata?.labels ?? {}) });
  }

  // ---- the record in the run directory ----------------------------------------------------------

  private saveSoon(): void {
    if (this.saveTimer || this.closed) return;
    this.saveTimer = setImmediate(() => {
      this.saveTimer = undefined;
      this.save();
    });
  }

  private save(): void {
    try {
      this.store.save(this.state.sandboxes.values());
    } catch (err) {
      this.log.error({ file: this.store.file, reason: describeCause(err) }, 'cannot record the pod sandboxes (a restart would find them from the API and /proc)');
    }
  }
}

function keyOf(uid: string): string {
  return `kubernetes:${uid}`;
}
