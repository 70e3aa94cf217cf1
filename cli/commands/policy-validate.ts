/**
 * `palisade policy validate -f FILE...`: check AuthorizationPolicy / EgressPolicy files the way
 * the agent and collector will load them, and report every problem, locally. The commands that
 * manage the collector's policies are in policy-manage.ts.
 */
import type { Command } from 'commander';
import { invalidArgument } from '../../common/errors';
import { isDnsLabel } from '../../common/identity';
import { allOf, compilePolicyFiles, DEFAULT_ROOT_NAMESPACE, PolicyInvalidError, type CompiledPolicy } from '../../common/policy';
import type { CliDeps } from '../deps';
import { collectValue, oneOfFlag } from '../options';
import { readPolicyFile } from '../policy-file';

interface ValidateFlags {
  file: string[];
  output: string;
  rootNamespace: string;
}

/** A FaultInjection has no rules (it is one fault). */
const ruleCount = (p: CompiledPolicy): number => ('rules' in p ? p.rules.length : 0);

/** What `-o json` says about one policy. */
function describePolicy(p: CompiledPolicy, rootNamespace: string): Record<string, unknown> {
  return {
    kind: p.kind,
    apiVersion: p.apiVersion,
    namespace: p.namespace,
    name: p.name,
    action: p.kind === 'AuthorizationPolicy' ? p.action : 'ALLOW',
    rules: ruleCount(p),
    selector: p.selector ?? null,
    meshWide: p.namespace === rootNamespace,
    source: p.source,
    line: p.line,
  };
}

/** `kind namespace/name action N rules (selector where)`, one row per policy. */
function policyRow(p: CompiledPolicy, rootNamespace: string): string[] {
  const action = p.kind === 'AuthorizationPolicy' ? p.action : 'ALLOW';
  const n = ruleCount(p);
  const rules = `${n} rule${n === 1 ? '' : 's'}`;
  const scope = p.selector ? Object.entries(p.selector).map(([k, v]) => `${k}=${v}`).join(',') : 'all workloads';
  const where = p.namespace === rootNamespace ? 'mesh-wide' : `in ${p.namespace}`;
  return [p.kind, p.id, action, rules, `(${scope} ${where})`];
}

/** Rows with aligned columns, indented under their file's line. */
function alignedLines(rows: string[][]): string[] {
  const widths = rows.reduce<number[]>((w, row) => row.map((cell, i) => Math.max(w[i] ?? 0, cell.length)), []);
  return rows.map((row) => `  ${row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ')}`);
}

/** Adds `validate` under `policy` (the group program.ts made). */
export function registerPolicyValidateCommand(policy: Command, deps: CliDeps): void {
  policy
    .command('validate')
    .description('check policy files (YAML or JSON: AuthorizationPolicy, EgressPolicy) and report every problem')
    .requiredOption('-f, --file <file>', 'a policy file; repeat for several (checked together)', collectValue)
    .option('-o, --output <format>', 'text|json', 'text')
    .option('--root-namespace <ns>', 'policies in this namespace apply mesh-wide', DEFAULT_ROOT_NAMESPACE)
    .action((flags: ValidateFlags) => {
      const output = oneOfFlag('-o', flags.output, ['text', 'json'] as const);
      if (!isDnsLabel(flags.rootNamespace)) {
        throw invalidArgument(`invalid --root-namespace ${JSON.stringify(flags.rootNamespace)}: not a namespace name`);
      }
      const files = [...new Set(flags.file)].map(readPolicyFile);
      let invalid: PolicyInvalidError | undefined;
      let policies: CompiledPolicy[] = [];
      let warnings: readonly string[] = [];
      try {
        const set = compilePolicyFiles(files, { rootNamespace: flags.rootNamespace });
        policies = allOf(set);
        warnings = set.warnings ?? [];
      } catch (err) {
        if (!(err instanceof PolicyInvalidError)) throw err;
        invalid = err;
      }
      const order = (a: CompiledPolicy, b: CompiledPolicy): number => files.findIndex((f) => f.source === a.source) - files.findIndex((f) => f.source === b.source) || a.line - b.line;
      policies.sort(order);

      if (output === 'json') {
        const body = {
          valid: invalid === undefined,
          policies: policies.map((p) => describePolicy(p, flags.rootNamespace)),
          problems: invalid?.problems ?? [],
          warnings,
        };
        deps.stdout(`${JSON.stringify(body)}\n`);
      } else if (invalid) {
        for (const problem of invalid.problems) deps.stderr(`${problem}\n`);
      } else {
        for (const w of warnings) deps.stderr(`${w}\n`);
        const lines = alignedLines(policies.map((p) => policyRow(p, flags.rootNamespace)));
        for (const file of files) {
          const mine = policies.filter((p) => p.source === file.source).length;
          deps.stdout(`${file.source}: ${mine} ${mine === 1 ? 'policy' : 'policies'} valid\n`);
          for (let i = 0; i < policies.length; i++) if (policies[i]!.source === file.source) deps.stdout(`${lines[i]}\n`);
        }
      }
      // Every problem is already printed: exit with the code's status, without another message.
      if (invalid) throw Object.assign(invalid, { exitCodeOnly: invalid.exitCode });
    });
}
