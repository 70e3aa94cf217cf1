/**
 * The collector's policies compiled once, as the agents compile them: each stored manifest as the
 * `policies` frame carries it (JSON text, source `<origin>:<Kind/namespace/name>`). The manager
 * keeps the set in force; a change compiles only the policies whose file is new (a candidate
 * reuses every compiled policy of an unchanged file), so `policy test`, `egress list` and every
 * apply no longer recompile what is stored. A set is immutable: a change makes a new one.
 *
 * Manifests are compiled from the data (parseManifest), never by parsing their JSON text again.
 * A change from the API is compiled in the policy worker (set-check.ts), not on the event loop.
 */
import { PalisadeError } from '../../common/errors';
import {
  compilePolicyFiles,
  DEFAULT_ROOT_NAMESPACE,
  parseManifest,
  PolicyIndex,
  type CompiledAuthorizationPolicy,
  type CompiledEgressPolicy,
  type CompiledPolicy,
  type PolicySet,
} from '../../common/policy';
import type { PolicyFile } from '../../common/policy-files';
import { isRoute, type CompiledDestinationRule, type CompiledFaultInjection } from '../../common/routes';
import { manifestText } from './manifest-text';
import { policyKey, type DesiredPolicy } from './repository';

/** The files of the `policies` frame: one per policy, in the given order. */
export const policyFiles = (set: readonly DesiredPolicy[]): PolicyFile[] => set.map((p) => ({ source: `${p.origin}:${policyKey(p)}`, text: manifestText(p.manifest) }));

/** The policies of a `policies` frame (made of `policyFiles`) back as the policies they were. */
export function desiredFromFrame(frame: string): DesiredPolicy[] {
  if (frame === '') return [];
  const { files } = JSON.parse(frame) as { files: PolicyFile[] };
  return files.map((f) => {
    const colon = f.source.indexOf(':');
    const [kind, namespace, name] = f.source.slice(colon + 1).split('/') as [DesiredPolicy['kind'], string, string];
    return { kind, namespace, name, origin: f.source.slice(0, colon) as DesiredPolicy['origin'], manifest: JSON.parse(f.text) as Record<string, unknown> };
  });
}

/** One file and what it compiled to. */
export interface Entry {
  readonly file: PolicyFile;
  readonly policies: readonly CompiledPolicy[];
  readonly warnings: readonly string[];
}

export class CompiledPolicies {
  static readonly EMPTY = new CompiledPolicies([]);

  /** The files, in order: what agents are sent. */
  readonly files: readonly PolicyFile[];
  /** What `compilePolicyFiles(files)` returns, without compiling them again. */
  readonly set: PolicySet;
  private readonly bySource: ReadonlyMap<string, Entry>;
  private indexed: PolicyIndex | undefined;

  private constructor(entries: readonly Entry[]) {
    this.files = entries.map((e) => e.file);
    this.bySource = new Map(entries.map((e) => [e.file.source, e]));
    const all = entries.flatMap((e) => e.policies);
    this.set = {
      authorization: all.filter((p): p is CompiledAuthorizationPolicy => p.kind === 'AuthorizationPolicy'),
      egress: all.filter((p): p is CompiledEgressPolicy => p.kind === 'EgressPolicy'),
      routes: all.filter(isRoute),
      faults: all.filter((p): p is CompiledFaultInjection => p.kind === 'FaultInjection'),
      destinationRules: all.filter((p): p is CompiledDestinationRule => p.kind === 'DestinationRule'),
      rootNamespace: DEFAULT_ROOT_NAMESPACE,
      warnings: entries.flatMap((e) => e.warnings),
    };
  }

  /** `policies` compiled, all of them. */
  static of(policies: readonly DesiredPolicy[]): CompiledPolicies {
    return CompiledPolicies.EMPTY.with(policies);
  }

  /** The entry compiled from the file with this source, if any. */
  entry(source: string): Entry | undefined {
    return this.bySource.get(source);
  }

  /** Which policies select which workload, built on first use. */
  get index(): PolicyIndex {
    return (this.indexed ??= new PolicyIndex(this.set));
  }

  /**
   * The set `policies` make. A file with the same source and text as one of this set (or of
   * `reuse`) keeps its compiled policies; only the others are compiled. Throws what
   * `compilePolicyFiles(policyFiles(policies))` throws (PolicyInvalidError, every problem).
   */
  with(policies: readonly DesiredPolicy[], ...reuse: readonly CompiledPolicies[]): CompiledPolicies {
    const files = policyFiles(policies);
    const pools = [this, ...reuse];
    let clean = true;
    const entries = files.map((file, i): Entry => {
      const known = reused(pools, file);
      if (known) return known;
      const entry = compileEntry(file, policies[i]!);
      if (entry.problems) clean = false;
      return entry;
    });
    if (!clean || definesTwice(entries)) {
      // Said exactly as compiling the whole set says it (problems in file order, "defined again" lines).
      compilePolicyFiles(files);
      throw new PalisadeError('PALISADE_ERR_INTERNAL', 'policies compiled file by file and as a whole disagree');
    }
    return new CompiledPolicies(entries);
  }
}

/** The entry for `file` in one of `pools` with the same source and text. */
function reused(pools: readonly CompiledPolicies[], file: PolicyFile): Entry | undefined {
  for (const pool of pools) {
    const known = pool.entry(file.source);
    if (known !== undefined && known.file.text === file.text) return known;
  }
  return undefined;
}

function compileEntry(file: PolicyFile, policy: DesiredPolicy): Entry & { problems: boolean } {
  // every manifest the collector holds was made by the compiler (a parse, the store, a frame): kept as it is
  const r = parseManifest(policy.manifest, file.source, { keep: true });
  return { file, policies: r.policies, warnings: r.warnings, problems: r.problems.length > 0 };
}

/** Some kind/namespace/name is defined by two files. */
function definesTwice(entries: readonly Entry[]): boolean {
  const seen = new Set<string>();
  for (const e of entries) {
    for (const p of e.policies) {
      const key = policyKey(p);
      if (seen.has(key)) return true;
      seen.add(key);
    }
  }
  return false;
}
