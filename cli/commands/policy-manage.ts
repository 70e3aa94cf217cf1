/**
 * `palisade policy apply|list|get|delete|history|test`: manage the collector's versioned policies
 * through its control API (common/control-api.ts). Every flag is checked before anything is sent;
 * every answer is checked before it is printed; every failure is one line.
 */
import type { Command } from 'commander';
import { stringify } from 'yaml';
import { printable } from '../../common/api-client';
import {
  CONTROL_API,
  type PolicyGetResponse,
  type PolicyHistoryResponse,
  type PolicyListResponse,
  type PolicyTestResponse,
} from '../../common/control-api';
import { invalidArgument } from '../../common/errors';
import { expectShape, postChange, printChange } from '../api-answers';
import { addApiOptions, apiClient } from '../api-options';
import type { ApiFlags } from '../config';
import type { ApiDeps, Env } from '../deps';
import { collectValue, oneOfFlag, parseSince } from '../options';
import { readPolicyFile } from '../policy-file';
import { formatTable } from '../table';

function policyRef(name: string): string {
  if (name.length === 0 || name.length > 512 || !/^[A-Za-z0-9._/-]+$/.test(name) || name.split('/').length > 3 || name.split('/').some((p) => p === '')) {
    throw invalidArgument(`invalid policy name ${JSON.stringify(name.slice(0, 80))}: give [Kind/]namespace/name or a name`);
  }
  return name;
}

interface OutFlags extends ApiFlags {
  output: string;
}

