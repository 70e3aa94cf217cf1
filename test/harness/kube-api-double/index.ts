/**
 * A DOUBLE of the Kubernetes API server, for tests: an HTTPS (or HTTP) server with the semantics
 * the real client (@kubernetes/client-node) relies on, in memory. It is not a Kubernetes: no
 * admission, no controllers, no schema validation, no graceful deletion, no server-side apply.
 * What it does, as the API server does it:
 *   - list and watch with resourceVersion (./watch.ts), 410 Gone for a compacted one, bookmarks;
 *   - fieldSelector (metadata.name, metadata.namespace and each type's own fields, e.g. a Pod's
 *     spec.nodeName) and labelSelector (=, ==, !=, in, notin, exists, !exists) (./selectors.ts);
 *   - get, create (generateName), update (optimistic concurrency), patch (JSON patch, merge
 *     patch; strategic merge patch applied as a merge patch) (./patch.ts), delete (preconditions),
 *     the status subresource, of built-in and custom resources by group/version/resource
 *     (./resources.ts); a CustomResourceDefinition registers its resource (./store.ts); Leases
 *     with their update and validation rules (./leases.ts);
 *   - what it fills in on create (./defaults.ts): a Pod's service account and phase, a Service's
 *     cluster IP; the namespaces `default` and `kube-system` exist from the start;
 *   - errors as `Status` objects with the API's codes and reasons; bearer-token authentication;
 *   - list pagination (limit/continue) over the current state: a continue token from before a
 *     write is 410 (the real server keeps a snapshot; the double does not).
 * Test controls: drop (reset) or end every watch, compact the history, send bookmarks now,
 * inject faults (an error status or no answer at all for matching requests), see the requests.
 * The harness plays the kubelet and the controllers through the same store (create/patch/…).
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import type { Socket } from 'node:net';
import * as path from 'node:path';
import { CertificateAuthority } from '../../../collector/mesh-ca';
import { generateKeyPair } from '../../../common/pki';
import { tempDir } from '../agent';
import { CreateDefaults } from './defaults';
import { handleRequest, type Fault, type RequestRecord } from './handlers';
import { LEASE_TYPE } from './leases';
import { mergePatch } from './patch';
import { apiVersionOf, CRD_GROUP, ResourceTypes, typeFromCrd, type ResourceType } from './resources';
import { ApiError, ObjectStore, type Change, type KubeObject } from './store';
import type { WatchStream } from './watch';

export type { Fault, RequestRecord } from './handlers';
export type { KubeObject } from './store';
export type { ResourceType } from './resources';

export interface KubeApiDoubleOptions {
  /** HTTPS with a CA of its own (default), or plain HTTP. */
  tls?: boolean;
  /** Require `Authorization: Bearer <token>`. */
  token?: string;
  /** How often watches that asked for bookmarks get one (default 60 s, like the API server). */
  bookmarkIntervalMs?: number;
  /** Changes kept for watches that resume (default 10 000); older resourceVersions are 410. */
  maxHistory?: number;
}

/** `group/version/resource`, or `version/resource` for the core group: 'v1/pods', 'discovery.k8s.io/v1/endpointslices'. */
export type ResourceRef = string;

/** What `KubeConfig.loadFromOptions` takes, to point the real client at the double. */
export interface KubeConfigOptions {
  clusters: Array<{ name: string; server: string; caData?: string; skipTLSVerify?: boolean }>;
  users: Array<{ name: string; token?: string }>;
  contexts: Array<{ name: string; cluster: string; user: string }>;
  currentContext: string;
}

export class KubeApiDouble {
  readonly types = new ResourceTypes();
  readonly store: ObjectStore;
  /** The last 1000 requests, oldest first. */
  readonly requests: RequestRecord[] = [];
  readonly watches = new Set<WatchStream>();
  readonly held = new Set<http.ServerResponse>();
  private readonly faults: Fault[] = [];
  private readonly defaults = new CreateDefaults();
  private readonly sockets = new Set<Socket>();
  private server!: http.Server;
  private unixServers: http.Server[] = [];
  private tlsOptions: { key: string; cert: string } | undefined;
  private dir: string | undefined;
  url = '';
  caPem: string | undefined;

  private constructor(readonly opts: KubeApiDoubleOptions) {
    this.store = new ObjectStore(opts.maxHistory ?? 10_000);
    this.types.register(LEASE_TYPE);
    this.store.onChange((c) => this.onChange(c));
  }

