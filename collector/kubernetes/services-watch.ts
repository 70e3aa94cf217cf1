/**
 * The collector's watch of the cluster's Services and EndpointSlices (all namespaces), joined by
 * the slices' `kubernetes.io/service-name` label into the registry's services. Changes come in
 * bursts (a rollout touches many slices): they are coalesced for `debounceMs` before the registry
 * (and every agent) gets the new list. An API outage changes nothing; only the API's answers do.
 */
import type { KubeClient } from '../../common/kube/client';
import { Informer } from '../../common/kube/informer';
import type { Logger } from '../../common/log';
import type { RegistryService } from '../../common/mesh-protocol';
import { SERVICE_NAME_LABEL, serviceFromObjects, type EndpointSliceObject, type ServiceObject } from './service-objects';

export interface ServicesWatchOptions {
  client: KubeClient;
  log: Logger;
  onServices: (services: RegistryService[]) => void;
  debounceMs?: number;
}

type Named = { metadata?: { namespace?: string; name?: string; labels?: Record<string, string> } };

export class ServicesWatch {
  private readonly services = new Map<string, ServiceObject>();
  private readonly slices = new Map<string, EndpointSliceObject>();
  private readonly informers: Array<Informer<Named>>;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private readonly opts: ServicesWatchOptions) {
    const { client } = opts;
    const log = opts.log.child({ component: 'kubernetes-services' });
    const keyed = <T extends Named>(map: Map<string, T>) => ({
      add: (o: T) => this.put(map, o),
      update: (o: T) => this.put(map, o),
      delete: (o: T) => this.drop(map, o),
    });
    this.informers = [
      new Informer<Named>({ client, what: 'services', path: '/api/v1/services', list: () => client.core.listServiceForAllNamespaces(), log }, keyed(this.services) as never),
      new Informer<Named>(
        { client, what: 'endpoint slices', path: '/apis/discovery.k8s.io/v1/endpointslices', list: () => client.discovery.listEndpointSliceForAllNamespaces(), log },
        keyed(this.slices) as never,
      ),
    ];
  }

  start(): void {
    for (const i of this.informers) i.start();
    void Promise.all(this.informers.map((i) => i.synced())).then(() => this.publish());
  }

  synced(): Promise<void> {
    return Promise.all(this.informers.map((i) => i.synced())).then(() => undefined);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await Promise.all(this.informers.map((i) => i.stop()));
  }

  get isSynced(): boolean {
    return this.informers.every((i) => i.hasSynced);
  }

  /** The services as the objects now say. */
  current(): RegistryService[] {
    const slicesOf = new Map<string, EndpointSliceObject[]>();
    for (const s of this.slices.values()) {
      const svc = s.metadata?.labels?.[SERVICE_NAME_LABEL];
      if (!svc || !s.metadata?.namespace) continue;
      const key = `${s.metadata.namespace}/${svc}`;
      (slicesOf.get(key) ?? slicesOf.set(key, []).get(key)!).push(s);
    }
    const out: RegistryService[] = [];
    for (const [key, svc] of this.services) {
      const service = serviceFromObjects(svc, slicesOf.get(key) ?? []);
      if (service) out.push(service);
    }
    return out.sort((a, b) => (`${a.namespace}/${a.name}` < `${b.namespace}/${b.name}` ? -1 : 1));
  }

  private put<T extends Named>(map: Map<string, T>, o: T): void {
    map.set(`${o.metadata?.namespace}/${o.metadata?.name}`, o);
    this.changed();
  }

  private drop<T extends Named>(map: Map<string, T>, o: T): void {
    map.delete(`${o.metadata?.namespace}/${o.metadata?.name}`);
    this.changed();
  }

  private changed(): void {
    if (this.timer || this.stopped || !this.informers.every((i) => i.hasSynced)) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.publish();
    }, this.opts.debounceMs ?? 50);
  }

  private publish(): void {
    if (!this.stopped) this.opts.onServices(this.current());
  }
}
