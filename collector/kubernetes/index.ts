/**
 * The collector and the Kubernetes API (`palisade collector --kubernetes`): the cluster's Services
 * and EndpointSlices become the registry's services (./services-watch.ts).
 */
import { KubeClient } from '../../common/kube/client';
import type { Logger } from '../../common/log';
import type { WorkloadRegistry } from '../registry';
import { ServicesWatch } from './services-watch';

export interface CollectorKubernetesOptions {
  /** A kubeconfig file; without it, the pod's service account. */
  kubeconfig?: string;
}

export interface CollectorKubernetes {
  client: KubeClient;
  /** Resolves once every watch has listed once. */
  synced(): Promise<void>;
  close(): Promise<void>;
}

export async function startCollectorKubernetes(opts: CollectorKubernetesOptions & { log: Logger; registry: WorkloadRegistry }): Promise<CollectorKubernetes> {
  const client = await KubeClient.connect({ kubeconfig: opts.kubeconfig });
  const log = opts.log.child({ component: 'kubernetes' });
  const services = new ServicesWatch({ client, log, onServices: (list) => opts.registry.setKubernetesServices(list) });
  services.start();
  log.info({ server: client.server }, 'watching the cluster\'s services');
  return {
    client,
    synced: () => services.synced(),
    close: () => services.stop(),
  };
}
