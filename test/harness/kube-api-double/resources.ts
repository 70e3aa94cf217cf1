/**
 * Part of the Kubernetes API double (./index.ts): the resource types it serves. The built-in ones
 * Palisade reads (Pods, Namespaces, Services, EndpointSlices, Nodes, Secrets, ConfigMaps, Events,
 * ServiceAccounts, CustomResourceDefinitions, Leases: ./leases.ts) and any custom resource, generic by group, version
 * and resource; creating a CustomResourceDefinition registers its resource as the API server does.
 */

export interface ResourceType {
  /** '' for the core group. */
  group: string;
  /** Every version it is served in (one storage: an object reads the same in each). */
  versions: string[];
  /** Plural, lower case: the path segment. */
  resource: string;
  kind: string;
  namespaced: boolean;
  /** Has a status subresource: writes to the object keep its status, writes to /status only change status. */
  status: boolean;
  /** Field selectors besides metadata.name and metadata.namespace. */
  fields: string[];
  /** Custom resources keep apiVersion/kind on list items (built-in lists omit them). */
  custom: boolean;
  /** An update must carry a resourceVersion (the type allows no unconditional update: 422 without one). */
  requireResourceVersion?: boolean;
  /** The type's own validation of a created or updated object: throws an ApiError. */
  check?(obj: Record<string, unknown>): void;
}

const BUILT_IN: ResourceType[] = [
  {
    group: '',
    versions: ['v1'],
    resource: 'pods',
    kind: 'Pod',
    namespaced: true,
    status: true,
    fields: ['spec.nodeName', 'spec.serviceAccountName', 'spec.hostNetwork', 'spec.restartPolicy', 'spec.schedulerName', 'status.phase', 'status.podIP', 'status.nominatedNodeName'],
    custom: false,
  },
  { group: '', versions: ['v1'], resource: 'namespaces', kind: 'Namespace', namespaced: false, status: true, fields: ['status.phase'], custom: false },
  { group: '', versions: ['v1'], resource: 'services', kind: 'Service', namespaced: true, status: true, fields: ['spec.clusterIP', 'spec.type'], custom: false },
  { group: '', versions: ['v1'], resource: 'nodes', kind: 'Node', namespaced: false, status: true, fields: ['spec.unschedulable'], custom: false },
  { group: '', versions: ['v1'], resource: 'secrets', kind: 'Secret', namespaced: true, status: false, fields: ['type'], custom: false },
  { group: '', versions: ['v1'], resource: 'configmaps', kind: 'ConfigMap', namespaced: true, status: false, fields: [], custom: false },
  { group: '', versions: ['v1'], resource: 'serviceaccounts', kind: 'ServiceAccount', namespaced: true, status: false, fields: [], custom: false },
  {
    group: '',
    versions: ['v1'],
    resource: 'events',
    kind: 'Event',
    namespaced: true,
    status: false,
    fields: ['involvedObject.kind', 'involvedObject.namespace', 'involvedObject.name', 'involvedObject.uid', 'reason', 'type'],
    custom: false,
  },
  { group: 'discovery.k8s.io', versions: ['v1'], resource: 'endpointslices', kind: 'EndpointSlice', namespaced: true, status: false, fields: [], custom: false },
  {
    group: 'apiextensions.k8s.io',
    versions: ['v1'],
    resource: 'customresourcedefinitions',
    kind: 'CustomResourceDefinition',
    namespaced: false,
    status: true,
    fields: [],
    custom: false,
  },
];

export const CRD_GROUP = 'apiextensions.k8s.io';

export function apiVersionOf(group: string, version: string): string {
  return group === '' ? version : `${group}/${version}`;
}

/** The storage a resource's objects live in: one per group and resource, whatever the version. */
export function storageKey(type: Pick<ResourceType, 'group' | 'resource'>): string {
  return `${type.group}/${type.resource}`;
}

export class ResourceTypes {
  private readonly byKey = new Map<string, ResourceType>();

  constructor() {
    for (const t of BUILT_IN) this.register(t);
  }

  register(type: Omit<ResourceType, 'fields' | 'custom'> & Partial<Pick<ResourceType, 'fields' | 'custom'>>): ResourceType {
    const full: ResourceType = { fields: [], custom: true, ...type };
    this.byKey.set(storageKey(full), full);
    return full;
  }

  unregister(group: string, resource: string): void {
    this.byKey.delete(storageKey({ group, resource }));
  }

  /** The type served at group/version/resource, if any. */
  find(group: string, version: string, resource: string): ResourceType | undefined {
    const t = this.byKey.get(storageKey({ group, resource }));
    return t && t.versions.includes(version) ? t : undefined;
  }

  all(): ResourceType[] {
    return [...this.byKey.values()];
  }

  /** Field selectors the type supports. */
  fieldsOf(type: ResourceType): string[] {
    return ['metadata.name', 'metadata.namespace', ...type.fields];
  }
}

/** The resource a CustomResourceDefinition object declares (undefined if it is not a usable one). */
export function typeFromCrd(crd: Record<string, unknown>): Omit<ResourceType, 'fields'> | undefined {
  const spec = crd.spec as
    | { group?: unknown; names?: { plural?: unknown; kind?: unknown }; scope?: unknown; versions?: Array<{ name?: unknown; served?: unknown; subresources?: { status?: unknown } }> }
    | undefined;
  if (!spec || typeof spec.group !== 'string' || typeof spec.names?.plural !== 'string' || typeof spec.names.kind !== 'string') return undefined;
  const versions = (spec.versions ?? []).filter((v) => v.served !== false && typeof v.name === 'string');
  if (versions.length === 0) return undefined;
  return {
    group: spec.group,
    versions: versions.map((v) => v.name as string),
    resource: spec.names.plural,
    kind: spec.names.kind,
    namespaced: spec.scope !== 'Cluster',
    status: versions.some((v) => v.subresources?.status !== undefined),
    custom: true,
  };
}