/** Adds the commands under `policy` (the group program.ts made). */
export function registerPolicyManageCommands(policy: Command, deps: ApiDeps): void {
  const env = (): Env => deps.env ?? process.env;

  addApiOptions(
    policy
      .command('apply')
      .description('create or replace the policies in FILE at the collector, all or nothing (a new version, pushed to every agent)')
      .requiredOption('-f, --file <file>', 'a policy file (YAML or JSON); repeat for several', collectValue)
      .option('--dry-run', 'show what would change (with diffs) without applying it'),
  ).action(async (flags: ApiFlags & { file: string[]; dryRun?: boolean }) => {
    const files = [...new Set(flags.file)].map(readPolicyFile);
    const client = apiClient(flags, env());
    printChange(await postChange(client, CONTROL_API.policyApply, { files, dryRun: flags.dryRun === true }), deps.stdout);
  });

  addApiOptions(
    policy.command('list').description("the collector's policies: id, kind, namespace/name, origin, version").option('-o, --output <format>', 'table|json', 'table'),
  ).action(async (flags: OutFlags) => {
    const output = oneOfFlag('-o', flags.output, ['table', 'json'] as const);
    const r = expectShape<PolicyListResponse>(await apiClient(flags, env()).getJson(CONTROL_API.policies), CONTROL_API.policies, { version: 'number', policies: 'array' });
    if (output === 'json') return deps.stdout(`${JSON.stringify(r)}\n`);
    deps.stdout(`policy version ${r.version}\n`);
    if (r.policies.length === 0) return deps.stdout('no policies\n');
    const rows = r.policies.map((p) => [
      String(p.id),
      p.kind,
      `${p.namespace}/${p.name}`,
      p.origin === 'dir' ? `dir:${p.file ?? ''}` : p.origin,
      `v${p.version}`,
      p.updated,
      p.author,
    ]);
    deps.stdout(formatTable(['ID', 'KIND', 'NAME', 'ORIGIN', 'VERSION', 'UPDATED', 'AUTHOR'], rows));
  });

  addApiOptions(
    policy.command('get').description('one policy as YAML (what apply takes back)').argument('<name>', '[Kind/]namespace/name, or a name').option('-o, --output <format>', 'yaml|json', 'yaml'),
  ).action(async (name: string, flags: OutFlags) => {
    const output = oneOfFlag('-o', flags.output, ['yaml', 'json'] as const);
    const r = expectShape<PolicyGetResponse>(
      await apiClient(flags, env()).getJson(CONTROL_API.policyGet, { name: policyRef(name) }),
      CONTROL_API.policyGet,
      { policy: 'object', manifest: 'object' },
    );
    // JSON and YAML escape control characters inside strings: nothing here can drive the terminal.
    deps.stdout(output === 'json' ? `${JSON.stringify(r.manifest, null, 2)}\n` : stringify(r.manifest, { lineWidth: 0 }));
  });

  addApiOptions(
    policy
      .command('delete')
      .description('delete one policy at the collector (a new version, pushed to every agent)')
      .argument('<name>', '[Kind/]namespace/name, or a name')
      .option('--dry-run', 'show what would change without applying it'),
  ).action(async (name: string, flags: ApiFlags & { dryRun?: boolean }) => {
    const ref = policyRef(name);
    printChange(await postChange(apiClient(flags, env()), CONTROL_API.policyDelete, { name: ref, dryRun: flags.dryRun === true }), deps.stdout);
  });

  addApiOptions(
    policy
      .command('history')
      .description('policy versions, newest first: who changed what when (with NAME: that policy\'s changes, with diffs)')
      .argument('[name]', '[Kind/]namespace/name, or a name')
      .option('-o, --output <format>', 'table|json', 'table'),
  ).action(async (name: string | undefined, flags: OutFlags) => {
    const output = oneOfFlag('-o', flags.output, ['table', 'json'] as const);
    const r = expectShape<PolicyHistoryResponse>(
      await apiClient(flags, env()).getJson(CONTROL_API.policyHistory, { name: name === undefined ? undefined : policyRef(name) }),
      CONTROL_API.policyHistory,
      { versions: 'array' },
    );
    if (output === 'json') return deps.stdout(`${JSON.stringify(r)}\n`);
    if (r.versions.length === 0) return deps.stdout('no policy versions\n');
    if (name === undefined) {
      const rows = r.versions.map((v) => [
        `v${v.version}`,
        v.time,
        v.author,
        v.action,
        v.changes.map((c) => `${c.op} ${c.kind} ${c.namespace}/${c.name}`).join(', '),
      ]);
      return deps.stdout(formatTable(['VERSION', 'TIME', 'AUTHOR', 'ACTION', 'CHANGES'], rows));
    }
    for (const v of r.versions) {
      for (const c of v.changes) {
        deps.stdout(printable(`v${v.version}  ${v.time}  ${v.author}  ${v.action}: ${c.op} ${c.kind} ${c.namespace}/${c.name}`) + '\n');
        for (const line of c.diff.split('\n')) if (line) deps.stdout(`    ${printable(line)}\n`);
      }
    }
  });

  addApiOptions(
    policy
      .command('test')
      .description('replay stored flows against the policies FILE would make, and list the flows whose verdict would change (nothing is applied)')
      .requiredOption('-f, --file <file>', 'a candidate policy file; repeat for several', collectValue)
      .option('--since <duration>', 'replay flows from this long ago (1h, 24h) or since a time', '1h')
      .option('-o, --output <format>', 'table|json', 'table'),
  ).action(async (flags: OutFlags & { file: string[]; since: string }) => {
    const output = oneOfFlag('-o', flags.output, ['table', 'json'] as const);
    const since = parseSince(flags.since, Date.now());
    const files = [...new Set(flags.file)].map(readPolicyFile);
    const r = expectShape<PolicyTestResponse>(
      await apiClient(flags, env()).postJson(CONTROL_API.policyTest, { files, since }),
      CONTROL_API.policyTest,
      { flows: 'number', changed: 'array', undetermined: 'object' },
    );
    if (output === 'json') return deps.stdout(`${JSON.stringify(r)}\n`);
    const changedFlows = r.changed.reduce((n, g) => n + g.count, 0);
    deps.stdout(`replayed ${r.flows} flows since ${new Date(since).toISOString()}: ${changedFlows} would change verdict\n`);
    if (r.changed.length > 0) {
      const rows = r.changed.map((g) => [
        `${g.from} -> ${g.to}`,
        String(g.count),
        g.source,
        g.destination,
        g.detail ?? '',
        g.policy ?? '-',
        g.reason,
      ]);
      deps.stdout(formatTable(['CHANGE', 'FLOWS', 'SOURCE', 'DESTINATION', 'DETAIL', 'POLICY', 'REASON'], rows));
    }
    const undetermined = Object.entries(r.undetermined).filter(([, n]) => typeof n === 'number' && n > 0);
    if (undetermined.length > 0) {
      deps.stdout(`not replayable: ${undetermined.map(([why, n]) => `${n} (${printable(why)})`).join(', ')}\n`);
    }
  });
}