  static async start(opts: KubeApiDoubleOptions = {}): Promise<KubeApiDouble> {
    const d = new KubeApiDouble(opts);
    const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => handleRequest(d, req, res);
    if (opts.tls === false) {
      d.server = http.createServer(handler);
    } else {
      d.dir = tempDir('kube-api-double');
      const ca = CertificateAuthority.loadOrCreate(d.dir, 'cluster.local');
      const key = await generateKeyPair();
      const cert = ca.issue(key.publicKeyPem, { ips: ['127.0.0.1'], dnsNames: ['localhost', 'kubernetes.default.svc'], ttlSeconds: 24 * 3600, usage: 'server' });
      d.caPem = ca.certPem;
      d.tlsOptions = { key: key.privateKeyPem, cert };
      d.server = https.createServer(d.tlsOptions, handler);
    }
    d.server.on('connection', (s: Socket) => {
      d.sockets.add(s);
      s.on('close', () => d.sockets.delete(s));
    });
    // The namespaces every cluster has.
    for (const name of ['default', 'kube-system']) d.create('v1/namespaces', { metadata: { name } });
    await new Promise<void>((resolve) => d.server.listen(0, '127.0.0.1', resolve));
    const { port } = d.server.address() as { port: number };
    d.url = `${opts.tls === false ? 'http' : 'https'}://127.0.0.1:${port}`;
    return d;
  }

  kubeConfig(): KubeConfigOptions {
    return {
      // client-node refuses plain HTTP unless told to skip TLS verification.
      clusters: [{ name: 'double', server: this.url, ...(this.caPem ? { caData: Buffer.from(this.caPem).toString('base64') } : { skipTLSVerify: true }) }],
      users: [{ name: 'test', ...(this.opts.token ? { token: this.opts.token } : {}) }],
      contexts: [{ name: 'double', cluster: 'double', user: 'test' }],
      currentContext: 'double',
    };
  }

