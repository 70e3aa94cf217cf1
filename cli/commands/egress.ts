/**
 * `palisade egress list|allow|deny|remove|learn`: egress allowlists at the collector. `allow` and
 * `deny` create one EgressPolicy selecting exactly the workload (label palisade.dev/workload);
 * `remove ID` deletes it; `learn` proposes the minimal allowlist from the workload's recorded
 * egress, as YAML for `policy apply -f`.
 */
import type { Command } from 'commander';
import { printable } from '../../common/api-client';
import { CONTROL_API, type EgressLearnResponse, type EgressListResponse } from '../../common/control-api';
import { invalidArgument } from '../../common/errors';
import { expectShape, postChange, printChange } from '../api-answers';
import { addApiOptions, apiClient } from '../api-options';
import type { ApiFlags } from '../config';
import type { ApiDeps, Env } from '../deps';
import { collectPort, oneOfFlag, parseSince } from '../options';
import { formatTable } from '../table';

const WORKLOAD_RE = /^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\/)?[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

function workloadRef(w: string): string {
  if (!WORKLOAD_RE.test(w)) throw invalidArgument(`invalid workload ${JSON.stringify(w.slice(0, 80))}: give namespace/name or name (lowercase DNS labels)`);
  return w;
}

export function registerEgressCommands(program: Command, deps: ApiDeps): void {
  const env = (): Env => deps.env ?? process.env;
  const egress = program.command('egress').description('egress allowlists: which hosts and addresses a workload may reach outside the mesh');

  addApiOptions(
    egress
      .command('list')
      .description('egress rules at the collector (ID, workloads, allow/deny, destinations, ports)')
      .option('--workload <workload>', 'only rules selecting this workload (namespace/name or name)')
      .option('-o, --output <format>', 'table|json', 'table'),
  ).action(async (flags: ApiFlags & { workload?: string; output: string }) => {
    const output = oneOfFlag('-o', flags.output, ['table', 'json'] as const);
    const workload = flags.workload === undefined ? undefined : workloadRef(flags.workload);
    const r = expectShape<EgressListResponse>(await apiClient(flags, env()).getJson(CONTROL_API.egress, { workload }), CONTROL_API.egress, { version: 'number', rules: 'array' });
    if (output === 'json') return deps.stdout(`${JSON.stringify(r)}\n`);
    if (r.rules.length === 0) return deps.stdout(`no egress rules (policy version ${r.version}): workloads reach any destination\n`);
    const rows = r.rules.map((e) => [
      String(e.id),
      e.workloads.length ? e.workloads.join(',') : `(none now; ${e.selector ? Object.entries(e.selector).map(([k, v]) => `${k}=${v}`).join(',') : 'all'} in ${e.namespace})`,
      e.action,
      [...e.hosts, ...e.cidrs].join(','),
      e.protocol ?? 'TCP',
      e.ports.length ? e.ports.join(',') : 'any',
      `${e.namespace}/${e.policy}`,
      e.origin,
    ]);
    deps.stdout(formatTable(['ID', 'WORKLOADS', 'ACTION', 'DESTINATIONS', 'PROTOCOL', 'PORTS', 'POLICY', 'ORIGIN'], rows));
  });

  for (const action of ['allow', 'deny'] as const) {
    addApiOptions(
      egress
        .command(action)
        .description(
          action === 'allow'
            ? 'let WORKLOAD reach DEST (host, *.suffix or CIDR); once a workload has an allow rule, everything else is refused'
            : 'refuse WORKLOAD the DEST (host, *.suffix or CIDR), whatever allows it',
        )
        .argument('<workload>', 'namespace/name or name of a registered workload')
        .argument('<dest...>', 'api.example.com, *.example.com, 203.0.113.0/24 or 203.0.113.7')
        .option('--port <port>', 'only this port; repeat for several (default: any port)', collectPort)
        .option('--protocol <protocol>', 'tcp (default), udp or icmp: UDP and ICMP take CIDRs only, ICMP no ports')
        .option('--dry-run', 'show the policy that would be created without applying it'),
    ).action(async (workload: string, dests: string[], flags: ApiFlags & { port?: number[]; protocol?: string; dryRun?: boolean }) => {
      const protocol = flags.protocol === undefined ? undefined : oneOfFlag('--protocol', flags.protocol.toLowerCase(), ['tcp', 'udp', 'icmp'] as const).toUpperCase() as 'TCP' | 'UDP' | 'ICMP';
      const body = {
        workload: workloadRef(workload),
        action,
        destinations: dests,
        ...(flags.port ? { ports: flags.port } : {}),
        ...(protocol ? { protocol } : {}),
        dryRun: flags.dryRun === true,
      };
      const r = await postChange(apiClient(flags, env()), CONTROL_API.egressRules, body);
      printChange(r, deps.stdout);
      const what = `${protocol && protocol !== 'TCP' ? `${protocol} to ` : ''}${dests.join(', ')}${flags.port ? ` on port ${flags.port.join(', ')}` : ''}`;
      if (r.applied && r.id !== undefined) deps.stdout(`egress rule ${r.id}: ${workload} ${action === 'allow' ? 'may reach' : 'may not reach'} ${what}\n`);
    });
  }

  addApiOptions(
    egress
      .command('remove')
      .description('delete the egress rule ID (from egress list) at the collector')
      .argument('<id>', 'rule ID')
      .option('--dry-run', 'show what would change without applying it'),
  ).action(async (id: string, flags: ApiFlags & { dryRun?: boolean }) => {
    if (!/^[1-9]\d{0,14}$/.test(id)) throw invalidArgument(`invalid ID ${JSON.stringify(id.slice(0, 20))}: use an ID from palisade egress list`);
    printChange(await postChange(apiClient(flags, env()), CONTROL_API.egressRemove, { id: Number(id), dryRun: flags.dryRun === true }), deps.stdout);
  });

  addApiOptions(
    egress
      .command('learn')
      .description("propose the minimal EgressPolicy that allows the workload's recorded egress (YAML for policy apply -f)")
      .requiredOption('--workload <workload>', 'namespace/name or name')
      .option('--since <duration>', 'learn from flows of this long ago (24h) or since a time', '24h')
      .option('--group-suffixes', 'group hosts that share a parent domain into *.parent')
      .option('--include-denied', 'also allow destinations that were denied (off: denied ones are left out and counted)')
      .option('-o, --output <format>', 'yaml|json', 'yaml'),
  ).action(async (flags: ApiFlags & { workload: string; since: string; groupSuffixes?: boolean; includeDenied?: boolean; output: string }) => {
    const output = oneOfFlag('-o', flags.output, ['yaml', 'json'] as const);
    const since = parseSince(flags.since, Date.now());
    const r = expectShape<EgressLearnResponse>(
      await apiClient(flags, env()).getJson(CONTROL_API.egressLearn, {
        workload: workloadRef(flags.workload),
        since,
        groupSuffixes: flags.groupSuffixes === true ? true : undefined,
        includeDenied: flags.includeDenied === true ? true : undefined,
      }),
      CONTROL_API.egressLearn,
      { yaml: 'string', manifest: 'object', flows: 'number', skipped: 'object', destinations: 'array' },
    );
    if (output === 'json') return deps.stdout(`${JSON.stringify(r)}\n`);
    deps.stdout(r.yaml.endsWith('\n') ? r.yaml : `${r.yaml}\n`);
    const skipped = Object.entries(r.skipped).filter(([, n]) => typeof n === 'number' && n > 0);
    deps.stderr(
      `learned from ${r.flows} egress flows since ${new Date(since).toISOString()}: ${r.destinations.length} destinations` +
        (skipped.length ? `; left out ${skipped.map(([why, n]) => `${n} ${printable(why)}`).join(', ')}` : '') +
        '\n',
    );
  });
}
