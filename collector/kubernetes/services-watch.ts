/**
 * The collector's watch of the cluster's Services and EndpointSlices (all namespaces), joined by
 * the slices' `kubernetes.io/service-name` label into the registry's services. Changes come in
 * bursts (a rollout touches many slices): they are coalesced for `debounceMs` before the registry
 * (and every agent) gets the new list. Only the services whose objects changed are built again;
 * the others are the same objects as before, so the registry finds what changed without comparing
 * every service (and pushes only those: collector/registry.ts). An API outage changes nothing;
 * only the API's answers do.
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
  /** Each service's slices, by `namespace/service`, then slice key. */
  private readonly slicesOf = new Map<string, Map<string, EndpointSliceObject>>();
  /** Each service as last built (undefined: not a service the registry takes, e.g. ExternalName). */
  private readonly built = new Map<string, RegistryService | undefined>();
  /** Services whose objects changed since they were built. */
  private readonly dirty = new Set<string>();
  private readonly informers: Array<Informer<Named>>;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private readonly opts: ServicesWatchOptions) {
    const { client } = opts;
    const log = opts.log.child({ component: 'kubernetes-services' });
    const keyed = <T extends Named>(map: Map<string, T>) => ({
      add: (o: T) => this.put(map, o),
      update: (o: T) => this.put(map, o),
      delete: (o: T) => this.put(map, o, true),
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

  /** The services as the objects now say (those unchanged since the last call: the same objects). */
  current(): RegistryService[] {
    for (const key of this.dirty) {
      const svc = this.services.get(key);
      if (svc) this.built.set(key, serviceFromObjects(svc, [...(this.slicesOf.get(key)?.values() ?? [])]));
      else this.built.delete(key);
    }
    this.dirty.clear();
    const out: RegistryService[] = [];
    for (const service of this.built.values()) if (service) out.push(service);
    return out.sort((a, b) => (`${a.namespace}/${a.name}` < `${b.namespace}/${b.name}` ? -1 : 1));
  }

  /** Store (or with `gone`, drop) a Service or an EndpointSlice; the service(s) it belongs to are built again. */
  private put<T extends Named>(map: Map<string, T>, o: T, gone = false): void {
    const key = `${o.metadata?.namespace}/${o.metadata?.name}`;
    const before = map.get(key);
    if (gone) map.delete(key);
    else map.set(key, o);
    if (map === (this.services as Map<string, unknown>)) this.dirty.add(key);
    else {
      const was = serviceOf(before as EndpointSliceObject | undefined);
      const now = gone ? undefined : serviceOf(o as EndpointSliceObject);
      if (was !== undefined && was !== now) {
        this.dirty.add(was);
        const slices = this.slicesOf.get(was)!;
        slices.delete(key);
        if (slices.size === 0) this.slicesOf.delete(was);
      }
      if (now !== undefined) {
        this.dirty.add(now);
        (this.slicesOf.get(now) ?? this.slicesOf.set(now, new Map()).get(now)!).set(key, o as EndpointSliceObject);
      }
    }
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

/** `namespace/service` of the Service an EndpointSlice belongs to (its service-name label). */
function serviceOf(slice: EndpointSliceObject | undefined): string | undefined {
  const svc = slice?.metadata?.labels?.[SERVICE_NAME_LABEL];
  return svc && slice?.metadata?.namespace ? `${slice.metadata.namespace}/${svc}` : undefined;
}