  /**
   * Also serve on a Unix socket (the same HTTPS and certificate): a process in another network
   * namespace reaches the double through it (test/fixtures/tcp-unix-bridge.js listens on that
   * namespace's 127.0.0.1 and forwards here).
   */
  async listenUnix(socketPath: string): Promise<void> {
    const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => handleRequest(this, req, res);
    const server = this.tlsOptions ? https.createServer(this.tlsOptions, handler) : http.createServer(handler);
    server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, () => resolve());
    });
    this.unixServers.push(server);
  }

  /** A kubeconfig file for the real client (`palisade agent --kubeconfig`), pointing at `server` (default: this double's URL). */
  writeKubeconfig(file: string, server = this.url): void {
    const cluster = { server, ...(this.caPem ? { 'certificate-authority-data': Buffer.from(this.caPem).toString('base64') } : { 'insecure-skip-tls-verify': true }) };
    const config = {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'double', cluster }],
      users: [{ name: 'test', user: this.opts.token ? { token: this.opts.token } : {} }],
      contexts: [{ name: 'double', context: { cluster: 'double', user: 'test' } }],
      'current-context': 'double',
    };
    fs.writeFileSync(file, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  }

  get resourceVersion(): string {
    return String(this.store.resourceVersion);
  }

  /** The type `ref` names ('v1/pods', 'security.istio.io/v1/authorizationpolicies'); throws if unknown. */
  resource(ref: ResourceRef): { type: ResourceType; apiVersion: string } {
    const parts = ref.split('/');
    const [group, version, resource] = parts.length === 2 ? ['', parts[0]!, parts[1]!] : [parts[0]!, parts[1]!, parts[2]!];
    const type = this.types.find(group, version, resource);
    if (!type) throw new Error(`the Kubernetes API double serves no ${ref}`);
    return { type, apiVersion: apiVersionOf(group, version) };
  }

  registerResource(type: Omit<ResourceType, 'fields' | 'custom'> & Partial<Pick<ResourceType, 'fields'>>): ResourceType {
    return this.types.register(type);
  }

  // ---- the harness's own writes (it plays the kubelet and the controllers), same rules as the API's ----

  create(ref: ResourceRef, obj: Record<string, unknown>): KubeObject {
    const { type, apiVersion } = this.resource(ref);
    const ns = type.namespaced ? String((obj.metadata as { namespace?: unknown } | undefined)?.namespace ?? 'default') : '';
    return this.typed(this.createObject(type, ns, obj), type, apiVersion);
  }

  get(ref: ResourceRef, namespace: string, name: string): KubeObject | undefined {
    const { type, apiVersion } = this.resource(ref);
    const o = this.store.get(type, type.namespaced ? namespace : '', name);
    return o && this.typed(o, type, apiVersion);
  }

  list(ref: ResourceRef, namespace?: string): KubeObject[] {
    const { type, apiVersion } = this.resource(ref);
    return this.store.list(type, namespace).map((o) => this.typed(o, type, apiVersion));
  }

  /** A merge patch of the object, or of its status with `{ status: true }` (the kubelet's podIP). */
  patch(ref: ResourceRef, namespace: string, name: string, patch: Record<string, unknown>, opts: { status?: boolean } = {}): KubeObject {
    const { type, apiVersion } = this.resource(ref);
    const merge = (old: KubeObject): unknown => mergePatch(old, patch);
    return this.typed(this.store.update(type, type.namespaced ? namespace : '', name, merge, opts.status ? 'status' : undefined), type, apiVersion);
  }

  delete(ref: ResourceRef, namespace: string, name: string): KubeObject {
    const { type, apiVersion } = this.resource(ref);
    return this.typed(this.deleteObject(type, type.namespaced ? namespace : '', name), type, apiVersion);
  }

  // ---- test controls ----

  /**
   * Cut every watch connection mid-stream ('reset') or end every stream cleanly ('end'); returns how
   * many. Watch requests a `hang` fault holds unanswered are connections too: both modes cut them (a
   * hung watch left behind would keep its client waiting for ever, whatever the test does next).
   */
  dropWatches(mode: 'reset' | 'end' = 'reset'): number {
    const all = [...this.watches];
    for (const w of all) (mode === 'reset' ? w.reset() : w.end());
    const held = [...this.held];
    for (const res of held) res.destroy();
    this.held.clear();
    return all.length + held.length;
  }

  /** Forget the change history: a watch resuming from any earlier resourceVersion gets 410 Gone. */
  compact(): void {
    this.store.compact();
  }

  /** A BOOKMARK now on every watch that asked for them. */
  sendBookmarks(): void {
    for (const w of this.watches) w.bookmark();
  }

  /** Answer matching requests with an error status, or not at all (`hang`); returns a remover. */
  addFault(fault: Fault): () => void {
    this.faults.push(fault);
    return () => {
      const i = this.faults.indexOf(fault);
      if (i !== -1) this.faults.splice(i, 1);
    };
  }

  /** The first fault matching a request, used up by one. */
  takeFault(method: string, pathname: string, watch: boolean): Fault | undefined {
    const f = this.faults.find((x) => (x.method === undefined || x.method === method) && (x.path === undefined || x.path.test(pathname)) && (x.watch === undefined || x.watch === watch));
    if (f && f.times !== undefined && --f.times <= 0) this.faults.splice(this.faults.indexOf(f), 1);
    return f;
  }

  namespaceExists(ns: string): boolean {
    return this.store.get(this.resource('v1/namespaces').type, '', ns) !== undefined;
  }

  /** An object as the API shows it: apiVersion and kind first. */
  typed(o: KubeObject, type: ResourceType, apiVersion: string): KubeObject {
    return { apiVersion, kind: type.kind, ...o };
  }

  /** Create, as the API server does it: defaults filled in (./defaults.ts), a CustomResourceDefinition registers its resource. */
  createObject(type: ResourceType, namespace: string, body: unknown): KubeObject {
    const defaulted = this.defaults.apply(type, body);
    let obj: KubeObject;
    try {
      obj = this.store.create(type, namespace, defaulted, (n) => this.namespaceExists(n));
    } catch (err) {
      this.defaults.released(type, defaulted as KubeObject);
      throw err;
    }
    if (isCrd(type)) {
      const declared = typeFromCrd(obj);
      if (declared) this.types.register(declared);
    }
    return obj;
  }

  /** Delete, as the API server does it: a namespace takes its objects along, a CRD its resource. */
  deleteObject(type: ResourceType, namespace: string, name: string, preconditions?: { uid?: unknown; resourceVersion?: unknown }): KubeObject {
    const cascade = type.group === '' && type.resource === 'namespaces' ? () => this.deleteNamespaceContents(name) : undefined;
    const obj = this.store.delete(type, namespace, name, preconditions, cascade);
    this.defaults.released(type, obj);
    if (isCrd(type)) {
      const declared = typeFromCrd(obj);
      const existing = declared && this.types.find(declared.group, declared.versions[0]!, declared.resource);
      if (existing) {
        this.store.dropStorage(existing);
        this.types.unregister(existing.group, existing.resource);
      }
    }
    return obj;
  }

  private deleteNamespaceContents(ns: string): void {
    for (const type of this.types.all()) {
      if (!type.namespaced) continue;
      for (const o of this.store.list(type, ns)) this.deleteObject(type, ns, o.metadata.name);
    }
  }

  async close(): Promise<void> {
    this.dropWatches('reset');
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const u of this.unixServers) await new Promise<void>((resolve) => u.close(() => resolve()));
    if (this.dir) fs.rmSync(path.resolve(this.dir), { recursive: true, force: true });
  }

  private onChange(change: Change): void {
    for (const w of this.watches) w.deliver(change);
  }
}

function isCrd(type: ResourceType): boolean {
  return type.group === CRD_GROUP && type.resource === 'customresourcedefinitions';
}

export { ApiError };
