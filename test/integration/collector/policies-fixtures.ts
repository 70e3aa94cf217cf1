/**
 * Shared pieces of the collector's policies suites (policies*.test.ts): the `palisade` CLI run in-process against a real
 * collector with the flags a user passes (--collector, --token-file, --ca), an agent session
 * that handles `policies` frames as agent/agent.ts does, and the policy documents they apply.
 */
import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { CliDeps } from '../../../cli/deps';
import type { CollectorClient } from '../../../agent/mesh/collector-client';
import type { RunningCollector } from '../../../collector/collector';
import type { PolicyListResponse } from '../../../common/control-api';
import { WORKLOAD_LABEL } from '../../../common/labels';
import type { WorkloadRegistration } from '../../../common/mesh-protocol';
import { compilePolicyFiles } from '../../../common/policy';
import type { PolicyFile } from '../../../common/policy-files';
import { runCli, type CliResult } from '../../harness/cli';
import { client, snapshotWhere, workload, type Stack } from './helpers';

export type Cli = (...argv: string[]) => Promise<CliResult>;

/** `palisade ARGV --collector URL --token-file <data>/admin.token --ca <data>/ca.crt`, with no config file to fall back on. */
export function cliFor(col: RunningCollector, dataDir: string, home: string): Cli {
  const deps: Partial<CliDeps> & { env: Record<string, string> } = { env: { XDG_CONFIG_HOME: home, HOME: home } };
  return (...argv) =>
    runCli([...argv, '--collector', col.apiUrl, '--token-file', path.join(dataDir, 'admin.token'), '--ca', path.join(dataDir, 'ca.crt')], deps);
}

/** The JSON a command printed (it must have succeeded). */
export function json<T>(r: CliResult): T {
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as T;
}

/** Refused: a non-zero exit, nothing on stdout, one line on stderr matching `pattern`. */
export function refused(r: CliResult, pattern: RegExp): void {
  assert.notEqual(r.code, 0, `exit 0: ${r.stdout}`);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /^palisade: [^\n]+\n$/, 'one line on stderr');
  assert.match(r.stderr, pattern);
}

export const listPolicies = async (cli: Cli): Promise<PolicyListResponse> => json<PolicyListResponse>(await cli('policy', 'list', '-o', 'json'));

/** `admin:` and the first 8 hex digits of the admin token's SHA-256: how changes name their author. */
export const adminAuthor = (col: RunningCollector): string => `admin:${createHash('sha256').update(col.adminToken).digest('hex').slice(0, 8)}`;

/** Write `text` to `dir/name` and return the path. */
export function writeFile(dir: string, name: string, text: string): string {
  const file = path.join(dir, name);
  fs.writeFileSync(file, text);
  return file;
}

export function egressYaml(name: string, host: string): string {
  return `apiVersion: palisade.dev/v1
kind: EgressPolicy
metadata:
  name: ${name}
  namespace: default
spec:
  selector:
    matchLabels:
      app: web
  allow:
    - hosts: [${host}]
`;
}

/** A workload as the agent registers it: its labels plus palisade.dev/workload (agent/workloads.ts adds it to every workload). */
export function meshWorkload(name: string, ip: string): WorkloadRegistration {
  const w = workload(name, ip);
  return { ...w, labels: { ...w.labels, [WORKLOAD_LABEL]: name } };
}

export interface PolicyFrame {
  version: number;
  files: PolicyFile[];
}

export interface TestAgent {
  session: CollectorClient;
  /** Every `policies` frame received, in order. */
  frames: PolicyFrame[];
}

/**
 * An agent session (node credentials already in `agentDir`) registering `client` and `web` in
 * namespace default. Like agent/agent.ts it compiles every `policies` frame and reports the
 * version back (ok, or the problems).
 */
export async function startAgent(stack: Stack, col: RunningCollector, agentDir: string, node: string): Promise<TestAgent> {
  const session = client(stack, { url: col.url, caPem: col.ca.certPem, node, dataDir: agentDir });
  const frames: PolicyFrame[] = [];
  session.on('policies', (p: PolicyFrame) => {
    frames.push(p);
    let problems: readonly string[] = [];
    try {
      compilePolicyFiles(p.files);
    } catch (err) {
      problems = (err as { problems?: readonly string[] }).problems ?? [(err as Error).message];
    }
    session.reportPolicyStatus(p.version, problems.length === 0, problems);
  });
  session.setWorkloads([meshWorkload('client', '10.1.0.1'), meshWorkload('web', '10.1.0.2')]);
  await session.start();
  await snapshotWhere(session, (s) => s.workloads.length === 2);
  return { session, frames };
}

/** `namespace/name` of every policy in a `policies` frame (it must compile). */
export function frameNames(frame: PolicyFrame): string[] {
  const set = compilePolicyFiles(frame.files);
  return [...set.authorization, ...set.egress].map((p) => `${p.kind} ${p.namespace}/${p.name}`).sort();
}
