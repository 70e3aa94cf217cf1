/**
 * Part of the Kubernetes API double (./index.ts): request paths, as the API server lays them out.
 *   /api/v1/<resource>                              cluster-scoped collection, or all namespaces
 *   /api/v1/<resource>/<name>[/status]              a cluster-scoped object
 *   /api/v1/namespaces/<ns>/<resource>[/<name>[/status]]
 *   /apis/<group>/<version>/…                       the same for a named group
 *   /api/v1/watch/…, /apis/<g>/<v>/watch/…          the legacy watch paths
 * and the discovery documents (/api, /apis, /api/v1, /apis/<g>/<v>, /version).
 */
import { apiVersionOf, type ResourceType, type ResourceTypes } from './resources';
import { ApiError } from './store';

export type Target =
  | { kind: 'document'; body: unknown }
  | { kind: 'collection'; type: ResourceType; apiVersion: string; namespace: string | undefined; watchPath: boolean }
  | { kind: 'object'; type: ResourceType; apiVersion: string; namespace: string; name: string; subresource: 'status' | undefined; watchPath: boolean };

const notFound = (): ApiError => new ApiError(404, 'NotFound', 'the server could not find the requested resource');

export function route(pathname: string, types: ResourceTypes): Target {
  const segs = pathname.split('/').filter((s) => s !== '').map(decodeURIComponent);
  if (segs[0] === 'version' && segs.length === 1) {
    return { kind: 'document', body: { major: '1', minor: '31', gitVersion: 'v1.31.0-palisade-double', platform: 'linux/amd64' } };
  }
  let group: string;
  let version: string;
  let rest: string[];
  if (segs[0] === 'api') {
    if (segs.length === 1) return { kind: 'document', body: { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [] } };
    [group, version, rest] = ['', segs[1]!, segs.slice(2)];
  } else if (segs[0] === 'apis') {
    if (segs.length === 1) return { kind: 'document', body: groupList(types) };
    if (segs.length < 3) throw notFound();
    [group, version, rest] = [segs[1]!, segs[2]!, segs.slice(3)];
  } else {
    throw notFound();
  }
  const served = types.all().filter((t) => t.group === group && t.versions.includes(version));
  if (served.length === 0) throw notFound();
  const apiVersion = apiVersionOf(group, version);
  if (rest.length === 0) return { kind: 'document', body: resourceList(apiVersion, served) };
  const watchPath = rest[0] === 'watch';
  if (watchPath) rest = rest.slice(1);
  const find = (resource: string): ResourceType | undefined => types.find(group, version, resource);

  // namespaces/<ns>/<resource>…: a namespaced resource inside one namespace.
  if (rest[0] === 'namespaces' && rest.length >= 3 && find(rest[2]!)?.namespaced) {
    const type = find(rest[2]!)!;
    const [, ns, , name, sub, ...more] = rest;
    if (more.length > 0 || (sub !== undefined && sub !== 'status') || (sub === 'status' && !type.status)) throw notFound();
    if (name === undefined) return { kind: 'collection', type, apiVersion, namespace: ns, watchPath };
    return { kind: 'object', type, apiVersion, namespace: ns!, name, subresource: sub as 'status' | undefined, watchPath };
  }
  const type = find(rest[0]!);
  if (!type) throw notFound();
  const [, name, sub, ...more] = rest;
  if (more.length > 0 || (sub !== undefined && sub !== 'status') || (sub === 'status' && !type.status)) throw notFound();
  if (name === undefined) return { kind: 'collection', type, apiVersion, namespace: undefined, watchPath };
  if (type.namespaced) throw notFound(); // a namespaced object needs its namespace in the path
  return { kind: 'object', type, apiVersion, namespace: '', name, subresource: sub as 'status' | undefined, watchPath };
}

const VERBS = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];

function resourceList(groupVersion: string, types: ResourceType[]): unknown {
  const resources = types.flatMap((t) => [
    { name: t.resource, singularName: t.kind.toLowerCase(), namespaced: t.namespaced, kind: t.kind, verbs: VERBS },
    ...(t.status ? [{ name: `${t.resource}/status`, singularName: '', namespaced: t.namespaced, kind: t.kind, verbs: ['get', 'patch', 'update'] }] : []),
  ]);
  return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion, resources };
}

function groupList(types: ResourceTypes): unknown {
  const groups = new Map<string, Set<string>>();
  for (const t of types.all()) {
    if (t.group === '') continue;
    const set = groups.get(t.group) ?? new Set<string>();
    for (const v of t.versions) set.add(v);
    groups.set(t.group, set);
  }
  return {
    kind: 'APIGroupList',
    apiVersion: 'v1',
    groups: [...groups].map(([name, versions]) => {
      const list = [...versions].map((version) => ({ groupVersion: `${name}/${version}`, version }));
      return { name, versions: list, preferredVersion: list[0] };
    }),
  };
}
