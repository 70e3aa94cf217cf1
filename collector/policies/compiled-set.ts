/**
 * The collector's policies compiled once, as the agents compile them: each stored manifest as the
 * `policies` frame carries it (JSON text, source `<origin>:<Kind/namespace/name>`). The manager
 * keeps the set in force; a change compiles only the policies whose file is new (a candidate
 * reuses every compiled policy of an unchanged file), so `policy test`, `egress list` and every
 * apply no longer recompile what is stored. A set is immutable: a change makes a new one.
 */
import { PalisadeError } from '../../common/errors';
import {
  compilePolicyFiles,
  DEFAULT_ROOT_NAMESPACE,
  parsePolicies,
  PolicyIndex,
  type CompiledAuthorizationPolicy,
  type CompiledEgressPolicy,
  type CompiledPolicy,
  type PolicySet,
} from '../../common/policy';
import type { PolicyFile } from '../../common/policy-files';
import type { CompiledFaultInjection, CompiledHttpRoute } from '../../common/routes';
import { policyKey, type DesiredPolicy } from './repository';

/** The files of the `policies` frame: one per policy, in the given order. */
export const policyFiles = (set: readonly DesiredPolicy[]): PolicyFile[] =>
  set.map((p) => ({ source: `${p.origin}:${policyKey(p)}`, text: JSON.stringify(p.manifest) }));

/** One file and what it compiled to. */
interface Entry {
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
      routes: all.filter((p): p is CompiledHttpRoute => p.kind === 'HTTPRoute'),
      faults: all.filter((p): p is CompiledFaultInjection => p.kind === 'FaultInjection'),
      rootNamespace: DEFAULT_ROOT_NAMESPACE,
      warnings: entries.flatMap((e) => e.warnings),
    };
  }

  /** `policies` compiled, all of them. */
  static of(policies: readonly DesiredPolicy[]): CompiledPolicies {
    return CompiledPolicies.EMPTY.with(policies);
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
    const entries = files.map((file): Entry => {
      for (const pool of pools) {
        const known = pool.bySource.get(file.source);
        if (known !== undefined && known.file.text === file.text) return known;
      }
      const r = parsePolicies(file.text, file.source);
      if (r.problems.length > 0) clean = false;
      return { file, policies: r.policies, warnings: r.warnings };
    });
    if (!clean || definesTwice(entries)) {
      // Said exactly as compiling the whole set says it (problems in file order, "defined again" lines).
      compilePolicyFiles(files);
      throw new PalisadeError('PALISADE_ERR_INTERNAL', 'policies compiled file by file and as a whole disagree');
    }
    return new CompiledPolicies(entries);
  }
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
