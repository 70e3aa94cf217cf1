/**
 * A list + watch of one kind of object that keeps going: client-node's ListWatch (list, then
 * watch from the list's resourceVersion; a 410 Gone relists and reports what went away as
 * deletes), restarted after a back-off whenever it stops on an error (a cut watch, an API that
 * is away or refuses), resuming from its last resourceVersion. `synced()` resolves once the
 * first list has been delivered. An outage never produces a delete: only the API's own answers do.
 */
import type * as K8s from '@kubernetes/client-node';
import { describeCause } from '../errors';
import type { Logger } from '../log';
import { Backoff } from '../backoff';
import { kubeError, type KubeClient } from './client';

export interface InformerOptions<T extends K8s.KubernetesObject> {
  client: KubeClient;
  /** What is watched, for logs: "pods of node node-1". */
  what: string;
  /** The API path: /api/v1/pods, /apis/discovery.k8s.io/v1/endpointslices, … */
  path: string;
  list: () => Promise<K8s.KubernetesListObject<T>>;
  fieldSelector?: string;
  labelSelector?: string;
  log: Logger;
  backoff?: { initialMs?: number; maxMs?: number };
}

export interface InformerHandlers<T> {
  add?(obj: T): void;
  update?(obj: T): void;
  delete?(obj: T): void;
}

export class Informer<T extends K8s.KubernetesObject> {
  /** Lists done (the first one, and every relist after a 410). */
  lists = 0;
  /** Times the list+watch stopped on an error and was restarted. */
  restarts = 0;
  private readonly lw: K8s.ListWatch<T>;
  private readonly backoff: Backoff;
  private readonly log: Logger;
  private listing = false;
  private stopped = false;
  private failing = false;
  private timer: NodeJS.Timeout | undefined;
  private resolveSynced!: () => void;
  private readonly firstSync = new Promise<void>((resolve) => (this.resolveSynced = resolve));
  private isSynced = false;

  constructor(private readonly opts: InformerOptions<T>, handlers: InformerHandlers<T>) {
    this.log = opts.log;
    this.backoff = new Backoff({ initialMs: opts.backoff?.initialMs ?? 500, maxMs: opts.backoff?.maxMs ?? 10_000 });
    const watch = opts.client.newWatch();
    // ListWatch calls watch() right after it has delivered a list: that is when a list is done.
    const noticing = {
      watch: (path: string, params: Record<string, string | number | boolean | undefined>, cb: (phase: string, obj: unknown, watchObj?: unknown) => void, done: (err: unknown) => void) => {
        if (this.listing) {
          this.listing = false;
          this.lists += 1;
          if (this.failing) this.log.info({ what: opts.what }, 'Kubernetes API reachable again');
          this.failing = false;
          this.backoff.reset();
          if (!this.isSynced) {
            this.isSynced = true;
            this.resolveSynced();
          }
        }
        return watch.watch(path, params, cb, done);
      },
    } as unknown as K8s.Watch;
    const list = async (): Promise<K8s.KubernetesListObject<T>> => {
      const result = await opts.client.call(`list ${opts.what}`, opts.list);
      this.listing = true;
      return result!;
    };
    this.lw = new opts.client.k8s.ListWatch<T>(opts.path, noticing, list, false, opts.labelSelector, opts.fieldSelector);
    if (handlers.add) this.lw.on('add', handlers.add);
    if (handlers.update) this.lw.on('update', handlers.update);
    if (handlers.delete) this.lw.on('delete', handlers.delete);
    this.lw.on('error', (err: unknown) => this.failed(err));
  }

  /** Begin listing and watching; never throws (failures are logged and retried). */
  start(): void {
    this.stopped = false;
    void this.lw.start().catch((err: unknown) => this.failed(err));
  }

  synced(): Promise<void> {
    return this.firstSync;
  }

  get hasSynced(): boolean {
    return this.isSynced;
  }

  /** Listed, and not stopped on an error since its last list: what it holds is current. */
  get healthy(): boolean {
    return this.isSynced && !this.failing;
  }

  /** The objects as last listed and watched. */
  cached(): readonly T[] {
    return this.lw.list();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.lw.stop();
  }

  private failed(err: unknown): void {
    if (this.stopped) return;
    this.listing = false;
    this.restarts += 1;
    const delay = this.backoff.next();
    const reason = err instanceof Error && (err as { code?: unknown }).code === 'PALISADE_ERR_KUBERNETES' ? err.message : kubeError(`watch ${this.opts.what}`, err).message;
    // The first failure of a streak is a warning; the retries after it are debug.
    this.log[this.failing ? 'debug' : 'warn']({ what: this.opts.what, reason: describeCause(reason), retryInMs: delay }, 'Kubernetes list/watch stopped; restarting');
    this.failing = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (!this.stopped) this.start();
    }, delay);
    this.timer.unref();
  }
}
