/**
 * Names the DNS proxy answers itself: every workload of the mesh (this node's and the registry's)
 * as `<name>.<namespace>.svc.<domain>`, and the short forms a pod may send without a search
 * list, read relative to the asking pod's namespace as Kubernetes' search path would:
 * `<name>` (its own namespace), `<name>.<namespace>`, `<name>.<namespace>.svc` (ztunnel answers
 * the same forms). A name that is none of these is not ours (undefined): it goes upstream, so a
 * cluster DNS still answers what the mesh does not know yet (services, until the registry has
 * them: add them as another source).
 */

export interface MeshNameEntry {
  name: string;
  namespace: string;
  ip: string;
}

export interface MeshNameSources {
  /** Everything to answer for; asked again whenever `version` changes. */
  entries(): Iterable<MeshNameEntry>;
  version(): string;
}

export class MeshNames {
  private readonly svcSuffix: string;
  private index = new Map<string, string[]>();
  private indexed: string | undefined;

  constructor(
    readonly domain: string,
    private readonly sources: MeshNameSources,
  ) {
    this.svcSuffix = `.svc.${domain}`;
  }

  /** The addresses of `name` (lowercase, no trailing dot) asked by a pod of `namespace`, when it is a mesh name. */
  lookup(name: string, namespace: string): string[] | undefined {
    const fqdn = this.qualify(name, namespace);
    if (fqdn === undefined) return undefined;
    return this.current().get(fqdn);
  }

  /** The fully qualified form of a name this module could answer, or undefined. */
  private qualify(name: string, namespace: string): string | undefined {
    if (name.endsWith(this.svcSuffix)) return name;
    const labels = name.split('.');
    if (labels.length === 1) return `${name}.${namespace}${this.svcSuffix}`;
    if (labels.length === 2) return `${name}${this.svcSuffix}`;
    if (labels.length === 3 && labels[2] === 'svc') return `${name}.${this.domain}`;
    return undefined;
  }

  private current(): Map<string, string[]> {
    const version = this.sources.version();
    if (version !== this.indexed) {
      const next = new Map<string, string[]>();
      for (const e of this.sources.entries()) {
        const key = `${e.name}.${e.namespace}${this.svcSuffix}`.toLowerCase();
        const ips = next.get(key);
        if (ips === undefined) next.set(key, [e.ip]);
        else if (!ips.includes(e.ip)) ips.push(e.ip);
      }
      this.index = next;
      this.indexed = version;
    }
    return this.index;
  }
}

/** This node's workloads and, when meshed, the registry's: the mesh names of today. */
export function workloadNameSources(
  local: { all(): Iterable<MeshNameEntry>; version: number },
  registry: () => { all(): Iterable<MeshNameEntry>; version: number } | undefined,
): MeshNameSources {
  return {
    *entries() {
      yield* local.all();
      const r = registry();
      if (r) yield* r.all();
    },
    version: () => `${local.version}/${registry()?.version ?? '-'}`,
  };
}
